// alpaca plan through the CLI: a sparse LLaMA-7B-shaped Q4_0 file (3.53 GiB, no disk used)
// planned for 4, 3 and 16 GiB machines, the 7B Q3_K_S mix on a 4 GB Pi, the Qwen models of the
// catalog in their shapes on a 4 GB Pi, and the real tiny model from ../shared.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SHAPES, headDimOf, writeSyntheticModel, type ShapeName } from "../models/synthetic.js";
import { alpaca } from "./helpers/process.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";

const EXIT_DOES_NOT_FIT = 3;


let sparse7b: Promise<string> | undefined;
test.after.always(async () => {
  if (sparse7b) fs.rmSync(path.dirname(await sparse7b), { recursive: true, force: true });
});
function sparse7bFile(): Promise<string> {
  sparse7b ??= (async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-plan-")), "7b-q4_0.gguf");
    await writeSyntheticModel(file, { shape: "7b", type: "q4_0", fill: "sparse" });
    return file;
  })();
  return sparse7b;
}

async function planJson(args: string[]) {
  const r = await alpaca(["plan", ...args, "--json"]);
  if (!r.stdout.startsWith("{")) throw new Error(`no JSON on stdout; stderr: ${r.stderr}`);
  return { code: r.code, plan: JSON.parse(r.stdout) };
}

test("7B Q4_0 at 4G: fits with one sequence, a 1024-token context and q8_0 KV, and says so", async (t) => {
  const model = await sparse7bFile();
  const r = await alpaca(["plan", "--model", model, "--memory", "4G", "--threads", "4"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^budget +3\.88 GiB = 4\.00 GiB \(--memory\) − 122\.88 MiB reserve/m);
  t.regex(r.stdout, /^costs +weights 3\.47 GiB \(mapped, resident\) \+ KV 272\.00 MiB \(1024 × 1 q8_0\)/m);
  t.regex(r.stdout, /^plan +fits, .*context 1024 × 1 sequence, KV q8_0/m);
  t.regex(r.stdout, /context reduced from 2048 to 1024 tokens/);
  t.regex(r.stdout, /KV cache q8_0 .*f16 at this context would need 512\.00 MiB/);
  const { plan } = await planJson(["--model", model, "--memory", "4G", "--threads", "4"]);
  t.like(plan, { fits: true, nCtx: 1024, nSeq: 1, kvType: "q8_0" });
  t.true(plan.costs.total <= plan.budget.bytes);
  // every layer and the output charged; of the embedding table only the rows a 1024-token context reads
  t.is(plan.costs.weights, plan.residency.residentBytes);
  t.is(plan.model.weightBytes - plan.costs.weights, plan.model.embeddingBytes - 1024 * 2 * 4096);
});

test("7B Q4_0 at 3G: fits by streaming 10 layers, the other 22 kept; at 512M not even streaming fits", async (t) => {
  const model = await sparse7bFile();
  const r = await alpaca(["plan", "--model", model, "--memory", "3G"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^plan +fits \(streaming 10 layers\), .*context 512 × 1 sequence, KV q8_0/m);
  // Issue's plain words: the weights cannot stay resident, and what happens instead.
  t.regex(r.stdout, /- the weights \(3\.53 GiB\) cannot all stay resident in 2\.91 GiB beside the KV cache and the process$/m);
  t.regex(r.stdout, /^resident +2\.41 GiB: 22 of 32 layers, locked (2\.40 GiB|0 B); streamed 1\.06 GiB per token \(10 layers\)/m);
  const { code, plan } = await planJson(["--model", model, "--memory", "3G"]);
  t.is(code, 0);
  t.like(plan, { fits: true, residency: { mode: "streaming", streamLayers: 10, keptLayers: 22 } });
  // the real file's layer bytes, not an estimate
  t.is(plan.model.layerBytes + plan.model.embeddingBytes + plan.model.outputBytes <= plan.model.weightBytes, true);
  const tiny = await alpaca(["plan", "--model", model, "--memory", "512M"]);
  t.is(tiny.code, EXIT_DOES_NOT_FIT, tiny.stderr);
  t.regex(tiny.stdout, /^plan +does not fit: the weights \(3\.53 GiB\) cannot stay resident/m);
  t.regex(tiny.stdout, /^instead +streaming every layer from storage needs a budget of at least/m);
});

test("7B Q4_0 at 16G: several parallel sequences at 2048 tokens, f16", async (t) => {
  const model = await sparse7bFile();
  const { code, plan } = await planJson(["--model", model, "--memory", "16G"]);
  t.is(code, 0);
  t.like(plan, { fits: true, nCtx: 2048, kvType: "f16", nSeq: 4 });
  const more = await planJson(["--model", model, "--memory", "16G", "--parallel", "8", "--ctx", "4096", "--kv-type", "f16"]);
  t.is(more.code, EXIT_DOES_NOT_FIT);
  t.regex(more.plan.problem, /^--ctx 4096 does not fit: .*the longest context that fits is 2048 \(KV f16\)/);
  t.like((await planJson(["--model", model, "--memory", "16G", "--parallel", "6"])).plan, { fits: true, nSeq: 6, nCtx: 2048 });
});

// The catalog's Llama 2 7B Chat Q3_K_S: Q3_K matrices and a Q6_K output (llama-quantize's Q3_K_S
// mix), 2.95 GB, the 7B file that stays whole on a 4 GB Pi 4 (docs/models.md), and one the engine
// computes: `info` names its kernels instead of refusing the type.
test("7B Q3_K_S at 3500M on a Pi 4: fits with every layer resident and a 2048-token context", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-plan-q3ks-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "7b-q3_k_s.gguf");
  const written = await writeSyntheticModel(file, { shape: "7b", type: "q3_k", outputType: "q6_k", fill: "sparse" });
  t.is((written.fileSize / 1e9).toFixed(2), "2.95");
  const r = await alpaca(["plan", "--model", file, "--memory", "3500M", "--threads", "4"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^plan +fits, .*context 2048 × 1 sequence, KV q8_0/m);
  t.regex(r.stdout, /^resident +[\d.]+ GiB: 32 of 32 layers, .*; streamed 0 B per token \(0 layers\)$/m);
  const { code, plan } = await planJson(["--model", file, "--memory", "3500M", "--threads", "4"]);
  t.is(code, 0);
  t.like(plan, { fits: true, nCtx: 2048, kvType: "q8_0", residency: { mode: "resident", keptLayers: 32, streamLayers: 0, streamedBytes: 0 } });
  t.true(plan.costs.total <= plan.budget.bytes);
  const info = await alpaca(["info", "--model", file]);
  t.is(info.code, 0, info.stderr);
  t.regex(info.stdout, /^tensors +225 q3_K, 65 f32, 1 q6_K$/m);
  t.regex(info.stdout, /^kernels +.*\bq3_K [a-z0-9-]+.*\bq6_K [a-z0-9-]+/m);
});

// The catalog's Qwen models (Q4_K_M files weigh like Q4_0 ones: both 4.5 bits per weight here).
const QWEN_ON_A_PI: [shape: ShapeName, type: string][] = [["qwen3-4b", "q4_0"], ["qwen2.5-3b", "q4_0"], ["qwen3-1.7b", "q8_0"]];
for (const [shape, type] of QWEN_ON_A_PI) {
  test(`${shape} ${type} on a 4 GB Pi (3.4 GiB available): every layer resident, KV sized by its own head size`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-plan-qwen-"));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, `${shape}-${type}.gguf`);
    await writeSyntheticModel(file, { shape, type, fill: "sparse" });
    const { code, plan } = await planJson(["--model", file, "--memory", "3.4G", "--threads", "4"]);
    t.is(code, 0);
    const s = SHAPES[shape];
    t.like(plan, { fits: true, nCtx: 2048, kvType: "f16", residency: { mode: "resident", keptLayers: s.layers, streamLayers: 0 } });
    t.like(plan.model, { nLayer: s.layers, headDim: headDimOf(s), nHeadKv: s.kvHeads, outputBytes: 0 });
    t.is(plan.costs.kv, s.layers * 2 * s.kvHeads * headDimOf(s) * 2 * plan.nCtx * plan.nSeq, "f16 keys and values per layer, KV head and token");
    t.true(plan.nSeq >= 1 && plan.costs.total <= plan.budget.bytes);
  });
}

testNeeding(test, needShared, "the tiny real model: its trained context, the automatic cap of sequences", async (t) => {
  const { code, plan } = await planJson(["--model", sharedModel("stories260K-q4_0.gguf"), "--memory", "1G"]);
  t.is(code, 0);
  t.like(plan, { fits: true, nCtx: 128, kvType: "f16", nSeq: 4 });
  t.like(plan.model, { nLayer: 5, nEmbd: 64, nCtxTrain: 128 });
});

testNeeding(test, needShared, "without --memory the plan reads this machine", async (t) => {
  const { plan } = await planJson(["--model", sharedModel("stories260K-q4_0.gguf")]);
  t.true(["MemAvailable", "cgroup limit"].includes(plan.budget.boundBy), plan.budget.boundBy);
  t.true(plan.budget.sources.some((s: { name: string }) => s.name === "MemAvailable"));
});

test("plan: a missing model and a bad --memory are one line, exit code 2", async (t) => {
  const missing = await alpaca(["plan", "--model", "/nonexistent/model.gguf", "--memory", "4G"]);
  t.is(missing.code, 2);
  t.is(missing.stderr, "alpaca: model file not found: /nonexistent/model.gguf\n");
  const bad = await alpaca(["plan", "--model", "/nonexistent/model.gguf", "--memory", "four"]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^alpaca: --memory "four" is not a size/);
});
