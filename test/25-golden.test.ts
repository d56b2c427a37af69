// The engine against llama.cpp's reference outputs (../shared/golden, ../shared/vocab), through the
// CLI exactly as ../shared/tools/golden-check.mjs drives it, with the default thread count: the
// stories260K set, the other architectures (golden/qwen: qwen2, qwen3, a Llama 3.2-style model and
// the Qwen vocabulary) and the K-quant files (golden/kquant) of every type the engine computes.
import test, { type ExecutionContext } from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { run, scaled, type RunResult } from "./helpers/process.js";
import { CLI, ROOT, SHARED, needShared, testNeeding } from "./helpers/shared.js";

/** golden-check's limit on a quiet machine (it takes about a minute there). */
const TIMEOUT_MS = 15 * 60_000;

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

testNeeding(test, needShared, "golden check of the K-quant files (Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K): 0 failed", async (t) => {
  // No tokenizer vectors here (the first test covers those): an empty folder stands for them.
  const vocab = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-kquant-vocab-"));
  t.teardown(() => fs.rmSync(vocab, { recursive: true, force: true }));
  const golden = path.join(SHARED, "golden", "kquant");
  const files = fs.readdirSync(golden).filter((f) => f.endsWith(".json"));
  for (const q of ["q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"]) t.true(files.includes(`kq-tiny-${q}.json`), q);
  const r = await goldenCheck(t, golden, vocab);
  for (const f of files) t.regex(r.stdout, new RegExp(`^${f.replace(/\./g, "\\.")}: tokenize 16/16, teacher-forced 16/16`, "m"));
  t.regex(r.stdout, /^\d+ passed, 0 failed$/m);
  t.is(r.code, 0, r.stderr);
});
