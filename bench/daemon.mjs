#!/usr/bin/env node
// The daemon's two scheduling numbers, on a 7B-shaped Q4_0 file through the real socket:
//   1. continuous batching: aggregate decode tokens/s of 4 concurrent requests vs 1 alone
//      (target ≥ 2.5×: decode is memory-bound, one pass over the weights serves all four);
//   2. prefix reuse: time to first token of a request sharing a 256-token prefix with an
//      earlier one vs the first (target ≥ 5× shorter).
//
//   npm run bench:daemon -- [--model FILE] [--threads 2] [--parallel 4] [-n 16] [--prefix 256]
//                           [--batch-tokens 128] [--reps 1] [--json]
//
// Without --model the random-filled 7B Q4_0 file is written once under .bench/ (as bench:peer
// does). Needs a built project (npm install && npx node-gyp build && npx tsc -p .).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = (p) => pathToFileURL(path.join(ROOT, "dist", p)).href;
const { Server } = await import(dist("daemon/serving/server.js"));
const { SocketClient } = await import(dist("daemon/transports/socket.js"));
const log = (s) => process.stderr.write(s + "\n");

const { values: o } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string", default: String(Math.min(os.availableParallelism(), 4)) },
    parallel: { type: "string", default: "4" },
    n: { type: "string", short: "n", default: "16" },
    prefix: { type: "string", default: "256" },
    "batch-tokens": { type: "string", default: "128" },
    reps: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
const threads = Number(o.threads), parallel = Number(o.parallel), n = Number(o.n), prefixTokens = Number(o.prefix);
const reps = Number(o.reps);

async function randomSevenB() {
  const file = path.join(ROOT, ".bench", "7b-q4_0-random.gguf");
  if (fs.existsSync(file)) return file;
  const { writeSyntheticModel } = await import(dist("models/synthetic.js"));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  log(`writing ${path.relative(ROOT, file)} (7b, q4_0, random fill) once…`);
  await writeSyntheticModel(`${file}.partial`, { shape: "7b", type: "q4_0", fill: "random", seed: 1 });
  fs.renameSync(`${file}.partial`, file);
  return file;
}

const model = o.model ?? (await randomSevenB());

// The engine's own ceiling for batching: one decode() of `parallel` one-token rows against one row,
// on a model opened apart from the daemon (the mapping and the page cache are shared).
async function engineCeiling() {
  const { openModel } = await import(dist("daemon/engine/engine.js"));
  const m = openModel(model, { threads, nCtx: 64, nSeq: parallel, kvType: "f16" });
  const step = async (rows) => {
    for (let s = 0; s < rows; s++) m.kvTruncate(s, 0);
    const batch = { tokens: Int32Array.from({ length: rows }, (_, i) => 100 + i), positions: new Int32Array(rows),
      seqs: Int32Array.from({ length: rows }, (_, i) => i), logits: new Uint8Array(rows).fill(1) };
    const t = performance.now();
    await m.decodeAsync(batch);
    return performance.now() - t;
  };
  await step(parallel);
  const one = [], many = [];
  for (let k = 0; k < 5; k++) (one.push(await step(1)), many.push(await step(parallel)));
  m.close();
  const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  return { oneRowMs: med(one), rowsMs: med(many), ratio: (parallel * med(one)) / med(many) };
}
const ceiling = await engineCeiling();
log(`engine alone: decode() of 1 row ${ceiling.oneRowMs.toFixed(1)} ms, of ${parallel} rows ${ceiling.rowsMs.toFixed(1)} ms: ` +
  `at most ${ceiling.ratio.toFixed(2)}× from batching`);
const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-bench-")), "alpaca.sock");
const nCtx = Math.max(512, prefixTokens + 64);
log(`model ${model}\nthreads ${threads}, ${parallel} slots × ${nCtx} tokens, ${o["batch-tokens"]} tokens per step, n ${n}; load ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
const server = await Server.start({
  modelPath: model, socketPath, threads, nCtx, nSeq: parallel, kvType: "f16", maxBatchTokens: Number(o["batch-tokens"]),
});
const client = await SocketClient.connect(socketPath);

// Greedy, no stop: random weights rarely pick EOS, and usage says how many tokens came.
async function generate(prompt, maxTokens) {
  const started = performance.now();
  const m = await client.request({ op: "generate", prompt, max_tokens: maxTokens, temperature: 0, stream: false });
  if (m.status !== "ok") throw new Error(`generate failed: ${JSON.stringify(m)}`);
  return { ...m.data, clientMs: performance.now() - started, endedAt: performance.now() };
}

// Distinct first words: no two share a cached prefix beyond BOS, so nothing is reused.
const words = ["Apples", "Rivers", "Mountains", "Clocks", "Lanterns", "Harbors", "Meadows", "Engines"];
const promptOf = (i, rep) => `${words[(i + rep) % words.length]} are the subject of this short note number ${rep}`;

// Decode tokens/s: generated tokens after the first, over the time after the first token.
const decodeRate = (r) => ((r.usage.completion_tokens - 1) * 1000) / r.timings.decode_ms;

log("warm-up (faults the mapped weights in)…");
await generate("Warm up", 2);

const single = [], together = [];
for (let rep = 0; rep < reps; rep++) {
  const one = await generate(promptOf(0, rep + 10), n);
  single.push(decodeRate(one));
  log(`1 request:  ${one.usage.completion_tokens} tokens, decode ${decodeRate(one).toFixed(2)} tokens/s`);

  // All admitted in the same step (short prompts fit one step's budget), so they decode together
  // from their first token to the end; the aggregate is every token after the first over that span.
  const t0 = performance.now();
  const runs = await Promise.all(Array.from({ length: parallel }, (_, i) => generate(promptOf(i, rep), n)));
  const firstToken = Math.max(...runs.map((r) => r.timings.first_token_ms)) + t0;
  const end = Math.max(...runs.map((r) => r.endedAt));
  const tokens = runs.reduce((a, r) => a + r.usage.completion_tokens - 1, 0);
  const aggregate = (tokens * 1000) / (end - firstToken);
  together.push(aggregate);
  log(`${parallel} requests: ${tokens} tokens after the first, aggregate decode ${aggregate.toFixed(2)} tokens/s ` +
    `(each ${runs.map((r) => decodeRate(r).toFixed(2)).join(", ")})`);
}

// A prefix of about `prefixTokens` tokens: numbered sentences until the tokenizer says so.
let prefix = "You are a helpful assistant for a smart home. Answer briefly.";
for (let i = 1; server.model.tokenize(prefix).length < prefixTokens; i++) prefix += ` Rule ${i}: keep the lights low after ten.`;
const prefixLength = server.model.tokenize(prefix).length;
const first = await generate(`${prefix} Question: is the kitchen light on?`, 2);
const second = await generate(`${prefix} Question: is the door locked?`, 2);
log(`prefix ${prefixLength} tokens: first request ttft ${first.timings.first_token_ms.toFixed(0)} ms ` +
  `(${first.usage.cached_tokens} cached), second ${second.timings.first_token_ms.toFixed(0)} ms (${second.usage.cached_tokens} cached)`);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = {
  model,
  threads,
  parallel,
  n,
  batchTokens: Number(o["batch-tokens"]),
  decode: { single: median(single), aggregate: median(together), ratio: median(together) / median(single), target: 2.5, engineCeiling: ceiling },
  prefix: {
    tokens: prefixLength,
    firstTtftMs: first.timings.first_token_ms,
    secondTtftMs: second.timings.first_token_ms,
    secondCachedTokens: second.usage.cached_tokens,
    ratio: first.timings.first_token_ms / second.timings.first_token_ms,
    target: 5,
  },
  loadAverage: os.loadavg(),
  cpu: os.cpus()[0]?.model,
};
if (o.json) process.stdout.write(JSON.stringify(summary) + "\n");
else {
  const d = summary.decode, p = summary.prefix;
  process.stdout.write(
    `decode: 1 request ${d.single.toFixed(2)} tokens/s, ${parallel} concurrent ${d.aggregate.toFixed(2)} tokens/s aggregate: ` +
      `${d.ratio.toFixed(2)}× (target ≥ ${d.target}×; the engine alone allows ${d.engineCeiling.ratio.toFixed(2)}×)\n` +
      `prefix: ${p.tokens}-token shared prefix, time to first token ${p.firstTtftMs.toFixed(0)} ms → ${p.secondTtftMs.toFixed(0)} ms: ` +
      `${p.ratio.toFixed(1)}× shorter (target ≥ ${p.target}×)\n`,
  );
}
client.close();
await server.stop(0);
