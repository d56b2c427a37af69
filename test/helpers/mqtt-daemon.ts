// Fixtures for the 7x tests: a daemon (real engine, scheduler, router) behind the MQTT transport,
// optionally paced to Pi-like step times so that a generation is still running when a test stops
// the broker; MQTT test clients with TCP_NODELAY; collecting messages and waiting for them.
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import type { NativeModel } from "../../daemon/engine/engine.js";
import { openModel } from "../../daemon/engine/engine.js";
import { createLogger } from "../../daemon/log.js";
import { Router } from "../../daemon/serving/router.js";
import { Scheduler } from "../../daemon/serving/scheduler.js";
import type { MqttSettings } from "../../daemon/transports/mqtt/transport.js";
import { createMqttClient, MqttTransport } from "../../daemon/transports/mqtt/transport.js";
import { STORIES, waitFor } from "./daemon.js";

export { waitFor };

export interface MqttDaemon {
  transport: MqttTransport;
  router: Router;
  scheduler: Scheduler;
  logs: string[];
  /** Stops like `alpaca serve` on SIGTERM: unacknowledged requests stay with the broker. */
  stop(graceMs?: number): Promise<void>;
}

export interface MqttDaemonOptions {
  mqtt: MqttSettings;
  /** Milliseconds added to every engine step (a Pi decodes a 7B at a few steps per second). */
  paceMs?: number;
  nSeq?: number;
  maxQueue?: number;
  /** Resolve only once connected (default true). */
  waitConnected?: boolean;
}

/** The model with `ms` added to every engine step (also used by bench/protocol-daemon.mjs). */
export function paced(model: NativeModel, ms: number): NativeModel {
  if (!ms) return model;
  return new Proxy(model, {
    get(target, prop) {
      if (prop === "decodeAsync")
        return async (batch: Parameters<NativeModel["decodeAsync"]>[0]) => {
          await new Promise((r) => setTimeout(r, ms));
          return target.decodeAsync(batch);
        };
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export async function startMqttDaemon(o: MqttDaemonOptions): Promise<MqttDaemon> {
  const logs: string[] = [];
  const log = createLogger("debug", (line) => logs.push(line.trimEnd()));
  const model = openModel(STORIES(), { nCtx: 256, nSeq: o.nSeq ?? 4, threads: 1 });
  const engine = paced(model, o.paceMs ?? 0);
  const scheduler = new Scheduler(engine, { maxQueue: o.maxQueue ?? 64 });
  const router = new Router({ model: engine, scheduler, version: "0.0.0-test", log });
  const transport = new MqttTransport(router, { reconnectMinMs: 100, reconnectMaxMs: 1000, statsInterval: 0, ...o.mqtt }, { version: "0.0.0-test", log });
  scheduler.start();
  transport.start();
  if (o.waitConnected !== false) await transport.whenConnected();
  let stopped: Promise<void> | undefined;
  return {
    transport,
    router,
    scheduler,
    logs,
    stop: (graceMs = 0) =>
      (stopped ??= (async () => {
        transport.stopListening();
        router.stopAccepting();
        await scheduler.stop(graceMs);
        await transport.close(1000);
        model.close();
      })()),
  };
}

// ─── Clients ─────────────────────────────────────────────────────────────────────────────────

export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = createMqttClient({ url, rejectUnauthorized: true }, { reconnectPeriod: 100, connectTimeout: 5000, ...options });
  client.on("error", () => {}); // tests look at what arrives, not at reconnect noise
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`test client cannot connect to ${url}`)), 5000);
    client.once("connect", () => (clearTimeout(t), resolve()));
  });
  return client;
}

export function subscribe(client: MqttClient, topic: string | string[], qos: 0 | 1 = 1): Promise<void> {
  return new Promise((resolve, reject) => client.subscribe(topic, { qos }, (e) => (e ? reject(e) : resolve())));
}

export function publish(client: MqttClient, topic: string, payload: string | Buffer, options: Parameters<MqttClient["publish"]>[2] = { qos: 1 }): Promise<void> {
  return new Promise((resolve, reject) => client.publish(topic, payload, options, (e) => (e ? reject(e) : resolve())));
}

export interface Received {
  topic: string;
  text: string;
  json: unknown;
  packet: IPublishPacket;
}

/** Every message the client gets from now on, in arrival order. */
export function record(client: MqttClient): Received[] {
  const out: Received[] = [];
  client.on("message", (topic, payload, packet) => {
    const text = payload.toString("utf8");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    out.push({ topic, text, json, packet });
  });
  return out;
}

export function closeClient(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(true, {}, () => resolve()));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a transaction got: its chunks (in arrival order) and its final messages. */
export function answersFor(received: Received[], transaction: string | number, topic?: string) {
  const mine = received.filter((m) => (!topic || m.topic === topic) && (m.json as { transaction?: unknown } | undefined)?.transaction === transaction);
  const chunks = mine.filter((m) => "delta" in (m.json as object)).map((m) => m.json as { seq: number; delta: string });
  const finals = mine.filter((m) => "status" in (m.json as object)).map((m) => m.json as { status: string; data?: { text: string }; error?: { code: string; message: string } });
  const order = mine.map((m) => ("status" in (m.json as object) ? "final" : "chunk"));
  return { chunks, finals, order, messages: mine };
}
