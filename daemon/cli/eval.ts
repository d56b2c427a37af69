// alpaca eval: teacher-forced next-token logits at every position of a token list.
import type { CommandModule } from "yargs";
import { openModel, sequenceBatch } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { defaultThreads, nonNegativeInt, threadsOption } from "./options.js";

interface EvalArgs {
  model: string;
  tokens: string;
  top: number;
  threads?: number;
  ctx?: number;
  json: boolean;
}

function parseTokenList(s: string): number[] {
  const parts = s.split(",").map((p) => p.trim()).filter((p) => p !== "");
  const ids = parts.map(Number);
  const bad = parts.find((p, i) => !/^\d+$/.test(p) || !Number.isSafeInteger(ids[i]));
  if (bad !== undefined) throw new UserError(`--tokens: '${bad}' is not a token id`);
  if (ids.length === 0) throw new UserError("--tokens is empty");
  return ids;
}

/** Indices of the k largest values, highest first, ties to the lowest index. */
function topK(logits: Float32Array, offset: number, n: number, k: number): [number, number][] {
  const best: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const v = logits[offset + i];
    if (best.length === k && v <= best[k - 1][1]) continue;
    let j = best.length;
    while (j > 0 && best[j - 1][1] < v) j--;
    best.splice(j, 0, [i, v]);
    if (best.length > k) best.pop();
  }
  return best;
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: "eval",
  describe: "Teacher-forced logits: the top next tokens after each prefix of --tokens",
  builder: (y) =>
    y
      .option("model", { alias: "m", type: "string", demandOption: true, describe: "GGUF model file" })
      .option("tokens", { type: "string", demandOption: true, describe: "comma-separated token ids" })
      .option("top", { type: "number", default: 10, describe: "how many best next tokens per position" })
      .option("ctx", { alias: "c", type: "number", describe: "context size (default: the model's, at least the token count)" })
      .option("threads", threadsOption)
      .option("json", { type: "boolean", default: false, describe: "print JSON" })
      .check((a) => {
        nonNegativeInt("--top", a.top, 1);
        defaultThreads(a.threads);
        return true;
      }),
  handler: (a) => {
    const ids = parseTokenList(a.tokens);
    const model = openModel(a.model, { threads: defaultThreads(a.threads), nCtx: a.ctx ?? undefined });
    const info = model.info();
    if (ids.length > info.nCtx) throw new UserError(`${ids.length} tokens exceed the context size ${info.nCtx} (use --ctx)`);
    const bad = ids.find((id) => id >= info.nVocab);
    if (bad !== undefined) throw new UserError(`token ${bad} is out of range (vocabulary of ${info.nVocab})`);
    const logits = model.decode(sequenceBatch(ids, 0, 0, true));
    const V = info.nVocab;
    const positions = ids.map((_, i) => ({
      top: topK(logits, i * V, V, Math.min(a.top, V)),
      next: i + 1 < ids.length ? logits[i * V + ids[i + 1]] : null,
    }));
    if (a.json) process.stdout.write(JSON.stringify({ positions }) + "\n");
    else
      positions.forEach((p, i) =>
        process.stdout.write(`${i}\t${ids[i]}\tnext=${p.next ?? "-"}\t${p.top.map(([t, l]) => `${t}:${l.toFixed(4)}`).join(" ")}\n`),
      );
    model.close();
  },
};
