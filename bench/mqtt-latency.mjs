#!/usr/bin/env node
// What the MQTT path adds to each token: the time from the moment the daemon's router hands a
// token's chunk to the MQTT transport until a client subscribed through a real Mosquitto (MQTT 5
// request with a Response Topic, TCP_NODELAY on both ends) receives it; and, once per request,
// from publishing the request until the router has it. Daemon and client share one process and
// one clock, so each token is timed exactly; the engine's own time is not part of the figure.
//
//   node bench/mqtt-latency.mjs [-n 64] [--reps 10] [--pace 20] [--json]
//
// The model is ../shared/models/stories260K-f32.gguf with every engine step held to at least
// --pace ms (a Pi 4 takes 200 ms to 1 s per token of a 1B–7B model): unpaced, the tiny model
// outruns any transport and the figure would measure a queue. Needs mosquitto and a built
// project (the daemon is the tests' fixture: the real router, scheduler, engine and transport).
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = (p) => pathToFileURL(path.join(ROOT, "dist", p)).href;
const { startMqttDaemon } = await import(dist("test/helpers/mqtt-daemon.js"));
const { createMqttClient } = await import(dist("daemon/transports/mqtt/transport.js"));
const { Mosquitto, needMosquitto } = await import(dist("test/helpers/mosquitto.js"));
const log = (s) => process.stderr.write(s + "\n");

const { values: o } = parseArgs({
  options: {
    n: { type: "string", short: "n", default: "64" },
    reps: { type: "string", default: "10" },
    pace: { type: "string", default: "20" },
    json: { type: "boolean", default: false },
  },
});
const n = Number(o.n), reps = Number(o.reps);
const missing = needMosquitto();
if (missing) {
  log(`mqtt-latency: ${missing}`);
  process.exit(2);
}

const broker = await Mosquitto.start();
const daemon = await startMqttDaemon({
  mqtt: { url: broker.url, baseTopic: "bench", clientId: "alpaca-bench", homeAssistant: null, statsInterval: 0, sessionExpiry: 0 },
  paceMs: Number(o.pace), nSeq: 1,
});
// Stamp every message as the router hands it to the transport, and every request as it arrives.
const handedOver = new Map(); // `${transaction}/${seq}` → ms
const arrived = new Map(); // transaction → ms
const transport = daemon.transport;
const deliver = transport.deliver.bind(transport); // every reply of a client's session, addressed
transport.deliver = (route, m) => {
  if ("delta" in m) handedOver.set(`${m.transaction}/${m.seq}`, performance.now());
  deliver(route, m);
};
const dispatch = daemon.router.dispatch.bind(daemon.router);
daemon.router.dispatch = (session, raw) => {
  if (raw && typeof raw === "object" && typeof raw.transaction === "string" && !arrived.has(raw.transaction)) arrived.set(raw.transaction, performance.now());
  dispatch(session, raw);
};

const client = createMqttClient({ url: broker.url, rejectUnauthorized: true }, { protocolVersion: 5, reconnectPeriod: 0 });
await new Promise((resolve, reject) => (client.once("connect", resolve), client.once("error", reject)));
await new Promise((resolve, reject) => client.subscribe("bench/reply/client", { qos: 1 }, (e) => (e ? reject(e) : resolve())));

/** Per-token delivery latencies (ms) of one generation, and its request's. */
function generate(transaction) {
  return new Promise((resolve, reject) => {
    const latencies = [];
    const sent = performance.now();
    const onMessage = (_topic, payload) => {
      const now = performance.now();
      const m = JSON.parse(payload.toString());
      if (m.transaction !== transaction) return;
      if ("delta" in m) latencies.push(now - handedOver.get(`${transaction}/${m.seq}`));
      else if ("status" in m) {
        client.off("message", onMessage);
        if (m.status !== "ok") reject(new Error(`${transaction}: ${JSON.stringify(m)}`));
        else resolve({ latencies, request: arrived.get(transaction) - sent });
      }
    };
    client.on("message", onMessage);
    client.publish("bench/bridge/request/generate",
      JSON.stringify({ transaction, prompt: "Once upon a time", max_tokens: n, temperature: 0 }),
      { qos: 1, properties: { responseTopic: "bench/reply/client", correlationData: Buffer.from(transaction) } });
  });
}

log(`stories260K paced to ${o.pace} ms per step, ${n} tokens per request, ${reps} requests; load ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
await generate("warm-up");
const all = [], requests = [];
for (let rep = 0; rep < reps; rep++) {
  const r = await generate(`r${rep}`);
  all.push(...r.latencies);
  requests.push(r.request);
  log(`request ${rep + 1}: ${r.latencies.length} tokens, request in ${r.request.toFixed(3)} ms, tokens out median ${quantile(r.latencies, 0.5).toFixed(3)} ms`);
}
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
const summary = {
  paceMs: Number(o.pace), tokensPerRequest: n, reps, tokens: all.length,
  perTokenMs: { median: quantile(all, 0.5), p90: quantile(all, 0.9), p99: quantile(all, 0.99), max: Math.max(...all) },
  requestMs: { median: quantile(requests, 0.5), max: Math.max(...requests) },
  loadAverage: os.loadavg(),
};
if (o.json) process.stdout.write(JSON.stringify(summary) + "\n");
else {
  const t = summary.perTokenMs;
  process.stdout.write(
    `MQTT adds per token: median ${t.median.toFixed(3)} ms, p90 ${t.p90.toFixed(3)} ms, p99 ${t.p99.toFixed(3)} ms (${all.length} tokens); ` +
    `request delivery median ${summary.requestMs.median.toFixed(3)} ms\n`,
  );
}
client.end(true);
await daemon.stop(0);
await broker.dispose();
