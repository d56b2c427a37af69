// Typed view of the native engine (native/napi/napi_model.cc) and the loops built on it.
import fs from "node:fs";
import { addon } from "./native.js";
import { UserError } from "../errors.js";
import type { NativeGrammar } from "./grammar.js";

export type KvType = "f16" | "f32" | "q8_0";

/** Which layers stay in RAM and which stream from storage; absent: the kernel decides (unmanaged). */
export interface ResidencyOptions {
  /** Layers read from storage on every pass (spread evenly), released after use. Default 0. */
  streamLayers?: number;
  /** mlock the other layers and the output matrix (default true). */
  lock?: boolean;
}

export interface ModelOptions {
  nCtx?: number;
  nSeq?: number;
  threads?: number;
  kvType?: KvType;
  residency?: ResidencyOptions;
  /** Fault the whole KV cache in at open (the daemon: its plan counted it), instead of as it fills. */
  commitKv?: boolean;
}

export interface ResidencyInfo {
  /** false: opened without residency options; the kernel's LRU decides and every weight counts as resident. */
  managed: boolean;
  lockedLayers: number;
  /** Indices of the streamed layers, ascending. */
  streamedLayers: number[];
  /** Weights kept in RAM (locked or not), the stream window aside. */
  residentBytes: number;
  lockedBytes: number;
  /** Read from storage on every forward pass. */
  streamedBytes: number;
  /** Most streamed bytes in RAM at once: the layer computing and the one read ahead. */
  windowBytes: number;
  lockRequested: boolean;
  /** Every mlock succeeded (false when not asked, or refused: then lockError says why). */
  lockingPermitted: boolean;
  lockError: string;
  /** Forward passes that streamed their layers. */
  passes: number;
}

export interface ModelInfo {
  path: string;
  architecture: string;
  /** The models the architecture's entry covers ("Qwen2, Qwen2.5"). */
  family: string;
  /** How RoPE pairs a head's dimensions: adjacent pairs (LLaMA) or the two halves (NEOX: Qwen). */
  ropeStyle: "pairs" | "neox";
  name: string;
  nVocab: number;
  nCtxTrain: number;
  nEmbd: number;
  nLayer: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nRot: number;
  ropeTheta: number;
  rmsEps: number;
  weightBytes: number;
  fileBytes: number;
  bos: number;
  eos: number;
  eog: number[];
  addBos: boolean;
  nCtx: number;
  nSeq: number;
  threads: number;
  kvType: KvType;
  kvBytes: number;
  residency: ResidencyInfo;
  /** Bytes of all blk.* tensors (the layer stack). */
  layerBytes: number;
  /** token_embd.weight: read one row per token, unless it is also the output (outputBytes 0). */
  embeddingBytes: number;
  /** output.weight, read whole every pass; 0 with tied embeddings. */
  outputBytes: number;
  tensorTypes: Record<string, number>;
}

/** One engine call: token i sits at positions[i] of sequence seqs[i]; logits[i] asks for its logits. */
export interface Batch {
  tokens: Int32Array;
  positions: Int32Array;
  seqs: Int32Array;
  logits: Uint8Array;
}

export interface NativeModel {
  info(): ModelInfo;
  /** textOnly: [begin, end) UTF-8 byte offset pairs, ascending, where no special token is matched (typed text). */
  tokenize(text: string, addBos?: boolean, parseSpecial?: boolean, textOnly?: Uint32Array): Int32Array;
  /** The texts of the vocabulary's control, user-defined and unknown tokens, longest first. */
  specialTexts(): string[];
  tokenBytes(id: number, renderSpecial?: boolean): Buffer;
  decode(batch: Batch): Float32Array;
  decodeAsync(batch: Batch): Promise<Float32Array>;
  kvLength(seq: number): number;
  kvTruncate(seq: number, from: number): void;
  kvCopyPrefix(from: number, to: number, n: number): void;
  kvUsedCells(): number;
  /** The model file's identity: a hash of its header, metadata, tensor directory and size (16 hex digits). */
  identity(): string;
  /** Writes positions [0, n) of a sequence to a prompt-cache file (temporary file, fsync, rename); resolves with its bytes. */
  kvSaveAsync(seq: number, n: number, file: string, meta: string, tokens: Int32Array): Promise<number>;
  /** Empties a sequence, then fills positions [0, n) from a prompt-cache file whose tokens start with `expected`. */
  kvRestoreAsync(seq: number, n: number, file: string, expected: Int32Array): Promise<number>;
  /** What became of the mapped model file since it was loaded (an fstat of the kept-open file). */
  fileStatus(): ModelFileStatus;
  /** Reads the weights a decode step uses once with the context's threads: bytes read and the time it took. */
  streamWeights(): { bytes: number; ms: number };
  /** GBNF against this model's vocabulary; use compileGrammar() from grammar.ts for a typed GrammarError. */
  compileGrammar(gbnf: string, root?: string): NativeGrammar;
  close(): void;
}

export interface ModelFileStatus {
  /** false: the file shrank under the mapping; every decode is refused with `problem`. */
  ok: boolean;
  truncated: boolean;
  /** Written in place since it was loaded (size or mtime). */
  modified: boolean;
  /** The path names another file now; the daemon keeps serving the one it mapped. */
  replaced: boolean;
  /** A read of a missing page already faulted (and was answered with an error). */
  damaged: boolean;
  size: number;
  mappedSize: number;
  problem?: string;
}

export interface SamplerOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
  /**
   * The tokens it may produce (the answer's max_tokens): under a grammar the answer is closed
   * within them, never cut off (grammar.ts). Absent: no limit.
   */
  maxTokens?: number;
  /** Constrains every sampled token to the grammar (grammar.ts). */
  grammar?: NativeGrammar | null;
}

export type GrammarState = "none" | "open" | "complete";

export interface NativeSampler {
  /** The next token; under a grammar only one it admits (a forced one without a draw). Throws when the grammar admits none. */
  sample(logits: Float32Array, offset?: number, n?: number, draft?: number): number;
  /** Adds a prompt token to the repetition history (the grammar does not see it). */
  accept(token: number): void;
  /**
   * Switches a grammar on from its start (after reading `consumed`, e.g. a tool call's trigger text
   * already generated) or off (null). False, and no grammar, when it does not admit `consumed`.
   */
  setGrammar(grammar: NativeGrammar | null, consumed?: string | Uint8Array): boolean;
  /** The tokens the grammar decides from here (fast-forward), taken exactly as sample() would take them one by one. */
  takeForced(): number[];
  /** "complete": the grammar admits nothing more, the generation is over. */
  grammarState(): GrammarState;
  /** Tokens chosen among fewer than the grammar admits, so that the answer ends within maxTokens. */
  closingTokens(): number;
}

interface EngineBinding {
  Model: new (path: string, options?: ModelOptions) => NativeModel;
  Sampler: new (options?: SamplerOptions) => NativeSampler;
}

export function checkModelPath(path: string): void {
  if (!fs.existsSync(path)) throw new UserError(`model file not found: ${path}`);
  if (!fs.statSync(path).isFile()) throw new UserError(`not a file: ${path}`);
}

export function openModel(path: string, options: ModelOptions = {}): NativeModel {
  checkModelPath(path);
  const { Model } = addon<EngineBinding>();
  return new Model(path, options);
}

export function createSampler(options: SamplerOptions): NativeSampler {
  const { Sampler } = addon<EngineBinding>();
  return new Sampler(options);
}

/** A batch of consecutive tokens of one sequence starting at `start`; logits for the last only, or all. */
export function sequenceBatch(tokens: ArrayLike<number>, start: number, seq: number, allLogits = false): Batch {
  const n = tokens.length;
  const batch: Batch = {
    tokens: Int32Array.from(tokens),
    positions: new Int32Array(n),
    seqs: new Int32Array(n).fill(seq),
    logits: new Uint8Array(n),
  };
  for (let i = 0; i < n; i++) batch.positions[i] = start + i;
  if (allLogits) batch.logits.fill(1);
  else if (n > 0) batch.logits[n - 1] = 1;
  return batch;
}

/** Joins token bytes into text, holding back an incomplete UTF-8 character until it completes. */
export class Utf8Stream {
  private pending = Buffer.alloc(0);

  push(bytes: Buffer): string {
    const buf = this.pending.length ? Buffer.concat([this.pending, bytes]) : bytes;
    const keep = incompleteTail(buf);
    this.pending = Buffer.from(buf.subarray(buf.length - keep));
    return buf.subarray(0, buf.length - keep).toString("utf8");
  }

  finish(): string {
    const rest = this.pending.toString("utf8");
    this.pending = Buffer.alloc(0);
    return rest;
  }
}

/** Bytes at the end of buf that start a UTF-8 character whose continuation has not arrived yet. */
function incompleteTail(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const b = buf[buf.length - back];
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}
