// Whether a model fits this machine, for `alpaca models`: the costs of daemon/serving/memory.ts (weights,
// KV cache) against the memory a new process can use. The short answer a listing needs;
// `alpaca plan` (daemon/serving/plan.ts) makes the full plan for one model.
import { kvBytesPerToken, type ModelShape } from "../daemon/serving/memory.js";
import type { GgufInfo } from "../daemon/engine/gguf.js";
import { readSystemMemory } from "../daemon/system/system-memory.js";

export type Fit = "resident" | "tight" | "does not fit";

export const PLAN_CONTEXT = 2048;      // tokens of f16 KV cache in the standard plan
export const MIN_CONTEXT = 512;        // the smallest context the planner would shrink to
export const PROCESS_OVERHEAD = 50 * 1024 * 1024; // Node + scratch

/** min(MemAvailable, the cgroup limit, v1 or v2, as the planner reads them): null when unknown. */
export function memoryBudget(root = "/"): number | null {
  const { meminfo, cgroup } = readSystemMemory(root);
  const sources = [meminfo?.memAvailable, cgroup?.bytes].filter((x): x is number => x !== undefined);
  return sources.length ? Math.min(...sources) : null;
}

export interface FitEstimate {
  weights: number;
  kv: number;       // PLAN_CONTEXT tokens, f16
  total: number;    // weights + kv + overhead
  fit: Fit | "unknown";
}

/**
 * resident: weights, a 2048-token f16 KV cache and the process fit in the budget;
 * tight: only with a smaller plan (512 tokens), which the planner would choose;
 * does not fit: the weights cannot stay resident (every token would re-read part of the file).
 */
export function classifyFit(weights: number, kvPerToken: number, budget: number | null): FitEstimate {
  const kv = kvPerToken * PLAN_CONTEXT;
  const total = weights + kv + PROCESS_OVERHEAD;
  let fit: FitEstimate["fit"] = "unknown";
  if (budget !== null) {
    if (total <= budget) fit = "resident";
    else if (weights + kvPerToken * MIN_CONTEXT + PROCESS_OVERHEAD <= budget) fit = "tight";
    else fit = "does not fit";
  }
  return { weights, kv, total, fit };
}

/** The shape memory.ts needs, from a GGUF header (llama-style keys). */
export function shapeOf(info: GgufInfo): ModelShape | null {
  const arch = info.metadata["general.architecture"];
  if (typeof arch !== "string") return null;
  const num = (k: string) => {
    const v = info.metadata[`${arch}.${k}`];
    return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : null;
  };
  const nLayer = num("block_count"), nEmbd = num("embedding_length"), nHead = num("attention.head_count");
  if (nLayer === null || nEmbd === null || nHead === null || nHead === 0) return null;
  const nHeadKv = num("attention.head_count_kv") ?? nHead;
  const headDim = num("attention.key_length") ?? nEmbd / nHead;
  return { nLayer, nEmbd, nHead, nHeadKv, headDim, nFf: num("feed_forward_length") ?? 0, nVocab: 0 };
}

export function kvPerTokenOf(info: GgufInfo): number | null {
  const shape = shapeOf(info);
  return shape ? kvBytesPerToken(shape, "f16") : null;
}
