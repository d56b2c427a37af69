// The connection to the broker: a client that survives the broker going away (reconnects with
// back-off, one log line per state change, QoS 1 messages in flight kept across reconnects), a
// persistent session, the last will, and the socket's backlog for flow control. What the messages
// mean is the transport's business; this file only connects, publishes and subscribes.
import fs from "node:fs";
import net from "node:net";
import tls from "node:tls";
import type { IClientOptions, IClientPublishOptions, IPublishPacket } from "mqtt";
import { MqttClient } from "mqtt";
import type { Logger } from "../../log.js";
import { LIMITS } from "../../serving/protocol.js";
import type { MqttOptions } from "./options.js";

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

/** The largest packet the broker may send the daemon (MQTT 5); bigger ones it drops unseen. */
export const MAX_PACKET_BYTES = 4 * LIMITS.maxLineBytes;

/** Bytes waiting in the socket before the router merges stream chunks instead of sending each. */
const CONGESTED_BYTES = 256 * 1024;

export interface PublishOptions {
  qos: 0 | 1;
  retain: boolean;
  expiry?: number; // MQTT 5 message expiry, seconds
  correlation?: Buffer; // MQTT 5 correlation data
}

export interface ConnectionHandlers {
  /** Connected (again): subscribe and announce. */
  connected(sessionPresent: boolean): void;
  /** A message arrived; call done() to acknowledge it (or never, to leave it with the broker). */
  message(packet: IPublishPacket, done: () => void): void;
  /** The connection is gone (a reconnect is scheduled unless closing). */
  closed(): void;
}

export class MqttConnection {
  private client?: MqttClient;
  private socket?: net.Socket;
  private drainWaiters: (() => void)[] = [];
  private closing = false;
  private backoffMs: number;
  private reconnectTimer?: NodeJS.Timeout;
  private lastState = ""; // the last connection state logged, so each change is logged once
  private lastError = "";

  constructor(
    private readonly o: MqttOptions,
    private readonly willTopic: string,
    private readonly log: Logger,
    private readonly on: ConnectionHandlers,
  ) {
    this.backoffMs = o.reconnectMinMs;
  }

  get connected(): boolean {
    return !!this.client?.connected;
  }

  get started(): boolean {
    return !!this.client;
  }

  /** True while the socket has a backlog: stream deltas are then merged, not queued. */
  congested(): boolean {
    return this.connected && (this.socket?.writableLength ?? 0) > CONGESTED_BYTES;
  }

  onceDrained(callback: () => void): void {
    this.drainWaiters.push(callback);
  }

  /** Starts connecting and returns at once. */
  start(): void {
    if (this.client) return;
    const o = this.o;
    const v5 = o.protocolVersion === 5;
    const password = o.passwordFile ? fs.readFileSync(o.passwordFile, "utf8").replace(/\r?\n$/, "") : o.password;
    const client = createMqttClient(o, {
      protocolVersion: o.protocolVersion,
      clientId: o.clientId,
      username: o.username,
      password,
      keepalive: o.keepalive,
      clean: o.sessionExpiry === 0,
      // MQTT 5: the broker drops a packet bigger than this instead of making the daemon buffer it;
      // one up to this size is still answered bad_request.
      properties: v5 ? { sessionExpiryInterval: o.sessionExpiry, maximumPacketSize: MAX_PACKET_BYTES } : undefined,
      will: { topic: this.willTopic, payload: Buffer.from("offline"), qos: 1, retain: true },
      reconnectPeriod: 0, // reconnects are ours, with backoff
      connectTimeout: o.connectTimeoutMs,
      queueQoSZero: false, // a chunk is worth nothing once late
      resubscribe: false, // subscribed again on every connect
    }, (socket) => {
      this.socket = socket;
      socket.on("drain", () => this.drained());
    });
    this.client = client;
    client.handleMessage = (packet, done) => this.on.message(packet, () => done());
    client.on("connect", (connack) => this.onConnect(!!connack.sessionPresent));
    client.on("error", (e) => (this.lastError = describeError(e)));
    client.on("close", () => this.onClose());
    this.note("connecting", `mqtt: connecting to ${this.where()} as ${o.clientId} (MQTT ${v5 ? "5" : "3.1.1"})`);
  }

  /** Resolves once connected. */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`mqtt: not connected after ${timeoutMs} ms: ${this.lastError}`)), timeoutMs);
      this.client?.once("connect", () => (clearTimeout(t), resolve()));
    });
  }

  /** done gets the broker's refusal (MQTT 5 reports a publish the ACL denies) or a lost connection. */
  publish(topic: string, payload: string, o: PublishOptions, done?: (err?: Error) => void): void {
    const client = this.client;
    if (!client) return;
    const opts: IClientPublishOptions = { qos: o.qos, retain: o.retain };
    if (this.o.protocolVersion === 5 && (o.expiry || o.correlation))
      opts.properties = { ...(o.expiry ? { messageExpiryInterval: o.expiry } : {}), ...(o.correlation ? { correlationData: o.correlation } : {}) };
    client.publish(topic, payload, opts, (err) => {
      if (err) this.log.debug(`mqtt: publish to ${topic} failed: ${err.message}`);
      done?.(err ?? undefined);
    });
  }

  subscribe(filters: string[]): void {
    this.client?.subscribe(filters, { qos: 1 }, (err, granted) => {
      if (err) return this.log.warn(`mqtt: cannot subscribe: ${err.message}`);
      const refused = (granted ?? []).filter((g) => g.qos > 2).map((g) => g.topic);
      if (refused.length) this.log.warn(`mqtt: the broker refused the subscriptions ${refused.join(", ")} (check its ACL)`);
    });
  }

  /** Disconnects, waiting up to waitMs for what is in flight. */
  async close(waitMs: number): Promise<void> {
    const client = this.client;
    if (this.closing || !client) return;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => client.end(true, {}, () => resolve()), waitMs);
      client.end(false, {}, () => (clearTimeout(t), resolve()));
    });
    this.note("stopped", "mqtt: disconnected");
  }

  // ─── State changes ─────────────────────────────────────────────────────────────────────────

  private where(): string {
    const u = new URL(this.o.url);
    return `${u.protocol}//${u.host}`; // never the password
  }

  /** Logs a state change once, however often the state is re-entered. */
  private note(state: string, line: string, level: "info" | "warn" = "info"): void {
    if (state === this.lastState) return;
    this.lastState = state;
    this.log[level](line);
  }

  private onConnect(sessionPresent: boolean): void {
    this.backoffMs = this.o.reconnectMinMs;
    this.lastError = "";
    this.note("connected", `mqtt: connected to ${this.where()} (${sessionPresent ? "session resumed" : "new session"})`);
    this.on.connected(sessionPresent);
  }

  private onClose(): void {
    this.drained(); // waiting deltas flush into the void rather than pile up
    if (this.closing) return;
    this.on.closed();
    const o = this.o;
    const reason = this.lastError || "connection closed";
    const wait = Math.round(this.backoffMs * (0.75 + Math.random() * 0.5));
    const hint = /user name or password|not authori[sz]ed|bad username/i.test(reason) ? " (check the MQTT username and password, and the broker's ACL)" : "";
    const retry = `retrying with backoff from ${o.reconnectMinMs / 1000} s up to ${o.reconnectMaxMs / 1000} s`;
    if (this.lastState === "connected") this.note(`down:${reason}`, `mqtt: lost the connection to ${this.where()}: ${reason}; ${retry}`, "warn");
    else this.note(`down:${reason}`, `mqtt: cannot connect to ${this.where()}: ${reason}${hint}; ${retry}`, "warn");
    this.backoffMs = Math.min(o.reconnectMaxMs, this.backoffMs * 2);
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
}

function describeError(e: Error & { code?: unknown }): string {
  return e.message || String(e.code ?? e);
}
