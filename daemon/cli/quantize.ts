// alpaca quantize IN OUT --type q4_0|q8_0: an F32/F16 GGUF to the 4- or 8-bit file llama.cpp's
// `llama-quantize --pure` would write.
import fs from "node:fs";
import path from "node:path";
import type { CommandModule } from "yargs";
import { UserError } from "../errors.js";
import { formatBytes } from "../serving/memory.js";
import { K_QUANT_NOT_OFFERED, QUANTIZE_TARGETS, quantizeGguf, type QuantizeTarget } from "../../models/quantize.js";

interface QuantizeArgs {
  input: string;
  output: string;
  type: string;
  force: boolean;
  quiet: boolean;
}

export const quantizeCommand: CommandModule<object, QuantizeArgs> = {
  command: "quantize <input> <output>",
  describe: "Quantize an F32/F16 GGUF model to Q4_0 or Q8_0 (llama.cpp's --pure rule)",
  builder: (y) =>
    y
      .positional("input", { type: "string", demandOption: true, describe: "F32, F16 or BF16 GGUF file" })
      .positional("output", { type: "string", demandOption: true, describe: "GGUF file to write" })
      .option("type", { type: "string", demandOption: true, describe: `tensor type: ${QUANTIZE_TARGETS.join(" or ")}` })
      .option("force", { alias: "f", type: "boolean", default: false, describe: "overwrite the output if it exists" })
      .option("quiet", { alias: "q", type: "boolean", default: false, describe: "no progress lines" })
      .check((a) => {
        if (/^q[2-6]_k$/i.test(a.type)) throw new UserError(`--type ${a.type} is not offered: ${K_QUANT_NOT_OFFERED}`);
        if (!QUANTIZE_TARGETS.includes(a.type.toLowerCase() as QuantizeTarget))
          throw new UserError(`--type must be ${QUANTIZE_TARGETS.join(" or ")}, not "${a.type}"`);
        return true;
      }),
  handler: async (a) => {
    const target = a.type.toLowerCase() as QuantizeTarget;
    if (!fs.existsSync(a.input)) throw new UserError(`input file not found: ${a.input}`);
    if (!fs.statSync(a.input).isFile()) throw new UserError(`input is not a file: ${a.input}`);
    if (path.resolve(a.input) === path.resolve(a.output)) throw new UserError("the output must be another file than the input");
    if (fs.existsSync(a.output) && !a.force) throw new UserError(`${a.output} exists (use --force to overwrite it)`);
    const outDir = path.dirname(path.resolve(a.output));
    if (!fs.existsSync(outDir)) throw new UserError(`output folder does not exist: ${outDir}`);

    const started = Date.now();
    const result = await quantizeGguf(a.input, a.output, target, {
      onTensor: a.quiet
        ? undefined
        : (p) => process.stderr.write(`[${String(p.index + 1).padStart(4)}/${p.count}] ${p.tensor}\n`),
    });
    process.stderr.write(
      `${a.output}: ${result.quantized} tensors ${target}, ${result.fallbackF16} f16 (rows not a multiple of 32), ` +
        `${result.tensors - result.quantized - result.fallbackF16} kept; ` +
        `${formatBytes(result.bytesIn)} → ${formatBytes(result.bytesOut)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
  },
};
