// Typed view of the native vocabulary (native/napi_tokenizer.cc).
import { addon } from "./native.js";

export interface TokenizeOptions {
  addBos?: boolean;
  parseSpecial?: boolean;
}

export interface NativeVocab {
  tokenize(text: string, options?: TokenizeOptions): Int32Array | number[];
  detokenize(ids: ArrayLike<number>, options?: { renderSpecial?: boolean }): string;
  tokenBytes(id: number): Buffer;
  info(): { model: string; size: number; bos: number; eos: number; addBos: boolean; eog: number[] };
}

export function openVocab(path: string): NativeVocab {
  const { Vocab } = addon<{ Vocab: new (path: string) => NativeVocab }>();
  return new Vocab(path);
}
