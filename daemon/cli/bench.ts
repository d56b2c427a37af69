// alpaca bench: prefill and decode speed of a model, and the memory bandwidth decode reaches.
import path from "node:path";
import type { CommandModule } from "yargs";
import { median, runBench, type BenchRep } from "../engine/bench.js";
import { benchPromptCache } from "../engine/bench-prompt-cache.js";
import { benchSpeculation, copyHeavyTask, copyHeavyTaskTokens, type SpeculationRuns } from "../engine/bench-speculation.js";
import { parseSize } from "../config.js";
import { openModel } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { formatBytes } from "../serving/memory.js";
import { planFromSystem, planModelOf, residencyOptions, type MemoryPlan } from "../serving/plan.js";
import { residencySummary } from "./run.js";
import { defaultThreads, nonNegativeInt, threadsOption } from "./options.js";

interface BenchArgs {
  model: string;
  p: number;
  n: number;
  threads?: number;
  reps: number;
  warmup: number;
  seed: number;
  "memory-limit"?: string;
  json: boolean;
  verbose: boolean;
  "prompt-cache": boolean;
  batch: number;
  "drop-caches": boolean;
  speculate: boolean;
  "speculate-runs": SpeculationRuns;
  entities: number;
}

/** One line for stderr: the served shape a limited run holds, and what streams. */
function planNote(p: MemoryPlan): string {
  const r = p.residency;
  return `memory plan under ${formatBytes(p.budget.limit)} (${p.budget.boundBy}): context ${p.nCtx} × ${p.nSeq}, KV ${p.kvType}, ` +
    `estimate ${formatBytes(p.costs.total)}; ` +
    (r.streamLayers > 0
      ? `streaming ${r.streamLayers} of ${r.nLayer} layers (${formatBytes(r.streamedBytes)} read per token), ${r.keptLayers} kept` +
        (r.lock ? " and locked" : " (mlock not permitted)")
      : `every layer resident${r.lock ? " and locked" : ""}`);
}

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: "bench",
  describe: "Measure prefill and decode speed (tokens/s, median of repetitions)",
  builder: (y) =>
    y
      .option("model", { alias: "m", type: "string", demandOption: true, describe: "GGUF model file" })
      .option("p", { alias: "prompt-tokens", type: "number", default: 64, describe: "prompt tokens, evaluated in one batch" })
      .option("n", { alias: "decode-tokens", type: "number", default: 32, describe: "tokens decoded one at a time" })
      .option("threads", threadsOption)
      .option("reps", { alias: "r", type: "number", default: 5, describe: "counted repetitions (the median is reported)" })
      .option("warmup", { type: "number", default: 1, describe: "repetitions run first and not counted" })
      .option("seed", { type: "number", default: 1, describe: "seed of the prompt token ids" })
      .option("memory-limit", {
        type: "string", requiresArg: true,
        describe: "hold what `alpaca serve` would under this budget (e.g. 3500M): its context and KV cache, and the layers that do not fit stream from storage",
      })
      .option("prompt-cache", {
        type: "boolean", default: false,
        describe: "time to first token of a -p token prompt: cold, prefix in memory, prefix restored from a file after a restart",
      })
      .option("batch", { type: "number", default: 512, describe: "with --prompt-cache: prompt tokens per engine call" })
      .option("drop-caches", { type: "boolean", default: false, describe: "with --prompt-cache: drop the page cache before each restore (root)" })
      .option("speculate", {
        type: "boolean", default: false,
        describe: "decode a copy-heavy answer (tool calls naming entities of a long prompt) with and without speculation",
      })
      .option("entities", { type: "number", default: 80, describe: "with --speculate: entities the prompt lists" })
      .option("speculate-runs", {
        choices: ["both", "plain", "speculative", "none"] as const, default: "both" as const,
        describe: "with --speculate: decode one way alone, or none (prefill only), to count instructions (cross/count-instructions.sh)",
      })
      .option("json", { type: "boolean", default: false, describe: "print one JSON object" })
      .option("verbose", { alias: "v", type: "boolean", default: false, describe: "print every repetition to stderr" })
      .check((a) => {
        nonNegativeInt("-p", a.p, 1);
        nonNegativeInt("-n", a.n, 1);
        nonNegativeInt("--reps", a.reps, 1);
        nonNegativeInt("--warmup", a.warmup);
        nonNegativeInt("--seed", a.seed);
        nonNegativeInt("--batch", a.batch, 1);
        nonNegativeInt("--entities", a.entities, 1);
        if (a["prompt-cache"] && a.p < 2) throw new Error("--prompt-cache needs -p of at least 2 tokens");
        defaultThreads(a.threads);
        const limit = a["memory-limit"];
        if (limit !== undefined && !parseSize(limit)) throw new Error(`--memory-limit ${JSON.stringify(limit)} is not a size (e.g. 3500M)`);
        return true;
      }),
  handler: async (a) => {
    const threads = defaultThreads(a.threads);
    if (a["prompt-cache"]) return promptCacheBench(a, threads);
    if (a.speculate) return speculationBench(a, threads);
    // Check the context length before sizing a KV cache for it (a 7B one of 100k tokens is 50 GB).
    const probe = openModel(a.model, { nCtx: 1 });
    const probeInfo = probe.info();
    probe.close();
    const { nCtxTrain } = probeInfo;
    if (a.p + a.n > nCtxTrain)
      throw new UserError(`-p ${a.p} + -n ${a.n} tokens exceed the model's context length ${nCtxTrain}`);
    // --memory-limit: what `alpaca serve` holds under that budget (and this machine's): its
    // context, KV type, sequences and residency, the KV cache taken at start as the daemon takes
    // it. The benchmark's tokens run in the first sequence.
    const limited = a["memory-limit"] === undefined ? null
      : planFromSystem(planModelOf(probeInfo), { memoryLimit: parseSize(a["memory-limit"]), ctx: null, parallel: null, kvType: "auto", threads });
    if (limited && !limited.fits) throw new UserError(`memory plan: does not fit: ${limited.problem}`);
    if (limited && a.p + a.n > limited.nCtx)
      throw new UserError(`-p ${a.p} + -n ${a.n} tokens exceed the context of ${limited.nCtx} the memory plan allows under --memory-limit`);
    if (limited) process.stderr.write(planNote(limited) + "\n");
    const model = openModel(a.model, limited
      ? { threads, nCtx: limited.nCtx, nSeq: limited.nSeq, kvType: limited.kvType, residency: residencyOptions(limited), commitKv: true }
      : { threads, nCtx: a.p + a.n });
    try {
      const info = model.info();
      const onRep = a.verbose
        ? (r: BenchRep, counted: boolean) =>
            process.stderr.write(
              `${counted ? "rep   " : "warmup"} prefill ${fmt(r.prefill)} tok/s (${r.prefillMs.toFixed(0)} ms), ` +
                `decode ${fmt(r.decode)} tok/s (${r.decodeMs.toFixed(0)} ms)\n`,
            )
        : undefined;
      // The stream ceiling only where the weights stay in memory: under a residency plan the
      // probe would read the streamed layers from storage and measure the disk instead.
      const streamPasses = limited ? 0 : 3;
      const result = runBench(model, { prompt: a.p, decode: a.n, reps: a.reps, warmup: a.warmup, seed: a.seed, streamPasses, onRep });
      // one pass over the weights per decoded token and one for the prompt
      const reads = result.reps.map((r) => r.readBytes).filter((b): b is number => b !== null);
      const readPerToken = reads.length ? median(reads) / (a.n + 1) : null;
      const residency = residencySummary(model.info().residency);
      if (a.json) {
        process.stdout.write(
          JSON.stringify({
            model: a.model,
            threads,
            p: a.p,
            n: a.n,
            reps: a.reps,
            prefill: result.prefill,
            decode: result.decodeSpread,
            decodeGBs: result.decodeGBs,
            stream: result.stream,
            weightBytes: result.weightBytes,
            memoryLimit: limited ? limited.budget.limit : null,
            plan: limited && { nCtx: limited.nCtx, nSeq: limited.nSeq, kvType: limited.kvType, estimateBytes: limited.costs.total },
            readBytesPerToken: readPerToken,
            residency,
            runs: result.reps.map((r) => ({ prefill: r.prefill, decode: r.decode, readBytes: r.readBytes })),
          }) + "\n",
        );
        return;
      }
      const row = (what: string, tokens: number, s: { median: number; min: number; max: number }) =>
        `${what.padEnd(8)} ${String(tokens).padStart(6)} ${fmt(s.median).padStart(10)} ${fmt(s.min).padStart(9)} ${fmt(s.max).padStart(9)}`;
      const lines = [
        `model    ${path.basename(a.model)}${info.name ? ` (${info.name})` : ""}, weights ${formatBytes(info.weightBytes)}`,
        `threads  ${threads}, ${a.reps} reps (+${a.warmup} warm-up), median tokens/s`,
        "",
        `${"".padEnd(8)} ${"tokens".padStart(6)} ${"median".padStart(10)} ${"min".padStart(9)} ${"max".padStart(9)}`,
        row("prefill", a.p, result.prefill),
        row("decode", a.n, result.decodeSpread),
        "",
        `decode × weights = ${result.decodeGBs.toFixed(2)} GB/s`,
        ...(result.stream
          ? [
              `memory: the ${formatBytes(result.stream.bytesPerToken)} a decode step reads stream at ${result.stream.gbs.toFixed(2)} GB/s ` +
                `with ${threads} threads (fastest of 3 reads): decode ≤ ${fmt(result.stream.tokensPerSecond)} tok/s here, ` +
                `this run ${Math.round((100 * result.decodeSpread.median) / result.stream.tokensPerSecond)} % of it`,
            ]
          : []),
        `read from storage ${readPerToken === null ? "unknown" : formatBytes(readPerToken)} per token; ` +
          (residency.managed
            ? `${residency.locked_layers} layers locked, ${residency.streamed_layers.length} streamed (${formatBytes(residency.streamed_bytes)} per token)`
            : "residency left to the kernel"),
      ];
      process.stdout.write(lines.join("\n") + "\n");
    } finally {
      model.close();
    }
  },
};

async function promptCacheBench(a: BenchArgs, threads: number): Promise<void> {
  const probe = openModel(a.model, { nCtx: 1 });
  const { nCtxTrain } = probe.info();
  probe.close();
  if (a.p > nCtxTrain) throw new UserError(`-p ${a.p} tokens exceed the model's context length ${nCtxTrain}`);
  const r = await benchPromptCache(a.model, { threads }, {
    prompt: a.p, batch: a.batch, reps: a.reps, seed: a.seed, dropCaches: a["drop-caches"],
    onRep: a.verbose
      ? (x) => process.stderr.write(`rep cold ${x.coldMs.toFixed(0)} ms, memory ${x.memoryMs.toFixed(0)} ms, restored ${x.diskMs.toFixed(0)} ms (open ${x.openMs.toFixed(0)} ms)\n`)
      : undefined,
  });
  if (a.json) {
    process.stdout.write(JSON.stringify({ model: a.model, threads, ...r }) + "\n");
    return;
  }
  const ms = (s: { median: number; min: number; max: number }) => `${s.median.toFixed(0).padStart(8)} ${s.min.toFixed(0).padStart(8)} ${s.max.toFixed(0).padStart(8)}`;
  const lines = [
    `model    ${path.basename(a.model)}, ${a.p}-token prompt, ${threads} threads, ${a.reps} reps, prompt batch ${a.batch}`,
    "",
    `time to first token (ms)      ${"median".padStart(8)} ${"min".padStart(8)} ${"max".padStart(8)}`,
    `cold (whole prompt)           ${ms(r.cold)}`,
    `prefix in memory              ${ms(r.memory)}   ${fmt(r.cold.median / r.memory.median)}× faster`,
    `prefix restored after restart ${ms(r.disk)}   ${fmt(r.cold.median / r.disk.median)}× faster (file ${formatBytes(r.fileBytes)}` +
      `${r.pageCacheDropped ? ", page cache dropped: read from storage" : ", from the page cache"}; opening the model ${r.open.median.toFixed(0)} ms more)`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

function speculationBench(a: BenchArgs, threads: number): void {
  const probe = openModel(a.model, { nCtx: 1 });
  const task = copyHeavyTaskTokens(probe, copyHeavyTask(a.entities));
  probe.close();
  const model = openModel(a.model, { threads, nCtx: task.prompt.length + task.answer.length });
  try {
    const r = benchSpeculation(model, a.reps, task, a["speculate-runs"]);
    if (a.json) {
      process.stdout.write(JSON.stringify({ model: a.model, threads, ...r }) + "\n");
      return;
    }
    const ms = (s: { median: number; min: number; max: number }) => `${s.median.toFixed(1).padStart(8)} ${s.min.toFixed(1).padStart(8)} ${s.max.toFixed(1).padStart(8)}`;
    process.stdout.write(
      [
        `model    ${path.basename(a.model)}, ${threads} threads, ${a.reps} reps; a ${r.promptTokens}-token prompt listing entities,`,
        `         an answer of ${r.answerTokens} tokens: tool calls naming some of them and a JSON object repeating their values`,
        "",
        `ms per answer token           ${"median".padStart(8)} ${"min".padStart(8)} ${"max".padStart(8)}   engine calls`,
        `without speculation           ${ms(r.plain.ms)}   ${r.plain.passes}`,
        `with speculation              ${ms(r.speculative.ms)}   ${r.speculative.passes} (${r.speculative.accepted} of ${r.speculative.drafted} proposed tokens kept)`,
        "",
        `${fmt(r.tokensPerPass)} answer tokens per engine call; ${fmt(r.speedup)}× the speed per token`,
      ].join("\n") + "\n",
    );
  } finally {
    model.close();
  }
}
