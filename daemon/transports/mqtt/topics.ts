// Every MQTT topic the daemon uses, with the payload it carries and how it is published: one
// typed table (topic → payload, QoS, retain) instead of strings scattered through the transport.
// Topics are relative to the base topic (default "alpaca"); docs/mqtt.md lists them for users.
import type { InfoData, ReplyMessage, TransactionId } from "../../serving/protocol.js";
import { OPS } from "../../serving/protocol.js";

export type BridgeState = "online" | "offline";

/** bridge/info: what is loaded and how memory was planned (the `info` op's answer, plus MQTT facts). */
export interface BridgeInfo extends Pick<InfoData, "version" | "api_version" | "model" | "plan"> {
  mqtt: { base_topic: string; protocol_version: 4 | 5; share_group: string | null; client_id: string };
}

/** bridge/stats: refreshed every statsInterval seconds and whenever the daemon turns busy or idle. */
export interface BridgeStats {
  busy: boolean;
  queue: { queued: number; running: number; max_queue: number };
  tokens_per_second: number;
  memory: { rss_bytes: number; available_bytes: number | null; total_bytes: number | null; kv_used_cells: number; kv_total_cells: number };
  cpu_temperature_c: number | null;
  uptime_s: number;
  mqtt: { pending_finals: number; dropped_chunks: number; dropped_finals: number };
}

/** response: the last answer to a prompt from the `prompt/set` topic (Home Assistant's text entity). */
export interface LastResponse {
  state: string; // at most 255 characters (code points): Home Assistant's limit for a state
  text: string; // text and prompt are cut to keep the whole under the recorder's limit; truncated says so
  prompt: string;
  transaction: TransactionId;
  stop_reason: string;
  usage: unknown;
  timings: unknown;
  finished_at: string;
  truncated?: true;
}

/** event: one per prompt from `prompt/set`; Home Assistant's event entity reads event_type. */
export type CompletionEvent =
  | { event_type: "completed"; transaction: TransactionId; text: string; stop_reason: string; total_ms: number; truncated?: true }
  | { event_type: "error"; transaction: TransactionId | null; code: string; message: string };

export interface TopicSpec<P> {
  /** Path under the base topic. */
  path: string;
  qos: 0 | 1;
  retain: boolean;
  /** For the type only: the payload this topic carries. */
  payload?: P;
}

function spec<P>(path: string, qos: 0 | 1, retain: boolean): TopicSpec<P> {
  return { path, qos, retain };
}

/** Topics the daemon publishes to, with their payload types and delivery. */
export const PUBLISHED = {
  state: spec<BridgeState>("bridge/state", 1, true),
  info: spec<BridgeInfo>("bridge/info", 1, true),
  stats: spec<BridgeStats>("bridge/stats", 0, true),
  /** Chunks go at QoS 0 and finals at QoS 1; see CHUNK_QOS / FINAL_QOS. */
  response: spec<ReplyMessage>("bridge/response", 1, false),
  promptState: spec<string>("prompt", 1, true),
  lastResponse: spec<LastResponse>("response", 1, true),
  event: spec<CompletionEvent>("event", 1, false),
} as const;

export type PublishedTopic = keyof typeof PUBLISHED;
export type PayloadOf<K extends PublishedTopic> = (typeof PUBLISHED)[K] extends TopicSpec<infer P> ? P : never;

/** Topics the daemon subscribes to (all at QoS 1, so requests wait in a persistent session). */
export const SUBSCRIBED = {
  request: "bridge/request", // + "/<op>": a JSON request envelope
  promptSet: "prompt/set", // plain text: a prompt from Home Assistant's text entity or an automation
  cancel: "cancel", // anything: cancel what prompt/set started (Home Assistant's button)
} as const;

export const CHUNK_QOS = 0;
export const FINAL_QOS = 1;

export class Topics {
  constructor(readonly base: string) {}

  of(k: PublishedTopic): string {
    return `${this.base}/${PUBLISHED[k].path}`;
  }

  request(op: string): string {
    return `${this.base}/${SUBSCRIBED.request}/${op}`;
  }

  response(op: string): string {
    return `${this.base}/${PUBLISHED.response.path}/${op}`;
  }

  get promptSet(): string {
    return `${this.base}/${SUBSCRIBED.promptSet}`;
  }

  get cancel(): string {
    return `${this.base}/${SUBSCRIBED.cancel}`;
  }

  /**
   * Request subscriptions. Without a share group one wildcard takes every op; with one, generate
   * is shared among the group's daemons and the other ops stay per daemon (cancel must reach the
   * daemon running the generation, status describes each daemon). Two filters must not overlap, or
   * a broker delivers a generate twice.
   */
  requestFilters(shareGroup: string | null): string[] {
    if (!shareGroup) return [`${this.base}/${SUBSCRIBED.request}/+`];
    return [`$share/${shareGroup}/${this.request("generate")}`, ...OPS.filter((op) => op !== "generate").map((op) => this.request(op))];
  }

  /** True for <base>/bridge/response/<op>. */
  isResponse(topic: string): boolean {
    return topic.startsWith(`${this.base}/${PUBLISHED.response.path}/`);
  }

  /** The op a request topic names, or null when the topic is not a request. */
  opOf(topic: string): string | null {
    const prefix = `${this.base}/${SUBSCRIBED.request}/`;
    if (!topic.startsWith(prefix)) return null;
    const op = topic.slice(prefix.length);
    return op === "" || op.includes("/") ? null : op;
  }
}

/** A base topic or share group must be a plain topic path: no wildcards, no empty levels at the ends. */
export function checkTopicPart(what: string, v: string, allowSlash = true): void {
  if (v === "" || v.startsWith("/") || v.endsWith("/") || /[+#\0]/.test(v) || (!allowSlash && v.includes("/")))
    throw new TypeError(`${what} must be a topic ${allowSlash ? "path" : "level"} without wildcards (+, #) or ${allowSlash ? "leading/trailing" : ""} "/", got ${JSON.stringify(v)}`);
}
