// Whether a model fits this machine, for `alpaca models`: the costs of daemon/memory.ts (weights,
// KV cache) against the memory budget. A full planner is being written in daemon/plan.ts; this is
// the short answer a listing needs.
import fs from "node:fs";
import { kvBytesPerToken, type ModelShape } from "../daemon/memory.js";
import type { GgufInfo } from "../daemon/gguf.js";

export type Fit = "resident" | "tight" | "does not fit";

export const PLAN_CONTEXT = 2048;      // tokens of f16 KV cache in the standard plan
export const MIN_CONTEXT = 512;        // the smallest context the planner would shrink to
export const PROCESS_OVERHEAD = 50 * 1024 * 1024; // Node + scratch

/** min(MemAvailable, cgroup v2 memory.max): the memory a new process can use without swapping. */
export function memoryBudget(meminfo = "/proc/meminfo", cgroupMax = "/sys/fs/cgroup/memory.max"): number | null {
  let budget: number | null = null;
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync(meminfo, "utf8"));
    if (m) budget = Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  try {
    const limit = fs.readFileSync(cgroupMax, "utf8").trim();
    if (/^\d+$/.test(limit)) budget = budget === null ? Number(limit) : Math.min(budget, Number(limit));
  } catch { /* no cgroup v2 limit */ }
  return budget;
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
