// alpaca run: generate from a prompt, streaming text to stdout.
import type { CommandModule } from "yargs";
import { parseSize } from "../config.js";
import { createSampler, openModel, type ResidencyInfo } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { commandResidency, planModelOf } from "../serving/plan.js";
import { generate } from "../engine/generate.js";
import { defaultThreads, threadsOption, nonNegativeInt } from "./options.js";
import type { ConstraintArgs } from "./constraint-options.js";
import { compileConstraint, constraintOptions } from "./constraint-options.js";

interface RunArgs extends ConstraintArgs {
  model: string;
  prompt: string;
  n: number;
  temp: number;
  "top-k": number;
  "top-p": number;
  "min-p": number;
  "repeat-penalty": number;
  seed?: number;
  threads?: number;
  ctx?: number;
  "ignore-eos": boolean;
  "memory-limit"?: string;
  json: boolean;
  "fast-forward": boolean;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: "run",
  describe: "Generate text from a prompt",
  builder: (y) =>
    constraintOptions(y)
      .option("model", { alias: "m", type: "string", demandOption: true, describe: "GGUF model file" })
      .option("prompt", { alias: "p", type: "string", demandOption: true, describe: "prompt text" })
      .option("n", { alias: ["n-predict", "max-tokens"], type: "number", default: 128, describe: "tokens to generate" })
      .option("temp", { type: "number", default: 0.8, describe: "temperature (0 = greedy)" })
      .option("top-k", { type: "number", default: 40, describe: "top-k (0 = off)" })
      .option("top-p", { type: "number", default: 0.95, describe: "top-p (1 = off)" })
      .option("min-p", { type: "number", default: 0.05, describe: "min-p (0 = off)" })
      .option("repeat-penalty", { type: "number", default: 1.0, describe: "repetition penalty (1 = off)" })
      .option("seed", { type: "number", describe: "random seed (default: random)" })
      .option("ctx", { alias: "c", type: "number", describe: "context size (default: the model's, at most 4096)" })
      .option("ignore-eos", { type: "boolean", default: false, describe: "keep generating after end-of-sequence" })
      .option("threads", threadsOption)
      .option("memory-limit", {
        type: "string", requiresArg: true,
        describe: "plan residency for this budget (e.g. 3500M) besides MemAvailable and the cgroup limit",
      })
      .option("json", { type: "boolean", default: false, describe: "print one JSON object at the end" })
      .option("fast-forward", {
        type: "boolean",
        default: true,
        describe: "evaluate the tokens a grammar decides in one step (--no-fast-forward: one step each, the same output)",
      })
      .check((a) => {
        nonNegativeInt("-n", a.n);
        if (!(a.temp >= 0)) throw new Error("--temp must be 0 or more");
        nonNegativeInt("--top-k", a["top-k"]);
        if (!(a["top-p"] > 0 && a["top-p"] <= 1)) throw new Error("--top-p must be in (0, 1]");
        if (!(a["min-p"] >= 0 && a["min-p"] <= 1)) throw new Error("--min-p must be in [0, 1]");
        if (!(a["repeat-penalty"] > 0)) throw new Error("--repeat-penalty must be positive");
        if (a.seed !== undefined) nonNegativeInt("--seed", a.seed);
        if (a.ctx !== undefined) nonNegativeInt("--ctx", a.ctx, 1);
        defaultThreads(a.threads);
        return true;
      }),
  handler: (a) => {
    const memoryLimit = a["memory-limit"] === undefined ? null : parseSize(a["memory-limit"]);
    if (memoryLimit === 0 || (a["memory-limit"] !== undefined && memoryLimit === null))
      throw new UserError(`--memory-limit ${JSON.stringify(a["memory-limit"])} is not a size (e.g. 3500M)`);
    const threads = defaultThreads(a.threads);
    // The shapes first (a 1-token context), then the model opened with the plan's residency.
    const probe = openModel(a.model, { nCtx: 1, threads: 1 });
    const info = probe.info();
    probe.close();
    const nCtx = a.ctx ?? Math.min(info.nCtxTrain, 4096);
    if (nCtx > info.nCtxTrain)
      process.stderr.write(`alpaca: warning: --ctx ${nCtx} is beyond the ${info.nCtxTrain} tokens the model was trained for: quality may suffer\n`);
    const { residency, note } = commandResidency(planModelOf(info), { ctx: nCtx, kvType: "f16", threads, memoryLimit });
    if (note && !a.json) process.stderr.write(note + "\n");
    const model = openModel(a.model, { threads, nCtx, residency });
    const grammar = compileConstraint(model, a);
    const sampler = createSampler({
      grammar,
      temperature: a.temp,
      topK: a["top-k"],
      topP: a["top-p"],
      minP: a["min-p"],
      repeatPenalty: a["repeat-penalty"],
      seed: a.seed ?? Math.floor(Math.random() * 2 ** 32),
      maxTokens: a["ignore-eos"] ? undefined : a.n, // a grammar's answer is closed within -n
    });
    const prompt = Array.from(model.tokenize(a.prompt));
    const result = generate(model, sampler, prompt, {
      maxTokens: a.n,
      stopAtEos: !a["ignore-eos"],
      onText: a.json ? undefined : (s) => process.stdout.write(s),
      fastForward: a["fast-forward"],
    });
    if (a.json) {
      process.stdout.write(
        JSON.stringify({
          prompt_tokens: result.promptTokens,
          tokens: result.tokens,
          text: result.text,
          stop_reason: result.stopReason,
          timings: result.timings,
          residency: residencySummary(model.info().residency),
        }) + "\n",
      );
    } else {
      process.stdout.write("\n");
      const t = result.timings;
      process.stderr.write(
        `prompt ${result.promptTokens.length} tokens, ${t.promptTokensPerSecond.toFixed(1)} tok/s; ` +
          `generated ${result.tokens.length} tokens, ${t.decodeTokensPerSecond.toFixed(1)} tok/s` +
          (grammar ? ` (${t.forcedTokens} decided by the grammar, ${t.decodeSteps} decode steps)` : "") +
          "\n",
      );
    }
    model.close();
  },
};

/** What the engine kept and streamed, for --json. */
export function residencySummary(r: ResidencyInfo) {
  return {
    managed: r.managed,
    locked_layers: r.lockedLayers,
    streamed_layers: r.streamedLayers,
    resident_bytes: r.residentBytes,
    locked_bytes: r.lockedBytes,
    streamed_bytes: r.streamedBytes,
    locking_permitted: r.lockingPermitted,
    ...(r.lockError ? { lock_error: r.lockError } : {}),
    streamed_passes: r.passes,
  };
}
