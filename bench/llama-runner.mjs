// The llama.cpp side of `npm run bench:peer`, run in its own process by bench/peer.mjs:
// llama.cpp through node-llama-cpp (its prebuilt CPU library, loaded offline), timed exactly
// as alpaca's daemon/engine/bench.ts times itself:
//   prefill = the prompt ids in one batch, with the next token sampled (greedy) after the last;
//   decode  = `n` fixed ids one at a time, each followed by a greedy sample;
// on a cleared sequence every repetition, after `warmup` repetitions that are not counted.
//
//   node bench/llama-runner.mjs '{"nodeLlamaCpp": ".../node-llama-cpp/dist/index.js",
//     "model": "file.gguf", "threads": 2, "p": 32, "n": 32, "reps": 1, "warmup": 1, "tokens": [...]}'
// prints one JSON line: {engine, prefill: [tok/s per rep], decode: [...], threads, flashAttention, …}
import fs from "node:fs";
import { pathToFileURL } from "node:url";

const job = JSON.parse(process.argv[2] ?? "null");
if (!job || !Array.isArray(job.tokens) || job.tokens.length < job.p + job.n) {
  console.error("llama-runner: expects one JSON argument with model, threads, p, n, reps, warmup, tokens");
  process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(job.nodeLlamaCpp).href);

// maxThreads 0: the context's thread count is used as given, not shared out by node-llama-cpp.
const llama = await getLlama({ gpu: false, build: "never", maxThreads: 0, logLevel: LlamaLogLevel.error, progressLogs: false });
const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0, useMmap: true });
const context = await model.createContext({
  contextSize: job.p + job.n,
  batchSize: job.p, // the whole prompt in one batch, as alpaca evaluates it
  sequences: 1,
  threads: { ideal: job.threads, min: job.threads },
});
const sequence = context.getSequence();
const greedy = { generateNext: { token: true, options: { temperature: 0 } } };
const prompt = job.tokens.slice(0, job.p);

/** read_bytes of /proc/self/io: what this process made the kernel fetch from storage. */
function storageReadBytes() {
  try {
    const m = /^read_bytes:\s*(\d+)/m.exec(fs.readFileSync("/proc/self/io", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function rep() {
  await sequence.clearHistory(); // a fresh KV cache: every repetition does the same work
  const read0 = storageReadBytes();
  const t0 = performance.now();
  await sequence.controlledEvaluate([...prompt.slice(0, -1), [prompt[prompt.length - 1], greedy]]);
  const t1 = performance.now();
  for (let i = 0; i < job.n; i++) await sequence.controlledEvaluate([[job.tokens[job.p + i], greedy]]);
  const t2 = performance.now();
  const read1 = storageReadBytes();
  return {
    prefill: (job.p * 1000) / (t1 - t0), decode: (job.n * 1000) / (t2 - t1), prefillMs: t1 - t0, decodeMs: t2 - t1,
    readBytes: read0 === null || read1 === null ? null : read1 - read0,
  };
}

const runs = [];
for (let r = 0; r < job.warmup + job.reps; r++) {
  const result = await rep();
  if (r >= job.warmup) runs.push(result);
}
const out = {
  engine: "llama.cpp",
  runs,
  threads: context.currentThreads,
  contextSize: context.contextSize,
  batchSize: context.batchSize,
  flashAttention: context.flashAttention,
  gpu: llama.gpu,
  buildType: llama.buildType,
  llamaCppRelease: llama.llamaCppRelease?.release,
  cpu: llama.cpuMathCores,
};
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(out) + "\n");
