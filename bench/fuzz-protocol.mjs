#!/usr/bin/env node
// Protocol fuzzing of the daemon (docs/protocol.md): random and mutated requests over the Unix
// socket and MQTT. Checks that the daemon stays up, that every well-formed request ends with
// exactly one final message, and reports the daemon's RSS before and after.
// Usage: node bench/fuzz-protocol.mjs [--messages 100000] [--mqtt-share 0.2] [--seed 1] [--json]
//   (needs `npm run build`; MQTT needs mosquitto installed; --mqtt-share 0 for the socket only)
import net from "node:net";
import { createMqttClient } from "../dist/daemon/transports/mqtt/transport.js";
import { mib, parseArgs, rng, startBenchDaemon } from "./bench-daemon.mjs";

const o = parseArgs({ messages: 100000, "mqtt-share": 0.2, seed: 1, connections: 4, batch: 50, json: false });
const r = rng(o.seed);
const PROMPTS = ["Once upon a time", "Lily", "The cat sat", "", " ", "é€😀", "<s>", "\u2581", "a\nb"];

// ─── Messages ────────────────────────────────────────────────────────────────────────────────

function wellFormed(transaction, inFlight) {
  const op = r.pick(["generate", "generate", "generate", "generate", "status", "info", "models", "cancel", "cancel"]);
  if (op === "cancel") return { op, transaction, ...(inFlight.length && r.chance(0.7) ? { target: r.pick(inFlight) } : {}) };
  if (op !== "generate") return { op, transaction };
  const m = { op, transaction, prompt: r.chance(0.8) ? r.pick(PROMPTS.slice(0, 3)) : r.pick(PROMPTS) || "x", max_tokens: r.int(1, 4) };
  if (r.chance(0.5)) m.temperature = r.pick([0, 0.5, 1, 2]);
  if (r.chance(0.3)) m.top_k = r.int(0, 100);
  if (r.chance(0.3)) m.top_p = r.pick([0.1, 0.9, 1]);
  if (r.chance(0.3)) m.seed = r.int(0, 1e6);
  if (r.chance(0.5)) m.stream = r.chance(0.5);
  if (r.chance(0.2)) m.stop = [r.pick(["the", ".", "\n", "Lily"])];
  if (r.chance(0.1)) m.priority = r.int(-10, 10);
  return m;
}

const WEIRD = [null, true, -1, 0, 1e308, -1e308, 2 ** 53, 1.5, "", "x".repeat(300), [], {}, [[[[[]]]]], "\ud800", "\u0000", { a: { b: [1, { c: null }] } }];
const FIELDS = ["op", "transaction", "prompt", "instruction", "input", "messages", "max_tokens", "temperature", "top_k", "top_p", "min_p",
  "repeat_penalty", "seed", "stop", "stream", "timeout", "priority", "target", "bogus"];

function randomBytes(max) {
  const n = r.int(0, max);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.int(0, 255);
  return b;
}

/** Bytes of a mutated request, never containing a newline (one line per message). */
function mutated(transaction, inFlight) {
  const m = wellFormed(transaction, inFlight);
  let text;
  switch (r.int(0, 6)) {
    case 0: // a field set to something of the wrong type or range
      m[r.pick(FIELDS)] = r.pick(WEIRD);
      text = JSON.stringify(m);
      break;
    case 1: // deep nesting
      text = JSON.stringify({ ...m, prompt: JSON.parse("[".repeat(200) + "]".repeat(200)) });
      break;
    case 2: // raw lone surrogate and control characters as JSON escapes
      text = JSON.stringify(m).replace(/"prompt":"/, '"prompt":"\\udc00\\u0001');
      break;
    case 3:
      text = JSON.stringify(r.pick([[m], m.op, 42, null, "generate"]));
      break;
    default: {
      const b = Buffer.from(JSON.stringify(m));
      const op = r.int(0, 2);
      if (op === 0) for (let k = r.int(1, 4); k > 0; k--) b[r.int(0, b.length - 1)] = r.int(0, 255);
      if (op === 1) return b.subarray(0, r.int(0, b.length)).filter((c) => c !== 10);
      if (op === 2) return Buffer.concat([b.subarray(0, r.int(0, b.length)), randomBytes(20), b]).filter((c) => c !== 10);
      return b.filter((c) => c !== 10);
    }
  }
  return Buffer.from(text.replace(/\n/g, " "));
}

/** One message: { bytes, transaction (tracked when well-formed), op }. */
function nextMessage(prefix, i, inFlight) {
  const roll = r.next();
  if (roll < 0.5) {
    const m = wellFormed(`${prefix}w${i}`, inFlight);
    return { bytes: Buffer.from(JSON.stringify(m)), tracked: m.transaction, op: m.op, body: m };
  }
  if (roll < 0.85) return { bytes: mutated(`${prefix}m${i}`, inFlight), tracked: null, op: "generate" };
  return { bytes: randomBytes(200).filter((c) => c !== 10), tracked: null, op: r.pick(["generate", "status", "nope"]) };
}

// ─── Bookkeeping ─────────────────────────────────────────────────────────────────────────────

const finals = new Map(); // tracked transaction -> number of final messages
const violations = [];
let sent = 0;
let repliesSeen = 0;

function onReply(message, expectTracked) {
  repliesSeen++;
  if (!message || typeof message !== "object") return violations.push(`a reply that is not an object: ${JSON.stringify(message)}`);
  if (!("status" in message)) return; // a stream chunk
  const t = message.transaction;
  if (typeof t === "string" && finals.has(t)) {
    finals.set(t, finals.get(t) + 1);
    if (finals.get(t) > 1) violations.push(`${t}: a second final message`);
  }
  if (message.status === "error" && /\n\s+at /.test(message.error?.message ?? "")) violations.push(`${t}: a stack trace in an error`);
  void expectTracked;
}

function waitForFinals(list, what) {
  const until = Date.now() + 120_000;
  return new Promise((resolve) => {
    const check = () => {
      if (list.every((t) => finals.get(t) >= 1)) return resolve();
      if (Date.now() > until) {
        for (const t of list) if (!(finals.get(t) >= 1)) violations.push(`${t}: no final message (${what})`);
        return resolve();
      }
      setTimeout(check, 2);
    };
    check();
  });
}

// ─── Socket driver ───────────────────────────────────────────────────────────────────────────

async function socketConnection(socketPath, index, count) {
  const socket = net.connect(socketPath);
  await new Promise((resolve, reject) => (socket.once("connect", resolve), socket.once("error", reject)));
  let buffer = "";
  socket.on("data", (b) => {
    buffer += b.toString();
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        onReply(JSON.parse(line));
      } catch {
        violations.push(`socket: a reply that is not JSON: ${line.slice(0, 100)}`);
      }
    }
  });
  socket.on("error", (e) => violations.push(`socket ${index}: ${e.message}`));
  const inFlight = [];
  for (let done = 0; done < count; ) {
    const n = Math.min(o.batch, count - done);
    const tracked = [];
    const lines = [];
    for (let k = 0; k < n; k++, done++) {
      const m = nextMessage(`s${index}-`, done, inFlight);
      if (m.tracked) {
        finals.set(m.tracked, 0);
        tracked.push(m.tracked);
        if (m.op === "generate") inFlight.push(m.tracked);
      }
      lines.push(m.bytes, Buffer.from(r.chance(0.05) ? "\r\n" : "\n"));
    }
    socket.write(Buffer.concat(lines));
    sent += n;
    await waitForFinals(tracked, "socket");
    inFlight.length = 0;
  }
  socket.end();
}

// ─── MQTT driver ─────────────────────────────────────────────────────────────────────────────

async function mqttClient(url, base, count) {
  const client = createMqttClient({ url, rejectUnauthorized: true }, { protocolVersion: 5, clientId: "fuzz-client", reconnectPeriod: 100, clean: true });
  client.on("error", (e) => violations.push(`mqtt client: ${e.message}`));
  await new Promise((resolve) => client.once("connect", resolve));
  const replyTopic = `${base}/reply/fuzz`;
  await new Promise((resolve, reject) => client.subscribe(replyTopic, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  client.on("message", (topic, payload) => {
    try {
      onReply(JSON.parse(payload.toString()));
    } catch {
      violations.push(`mqtt: a reply that is not JSON: ${payload.toString().slice(0, 100)}`);
    }
  });
  const inFlight = [];
  for (let done = 0; done < count; ) {
    const n = Math.min(o.batch, count - done);
    const tracked = [];
    const publishes = [];
    for (let k = 0; k < n; k++, done++) {
      const m = nextMessage("q-", done, inFlight);
      if (m.tracked) {
        finals.set(m.tracked, 0);
        tracked.push(m.tracked);
        if (m.op === "generate") inFlight.push(m.tracked);
      }
      const op = m.tracked ? m.body.op : m.op;
      const topic = !m.tracked && r.chance(0.04) ? `${base}/prompt/set` : `${base}/bridge/request/${op}`;
      publishes.push(
        new Promise((resolve) =>
          client.publish(topic, m.bytes, { qos: r.chance(0.8) ? 1 : 0, properties: { responseTopic: replyTopic, correlationData: Buffer.from(String(done)) } }, resolve),
        ),
      );
    }
    await Promise.all(publishes);
    sent += n;
    await waitForFinals(tracked, "mqtt");
    inFlight.length = 0;
  }
  await new Promise((resolve) => client.end(false, {}, resolve));
}

// ─── Run ─────────────────────────────────────────────────────────────────────────────────────

const mqttCount = Math.round(o.messages * o["mqtt-share"]);
const socketCount = o.messages - mqttCount;
const daemon = await startBenchDaemon({ mqtt: mqttCount > 0 });
const started = Date.now();
try {
  // Warm-up (well-formed only) so the baseline includes what any first requests allocate.
  const warm = await import("../dist/daemon/transports/socket.js").then((m) => m.SocketClient.connect(daemon.socketPath));
  for (let i = 0; i < 20; i++) await warm.request({ op: "generate", prompt: "Once upon a time", max_tokens: 4 });
  warm.close();
  const before = await daemon.status();
  const perConnection = Math.ceil(socketCount / o.connections);
  await Promise.all([
    ...Array.from({ length: o.connections }, (_, i) => socketConnection(daemon.socketPath, i, Math.max(0, Math.min(perConnection, socketCount - i * perConnection)))),
    ...(mqttCount > 0 ? [mqttClient(daemon.mqttUrl, daemon.baseTopic, mqttCount)] : []),
  ]);
  await new Promise((resolve) => setTimeout(resolve, 500)); // late duplicates would show up here
  const after = await daemon.status();
  if (daemon.exit()) violations.push(`the daemon exited: ${JSON.stringify(daemon.exit())}: ${daemon.stderr()}`);
  const tracked = finals.size;
  const summary = {
    messages: sent,
    socket: socketCount,
    mqtt: mqttCount,
    well_formed: tracked,
    replies: repliesSeen,
    violations: violations.length,
    first_violations: violations.slice(0, 10),
    rss_before: before.rss,
    rss_after: after.rss,
    heap_before: before.heapUsed,
    heap_after: after.heapUsed,
    kv_used_cells_before: before.kvUsedCells,
    kv_used_cells_after: after.kvUsedCells,
    clients_after: after.clients,
    seconds: (Date.now() - started) / 1000,
  };
  if (o.json) console.log(JSON.stringify(summary));
  else {
    console.log(`${sent} messages (${socketCount} socket, ${mqttCount} MQTT), ${tracked} well-formed, ${repliesSeen} replies in ${summary.seconds} s`);
    console.log(`daemon RSS ${mib(before.rss)} -> ${mib(after.rss)}, heap ${mib(before.heapUsed)} -> ${mib(after.heapUsed)}, KV cells ${before.kvUsedCells} -> ${after.kvUsedCells}`);
    console.log(`violations: ${violations.length}${violations.length ? `\n  ${violations.slice(0, 10).join("\n  ")}` : ""}`);
  }
  process.exitCode = violations.length ? 1 : 0;
} finally {
  const exit = await daemon.stop();
  if (exit?.code !== 0) {
    console.error(`the daemon did not stop cleanly: ${JSON.stringify(exit)}\n${daemon.stderr()}`);
    process.exitCode = 1;
  }
}
