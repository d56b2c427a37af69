// The measuring loop behind `alpaca bench` and `npm run bench:peer`: prefill and decode speed
// of one sequence, each the median of several repetitions on a fresh KV cache.
//
// What is measured must not depend on the model's weights or on what it predicts, so that a
// synthetic file with random weights gives the same figures as a real one of the same shape:
// the prompt is a fixed pseudo-random list of ordinary tokens, and decode feeds the next ids
// of that list rather than what was sampled (a greedy sample is still drawn every step, as a
// real generation would, so its cost is included).
import fs from "node:fs";
import type { NativeModel } from "./engine.js";
import { createSampler, sequenceBatch } from "./engine.js";
import { openVocab } from "./tokenizer.js";

export interface BenchOptions {
  /** Prompt tokens evaluated in one batch (prefill). */
  prompt: number;
  /** Tokens decoded one at a time after the prompt. */
  decode: number;
  /** Counted repetitions. */
  reps: number;
  /** Repetitions run first and not counted (page cache, CPU clocks, allocator). */
  warmup?: number;
  /** Seed of the token ids. */
  seed?: number;
  /** The ids to feed (prompt then decode); default: benchTokens(model file, prompt + decode, seed). */
  tokens?: number[];
  /** Reads of the decode weights after the runs to find decode's ceiling (0: none, the default). */
  streamPasses?: number;
  /** Called after every repetition, warm-up included. */
  onRep?: (rep: BenchRep, counted: boolean) => void;
}

export interface BenchRep {
  prefillMs: number;
  decodeMs: number;
  /** prompt tokens / prefill seconds */
  prefill: number;
  /** decoded tokens / decode seconds */
  decode: number;
  /** Bytes this process read from storage during the repetition (/proc/self/io read_bytes), null where unknown. */
  readBytes: number | null;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface BenchResult {
  prompt: number;
  decode: number;
  reps: BenchRep[];
  prefill: Spread;
  decodeSpread: Spread;
  /** Bytes of weights one decode step reads (every matrix once). */
  weightBytes: number;
  /** The fastest of `streamPasses` reads of the weights a decode step uses; null when not measured. */
  stream: StreamCeiling | null;
  /** median decode tokens/s × weight bytes, in GB/s (10^9): the memory bandwidth decode achieves. */
  decodeGBs: number;
}

// ── token ids ─────────────────────────────────────────────────────────────────────────────

/** mulberry32: a tiny seeded generator; the same seed gives the same ids on every platform. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` pseudo-random ids of ordinary tokens of the model's vocabulary: no control tokens
 * (BOS, EOS, end-of-turn … render as nothing) and no end-of-generation token, so that no
 * engine treats any of them specially. The same file and seed always give the same list, so
 * that a peer engine can be fed exactly what alpaca is fed.
 */
export function benchTokens(modelPath: string, count: number, seed = 1): number[] {
  const vocab = openVocab(modelPath);
  const info = vocab.info();
  const ordinary = (id: number) =>
    id !== info.bos && id !== info.eos && !vocab.isEndOfGeneration(id) && vocab.tokenBytes(id).length > 0;
  const random = seededRandom(seed);
  const ids: number[] = [];
  for (let tries = 0; ids.length < count; tries++) {
    if (tries > 100 * (count + 100)) throw new Error(`${modelPath}: the vocabulary has too few ordinary tokens`);
    const id = Math.floor(random() * info.size);
    if (ordinary(id)) ids.push(id);
  }
  return ids;
}

// ── statistics ────────────────────────────────────────────────────────────────────────────

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function spread(values: number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

// ── the loop ──────────────────────────────────────────────────────────────────────────────

/** One repetition on sequence 0: prefill `prompt` ids in one batch, then decode the rest one by one. */
function benchRep(model: NativeModel, ids: number[], prompt: number, decode: number): BenchRep {
  const sampler = createSampler({ temperature: 0 });
  model.kvTruncate(0, 0); // a fresh KV cache: every repetition does the same work
  const read0 = storageReadBytes();
  const t0 = performance.now();
  sampler.sample(model.decode(sequenceBatch(ids.slice(0, prompt), 0, 0)));
  const t1 = performance.now();
  for (let i = 0; i < decode; i++) {
    sampler.sample(model.decode(sequenceBatch([ids[prompt + i]], prompt + i, 0)));
  }
  const t2 = performance.now();
  const read1 = storageReadBytes();
  const prefillMs = t1 - t0;
  const decodeMs = t2 - t1;
  return {
    prefillMs,
    decodeMs,
    prefill: (prompt * 1000) / Math.max(prefillMs, 1e-6),
    decode: (decode * 1000) / Math.max(decodeMs, 1e-6),
    readBytes: read0 === null || read1 === null ? null : read1 - read0,
  };
}

export interface StreamCeiling {
  /** What one decode step reads of the weights (every layer and the output matrix). */
  bytesPerToken: number;
  /** The rate the threads read them at, GB/s (10^9), the fastest pass. */
  gbs: number;
  /** gbs / bytesPerToken: the decode tokens/s this machine's memory allows at most. */
  tokensPerSecond: number;
}

/**
 * Reads the decode weights `passes` times and keeps the fastest pass: decode cannot beat it, since
 * each token reads every one of those bytes. The first pass also faults the mapping in.
 */
export function measureStreamCeiling(model: NativeModel, passes = 3): StreamCeiling {
  let best = { bytes: 0, ms: Infinity };
  for (let i = 0; i < passes; i++) {
    const r = model.streamWeights();
    if (r.ms < best.ms) best = r;
  }
  const gbs = best.bytes / (best.ms / 1000) / 1e9;
  return { bytesPerToken: best.bytes, gbs, tokensPerSecond: (gbs * 1e9) / best.bytes };
}

/** read_bytes of /proc/self/io: what this process made the kernel fetch from storage (page cache misses). */
export function storageReadBytes(): number | null {
  try {
    const m = /^read_bytes:\s*(\d+)/m.exec(fs.readFileSync("/proc/self/io", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Runs the benchmark on an open model whose context holds at least prompt + decode tokens. */
export function runBench(model: NativeModel, options: BenchOptions): BenchResult {
  const { prompt, decode, reps } = options;
  const warmup = options.warmup ?? 1;
  const info = model.info();
  if (prompt < 1 || decode < 1 || reps < 1) throw new RangeError("prompt, decode and reps must be at least 1");
  if (prompt + decode > info.nCtx)
    throw new RangeError(`prompt ${prompt} + decode ${decode} tokens exceed the context size ${info.nCtx}`);
  const ids = options.tokens ?? benchTokens(info.path, prompt + decode, options.seed);
  if (ids.length < prompt + decode) throw new RangeError(`${ids.length} token ids given, ${prompt + decode} needed`);

  const counted: BenchRep[] = [];
  for (let r = 0; r < warmup + reps; r++) {
    const rep = benchRep(model, ids, prompt, decode);
    if (r >= warmup) counted.push(rep);
    options.onRep?.(rep, r >= warmup);
  }
  model.kvTruncate(0, 0);
  const prefill = spread(counted.map((r) => r.prefill));
  const decodeSpread = spread(counted.map((r) => r.decode));
  return {
    prompt,
    decode,
    reps: counted,
    prefill,
    decodeSpread,
    weightBytes: info.weightBytes,
    stream: options.streamPasses ? measureStreamCeiling(model, options.streamPasses) : null,
    decodeGBs: (decodeSpread.median * info.weightBytes) / 1e9,
  };
}
