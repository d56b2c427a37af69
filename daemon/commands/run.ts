// alpaca run: generate from a prompt, streaming text to stdout.
import type { CommandModule } from "yargs";
import { createSampler, openModel } from "../engine.js";
import { generate } from "../generate.js";
import { defaultThreads, threadsOption, nonNegativeInt } from "./options.js";

interface RunArgs {
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
  json: boolean;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: "run",
  describe: "Generate text from a prompt",
  builder: (y) =>
    y
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
      .option("json", { type: "boolean", default: false, describe: "print one JSON object at the end" })
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
    const model = openModel(a.model, { threads: defaultThreads(a.threads), nCtx: a.ctx });
    const sampler = createSampler({
      temperature: a.temp,
      topK: a["top-k"],
      topP: a["top-p"],
      minP: a["min-p"],
      repeatPenalty: a["repeat-penalty"],
      seed: a.seed ?? Math.floor(Math.random() * 2 ** 32),
    });
    const prompt = Array.from(model.tokenize(a.prompt));
    const result = generate(model, sampler, prompt, {
      maxTokens: a.n,
      stopAtEos: !a["ignore-eos"],
      onText: a.json ? undefined : (s) => process.stdout.write(s),
    });
    if (a.json) {
      process.stdout.write(
        JSON.stringify({
          prompt_tokens: result.promptTokens,
          tokens: result.tokens,
          text: result.text,
          stop_reason: result.stopReason,
          timings: result.timings,
        }) + "\n",
      );
    } else {
      process.stdout.write("\n");
      const t = result.timings;
      process.stderr.write(
        `prompt ${result.promptTokens.length} tokens, ${t.promptTokensPerSecond.toFixed(1)} tok/s; ` +
          `generated ${result.tokens.length} tokens, ${t.decodeTokensPerSecond.toFixed(1)} tok/s\n`,
      );
    }
    model.close();
  },
};
