// The MQTT transport (DESIGN §5, docs/mqtt.md): requests arrive on <base>/bridge/request/<op> and
// are handed to the shared Router; replies are addressed back to <base>/bridge/response/<op> or to
// the MQTT 5 Response Topic with the caller's Correlation Data. Like the socket transport it only
// frames bytes and addresses replies. Its own concerns: a connection that survives a broker going
// away (backoff, one log line per state change), a persistent session so that queued prompts
// survive a daemon restart, bounded buffering (chunks are dropped while the broker is away; final
// answers are held, up to a limit), retained state/info/stats and Home Assistant discovery.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import type { IClientOptions, IClientPublishOptions, IPublishPacket } from "mqtt";
import { MqttClient } from "mqtt";
import * as si from "systeminformation";
import type { HomeAssistantOptions } from "./homeassistant.js";
import { discoveryConfigs, HA_STATE_MAX, haNodeId, isStaleConfig, nodeConfigFilter, statusTopic } from "./homeassistant.js";
import type { Logger } from "../../log.js";
import { silentLogger } from "../../log.js";
import type { BridgeInfo, BridgeStats, CompletionEvent, LastResponse, PayloadOf, PublishedTopic } from "./topics.js";
import { CHUNK_QOS, checkTopicPart, FINAL_QOS, PUBLISHED, Topics } from "./topics.js";
import type { GenerateResult, ReplyMessage, TransactionId } from "../../serving/protocol.js";
import { duplicateMessage, errorMessage, LIMITS, parseRequestLine, ProtocolError, transactionOf } from "../../serving/protocol.js";
import type { Router, Session } from "../../serving/router.js";
import type { JournalEntry } from "./journal.js";
import { PendingJournal } from "./journal.js";

// ─── Options ─────────────────────────────────────────────────────────────────────────────────

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
  /**
   * Where generation requests acknowledged but not yet answered are kept (a file per client id),
   * so that they are answered after a crash; null: not kept (a daemon killed mid-generation loses them).
   */
  journalDir: string | null;
}

export type MqttSettings = Partial<MqttOptions> & { url: string };

export function defaultClientId(base = "alpaca"): string {
  return `${haNodeId(base)}_${haNodeId(os.hostname())}`.slice(0, 64);
}

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
  const o: MqttOptions = {
    protocolVersion: 5,
    clientId: defaultClientId(baseTopic),
    rejectUnauthorized: true,
    keepalive: 30,
    sessionExpiry: 86400,
    shareGroup: null,
    chunkExpiry: 60,
    finalExpiry: 3600,
    maxPendingFinals: 100,
    maxPendingBytes: 4 << 20,
    statsInterval: 30,
    reconnectMinMs: 1000,
    reconnectMaxMs: 60_000,
    connectTimeoutMs: 10_000,
    homeAssistant: { prefix: "homeassistant", nodeId: haNodeId(baseTopic), deviceName: "alpaca" },
    journalDir: null,
    ...(Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Partial<MqttOptions>),
    url: s.url,
    baseTopic,
  };
  if (o.protocolVersion !== 4 && o.protocolVersion !== 5) throw new TypeError(`the MQTT protocol version must be 4 (3.1.1) or 5, got ${o.protocolVersion}`);
  if (!o.clientId || o.clientId.length > 65535) throw new TypeError("the MQTT client id must be a non-empty string");
  for (const k of ["keepalive", "sessionExpiry", "chunkExpiry", "finalExpiry", "maxPendingFinals", "maxPendingBytes", "statsInterval", "reconnectMinMs", "reconnectMaxMs", "connectTimeoutMs"] as const)
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new TypeError(`the MQTT option ${k} must be an integer ≥ 0, got ${o[k]}`);
  if (o.sessionExpiry > 0xffffffff) throw new TypeError("the MQTT session expiry is at most 4294967295 seconds");
  if (o.homeAssistant) checkTopicPart("the Home Assistant discovery prefix", o.homeAssistant.prefix);
  return o;
}

/** A client with TCP_NODELAY on its socket: without it a QoS 1 round trip waits 40+ ms for Nagle. */
export function createMqttClient(
  o: Pick<MqttOptions, "url" | "ca" | "cert" | "key" | "rejectUnauthorized">,
  options: IClientOptions,
  onSocket?: (socket: net.Socket) => void,
): MqttClient {
  const url = new URL(o.url);
  const secure = url.protocol === "mqtts:";
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost";
  const port = Number(url.port) || (secure ? 8883 : 1883);
  const read = (f?: string) => (f ? fs.readFileSync(f) : undefined);
  const tlsFiles = secure ? { ca: read(o.ca), cert: read(o.cert), key: read(o.key) } : {};
  const build = () => {
    const socket = secure
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, rejectUnauthorized: o.rejectUnauthorized, ...tlsFiles })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    onSocket?.(socket);
    return socket;
  };
  const auth = {
    username: options.username ?? (url.username ? decodeURIComponent(url.username) : undefined),
    password: options.password ?? (url.password ? decodeURIComponent(url.password) : undefined),
  };
  return new MqttClient(build, { protocolId: "MQTT", protocolVersion: 5, keepalive: 30, clean: true, ...options, ...auth });
}

// ─── Transport ───────────────────────────────────────────────────────────────────────────────

/** Where the answer to one request goes. */
type Route =
  | { kind: "mqtt"; topic: string; correlation?: Buffer; generation: boolean }
  | { kind: "prompt"; prompt: string; generation: true }; // from <base>/prompt/set (Home Assistant)

interface Held {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
  expiry?: number;
  correlation?: Buffer;
  at: number;
}

export interface MqttTransportDeps {
  version: string;
  log?: Logger;
}

export class MqttTransport {
  readonly options: MqttOptions;
  readonly topics: Topics;
  private readonly log: Logger;
  private client?: MqttClient;
  private socket?: net.Socket;
  private session?: Session;
  private readonly routes = new Map<TransactionId, Route>();
  private current?: Route; // the route of the request being dispatched (for replies without a transaction)
  private held: Held[] = [];
  private heldBytes = 0;
  private readonly counters = { droppedChunks: 0, droppedFinals: 0, droppedThisOutage: 0 };
  private drainWaiters: (() => void)[] = [];
  private nextId = 0;
  private listening = false;
  private closing = false;
  private backoffMs: number;
  private reconnectTimer?: NodeJS.Timeout;
  private statsTimer?: NodeJS.Timeout;
  private statsSoon?: NodeJS.Timeout;
  private lastState = ""; // the last connection state logged, so each change is logged once
  private lastError = "";
  private info?: BridgeInfo;
  private readonly started = Date.now();
  private readonly journal: PendingJournal | null;
  private journalFailed = false;

  constructor(
    private readonly router: Router,
    settings: MqttSettings,
    private readonly deps: MqttTransportDeps,
  ) {
    this.options = resolveMqttOptions(settings);
    this.topics = new Topics(this.options.baseTopic);
    this.journal = this.options.journalDir
      ? new PendingJournal(path.join(this.options.journalDir, `mqtt-${this.options.clientId.replace(/[^A-Za-z0-9._-]/g, "_")}.pending.json`))
      : null;
    this.log = deps.log ?? silentLogger;
    this.backoffMs = this.options.reconnectMinMs;
  }

  get connected(): boolean {
    return !!this.client?.connected;
  }

  /** Starts connecting and returns at once: the daemon serves the socket while the broker is away. */
  start(): void {
    if (this.client) return;
    const o = this.options;
    this.session = this.router.openSession(
      {
        send: (m) => this.send(m),
        congested: () => this.connected && (this.socket?.writableLength ?? 0) > 256 * 1024,
        onceDrained: (cb) => this.drainWaiters.push(cb),
      },
      "mqtt",
    );
    const { version, api_version, model, plan } = this.router.info();
    this.info = { version, api_version, model, plan, mqtt: { base_topic: o.baseTopic, protocol_version: o.protocolVersion, share_group: o.shareGroup, client_id: o.clientId } };
    const v5 = o.protocolVersion === 5;
    const password = o.passwordFile ? fs.readFileSync(o.passwordFile, "utf8").replace(/\r?\n$/, "") : o.password;
    this.client = createMqttClient(o, {
      protocolVersion: o.protocolVersion,
      clientId: o.clientId,
      username: o.username,
      password,
      keepalive: o.keepalive,
      clean: o.sessionExpiry === 0,
      // MQTT 5: the broker drops a packet bigger than this instead of making the daemon buffer it;
      // one up to this size is still answered too_long.
      properties: v5 ? { sessionExpiryInterval: o.sessionExpiry, maximumPacketSize: 4 * LIMITS.maxLineBytes } : undefined,
      will: { topic: this.topics.of("state"), payload: Buffer.from("offline"), qos: 1, retain: true },
      reconnectPeriod: 0, // reconnects are ours, with backoff
      connectTimeout: o.connectTimeoutMs,
      queueQoSZero: false, // a chunk is worth nothing once late
      resubscribe: false, // subscribed again on every connect
    }, (socket) => {
      this.socket = socket;
      socket.on("drain", () => this.drained());
    });
    this.listening = true;
    this.resumeJournal();
    const client = this.client;
    client.handleMessage = (packet, done) => this.onPublish(packet, done);
    client.on("connect", (connack) => this.onConnect(!!connack.sessionPresent));
    client.on("error", (e) => (this.lastError = describeError(e)));
    client.on("close", () => this.onClose());
    this.note("connecting", `mqtt: connecting to ${this.where()} as ${o.clientId} (MQTT ${v5 ? "5" : "3.1.1"})`);
  }

  /** Answers what a daemon killed outright had acknowledged but not answered (finals wait for the broker). */
  private resumeJournal(): void {
    if (!this.journal) return;
    const { entries, problem } = this.journal.load();
    if (problem) this.log.warn(`mqtt: ${problem}`);
    const oldest = Date.now() - this.options.finalExpiry * 1000;
    const expired = entries.filter((e) => e.at < oldest);
    const live = entries.filter((e) => e.at >= oldest);
    for (const e of expired) this.journalDo(() => this.journal!.remove(e.transaction));
    if (expired.length) this.log.info(`mqtt: ${expired.length} interrupted requests are older than the answer expiry; dropped`);
    if (!live.length) return;
    this.log.info(`mqtt: answering ${live.length} requests the last run accepted but did not finish`);
    for (const e of live) {
      const route: Route = e.route.kind === "prompt"
        ? { kind: "prompt", prompt: e.route.prompt, generation: true }
        : { kind: "mqtt", topic: e.route.topic, correlation: e.route.correlation ? Buffer.from(e.route.correlation, "base64") : undefined, generation: true };
      this.dispatch(e.request, route);
    }
  }

  /** A journal that cannot be written (disk full, read-only) costs crash safety, never serving. */
  private journalDo(f: () => void): void {
    try {
      f();
      if (this.journalFailed) this.log.info("mqtt: the pending-request journal is written again");
      this.journalFailed = false;
    } catch (e) {
      if (!this.journalFailed) this.log.warn(`mqtt: cannot write the pending-request journal (${(e as Error).message}); a crash now loses running requests`);
      this.journalFailed = true;
    }
  }

  /** Requests that arrive from now on are left unacknowledged: the broker keeps them for the next start. */
  stopListening(): void {
    this.listening = false;
  }

  /** Says offline, delivers what it can within waitMs, and disconnects. Generations still open are cancelled. */
  async close(waitMs = 2000): Promise<void> {
    if (this.closing || !this.client) return;
    this.closing = true;
    this.listening = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.statsTimer);
    clearTimeout(this.statsSoon);
    const client = this.client;
    if (client.connected) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, waitMs);
        this.publishTopic("state", "offline", () => (clearTimeout(t), resolve()));
      });
    }
    if (this.held.length) this.log.warn(`mqtt: ${this.held.length} final answers could not be delivered before shutdown`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => client.end(true, {}, () => resolve()), waitMs);
      client.end(false, {}, () => (clearTimeout(t), resolve()));
    });
    this.session?.close();
    this.note("stopped", "mqtt: disconnected");
  }

  /** Resolves once connected (tests, and `alpaca serve` logs). */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`mqtt: not connected after ${timeoutMs} ms: ${this.lastError}`)), timeoutMs);
      this.client?.once("connect", () => (clearTimeout(t), resolve()));
    });
  }

  // ─── Connection state ──────────────────────────────────────────────────────────────────────

  private where(): string {
    const u = new URL(this.options.url);
    return `${u.protocol}//${u.host}`; // never the password
  }

  /** Logs a state change once, however often the state is re-entered. */
  private note(state: string, line: string, level: "info" | "warn" = "info"): void {
    if (state === this.lastState) return;
    this.lastState = state;
    this.log[level](line);
  }

  private onConnect(sessionPresent: boolean): void {
    const o = this.options;
    this.backoffMs = o.reconnectMinMs;
    this.lastError = "";
    this.note("connected", `mqtt: connected to ${this.where()} (${sessionPresent ? "session resumed" : "new session"})`);
    this.publishTopic("state", "online");
    if (this.info) this.publishTopic("info", this.info);
    // A prompt from Home Assistant is a generation like any other: shared in a group, run once.
    const promptSet = o.shareGroup ? `$share/${o.shareGroup}/${this.topics.promptSet}` : this.topics.promptSet;
    const filters = [...this.topics.requestFilters(o.shareGroup), promptSet, this.topics.cancel];
    if (o.homeAssistant) filters.push(statusTopic(o.homeAssistant), nodeConfigFilter(o.homeAssistant));
    this.client!.subscribe(filters, { qos: 1 }, (err, granted) => {
      if (err) return this.log.warn(`mqtt: cannot subscribe: ${err.message}`);
      const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic);
      if (refused.length) this.log.warn(`mqtt: the broker refused the subscriptions ${refused.join(", ")} (check its ACL)`);
    });
    this.publishDiscovery();
    this.deliverHeld();
    clearInterval(this.statsTimer);
    if (o.statsInterval > 0) this.statsTimer = setInterval(() => void this.publishStats(), o.statsInterval * 1000).unref();
    void this.publishStats();
  }

  private onClose(): void {
    this.drained(); // waiting deltas flush into the void rather than pile up
    if (this.closing) return;
    clearInterval(this.statsTimer);
    const reason = this.lastError || "connection closed";
    const wait = Math.round(this.backoffMs * (0.75 + Math.random() * 0.5));
    const hint = /user name or password|not authori[sz]ed|bad username/i.test(reason) ? " (check the MQTT username and password, and the broker's ACL)" : "";
    const retry = `retrying with backoff from ${this.options.reconnectMinMs / 1000} s up to ${this.options.reconnectMaxMs / 1000} s`;
    if (this.lastState === "connected") this.note(`down:${reason}`, `mqtt: lost the connection to ${this.where()}: ${reason}; ${retry}`, "warn");
    else this.note(`down:${reason}`, `mqtt: cannot connect to ${this.where()}: ${reason}${hint}; ${retry}`, "warn");
    this.backoffMs = Math.min(this.options.reconnectMaxMs, this.backoffMs * 2);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      const c = this.client!;
      if (this.closing || c.connected) return;
      // Keep the stores: QoS 1 answers in flight when the connection broke are sent again.
      c.reconnect({ incomingStore: c.incomingStore, outgoingStore: c.outgoingStore });
    }, wait);
  }

  private drained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  // ─── Incoming ──────────────────────────────────────────────────────────────────────────────

  private onPublish(packet: IPublishPacket, done: (error?: Error) => void): void {
    const topic = packet.topic;
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const ha = this.options.homeAssistant;
    const isWork = topic === this.topics.promptSet || this.topics.opOf(topic) !== null;
    // Not acknowledged while stopping: the broker hands the request to the next session instead.
    if (isWork && !this.listening) return;
    try {
      if (this.topics.opOf(topic) !== null) this.onRequest(this.topics.opOf(topic)!, payload, packet);
      else if (topic === this.topics.promptSet) this.onPrompt(payload);
      else if (topic === this.topics.cancel) this.onCancelButton();
      else if (ha && topic === statusTopic(ha) && payload.toString() === "online") this.publishDiscovery();
      else if (ha && payload.length > 0 && isStaleConfig(ha, topic)) {
        this.log.info(`mqtt: removing the stale Home Assistant entity ${topic}`);
        this.publish(topic, "", { qos: 1, retain: true });
      }
    } catch (e) {
      this.log.error(`mqtt: cannot handle a message on ${topic}: ${e instanceof Error ? e.message : String(e)}`);
    }
    done();
  }

  private onRequest(op: string, payload: Buffer, packet: IPublishPacket): void {
    const props = packet.properties;
    const route: Route = props?.responseTopic
      ? { kind: "mqtt", topic: props.responseTopic, correlation: props.correlationData, generation: op === "generate" }
      : { kind: "mqtt", topic: this.topics.response(op), generation: op === "generate" };
    let raw: unknown;
    try {
      if (payload.length > LIMITS.maxLineBytes) throw new ProtocolError("too_long", `the request is longer than ${LIMITS.maxLineBytes} bytes`);
      raw = parseRequestLine(payload);
    } catch (e) {
      return this.replyTo(route, errorMessage(null, e instanceof ProtocolError ? e.code : "bad_request", String((e as Error).message)));
    }
    if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
      const r = raw as Record<string, unknown>;
      if (r.op === undefined) r.op = op; // the topic names the op; the payload need not repeat it
      else if (r.op !== op)
        return this.replyTo(route, errorMessage(transactionOf(r), "bad_request", `op ${JSON.stringify(r.op)} does not match the topic's ${op}`));
      if (r.transaction === undefined) r.transaction = `mqtt-${++this.nextId}`;
    }
    this.dispatch(raw, route);
  }

  private onPrompt(payload: Buffer): void {
    const transaction = `prompt-${++this.nextId}`;
    let prompt: string;
    try {
      prompt = new TextDecoder("utf-8", { fatal: true }).decode(payload).trim();
    } catch {
      return this.promptEvent({ event_type: "error", transaction, code: "bad_request", message: "the prompt is not valid UTF-8" });
    }
    if (!prompt) return this.promptEvent({ event_type: "error", transaction, code: "bad_request", message: "the prompt is empty" });
    this.publishTopic("promptState", prompt.slice(0, HA_STATE_MAX));
    this.dispatch({ op: "generate", transaction, prompt, stream: false }, { kind: "prompt", prompt, generation: true });
  }

  /** Home Assistant's cancel button: stops what prompt/set started. */
  private onCancelButton(): void {
    for (const [t, r] of this.routes) if (r.kind === "prompt") this.session?.cancel(t);
  }

  private dispatch(raw: unknown, route: Route): void {
    const t = transactionOf(raw);
    if (t !== null) {
      if (this.routes.has(t)) return this.replyTo(route, duplicateMessage(t));
      this.routes.set(t, route);
      if (this.journal && route.generation) {
        const entry: JournalEntry = {
          transaction: t,
          request: raw,
          route: route.kind === "prompt" ? { kind: "prompt", prompt: route.prompt } : { kind: "mqtt", topic: route.topic, correlation: route.correlation?.toString("base64") },
          at: Date.now(),
        };
        this.journalDo(() => this.journal!.add(entry));
      }
    }
    const before = this.generations();
    const outer = this.current;
    this.current = route;
    try {
      this.session!.handle(raw);
    } finally {
      this.current = outer;
    }
    if (before === 0 && this.generations() > 0) this.statsChanged();
  }

  private generations(): number {
    let n = 0;
    for (const r of this.routes.values()) if (r.generation) n++;
    return n;
  }

  // ─── Outgoing ──────────────────────────────────────────────────────────────────────────────

  /** The router's replies: addressed by transaction (or to the request being dispatched). */
  private send(m: ReplyMessage): void {
    const t = m.transaction;
    const route = (t !== null ? this.routes.get(t) : undefined) ?? this.current;
    if (!route) return this.log.debug(`mqtt: a reply for ${t} has nowhere to go`);
    if ("status" in m && t !== null && this.routes.get(t) === route) {
      this.routes.delete(t);
      if (route.generation && this.journal) this.journalDo(() => this.journal!.remove(t));
      if (route.generation && this.generations() === 0) this.statsChanged();
    }
    this.replyTo(route, m);
  }

  private replyTo(route: Route, m: ReplyMessage): void {
    if (route.kind === "prompt") return this.promptReply(route.prompt, m);
    const payload = JSON.stringify(m);
    if (!("status" in m)) {
      // A chunk is never held: the final message carries the whole text anyway.
      if (!this.connected) return void this.counters.droppedChunks++;
      return this.publish(route.topic, payload, { qos: CHUNK_QOS, retain: false, expiry: this.options.chunkExpiry, correlation: route.correlation });
    }
    this.deliverFinal({ topic: route.topic, payload, qos: FINAL_QOS, retain: false, expiry: this.options.finalExpiry, correlation: route.correlation, at: Date.now() });
  }

  private promptReply(prompt: string, m: ReplyMessage): void {
    if (!("status" in m)) return;
    if (m.status === "error") return this.promptEvent({ event_type: "error", transaction: m.transaction, code: m.error.code, message: m.error.message });
    const r = m.data as GenerateResult;
    const last: LastResponse = {
      state: r.text.trim().slice(0, HA_STATE_MAX),
      text: r.text,
      prompt,
      transaction: m.transaction,
      stop_reason: r.stop_reason,
      usage: r.usage,
      timings: r.timings,
      finished_at: new Date().toISOString(),
    };
    this.deliverFinal(this.held1("lastResponse", last));
    this.promptEvent({ event_type: "completed", transaction: m.transaction, text: r.text, stop_reason: r.stop_reason, total_ms: r.timings.total_ms });
  }

  private promptEvent(e: CompletionEvent): void {
    this.deliverFinal(this.held1("event", e));
  }

  private held1<K extends PublishedTopic>(k: K, payload: PayloadOf<K>): Held {
    const s = PUBLISHED[k];
    const body = typeof payload === "string" ? payload : JSON.stringify(payload);
    return { topic: this.topics.of(k), payload: body, qos: s.qos, retain: s.retain, expiry: s.retain ? undefined : this.options.finalExpiry, at: Date.now() };
  }

  /** A final answer goes out now, or waits (bounded) for the broker to come back. */
  private deliverFinal(h: Held): void {
    if (this.connected) return this.publishHeld(h);
    this.held.push(h);
    this.heldBytes += h.payload.length;
    while (this.held.length > this.options.maxPendingFinals || this.heldBytes > this.options.maxPendingBytes) {
      const dropped = this.held.shift()!;
      this.heldBytes -= dropped.payload.length;
      this.counters.droppedFinals++;
      if (this.counters.droppedThisOutage++ === 0)
        this.log.warn(`mqtt: more final answers than the ${this.options.maxPendingFinals} held while the broker is away; dropping the oldest`);
    }
  }

  private deliverHeld(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    if (held.length || this.counters.droppedThisOutage)
      this.log.info(`mqtt: delivering ${held.length} final answers held while the broker was away${this.counters.droppedThisOutage ? `, ${this.counters.droppedThisOutage} dropped` : ""}`);
    this.counters.droppedThisOutage = 0;
    for (const h of held) this.publishHeld(h);
  }

  private publishHeld(h: Held): void {
    let expiry = h.expiry;
    if (expiry !== undefined) {
      expiry -= Math.floor((Date.now() - h.at) / 1000);
      if (expiry <= 0) return void this.counters.droppedFinals++;
    }
    this.publish(h.topic, h.payload, { qos: h.qos, retain: h.retain, expiry, correlation: h.correlation });
  }

  private publishTopic<K extends PublishedTopic>(k: K, payload: PayloadOf<K>, done?: () => void): void {
    const s = PUBLISHED[k];
    this.publish(this.topics.of(k), typeof payload === "string" ? payload : JSON.stringify(payload), { qos: s.qos, retain: s.retain }, done);
  }

  private publish(topic: string, payload: string, o: { qos: 0 | 1; retain: boolean; expiry?: number; correlation?: Buffer }, done?: () => void): void {
    const client = this.client;
    if (!client) return;
    const opts: IClientPublishOptions = { qos: o.qos, retain: o.retain };
    if (this.options.protocolVersion === 5 && (o.expiry || o.correlation))
      opts.properties = { ...(o.expiry ? { messageExpiryInterval: o.expiry } : {}), ...(o.correlation ? { correlationData: o.correlation } : {}) };
    client.publish(topic, payload, opts, (err) => {
      if (err) this.log.debug(`mqtt: publish to ${topic} failed: ${err.message}`);
      done?.();
    });
  }

  private publishDiscovery(): void {
    const ha = this.options.homeAssistant;
    if (!ha || !this.connected) return;
    const model = this.info?.model.name ?? "";
    for (const { topic, config } of discoveryConfigs({ topics: this.topics, ha, version: this.deps.version, model }))
      this.publish(topic, JSON.stringify(config), { qos: 1, retain: true });
  }

  // ─── Stats ─────────────────────────────────────────────────────────────────────────────────

  /** Busy turned on or off: tell Home Assistant soon, once for a burst of changes. */
  private statsChanged(): void {
    if (this.statsSoon) return;
    this.statsSoon = setTimeout(() => {
      this.statsSoon = undefined;
      void this.publishStats();
    }, 50);
    this.statsSoon.unref();
  }

  /** The stats message; memory and temperature come from systeminformation (null where unknown). */
  async stats(): Promise<BridgeStats> {
    const s = this.router.status();
    const [mem, temp] = await Promise.all([si.mem().catch(() => null), si.cpuTemperature().catch(() => null)]);
    return {
      busy: s.queue.running + s.queue.queued > 0 || this.generations() > 0,
      queue: { queued: s.queue.queued, running: s.queue.running, max_queue: s.queue.max_queue },
      tokens_per_second: s.tokens_per_second,
      memory: {
        rss_bytes: s.memory.rss_bytes,
        available_bytes: mem?.available ?? null,
        total_bytes: mem?.total ?? null,
        kv_used_cells: s.memory.kv_used_cells,
        kv_total_cells: s.memory.kv_total_cells,
      },
      cpu_temperature_c: typeof temp?.main === "number" ? temp.main : null,
      uptime_s: Math.round((Date.now() - this.started) / 1000),
      mqtt: { pending_finals: this.held.length, dropped_chunks: this.counters.droppedChunks, dropped_finals: this.counters.droppedFinals },
    };
  }

  private async publishStats(): Promise<void> {
    if (!this.connected || this.closing) return;
    try {
      const stats = await this.stats();
      if (this.connected && !this.closing) this.publishTopic("stats", stats);
    } catch (e) {
      this.log.debug(`mqtt: no stats: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

function describeError(e: Error & { code?: unknown }): string {
  return e.message || String(e.code ?? e);
}
