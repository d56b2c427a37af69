// Text as a grammar test feeds it to the engine: generated text, so no SentencePiece space prefix
// and no BOS, cut greedily into the longest tokens with those bytes (end-of-generation aside).
import type { NativeVocab } from "../../daemon/engine/tokenizer.js";

export function greedyTokens(vocab: NativeVocab, text: string): number[] {
  const byText = new Map<string, number>();
  const { size } = vocab.info();
  for (let id = 0; id < size; id++) {
    const b = vocab.tokenBytes(id).toString("latin1");
    if (b.length > 0 && !vocab.isEndOfGeneration(id) && !byText.has(b)) byText.set(b, id);
  }
  const bytes = Buffer.from(text).toString("latin1");
  const ids: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    let len = Math.min(bytes.length - i, 32);
    while (len > 0 && !byText.has(bytes.slice(i, i + len))) len--;
    if (len === 0) throw new Error(`no token for byte ${bytes.charCodeAt(i)}`);
    ids.push(byText.get(bytes.slice(i, i + len))!);
    i += len;
  }
  return ids;
}
