// The engine against llama.cpp's reference outputs (../shared/golden, ../shared/vocab), through the
// CLI exactly as ../shared/tools/golden-check.mjs drives it, with the default thread count: the
// stories260K set, the other architectures (golden/qwen: qwen2, qwen3, a Llama 3.2-style model and
// the Qwen vocabulary) and the K-quant files (golden/kquant) of every type the engine computes.
import test, { type ExecutionContext } from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { alpaca, run, scaled, type RunResult } from "./helpers/process.js";
import { CLI, ROOT, SHARED, needShared, sharedModel, testNeeding } from "./helpers/shared.js";

/** golden-check's limit on a quiet machine (it takes about a minute there). */
const TIMEOUT_MS = 15 * 60_000;

// K-quant golden files whose types the engine refuses today (not computable yet). They are
// checked to be refused with a clear error; once a type computes, take its file off this list
// and the golden check covers it.
const KQUANT_NOT_COMPUTABLE = ["kq-tiny-q3_k_m.json", "kq-tiny-q2_k.json"];

async function goldenCheck(t: ExecutionContext, ...dirs: string[]): Promise<RunResult> {
  t.timeout(scaled(TIMEOUT_MS) + 60_000); // run() stops it first, with what it printed
  const r = await run(process.execPath, [path.join(SHARED, "tools", "golden-check.mjs"), ...dirs], {
    cwd: ROOT,
    env: { ...process.env, ALPACA: `${process.execPath} ${CLI}` },
    timeoutMs: TIMEOUT_MS,
  });
  t.log((r.stdout + r.stderr).trim());
  return r;
}

testNeeding(test, needShared, "golden check: 0 failed", async (t) => {
  const r = await goldenCheck(t);
  t.regex(r.stdout, /^\d+ passed, 0 failed$/m);
  t.is(r.code, 0, r.stderr);
});

testNeeding(test, needShared, "golden check of qwen2, qwen3, Llama 3.2-style and the Qwen vocabulary: 0 failed", async (t) => {
  const r = await goldenCheck(t, path.join(SHARED, "golden", "qwen"), path.join(SHARED, "vocab", "qwen"));
  for (const model of ["qwen2-tiny-f32", "qwen2-tiny-q4_0", "qwen3-tiny-f32", "llama3-tiny-f32"])
    t.regex(r.stdout, new RegExp(`^${model}\\.json: tokenize 16/16, teacher-forced 16/16`, "m"));
  t.regex(r.stdout, /^tokenizer ggml-vocab-qwen2\.gguf: (\d+)\/\1 exact$/m);
  t.regex(r.stdout, /^\d+ passed, 0 failed$/m);
  t.is(r.code, 0, r.stderr);
});

testNeeding(test, needShared, "golden check of the K-quant files the engine computes: 0 failed", async (t) => {
  // The check reads every file of a folder: give it one with the computable types only, and no
  // tokenizer vectors (the first test covers those).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-kquant-"));
  const vocab = path.join(dir, "vocab");
  fs.mkdirSync(vocab);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const golden = path.join(SHARED, "golden", "kquant");
  const computable = fs.readdirSync(golden).filter((f) => f.endsWith(".json") && !KQUANT_NOT_COMPUTABLE.includes(f));
  t.true(computable.length >= 3, computable.join(", "));
  for (const f of computable) fs.symlinkSync(path.join(golden, f), path.join(dir, f));
  const r = await goldenCheck(t, dir, vocab);
  for (const f of computable) t.regex(r.stdout, new RegExp(`^${f.replace(/\./g, "\\.")}: tokenize 16/16, teacher-forced 16/16`, "m"));
  t.regex(r.stdout, /^\d+ passed, 0 failed$/m);
  t.is(r.code, 0, r.stderr);
});

testNeeding(test, needShared, "K-quant files of types not computable yet are refused with a clear error", async (t) => {
  for (const f of KQUANT_NOT_COMPUTABLE) {
    const golden = JSON.parse(fs.readFileSync(path.join(SHARED, "golden", "kquant", f), "utf8")) as { model: string };
    const r = await alpaca(["eval", "--model", sharedModel(golden.model), "--tokens", "1,2", "--json"]);
    t.is(r.code, 2, `${f}: computes now: take it off KQUANT_NOT_COMPUTABLE in test/25-golden`);
    t.regex(r.stderr, /has type q[23]_K, which this engine cannot compute with/, f);
    t.notRegex(r.stderr, /\n\s+at /, "no stack trace");
  }
});
