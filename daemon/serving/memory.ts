// Memory costs of a model: weights (mapped), KV cache, scratch. The planner builds on these.
import type { KvType, ModelInfo } from "../engine/engine.js";

export const KV_BYTES_PER_ELEMENT: Record<KvType, number> = { f32: 4, f16: 2, q8_0: 34 / 32 };

export interface ModelShape {
  nLayer: number;
  nHeadKv: number;
  headDim: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nVocab: number;
}

/** KV cache bytes for one token of one sequence: n_layer × 2 × n_kv_head × head_dim × bytes. */
export function kvBytesPerToken(m: ModelShape, kvType: KvType): number {
  return m.nLayer * 2 * m.nHeadKv * m.headDim * KV_BYTES_PER_ELEMENT[kvType];
}

/**
 * Activations for a batch of `batch` tokens, logits for `outputs` of them (default: all), and
 * per-thread attention scores. The engine keeps its buffers at the largest batch it has seen,
 * so this is what a step of that size leaves allocated.
 */
export function scratchBytes(m: ModelShape, nCtx: number, batch: number, threads: number, outputs = batch): number {
  const perToken = 4 * (2 * m.nEmbd + 2 * m.nHead * m.headDim + 2 * m.nHeadKv * m.headDim + 2 * m.nFf + m.nEmbd);
  const quantized = 2 * Math.max(m.nEmbd, m.nFf) * batch; // activations in their 8-bit dot format
  return perToken * batch + quantized + 4 * m.nVocab * outputs + threads * 4 * (nCtx + m.headDim);
}

/**
 * The page tables that map `bytes` (the model file, the KV cache) in 4 KiB pages: 8 bytes per
 * page, charged to the process's cgroup as kernel memory. Where the page cache holds the file in
 * 2 MiB folios they are fewer; a Pi 4's kernel maps 4 KiB pages.
 */
export function pageTableBytes(bytes: number): number {
  return Math.ceil(bytes / 4096) * 8;
}

/**
 * What each file type people download costs, in bits per weight, largest first. The K-quant mixes
 * keep some matrices in a larger type (the output in Q6_K; attn_v, attn_output and ffn_down in the
 * _M mixes), so each figure is a whole file's: the published Llama 2 7B files' bytes × 8 over its
 * 6.74 billion parameters (Q3_K_S 2.95 GB, Q4_0 3.83 GB, Q4_K_M 4.08 GB, Q8_0 7.16 GB, …).
 */
export const FILE_TYPE_BITS: readonly (readonly [name: string, bitsPerWeight: number])[] = [
  ["Q8_0", 8.5], ["Q6_K", 6.57], ["Q5_K_M", 5.68], ["Q4_K_M", 4.84], ["Q4_0", 4.54], ["Q3_K_M", 3.92], ["Q3_K_S", 3.5],
];

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 2)} ${units[i]}`;
}

export function memoryEstimate(info: ModelInfo, nCtx: number, nSeq: number, kvType: KvType, threads: number) {
  const weights = info.weightBytes;
  const kv = kvBytesPerToken(info, kvType) * nCtx * nSeq;
  const scratch = scratchBytes(info, nCtx, Math.min(512, nCtx), threads);
  return { weights, kv, scratch, total: weights + kv + scratch };
}
