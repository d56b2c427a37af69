// The MQTT transport's options: every value with its default, checked once before anything
// connects, so that a mistake is a TypeError naming the option rather than a daemon that never works.
import os from "node:os";
import type { HomeAssistantOptions } from "./homeassistant.js";
import { HA_DEVICE_NAME_MAX, haNodeId } from "./homeassistant.js";
import { defaultResponseTopics, ResponseTopics } from "./response-topics.js";
import { checkTopicPart } from "./topics.js";

export interface MqttOptions {
  url: string; // mqtt://host:1883 or mqtts://host:8883; user:password@ in the URL also works
  protocolVersion: 4 | 5; // 5 (default) or 4 (MQTT 3.1.1)
  baseTopic: string;
  clientId: string; // stable, so the broker keeps this daemon's session across restarts
  username?: string;
  password?: string;
  passwordFile?: string; // read at start; trailing newline ignored
  ca?: string; // PEM files for mqtts://
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
  keepalive: number; // seconds
  /** Seconds the broker keeps the session (and queued requests) while the daemon is away; 0 = clean. */
  sessionExpiry: number;
  /** MQTT 5 shared subscription group for generate requests; null = not shared. */
  shareGroup: string | null;
  /** Topic filters a request's MQTT 5 Response Topic must match (default: <base>/reply/#). */
  responseTopics: string[];
  chunkExpiry: number; // seconds a chunk may wait in the broker (MQTT 5)
  finalExpiry: number; // seconds a final answer may wait in the broker (MQTT 5)
  /** Final answers held while the broker is away, at most this many and this many bytes. */
  maxPendingFinals: number;
  maxPendingBytes: number;
  statsInterval: number; // seconds between bridge/stats messages; 0 = only on busy/idle changes
  reconnectMinMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  /** null: no Home Assistant discovery. */
  homeAssistant: HomeAssistantOptions | null;
  /** The discovery prefix even with discovery off: response topics may never lie under it. */
  discoveryPrefix: string;
  /**
   * The daemon's state directory (one per daemon): generation requests acknowledged but not yet
   * answered (answered after a crash) and the discovery configs it published (cleared when they
   * are no longer wanted). null: neither is kept.
   */
  stateDir: string | null;
}

export type MqttSettings = Partial<Omit<MqttOptions, "homeAssistant">> & {
  url: string;
  /** Partial: nodeId defaults from the base topic, deviceName to the base topic. */
  homeAssistant?: Partial<HomeAssistantOptions> | null;
};

export function defaultClientId(base = "alpaca"): string {
  return `${haNodeId(base)}_${haNodeId(os.hostname())}`.slice(0, 64);
}

const COUNTS = ["keepalive", "sessionExpiry", "chunkExpiry", "finalExpiry", "maxPendingFinals", "maxPendingBytes", "statsInterval", "reconnectMinMs", "reconnectMaxMs", "connectTimeoutMs"] as const;

/** Fills in defaults and checks every value; a mistake is a TypeError naming the option. */
export function resolveMqttOptions(s: MqttSettings): MqttOptions {
  const baseTopic = s.baseTopic ?? "alpaca";
  checkTopicPart("the MQTT base topic", baseTopic);
  if (s.shareGroup != null) checkTopicPart("the MQTT share group", s.shareGroup, false);
  let url: URL;
  try {
    url = new URL(s.url);
  } catch {
    throw new TypeError(`the MQTT URL is not a URL: ${JSON.stringify(s.url)} (e.g. mqtt://localhost:1883)`);
  }
  if (url.protocol !== "mqtt:" && url.protocol !== "mqtts:") throw new TypeError(`the MQTT URL must use mqtt: or mqtts:, got ${url.protocol}`);
  const given = Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Partial<MqttSettings>;
  const ha = s.homeAssistant === undefined ? {} : s.homeAssistant;
  const discoveryPrefix = s.discoveryPrefix ?? ha?.prefix ?? "homeassistant";
  const o: MqttOptions = {
    protocolVersion: 5,
    clientId: defaultClientId(baseTopic),
    rejectUnauthorized: true,
    keepalive: 30,
    sessionExpiry: 86400,
    shareGroup: null,
    responseTopics: defaultResponseTopics(baseTopic),
    chunkExpiry: 60,
    finalExpiry: 3600,
    maxPendingFinals: 100,
    maxPendingBytes: 4 << 20,
    statsInterval: 30,
    reconnectMinMs: 1000,
    reconnectMaxMs: 60_000,
    connectTimeoutMs: 10_000,
    stateDir: null,
    ...(given as Partial<MqttOptions>),
    homeAssistant: ha && { prefix: discoveryPrefix, nodeId: ha.nodeId ?? haNodeId(baseTopic), deviceName: ha.deviceName ?? baseTopic },
    discoveryPrefix,
    url: s.url,
    baseTopic,
  };
  if (o.protocolVersion !== 4 && o.protocolVersion !== 5) throw new TypeError(`the MQTT protocol version must be 4 (3.1.1) or 5, got ${o.protocolVersion}`);
  if (!o.clientId || o.clientId.length > 65535) throw new TypeError("the MQTT client id must be a non-empty string");
  for (const k of COUNTS)
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new TypeError(`the MQTT option ${k} must be an integer ≥ 0, got ${o[k]}`);
  if (o.sessionExpiry > 0xffffffff) throw new TypeError("the MQTT session expiry is at most 4294967295 seconds");
  checkTopicPart("the Home Assistant discovery prefix", o.discoveryPrefix);
  const name = o.homeAssistant?.deviceName;
  if (name !== undefined && (name.trim() === "" || [...name].length > HA_DEVICE_NAME_MAX))
    throw new TypeError(`the Home Assistant device name must be 1 to ${HA_DEVICE_NAME_MAX} characters, got ${JSON.stringify(name)}`);
  new ResponseTopics(o.responseTopics, baseTopic, o.discoveryPrefix); // throws on a bad entry
  return o;
}
