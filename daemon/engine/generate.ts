// A single-sequence generation loop on sequence 0, used by `alpaca run` and the benchmarks.
// Under a grammar, the tokens it decides are taken after each sampled token and evaluated with it
// in one engine call (fast-forward), exactly as the scheduler does.
import type { NativeModel, NativeSampler } from "./engine.js";
import { sequenceBatch, Utf8Stream } from "./engine.js";
import { UserError } from "../errors.js";

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  stopReason: "length" | "eos";
  timings: {
    promptMs: number;
    promptTokensPerSecond: number;
    decodeMs: number;
    decodeTokensPerSecond: number;
    /** Generated tokens the grammar decided, evaluated in the call of the token before them. */
    forcedTokens: number;
    /** Engine calls after the prompt's. */
    decodeSteps: number;
  };
}

export interface GenerateOptions {
  maxTokens: number;
  stopAtEos?: boolean;
  onText?: (text: string) => void;
  /** Evaluate forced tokens together (default true); false: one call each, the same output. */
  fastForward?: boolean;
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
  let forcedTokens = 0;
  let decodeSteps = 0;
  const emit = (s: string) => {
    if (!s) return;
    text += s;
    opts.onText?.(s);
  };
  for (const t of promptTokens) sampler.accept(t);
  let stopReason: GenerateResult["stopReason"] = "length";
  // Tokens the grammar decides from here, generated without a draw; true when they end the answer.
  const takeForced = (): boolean => {
    if (opts.fastForward === false) return false;
    for (const tok of sampler.takeForced()) {
      if (tokens.length >= opts.maxTokens) return true;
      tokens.push(tok);
      forcedTokens++;
      emit(stream.push(model.tokenBytes(tok)));
    }
    return sampler.grammarState() === "complete";
  };

  model.kvTruncate(0, 0);
  const t0 = performance.now();
  let ended = takeForced();
  let fed = promptTokens.length;
  let logits = ended ? new Float32Array(0) : model.decode(sequenceBatch([...promptTokens, ...tokens], 0, 0));
  fed += tokens.length;
  const t1 = performance.now();
  if (ended && sampler.grammarState() === "complete") stopReason = "eos";
  while (!ended && tokens.length < opts.maxTokens) {
    const tok = sampler.sample(logits);
    tokens.push(tok);
    if (opts.stopAtEos !== false && eog.has(tok)) {
      stopReason = "eos";
      break;
    }
    emit(stream.push(model.tokenBytes(tok)));
    const before = tokens.length;
    ended = sampler.grammarState() === "complete" || takeForced();
    if (sampler.grammarState() === "complete") stopReason = "eos";
    if (ended || tokens.length >= opts.maxTokens) break;
    logits = model.decode(sequenceBatch(tokens.slice(before - 1), fed, 0));
    fed += tokens.length - before + 1;
    decodeSteps++;
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
      forcedTokens,
      decodeSteps,
    },
  };
}
