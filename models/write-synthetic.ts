#!/usr/bin/env node
// Writes a synthetic GGUF file in a published model's shape for memory tests and benchmarks:
//   node dist/models/write-synthetic.js --shape 7b|tinyllama-1.1b|qwen3-4b|qwen3-1.7b|qwen2.5-3b|tiny --type q4_0 \
//        --fill sparse|random [--output-type q6_k] [--embedding-type q4_0] [--tied] [--seed N] OUT
import { parseArgs } from "node:util";
import { SHAPES, writeSyntheticModel, type ShapeName } from "./synthetic.js";

const USAGE =
  "usage: write-synthetic --shape 7b|tinyllama-1.1b|qwen3-4b|qwen3-1.7b|qwen2.5-3b|tiny --type q4_0|q8_0|f16|f32|q4_k|… " +
  "--fill sparse|random [--output-type T] [--embedding-type T] [--tied] [--seed N] OUT";

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        shape: { type: "string", default: "tiny" },
        type: { type: "string", default: "q4_0" },
        fill: { type: "string", default: "sparse" },
        "output-type": { type: "string" },
        "embedding-type": { type: "string" },
        tied: { type: "boolean" },
        seed: { type: "string", default: "1" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) { console.log(USAGE); return 0; }
  const out = positionals[0];
  if (!out || positionals.length > 1) { console.error(USAGE); return 2; }
  if (!(values.shape in SHAPES)) {
    console.error(`unknown --shape ${values.shape} (known: ${Object.keys(SHAPES).join(", ")})`);
    return 2;
  }
  if (values.fill !== "sparse" && values.fill !== "random") {
    console.error(`--fill must be sparse or random, not ${values.fill}`);
    return 2;
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) { console.error(`--seed must be an integer`); return 2; }

  const started = Date.now();
  const model = await writeSyntheticModel(out, {
    shape: values.shape as ShapeName,
    type: values.type,
    outputType: values["output-type"],
    embeddingType: values["embedding-type"],
    fill: values.fill,
    tiedEmbeddings: values.tied, // absent: as the shape's published model (Qwen's small ones tie)
    seed,
  });
  console.log(JSON.stringify({
    path: model.path,
    shape: model.shape.name,
    tensors: model.layout.tensors.length,
    fileSize: model.fileSize,
    GiB: +(model.fileSize / 2 ** 30).toFixed(3),
    weightBytes: model.weightBytes,
    seconds: (Date.now() - started) / 1000,
  }));
  return 0;
}

main().then((code) => { process.exitCode = code; }, (e: Error) => {
  console.error(`write-synthetic: ${e.message}`);
  process.exitCode = 1;
});
