// GGUF files with made-up weights in the shapes of published models: LLaMA 7B, TinyLlama, Qwen3
// 4B and 1.7B, Qwen2.5 3B, for memory and speed tests on hardware that has no real multi-GB
// download, and a tiny shape per architecture for fast tests. Tensor names, metadata keys and
// value types are those of llama.cpp's GGUF files (convert_hf_to_gguf.py + llama-quantize), so
// the engine cannot tell them from real ones except by what they say. The vocabulary is always
// a synthetic SentencePiece one of the shape's size: the tokenizer does not depend on the
// architecture, and the size is what costs memory and time.
import {
  GgmlType, ggmlTypeFromName, ggmlTypeInfo, meta, writeGguf,
  type GgufLayout, type GgufMetaValue, type GgufSpec, type GgufTensorSpec, type TensorFill,
} from "./gguf-writer.js";

// ── shapes ─────────────────────────────────────────────────────────────────────────────────

export type SyntheticArchitecture = "llama" | "qwen2" | "qwen3";

export interface SyntheticShape {
  name: string;
  architecture?: SyntheticArchitecture; // general.architecture, the prefix of the keys below (default llama)
  dim: number;           // {arch}.embedding_length
  layers: number;        // {arch}.block_count
  heads: number;         // {arch}.attention.head_count
  kvHeads: number;       // {arch}.attention.head_count_kv (GQA when < heads)
  headDim?: number;      // {arch}.attention.key_length / value_length; absent: dim / heads
  ffn: number;           // {arch}.feed_forward_length
  vocab: number;
  contextLength: number; // {arch}.context_length
  rmsEps: number;        // {arch}.attention.layer_norm_rms_epsilon
  ropeTheta: number;     // {arch}.rope.freq_base
  tied?: boolean;        // the published model ties its output to the embedding: no output.weight
}

/** Shapes from the published model configs (config.json / params.json, and their GGUF files). */
export const SHAPES = {
  // Llama-2-7b (same dims as LLaMA-1 7B, which had context 2048 and eps 1e-6)
  "7b": { name: "7b", architecture: "llama", dim: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, vocab: 32000, contextLength: 4096, rmsEps: 1e-5, ropeTheta: 10000 },
  // TinyLlama/TinyLlama-1.1B-Chat-v1.0
  "tinyllama-1.1b": { name: "tinyllama-1.1b", architecture: "llama", dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, contextLength: 2048, rmsEps: 1e-5, ropeTheta: 10000 },
  // Qwen/Qwen3-4B-Instruct-2507: head size 128 apart from the width (2560 / 32 = 80)
  "qwen3-4b": { name: "qwen3-4b", architecture: "qwen3", dim: 2560, layers: 36, heads: 32, kvHeads: 8, headDim: 128, ffn: 9728, vocab: 151936, contextLength: 262144, rmsEps: 1e-6, ropeTheta: 5000000, tied: true },
  // Qwen/Qwen3-1.7B
  "qwen3-1.7b": { name: "qwen3-1.7b", architecture: "qwen3", dim: 2048, layers: 28, heads: 16, kvHeads: 8, headDim: 128, ffn: 6144, vocab: 151936, contextLength: 40960, rmsEps: 1e-6, ropeTheta: 1000000, tied: true },
  // Qwen/Qwen2.5-3B-Instruct
  "qwen2.5-3b": { name: "qwen2.5-3b", architecture: "qwen2", dim: 2048, layers: 36, heads: 16, kvHeads: 2, ffn: 11008, vocab: 151936, contextLength: 32768, rmsEps: 1e-6, ropeTheta: 1000000, tied: true },
  // Small enough for a test to write in milliseconds; row lengths are multiples of 256 so that
  // every type, K-quants included, fits without fallback. GQA like TinyLlama.
  "tiny": { name: "tiny", architecture: "llama", dim: 256, layers: 2, heads: 8, kvHeads: 4, ffn: 768, vocab: 512, contextLength: 256, rmsEps: 1e-5, ropeTheta: 10000 },
  // The tiny shape as Qwen2 (biases) and Qwen3 (per-head norms, head size 64 apart from 256 / 8).
  "tiny-qwen2": { name: "tiny-qwen2", architecture: "qwen2", dim: 256, layers: 2, heads: 8, kvHeads: 4, ffn: 768, vocab: 512, contextLength: 256, rmsEps: 1e-6, ropeTheta: 1000000, tied: true },
  "tiny-qwen3": { name: "tiny-qwen3", architecture: "qwen3", dim: 256, layers: 2, heads: 8, kvHeads: 4, headDim: 64, ffn: 768, vocab: 512, contextLength: 256, rmsEps: 1e-6, ropeTheta: 1000000, tied: true },
} as const satisfies Record<string, SyntheticShape>;

export type ShapeName = keyof typeof SHAPES;

export function syntheticShape(shape: ShapeName | SyntheticShape): SyntheticShape {
  if (typeof shape !== "string") return shape;
  const found = (SHAPES as Record<string, SyntheticShape>)[shape];
  if (!found) throw new Error(`unknown shape "${shape}" (known: ${Object.keys(SHAPES).join(", ")})`);
  return found;
}

export const headDimOf = (s: SyntheticShape) => s.headDim ?? s.dim / s.heads;

// ── vocabulary ─────────────────────────────────────────────────────────────────────────────

const SPM_SPACE = "\u2581"; // "▁": SentencePiece's word-start mark

export interface SyntheticVocab {
  tokens: string[];
  scores: number[];
  types: number[]; // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 6 byte
}

/**
 * A SentencePiece-style vocabulary laid out like LLaMA's: <unk>, <s>, </s>, the 256 byte
 * tokens, then pieces. The filler pieces grow one character at a time ("▁", "▁a", "▁ab",
 * …) so that the SPM merge loop can reach every one of them, and the earlier (shorter)
 * pieces score higher, as they would in a trained model.
 */
export function syntheticVocab(size: number): SyntheticVocab {
  if (size < 259 + 1) throw new Error(`a vocabulary needs at least 260 tokens (3 control + 256 bytes + 1), not ${size}`);
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(6);
  }
  const scores = tokens.map(() => 0);

  const printable: string[] = [];
  for (let c = 0x21; c < 0x7f; c++) printable.push(String.fromCharCode(c));
  const lower = "etaoinshrdlcumwfgypbvkjxqz".split(""); // English letter frequency order
  function* pieces(): Generator<string> {
    yield SPM_SPACE;
    for (const c of printable) yield c;
    for (const c of printable) yield SPM_SPACE + c;
    let level = lower;
    for (;;) { // then all lower-case words of 2, 3, … letters, with and without the space mark
      const next: string[] = [];
      for (const p of level) for (const c of lower) next.push(p + c);
      for (const p of next) { yield SPM_SPACE + p; yield p; }
      level = next;
    }
  }
  let score = 0;
  for (const p of pieces()) {
    if (tokens.length >= size) break;
    tokens.push(p);
    scores.push(--score);
    types.push(1);
  }
  return { tokens, scores, types };
}

// ── tensors ────────────────────────────────────────────────────────────────────────────────

// llama.cpp's llama_ftype for a file whose matrices are all of one type.
const FILE_TYPE: Partial<Record<GgmlType, number>> = {
  [GgmlType.F32]: 0, [GgmlType.F16]: 1, [GgmlType.Q4_0]: 2, [GgmlType.Q4_1]: 3,
  [GgmlType.Q8_0]: 7, [GgmlType.Q5_0]: 8, [GgmlType.Q5_1]: 9, [GgmlType.Q2_K]: 10,
  [GgmlType.Q3_K]: 11, [GgmlType.Q4_K]: 14, [GgmlType.Q5_K]: 16, [GgmlType.Q6_K]: 18,
  [GgmlType.BF16]: 32,
};

/**
 * The type a matrix of row length ne0 really gets: llama-quantize falls back when the row
 * is not a whole number of blocks (k-quants to a 32-block type, then F16), which is why
 * stories260K's ffn_down (row 172) is F16 in its Q4_0 file.
 */
export function fittingType(type: GgmlType, ne0: number): GgmlType {
  if (ne0 % ggmlTypeInfo(type).blockSize === 0) return type;
  const fallback: Partial<Record<GgmlType, GgmlType>> = {
    [GgmlType.Q2_K]: GgmlType.Q4_0, [GgmlType.Q3_K]: GgmlType.Q4_0, [GgmlType.Q4_K]: GgmlType.Q5_0,
    [GgmlType.Q5_K]: GgmlType.Q5_1, [GgmlType.Q6_K]: GgmlType.Q8_0,
  };
  const next = fallback[type];
  if (next !== undefined && ne0 % ggmlTypeInfo(next).blockSize === 0) return next;
  return GgmlType.F16;
}

export interface SyntheticOptions {
  shape: ShapeName | SyntheticShape;
  /** Type of every matrix: "q4_0", "q8_0", "f16", "f32", "q4_k", … */
  type: string;
  /** output.weight type (default: `type`, i.e. llama-quantize --pure; "q6_k" is its default mix). */
  outputType?: string;
  /** token_embd.weight type (default: `type`). */
  embeddingType?: string;
  /** "sparse": zero matrices left as holes (no disk); "random": random weights with valid scales. */
  fill: "sparse" | "random";
  /** No output.weight: the engine must reuse token_embd (tied embeddings). Default: the shape's. */
  tiedEmbeddings?: boolean;
  seed?: number;
  name?: string;
}

/**
 * Tensor list in the order llama.cpp's converter writes it; norms are F32 of 1.0, Qwen2's biases
 * F32 filled like the matrices.
 */
export function syntheticTensors(options: SyntheticOptions): GgufTensorSpec[] {
  const s = syntheticShape(options.shape);
  const headDim = headDimOf(s);
  if (!Number.isInteger(headDim) || s.heads % s.kvHeads !== 0)
    throw new Error(`shape ${s.name}: dim ${s.dim} / heads ${s.heads} / kv heads ${s.kvHeads} do not divide`);
  const type = ggmlTypeFromName(options.type);
  const matrixFill: TensorFill = options.fill === "random" ? "random" : "zero";
  const qDim = headDim * s.heads, kvDim = headDim * s.kvHeads;
  const matrix = (name: string, ne0: number, ne1: number, t = type): GgufTensorSpec =>
    ({ name, type: fittingType(t, ne0), dims: [ne0, ne1], data: matrixFill });
  const vector = (name: string, n: number, data: TensorFill = "ones"): GgufTensorSpec => ({ name, type: GgmlType.F32, dims: [n], data });
  const bias = (name: string, n: number) => vector(name, n, matrixFill);

  const tensors: GgufTensorSpec[] = [
    matrix("token_embd.weight", s.dim, s.vocab, options.embeddingType ? ggmlTypeFromName(options.embeddingType) : type),
  ];
  for (let l = 0; l < s.layers; l++) {
    const blk = `blk.${l}`;
    tensors.push(vector(`${blk}.attn_norm.weight`, s.dim), matrix(`${blk}.attn_q.weight`, s.dim, qDim));
    if (s.architecture === "qwen2") tensors.push(bias(`${blk}.attn_q.bias`, qDim));
    if (s.architecture === "qwen3") tensors.push(vector(`${blk}.attn_q_norm.weight`, headDim));
    tensors.push(matrix(`${blk}.attn_k.weight`, s.dim, kvDim));
    if (s.architecture === "qwen2") tensors.push(bias(`${blk}.attn_k.bias`, kvDim));
    if (s.architecture === "qwen3") tensors.push(vector(`${blk}.attn_k_norm.weight`, headDim));
    tensors.push(matrix(`${blk}.attn_v.weight`, s.dim, kvDim));
    if (s.architecture === "qwen2") tensors.push(bias(`${blk}.attn_v.bias`, kvDim));
    tensors.push(
      matrix(`${blk}.attn_output.weight`, qDim, s.dim),
      vector(`${blk}.ffn_norm.weight`, s.dim),
      matrix(`${blk}.ffn_gate.weight`, s.dim, s.ffn),
      matrix(`${blk}.ffn_down.weight`, s.ffn, s.dim),
      matrix(`${blk}.ffn_up.weight`, s.dim, s.ffn),
    );
  }
  tensors.push(vector("output_norm.weight", s.dim));
  if (!(options.tiedEmbeddings ?? s.tied ?? false))
    tensors.push(matrix("output.weight", s.dim, s.vocab, options.outputType ? ggmlTypeFromName(options.outputType) : type));
  return tensors;
}

/** Metadata as llama.cpp writes it for the shape's architecture, with the synthetic vocabulary. */
export function syntheticMetadata(options: SyntheticOptions): Array<[string, GgufMetaValue]> {
  const s = syntheticShape(options.shape);
  const a = s.architecture ?? "llama";
  const type = ggmlTypeFromName(options.type);
  const vocab = syntheticVocab(s.vocab);
  const quantized = type !== GgmlType.F32 && type !== GgmlType.F16 && type !== GgmlType.BF16;
  const headDim = headDimOf(s);
  const entries: Array<[string, GgufMetaValue]> = [
    ["general.architecture", meta.string(a)],
    ["general.name", meta.string(options.name ?? `synthetic-${s.name}-${options.type}`)],
    [`${a}.vocab_size`, meta.u32(s.vocab)],
    [`${a}.context_length`, meta.u32(s.contextLength)],
    [`${a}.embedding_length`, meta.u32(s.dim)],
    [`${a}.block_count`, meta.u32(s.layers)],
    [`${a}.feed_forward_length`, meta.u32(s.ffn)],
    [`${a}.rope.dimension_count`, meta.u32(headDim)],
    [`${a}.attention.head_count`, meta.u32(s.heads)],
    [`${a}.attention.head_count_kv`, meta.u32(s.kvHeads)],
    ...(s.headDim === undefined ? [] : ([
      [`${a}.attention.key_length`, meta.u32(s.headDim)],
      [`${a}.attention.value_length`, meta.u32(s.headDim)],
    ] as Array<[string, GgufMetaValue]>)),
    [`${a}.attention.layer_norm_rms_epsilon`, meta.f32(s.rmsEps)],
    [`${a}.rope.freq_base`, meta.f32(s.ropeTheta)],
    ["general.file_type", meta.u32(FILE_TYPE[type] ?? 0)],
    ["tokenizer.ggml.model", meta.string("llama")],
    ["tokenizer.ggml.tokens", meta.array("string", vocab.tokens)],
    ["tokenizer.ggml.scores", meta.array("f32", vocab.scores)],
    ["tokenizer.ggml.token_type", meta.array("i32", vocab.types)],
    ["tokenizer.ggml.bos_token_id", meta.u32(1)],
    ["tokenizer.ggml.eos_token_id", meta.u32(2)],
    ["tokenizer.ggml.unknown_token_id", meta.u32(0)],
    ["tokenizer.ggml.add_bos_token", meta.bool(true)],
    ["tokenizer.ggml.add_eos_token", meta.bool(false)],
  ];
  if (quantized) entries.push(["general.quantization_version", meta.u32(2)]);
  return entries;
}

export function syntheticGgufSpec(options: SyntheticOptions): GgufSpec {
  return { version: 3, metadata: syntheticMetadata(options), tensors: syntheticTensors(options) };
}

export interface SyntheticModel {
  path: string;
  shape: SyntheticShape;
  layout: GgufLayout;
  fileSize: number;
  /** Bytes of all tensors (what must stay resident), without header and padding. */
  weightBytes: number;
}

/** Writes a synthetic GGUF file; "sparse" takes no disk beyond the header, norms and biases. */
export async function writeSyntheticModel(path: string, options: SyntheticOptions): Promise<SyntheticModel> {
  const layout = await writeGguf(path, syntheticGgufSpec(options), { seed: options.seed });
  return {
    path,
    shape: syntheticShape(options.shape),
    layout,
    fileSize: layout.fileSize,
    weightBytes: layout.tensors.reduce((sum, t) => sum + t.nbytes, 0),
  };
}
