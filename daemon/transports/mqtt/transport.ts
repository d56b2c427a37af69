// The MQTT transport (DESIGN §5, docs/mqtt.md): requests arrive on <base>/bridge/request/<op> and
// are handed to the shared Router, one session per client (clients.ts); replies go back to
// <base>/bridge/response/<op>, or to an MQTT 5 Response Topic that the allow list accepts
// (response-topics.ts) with the caller's Correlation Data. Like the socket transport it only frames
// bytes and addresses replies. Its own concerns: a persistent session so that queued prompts survive
// a daemon restart, a journal so that accepted ones survive a crash, bounded buffering while the
// broker is away (outbox.ts), retained state/info/stats, and Home Assistant's entities.
import path from "node:path";
import type { IPublishPacket } from "mqtt";
import * as si from "systeminformation";
import type { Logger } from "../../log.js";
import { silentLogger } from "../../log.js";
import type { GenerateResult, ReplyMessage, TransactionId } from "../../serving/protocol.js";
import { errorMessage, LIMITS, parseRequestLine, ProtocolError, SIMPLE_OPS, transactionOf } from "../../serving/protocol.js";
import type { Router } from "../../serving/router.js";
import type { Route } from "./clients.js";
import { BRIDGE_CLIENT, MqttClients, PROMPT_CLIENT, replyClient } from "./clients.js";
import { MqttConnection } from "./connection.js";
import { DiscoveryRecord } from "./discovery-record.js";
import { cutCodePoints, discoveryConfigs, fitAttributes, HA_STATE_MAX, statusTopic } from "./homeassistant.js";
import type { JournalEntry, JournalRoute } from "./journal.js";
import { PendingJournal } from "./journal.js";
import type { MqttOptions, MqttSettings } from "./options.js";
import { resolveMqttOptions } from "./options.js";
import type { Held } from "./outbox.js";
import { Outbox } from "./outbox.js";
import { ResponseTopics } from "./response-topics.js";
import type { BridgeInfo, BridgeStats, CompletionEvent, LastResponse, PayloadOf, PublishedTopic } from "./topics.js";
import { CHUNK_QOS, FINAL_QOS, PUBLISHED, Topics } from "./topics.js";

export type { MqttOptions, MqttSettings } from "./options.js";
export { defaultClientId, resolveMqttOptions } from "./options.js";
export { createMqttClient } from "./connection.js";

export interface MqttTransportDeps {
  version: string;
  log?: Logger;
}

export class MqttTransport {
  readonly options: MqttOptions;
  readonly topics: Topics;
  private readonly log: Logger;
  private readonly responseTopics: ResponseTopics;
  private readonly connection: MqttConnection;
  private readonly outbox: Outbox;
  private readonly clients: MqttClients;
  private readonly journal: PendingJournal | null;
  private readonly discoveryRecord: DiscoveryRecord | null;
  private stateWriteFailed = false;
  private nextId = 0;
  private listening = false;
  private closing = false;
  private statsTimer?: NodeJS.Timeout;
  private statsSoon?: NodeJS.Timeout;
  private info?: BridgeInfo;
  private readonly started = Date.now();

  constructor(
    private readonly router: Router,
    settings: MqttSettings,
    private readonly deps: MqttTransportDeps,
  ) {
    const o = (this.options = resolveMqttOptions(settings));
    this.topics = new Topics(o.baseTopic);
    this.log = deps.log ?? silentLogger;
    this.responseTopics = new ResponseTopics(o.responseTopics, o.baseTopic, o.discoveryPrefix);
    this.journal = o.stateDir ? new PendingJournal(path.join(o.stateDir, `mqtt-${o.clientId.replace(/[^A-Za-z0-9._-]/g, "_")}.pending.json`)) : null;
    this.discoveryRecord = o.stateDir ? new DiscoveryRecord(path.join(o.stateDir, "mqtt-discovery.json")) : null;
    this.connection = new MqttConnection(o, this.topics.of("state"), this.log, {
      connected: () => this.onConnect(),
      message: (packet, done) => this.onMessage(packet, done),
      closed: () => clearInterval(this.statsTimer),
    });
    this.outbox = new Outbox(this.connection, o, this.log);
    this.clients = new MqttClients(router, this.connection, {
      deliver: (route, m) => this.deliver(route, m),
      accepted: (client, t, raw, route) => this.accepted(client, t, raw, route),
      answered: (client, t, route) => this.answered(client, t, route),
    });
  }

  get connected(): boolean {
    return this.connection.connected;
  }

  /** Starts connecting and returns at once: the daemon serves the socket while the broker is away. */
  start(): void {
    if (this.connection.started) return;
    const o = this.options;
    const { version, api_version, model, plan } = this.router.info();
    this.info = { version, api_version, model, plan, mqtt: { base_topic: o.baseTopic, protocol_version: o.protocolVersion, share_group: o.shareGroup, client_id: o.clientId } };
    this.connection.start();
    this.listening = true;
    this.resumeJournal();
  }

  /** Requests that arrive from now on are left unacknowledged: the broker keeps them for the next start. */
  stopListening(): void {
    this.listening = false;
  }

  /** Says offline, delivers what it can within waitMs, and disconnects. Generations still open are cancelled. */
  async close(waitMs = 2000): Promise<void> {
    if (this.closing || !this.connection.started) return;
    this.closing = true;
    this.listening = false;
    clearInterval(this.statsTimer);
    clearTimeout(this.statsSoon);
    if (this.connected) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, waitMs);
        this.publishTopic("state", "offline", () => (clearTimeout(t), resolve()));
      });
    }
    if (this.outbox.pending) this.log.warn(`mqtt: ${this.outbox.pending} final answers could not be delivered before shutdown`);
    await this.connection.close(waitMs);
    this.clients.closeAll();
  }

  /** Resolves once connected (tests, and `alpaca serve` logs). */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    return this.connection.whenConnected(timeoutMs);
  }

  private onConnect(): void {
    const o = this.options;
    this.publishTopic("state", "online");
    if (this.info) this.publishTopic("info", this.info);
    // A prompt from Home Assistant is a generation like any other: shared in a group, run once.
    const promptSet = o.shareGroup ? `$share/${o.shareGroup}/${this.topics.promptSet}` : this.topics.promptSet;
    const filters = [...this.topics.requestFilters(o.shareGroup), promptSet, this.topics.cancel];
    if (o.homeAssistant) filters.push(statusTopic(o.homeAssistant));
    this.connection.subscribe(filters);
    this.publishDiscovery();
    this.outbox.deliverHeld();
    clearInterval(this.statsTimer);
    if (o.statsInterval > 0) this.statsTimer = setInterval(() => void this.publishStats(), o.statsInterval * 1000).unref();
    void this.publishStats();
  }

  // ─── Incoming ──────────────────────────────────────────────────────────────────────────────

  private onMessage(packet: IPublishPacket, done: () => void): void {
    const topic = packet.topic;
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const ha = this.options.homeAssistant;
    const op = this.topics.opOf(topic);
    // Not acknowledged while stopping: the broker hands the request to the next session instead.
    if ((op !== null || topic === this.topics.promptSet) && !this.listening) return;
    try {
      if (op !== null) this.onRequest(op, payload, packet);
      else if (topic === this.topics.promptSet) this.onPrompt(payload);
      else if (topic === this.topics.cancel) this.clients.cancelAll(PROMPT_CLIENT); // Home Assistant's button
      else if (ha && topic === statusTopic(ha) && payload.toString() === "online") this.publishDiscovery();
    } catch (e) {
      this.log.error(`mqtt: cannot handle a message on ${topic}: ${e instanceof Error ? e.message : String(e)}`);
    }
    done();
  }

  private onRequest(op: string, payload: Buffer, packet: IPublishPacket): void {
    const responseTopic = packet.properties?.responseTopic;
    const correlation = packet.properties?.correlationData;
    const generation = op === "generate";
    const bridge: Route = { kind: "mqtt", topic: this.topics.response(op), correlation, generation };
    const refusal = responseTopic === undefined ? null : this.responseTopics.refusal(responseTopic);
    let raw: unknown;
    try {
      raw = this.parseRequest(op, payload);
    } catch (e) {
      // Not even a refused response topic gets an answer: it goes to the bridge topic instead.
      const route = responseTopic === undefined || refusal ? bridge : { ...bridge, topic: responseTopic };
      return this.deliver(route, errorMessage(null, "bad_request", e instanceof Error ? e.message : String(e)));
    }
    if (refusal) return this.deliver(bridge, errorMessage(transactionOf(raw), "bad_request", `${refusal}; the request was not run`));
    if (responseTopic === undefined) return this.clients.dispatch(BRIDGE_CLIENT, raw, bridge);
    this.clients.dispatch(replyClient(responseTopic), raw, { ...bridge, topic: responseTopic });
  }

  /** The payload as a request object: the topic names the op, and the daemon names the transaction if the client did not. */
  private parseRequest(op: string, payload: Buffer): unknown {
    if (payload.length > LIMITS.maxLineBytes) throw new ProtocolError("bad_request", `the request is longer than ${LIMITS.maxLineBytes} bytes`);
    const raw = payload.length === 0 && (SIMPLE_OPS as readonly string[]).includes(op) ? {} : parseRequestLine(payload);
    if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
      const r = raw as Record<string, unknown>;
      if (r.op === undefined) r.op = op; // the payload need not repeat the op
      else if (r.op !== op) throw new ProtocolError("bad_request", `op ${JSON.stringify(r.op)} does not match the topic's ${op}`);
      if (r.transaction === undefined) r.transaction = `mqtt-${++this.nextId}`;
    }
    return raw;
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
    this.publishTopic("promptState", cutCodePoints(prompt, HA_STATE_MAX));
    this.clients.dispatch(PROMPT_CLIENT, { op: "generate", transaction, prompt, stream: false }, { kind: "prompt", prompt, generation: true });
  }

  // ─── Requests in flight: the journal and busy ──────────────────────────────────────────────

  private accepted(client: string, transaction: TransactionId, raw: unknown, route: Route): void {
    if (!route.generation) return;
    if (this.journal) {
      const r: JournalRoute = route.kind === "prompt" ? { kind: "prompt", prompt: route.prompt } : { kind: "mqtt", topic: route.topic, correlation: route.correlation?.toString("base64") };
      const entry: JournalEntry = { client, transaction, request: raw, route: r, at: Date.now() };
      this.writeState(() => this.journal!.add(entry));
    }
    if (this.clients.generations() === 1) this.statsChanged();
  }

  private answered(client: string, transaction: TransactionId, route: Route): void {
    if (!route.generation) return;
    if (this.journal) this.writeState(() => this.journal!.remove(client, transaction));
    if (this.clients.generations() === 0) this.statsChanged();
  }

  /** Answers what a daemon killed outright had acknowledged but not answered (finals wait for the broker). */
  private resumeJournal(): void {
    if (!this.journal) return;
    const { entries, problem } = this.journal.load();
    if (problem) this.log.warn(`mqtt: ${problem}`);
    const oldest = Date.now() - this.options.finalExpiry * 1000;
    const expired = entries.filter((e) => e.at < oldest);
    const live = entries.filter((e) => e.at >= oldest);
    for (const e of expired) this.writeState(() => this.journal!.remove(e.client, e.transaction));
    if (expired.length) this.log.info(`mqtt: ${expired.length} interrupted requests are older than the answer expiry; dropped`);
    if (!live.length) return;
    this.log.info(`mqtt: answering ${live.length} requests the last run accepted but did not finish`);
    for (const e of live) {
      if (e.route.kind === "prompt") {
        this.clients.dispatch(PROMPT_CLIENT, e.request, { kind: "prompt", prompt: e.route.prompt, generation: true });
        continue;
      }
      const correlation = e.route.correlation ? Buffer.from(e.route.correlation, "base64") : undefined;
      // Files from before clients were told apart name none: the topic says which it was.
      const client = e.client ?? (this.topics.isResponse(e.route.topic) ? BRIDGE_CLIENT : replyClient(e.route.topic));
      this.clients.dispatch(client, e.request, { kind: "mqtt", topic: e.route.topic, correlation, generation: true });
    }
  }

  /** A state file that cannot be written (disk full, read-only) costs crash safety, never serving. */
  private writeState(f: () => void): void {
    try {
      f();
      if (this.stateWriteFailed) this.log.info("mqtt: the state directory is written again");
      this.stateWriteFailed = false;
    } catch (e) {
      if (!this.stateWriteFailed) this.log.warn(`mqtt: cannot write to the state directory (${(e as Error).message}); a crash now loses running requests`);
      this.stateWriteFailed = true;
    }
  }

  // ─── Outgoing ──────────────────────────────────────────────────────────────────────────────

  /** Every reply: to its MQTT topic (never retained), or to Home Assistant's prompt entities. */
  private deliver(route: Route, m: ReplyMessage): void {
    if (route.kind === "prompt") return this.promptReply(route.prompt, m);
    const payload = JSON.stringify(m);
    const o = this.options;
    if (!("status" in m)) return this.outbox.chunk(route.topic, payload, { qos: CHUNK_QOS, retain: false, expiry: o.chunkExpiry, correlation: route.correlation });
    this.outbox.final({ topic: route.topic, payload, qos: FINAL_QOS, retain: false, expiry: o.finalExpiry, correlation: route.correlation, at: Date.now() });
  }

  private promptReply(prompt: string, m: ReplyMessage): void {
    if (!("status" in m)) return;
    if (m.status === "error") return this.promptEvent({ event_type: "error", transaction: m.transaction, code: m.error.code, message: m.error.message });
    const r = m.data as GenerateResult;
    const last: LastResponse = fitAttributes(
      {
        state: cutCodePoints(r.text.trim(), HA_STATE_MAX),
        text: r.text,
        prompt,
        transaction: m.transaction,
        stop_reason: r.stop_reason,
        usage: r.usage,
        timings: r.timings,
        finished_at: new Date().toISOString(),
      },
      ["text", "prompt"],
    );
    this.outbox.final(this.held("lastResponse", last));
    const completed = { event_type: "completed" as const, transaction: m.transaction, text: r.text, stop_reason: r.stop_reason, total_ms: r.timings.total_ms };
    this.promptEvent(fitAttributes(completed, ["text"]));
  }

  private promptEvent(e: CompletionEvent): void {
    this.outbox.final(this.held("event", e));
  }

  private held<K extends PublishedTopic>(k: K, payload: PayloadOf<K>): Held {
    const s = PUBLISHED[k];
    const body = typeof payload === "string" ? payload : JSON.stringify(payload);
    return { topic: this.topics.of(k), payload: body, qos: s.qos, retain: s.retain, expiry: s.retain ? undefined : this.options.finalExpiry, at: Date.now() };
  }

  private publishTopic<K extends PublishedTopic>(k: K, payload: PayloadOf<K>, done?: () => void): void {
    const s = PUBLISHED[k];
    this.connection.publish(this.topics.of(k), typeof payload === "string" ? payload : JSON.stringify(payload), { qos: s.qos, retain: s.retain }, done);
  }

  /**
   * Publishes this daemon's discovery configs and clears the ones it published before and no
   * longer wants (another base topic, discovery turned off, an entity gone). The record is written
   * before a config goes out, and a config leaves it only once the broker took its clearing.
   */
  private publishDiscovery(): void {
    if (!this.connected) return;
    const ha = this.options.homeAssistant;
    const wanted = ha ? discoveryConfigs({ topics: this.topics, ha, version: this.deps.version, model: this.info?.model.name ?? "" }) : [];
    const record = this.discoveryRecord;
    const remembered = new Set<string>();
    if (record) {
      const { topics, problem } = record.load();
      if (problem) this.log.warn(`mqtt: ${problem}`);
      for (const t of topics) remembered.add(t);
      for (const { topic } of wanted) remembered.add(topic);
      this.writeState(() => record.save(remembered));
    }
    for (const { topic, config } of wanted) this.connection.publish(topic, JSON.stringify(config), { qos: 1, retain: true });
    const stale = [...remembered].filter((t) => !wanted.some((w) => w.topic === t));
    if (stale.length) this.log.info(`mqtt: removing ${stale.length} Home Assistant entities this daemon published before and no longer has`);
    for (const topic of stale)
      this.connection.publish(topic, "", { qos: 1, retain: true }, (err) => {
        if (err) return this.log.warn(`mqtt: cannot clear ${topic}: ${err.message} (check the broker's ACL)`);
        remembered.delete(topic);
        if (record) this.writeState(() => record.save(remembered));
      });
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
    const counters = this.outbox.counters;
    return {
      busy: s.queue.running + s.queue.queued > 0 || this.clients.generations() > 0,
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
      mqtt: { pending_finals: this.outbox.pending, dropped_chunks: counters.droppedChunks, dropped_finals: counters.droppedFinals },
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
