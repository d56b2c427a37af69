// alpaca info: architecture, shapes, tensor types and the memory a model needs.
import type { CommandModule } from "yargs";
import { openModel, type KvType } from "../engine/engine.js";
import { formatBytes, memoryEstimate } from "../serving/memory.js";
import { kernelsFor } from "../engine/tensor-types.js";
import { defaultThreads, nonNegativeInt } from "./options.js";

interface InfoArgs {
  model: string;
  ctx?: number;
  json: boolean;
}

export const infoCommand: CommandModule<object, InfoArgs> = {
  command: "info",
  describe: "Describe a model: architecture, shapes, tensor types, memory needed",
  builder: (y) =>
    y
      .option("model", { alias: "m", type: "string", demandOption: true, describe: "GGUF model file" })
      .option("ctx", { alias: "c", type: "number", describe: "context size for the memory estimate" })
      .option("json", { type: "boolean", default: false, describe: "print JSON" })
      .check((a) => {
        if (a.ctx !== undefined) nonNegativeInt("--ctx", a.ctx, 1);
        return true;
      }),
  handler: (a) => {
    const model = openModel(a.model, { nCtx: 1 });
    const info = model.info();
    model.close();
    const nCtx = a.ctx ?? Math.min(info.nCtxTrain, 4096);
    const kvType: KvType = "f16";
    const memory = memoryEstimate(info, nCtx, 1, kvType, defaultThreads(undefined));
    const { nCtx: _c, nSeq: _s, threads: _t, kvBytes: _k, kvType: _kt, ...model_ } = info;
    const kernels = kernelsFor(Object.keys(info.tensorTypes));
    if (a.json) {
      process.stdout.write(JSON.stringify({ ...model_, kernels, memory: { nCtx, kvType, ...memory } }) + "\n");
      return;
    }
    const lines = [
      `model        ${info.path}${info.name ? ` (${info.name})` : ""}`,
      `architecture ${info.architecture} (${info.family}): ${info.nLayer} layers, dim ${info.nEmbd}, ffn ${info.nFf}, ` +
        `${info.nHead} heads (${info.nHeadKv} KV heads, head dim ${info.headDim}), vocab ${info.nVocab}`,
      `context      trained ${info.nCtxTrain}; rope ${info.ropeStyle}, theta ${info.ropeTheta}, rms eps ${Number(info.rmsEps.toPrecision(6))}`,
      `tensors      ${Object.entries(info.tensorTypes).map(([t, n]) => `${n} ${t}`).join(", ")}`,
      `kernels      ${Object.entries(kernels).map(([t, k]) => `${t} ${k}`).join(", ")} (${process.arch})`,
      `memory       weights ${formatBytes(memory.weights)} (mapped) + KV ${formatBytes(memory.kv)} (${nCtx} tokens, ${kvType}) ` +
        `+ scratch ${formatBytes(memory.scratch)} = ${formatBytes(memory.total)}`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
  },
};
