// Typed view of the native tokenizers (native/napi/napi_tokenizer.cc): a vocabulary read from a GGUF
// model or vocabulary-only file, and a streaming decoder that never splits a UTF-8 character.
import { addon } from "./native.js";
import type { NativeGrammar } from "./grammar.js";

export interface TokenizeOptions {
  /** Prepend BOS. Default: what the vocabulary asks for (tokenizer.ggml.add_bos_token). */
  addBos?: boolean;
  /** Turn the text of control tokens ("<s>", "<|eot_id|>") into those tokens. Default false. */
  parseSpecial?: boolean;
}

export interface RenderOptions {
  /** Render control tokens as their text instead of nothing. Default false. */
  renderSpecial?: boolean;
}

export interface VocabInfo {
  /** tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE). */
  model: "llama" | "gpt2";
  /** tokenizer.ggml.pre ("" when absent). */
  pre: string;
  size: number;
  /** null when the vocabulary has no such token. */
  bos: number | null;
  eos: number | null;
  unk: number | null;
  addBos: boolean;
  addSpacePrefix: boolean;
  /** Tokens that end generation (eos, eot, eom …), ascending. */
  eog: number[];
}

export interface NativeVocab {
  tokenize(text: string, options?: TokenizeOptions): Int32Array;
  /** Whole text, valid UTF-8 (stray bytes become U+FFFD). Throws RangeError for an id outside the vocabulary. */
  detokenize(ids: Int32Array | readonly number[], options?: RenderOptions): string;
  /** The raw bytes of one token; may be part of a UTF-8 character. */
  tokenBytes(id: number, options?: RenderOptions): Buffer;
  /** The token's text as stored in the file ("▁the", "Ġthe", "<0x0A>"). */
  piece(id: number): string;
  isEndOfGeneration(id: number): boolean;
  info(): VocabInfo;
  /** GBNF against this vocabulary (benchmarks, tools); see grammar.ts. */
  compileGrammar(gbnf: string, root?: string): NativeGrammar;
}

/** Streaming detokenizer: push() returns only whole characters, finish() the held-back rest. */
export interface NativeTokenDecoder {
  push(id: number): string;
  finish(): string;
}

interface TokenizerBinding {
  Vocab: new (path: string) => NativeVocab;
  TokenDecoder: new (vocab: NativeVocab, options?: RenderOptions) => NativeTokenDecoder;
}

/** Opens the vocabulary of a GGUF file; throws an Error naming the file and key when it is unusable. */
export function openVocab(path: string): NativeVocab {
  if (typeof path !== "string") throw new TypeError("path must be a string");
  return new (addon<TokenizerBinding>().Vocab)(path);
}

export function tokenDecoder(vocab: NativeVocab, options?: RenderOptions): NativeTokenDecoder {
  return new (addon<TokenizerBinding>().TokenDecoder)(vocab, options);
}
