// The engine's residency manager on a small synthetic model (6 layers of random Q4_0 weights):
// which layers it locks and streams, that streaming changes nothing in what is computed, that
// locking refused by RLIMIT_MEMLOCK falls back to the same order, and clear errors for bad options.
import test from "ava";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createSampler, openModel, type ModelOptions, type ResidencyInfo } from "../daemon/engine/engine.js";
import { generate } from "../daemon/engine/generate.js";
import { writeSyntheticModel } from "../models/synthetic.js";
import { run } from "./helpers/process.js";
import { ROOT, testNeeding } from "./helpers/shared.js";

// Six layers of ~440 KiB: several pages each, so that locking and releasing are real.
const SHAPE = { name: "residency-6", dim: 256, layers: 6, heads: 8, kvHeads: 4, ffn: 768, vocab: 512, contextLength: 128, rmsEps: 1e-5, ropeTheta: 10000 };
const PROMPT = "Once upon a time";

let file: Promise<string> | undefined;
test.after.always(async () => {
  if (file) fs.rmSync(path.dirname(await file), { recursive: true, force: true });
});
function model(): Promise<string> {
  file ??= (async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-residency-")), "six-layers-q4_0.gguf");
    await writeSyntheticModel(out, { shape: SHAPE, type: "q4_0", fill: "random", seed: 7 });
    return out;
  })();
  return file;
}

/** Greedy tokens (prompt in one batch, then one at a time) and what the engine reports after. */
function greedy(modelPath: string, options: ModelOptions): { tokens: number[]; residency: ResidencyInfo } {
  const m = openModel(modelPath, { threads: 2, nCtx: 64, ...options });
  try {
    const r = generate(m, createSampler({ temperature: 0 }), Array.from(m.tokenize(PROMPT)), { maxTokens: 24, stopAtEos: false });
    return { tokens: r.tokens, residency: m.info().residency };
  } finally {
    m.close();
  }
}

test("unmanaged: every weight counts as resident, nothing is locked or streamed", async (t) => {
  const path = await model();
  const { residency } = greedy(path, {});
  const probe = openModel(path, { nCtx: 8 });
  const info = probe.info();
  probe.close();
  t.like(residency, { managed: false, lockedLayers: 0, streamedLayers: [], lockedBytes: 0, streamedBytes: 0, passes: 0 });
  t.is(residency.residentBytes, info.weightBytes);
  t.true(info.layerBytes > 6 * 400 * 1024 && info.layerBytes < info.weightBytes);
  t.true(info.embeddingBytes > 0 && info.outputBytes > 0);
});

test("streaming k of 6 layers: spread evenly, the rest locked, and the very same tokens", async (t) => {
  const path = await model();
  const reference = greedy(path, {}).tokens;
  t.is(reference.length, 24);
  const expected: Record<number, number[]> = { 0: [], 1: [5], 2: [2, 5], 3: [1, 3, 5], 4: [0, 2, 3, 5], 6: [0, 1, 2, 3, 4, 5] };
  for (const [k, layers] of Object.entries(expected)) {
    const run = greedy(path, { residency: { streamLayers: Number(k) } });
    t.deepEqual(run.tokens, reference, `streamLayers ${k}`);
    const r = run.residency;
    t.like(r, { managed: true, lockRequested: true, lockingPermitted: true, lockError: "", lockedLayers: 6 - layers.length });
    t.deepEqual(r.streamedLayers, layers);
    // one pass per engine call: the prompt batch and 23 single tokens
    t.is(r.passes, layers.length ? 24 : 0, `passes with ${k} streamed`);
    t.is(r.streamedBytes > 0, layers.length > 0);
    t.true(r.lockedBytes >= r.residentBytes, "locked ranges are whole pages around the kept tensors");
    if (layers.length >= 2) t.true(r.windowBytes > r.streamedBytes / layers.length, "the window holds two layers");
  }
});

test("lock: false streams in the same order without locking anything", async (t) => {
  const path = await model();
  const reference = greedy(path, {}).tokens;
  const run = greedy(path, { residency: { streamLayers: 2, lock: false } });
  t.deepEqual(run.tokens, reference);
  t.like(run.residency, { lockRequested: false, lockingPermitted: false, lockedLayers: 0, lockedBytes: 0, lockError: "" });
  t.deepEqual(run.residency.streamedLayers, [2, 5]);
});

const rssAnon = () => Number(/^RssAnon:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]) * 1024;

// Serial: no other test of this file allocates while the resident set is read.
test.serial("commitKv: the KV cache is taken at open, not as it fills", async (t) => {
  const path = await model();
  const options = { nCtx: 16384, kvType: "f32" as const, residency: { streamLayers: 0 } };
  const grows = (commitKv: boolean) => {
    const before = rssAnon();
    const m = openModel(path, { ...options, commitKv });
    try {
      return { grew: rssAnon() - before, kvBytes: m.info().kvBytes };
    } finally {
      m.close();
    }
  };
  const lazy = grows(false), taken = grows(true);
  t.is(taken.kvBytes, 6 * 2 * 128 * 4 * 16384, "6 layers × K and V × 128 × f32 × 16384 cells");
  t.true(lazy.grew < taken.kvBytes / 4, `without commitKv the cache is mapped lazily: ${lazy.grew} bytes`);
  t.true(taken.grew >= taken.kvBytes * 0.95, `commitKv faults it all in: ${taken.grew} of ${taken.kvBytes} bytes`);
  t.throws(() => openModel(path, { commitKv: "yes" as never }), { instanceOf: TypeError, message: /^commitKv must be a boolean$/ });
});

test("managed: the embedding table is read a row at a time, without read-ahead or huge pages", async (t) => {
  const path = await model();
  // The flags of our mappings of this file: rr = MADV_RANDOM, nh = MADV_NOHUGEPAGE.
  const flagsOfMappings = () =>
    fs.readFileSync("/proc/self/smaps", "utf8").split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)
      .filter((vma) => vma.split("\n")[0].endsWith(path))
      .map((vma) => /^VmFlags:(.*)$/m.exec(vma)![1].trim().split(" "));
  const managed = openModel(path, { nCtx: 8, residency: { streamLayers: 0 } });
  try {
    const flags = flagsOfMappings();
    t.is(flags.filter((f) => f.includes("rr") && f.includes("nh")).length, 1, JSON.stringify(flags));
    t.true(flags.length >= 2, "the rest of the file keeps its read-ahead");
  } finally {
    managed.close();
  }
  const unmanaged = openModel(path, { nCtx: 8 });
  try {
    t.false(flagsOfMappings().some((f) => f.includes("rr")), "left to the kernel when unmanaged");
  } finally {
    unmanaged.close();
  }
});

test("bad residency options are one clear error each", async (t) => {
  const path = await model();
  t.throws(() => openModel(path, { residency: { streamLayers: 7 } }), { message: /^residency\.streamLayers must be from 0 to 6 \(the model's layers\), got 7$/ });
  t.throws(() => openModel(path, { residency: { streamLayers: -1 } }), { instanceOf: RangeError, message: /streamLayers must be an integer/ });
  t.throws(() => openModel(path, { residency: 3 as never }), { instanceOf: TypeError, message: /^residency must be an object/ });
  t.throws(() => openModel(path, { residency: { lock: "yes" as never } }), { instanceOf: TypeError, message: /^residency\.lock must be a boolean$/ });
});

// A child without CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0, as an unprivileged service without LimitMEMLOCK.
const needSetpriv = () => {
  if (process.platform !== "linux") return "setpriv and prlimit are Linux tools";
  const found = spawnSync("sh", ["-c", "command -v setpriv && command -v prlimit"], { encoding: "utf8" });
  if (found.status !== 0) return "setpriv or prlimit (util-linux) is missing";
  if (process.getuid?.() !== 0) return "dropping CAP_IPC_LOCK to test the fallback needs root to start with";
  return null;
};

testNeeding(test, needSetpriv, "locking refused by RLIMIT_MEMLOCK: falls back, says why, the same tokens", async (t) => {
  const modelPath = await model();
  const reference = greedy(modelPath, {}).tokens;
  const script = `
    const { openModel, createSampler } = await import(${JSON.stringify(path.join(ROOT, "dist", "daemon", "engine", "engine.js"))});
    const { generate } = await import(${JSON.stringify(path.join(ROOT, "dist", "daemon", "engine", "generate.js"))});
    const m = openModel(${JSON.stringify(modelPath)}, { threads: 2, nCtx: 64, residency: { streamLayers: 2 } });
    const r = generate(m, createSampler({ temperature: 0 }), Array.from(m.tokenize(${JSON.stringify(PROMPT)})), { maxTokens: 24, stopAtEos: false });
    console.log(JSON.stringify({ tokens: r.tokens, residency: m.info().residency }));`;
  const r = await run("prlimit", ["--memlock=0:0", "setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock",
    process.execPath, "--input-type=module", "-e", script]);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.deepEqual(out.tokens, reference);
  t.like(out.residency, { managed: true, lockRequested: true, lockingPermitted: false, lockedLayers: 0, lockedBytes: 0 });
  t.regex(out.residency.lockError, /^mlock: (Cannot allocate memory|Operation not permitted) \(RLIMIT_MEMLOCK 0 KiB\)$/);
  t.deepEqual(out.residency.streamedLayers, [2, 5]);
  t.is(out.residency.passes, 24);
});
