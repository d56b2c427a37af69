// A single-sequence generation loop on sequence 0, used by `alpaca run` and the benchmarks.
import type { NativeModel, NativeSampler } from "./engine.js";
import { sequenceBatch, Utf8Stream } from "./engine.js";
import { UserError } from "../errors.js";

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  stopReason: "length" | "eos";
  timings: { promptMs: number; promptTokensPerSecond: number; decodeMs: number; decodeTokensPerSecond: number };
}

export interface GenerateOptions {
  maxTokens: number;
  stopAtEos?: boolean;
  onText?: (text: string) => void;
}

export function generate(model: NativeModel, sampler: NativeSampler, promptTokens: number[], opts: GenerateOptions): GenerateResult {
  const info = model.info();
  if (promptTokens.length === 0) throw new UserError("the prompt is empty and the model adds no BOS token");
  if (promptTokens.length + opts.maxTokens > info.nCtx)
    throw new UserError(
      `prompt (${promptTokens.length} tokens) + ${opts.maxTokens} new tokens exceed the context size ${info.nCtx}`,
    );
  const eog = new Set(info.eog);
  const stream = new Utf8Stream();
  const tokens: number[] = [];
  let text = "";
  const emit = (s: string) => {
    if (!s) return;
    text += s;
    opts.onText?.(s);
  };
  for (const t of promptTokens) sampler.accept(t);

  model.kvTruncate(0, 0);
  const t0 = performance.now();
  let logits = model.decode(sequenceBatch(promptTokens, 0, 0));
  const t1 = performance.now();
  let stopReason: GenerateResult["stopReason"] = "length";
  for (let i = 0; i < opts.maxTokens; i++) {
    const tok = sampler.sample(logits);
    tokens.push(tok);
    if (opts.stopAtEos !== false && eog.has(tok)) {
      stopReason = "eos";
      break;
    }
    emit(stream.push(model.tokenBytes(tok)));
    if (i + 1 < opts.maxTokens) logits = model.decode(sequenceBatch([tok], promptTokens.length + i, 0));
  }
  emit(stream.finish());
  const t2 = performance.now();
  const decoded = Math.max(tokens.length - 1, 0);
  return {
    promptTokens,
    tokens,
    text,
    stopReason,
    timings: {
      promptMs: t1 - t0,
      promptTokensPerSecond: (promptTokens.length * 1000) / Math.max(t1 - t0, 1e-9),
      decodeMs: t2 - t1,
      decodeTokensPerSecond: decoded > 0 ? (decoded * 1000) / Math.max(t2 - t1, 1e-9) : 0,
    },
  };
}
