// `alpaca bench --prompt-cache`: the time to the first token of a long prompt three ways —
// cold (every token prefilled), with the prefix still in memory (the daemon's prefix reuse),
// and after a restart with the prefix restored from a prompt-cache file by a newly opened model.
// All but the last prompt token form the prefix, as the daemon keeps it (the last one is always
// read, for its logits). Both models are opened as `alpaca serve` opens a model that fits: its
// weights locked in RAM and its KV cache committed before the first request (the time that
// takes is reported apart), so that no time counted is the kernel mapping pages in.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { benchTokens, spread, type Spread } from "./bench.js";
import type { ModelOptions, NativeModel } from "./engine.js";
import { createSampler, openModel, sequenceBatch } from "./engine.js";

export interface PromptCacheBenchOptions {
  prompt: number; // tokens of the long prompt
  batch: number; // prompt tokens per engine call, as the daemon's plan batches them
  reps: number;
  seed?: number;
  /** Ask the kernel to drop its page cache before each restore (root only): the file is then read from storage. */
  dropCaches?: boolean;
  onRep?: (rep: PromptCacheRep) => void;
}

export interface PromptCacheRep {
  coldMs: number;
  memoryMs: number;
  diskMs: number; // restore + the last prompt token, in a model opened anew
  openMs: number; // opening that model (mapping the file), not counted in diskMs
}

export interface PromptCacheBenchResult {
  prompt: number;
  fileBytes: number;
  cold: Spread;
  memory: Spread;
  disk: Spread;
  open: Spread;
  pageCacheDropped: boolean;
}

function firstToken(model: NativeModel, ids: number[], from: number, batch: number): void {
  const sampler = createSampler({ temperature: 0 });
  let logits: Float32Array | undefined;
  for (let i = from; i < ids.length; i += batch) logits = model.decode(sequenceBatch(ids.slice(i, Math.min(i + batch, ids.length)), i, 0));
  sampler.sample(logits!);
}

function dropPageCache(): boolean {
  try {
    fs.writeFileSync("/proc/sys/vm/drop_caches", "1");
    return true;
  } catch {
    return false;
  }
}

export async function benchPromptCache(modelPath: string, options: ModelOptions, o: PromptCacheBenchOptions): Promise<PromptCacheBenchResult> {
  const modelOptions: ModelOptions = { residency: { streamLayers: 0, lock: true }, commitKv: true, ...options };
  const ids = benchTokens(modelPath, o.prompt, o.seed);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-bench-pc-"));
  const file = path.join(dir, "prefix.kv");
  const prefix = Int32Array.from(ids.slice(0, -1));
  const reps: PromptCacheRep[] = [];
  let dropped = false;
  let fileBytes = 0;
  try {
    for (let r = 0; r < o.reps; r++) {
      const model = openModel(modelPath, { ...modelOptions, nCtx: o.prompt, nSeq: 1 });
      let coldMs: number, memoryMs: number;
      try {
        model.kvTruncate(0, 0);
        let t = performance.now();
        firstToken(model, ids, 0, o.batch);
        coldMs = performance.now() - t;
        model.kvTruncate(0, prefix.length);
        t = performance.now();
        firstToken(model, ids, prefix.length, o.batch);
        memoryMs = performance.now() - t;
        model.kvTruncate(0, prefix.length);
        fileBytes = await model.kvSaveAsync(0, prefix.length, file, "{}", prefix);
      } finally {
        model.close();
      }
      if (o.dropCaches) dropped = dropPageCache();
      let t = performance.now();
      const fresh = openModel(modelPath, { ...modelOptions, nCtx: o.prompt, nSeq: 1 });
      const openMs = performance.now() - t;
      try {
        t = performance.now();
        await fresh.kvRestoreAsync(0, prefix.length, file, prefix);
        firstToken(fresh, ids, prefix.length, o.batch);
        const rep = { coldMs, memoryMs, diskMs: performance.now() - t, openMs };
        reps.push(rep);
        o.onRep?.(rep);
      } finally {
        fresh.close();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    prompt: o.prompt,
    fileBytes,
    cold: spread(reps.map((r) => r.coldMs)),
    memory: spread(reps.map((r) => r.memoryMs)),
    disk: spread(reps.map((r) => r.diskMs)),
    open: spread(reps.map((r) => r.openMs)),
    pageCacheDropped: dropped,
  };
}
