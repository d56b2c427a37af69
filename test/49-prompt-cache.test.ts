// The persistent prompt cache on the real engine: a shared prefix reused once is written to disk,
// a restarted scheduler restores it and answers exactly what a cold one computes; every kind of
// bad file is skipped with the answer still right; the budget holds; a write cut short by
// SIGKILL leaves nothing that is used later.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import type { ExecutionContext } from "ava";
import type { NativeModel } from "../daemon/engine/engine.js";
import { openModel } from "../daemon/engine/engine.js";
import type { Logger } from "../daemon/log.js";
import type { GenerateResult, PromptCacheStats } from "../daemon/serving/protocol.js";
import { DEFAULT_SAMPLING } from "../daemon/serving/protocol.js";
import type { PromptCacheOptions } from "../daemon/serving/prompt-cache.js";
import { PromptCache, readKvFile } from "../daemon/serving/prompt-cache.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import type { TestDaemon } from "./helpers/daemon.js";
import { startDaemon, waitFor } from "./helpers/daemon.js";
import { alpaca, scaled, start } from "./helpers/process.js";
import { needShared, ROOT, sharedModel, testNeeding } from "./helpers/shared.js";


const F32 = () => sharedModel("stories260K-f32.gguf");
const Q4_0 = () => sharedModel("stories260K-q4_0.gguf");
const GREEDY = { ...DEFAULT_SAMPLING, temperature: 0 };

// A prefix of ~50 tokens that three prompts share, as a system prompt would be.
const PREFIX =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big";
const ENDINGS = [" red ball", " dog that", " tree with", " bird in the sky"];

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-pc-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const put = (m: string) => void lines.push(m);
  return { lines, debug: put, info: put, warn: put, error: put } as Logger & { lines: string[] };
}

/** One daemon life: a model, its prompt cache (or none) and a scheduler; closed in order. */
async function life<T>(
  modelPath: string,
  cache: Omit<PromptCacheOptions, "version"> & { version?: string } | null,
  fn: (s: Scheduler, model: NativeModel, pc: PromptCache | undefined) => Promise<T>,
  kvType: "f16" | "f32" = "f16",
): Promise<T> {
  const model = openModel(modelPath, { nCtx: 128, nSeq: 2, threads: 1, kvType });
  const pc = cache ? new PromptCache(model, { minTokens: 8, version: "test", ...cache }) : undefined;
  const s = new Scheduler(model, { promptCache: pc });
  s.start();
  try {
    return await fn(s, model, pc);
  } finally {
    await s.stop(0);
    model.close();
  }
}

function ask(s: Scheduler, model: NativeModel, prompt: string, maxTokens = 24): Promise<GenerateResult> {
  return new Promise((resolve, reject) =>
    s.submit(
      { promptTokens: Array.from(model.tokenize(prompt)), maxTokens, sampling: GREEDY, stop: [], priority: 0 },
      { delta: () => {}, done: resolve, fail: (code, message) => reject(new Error(`${code}: ${message}`)) },
    ),
  );
}

/** Two requests sharing PREFIX: the second reuses it from memory, so it is written to disk. */
async function fillCache(modelPath: string, dir: string, extra: Partial<PromptCacheOptions> = {}, kvType: "f16" | "f32" = "f16") {
  return life(modelPath, { dir, ...extra }, async (s, model, pc) => {
    await ask(s, model, PREFIX + ENDINGS[0]);
    const second = await ask(s, model, PREFIX + ENDINGS[1]);
    await pc!.flush();
    return { second, stats: pc!.stats() };
  }, kvType);
}

const kvFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith(".kv"));

for (const [label, modelPath] of [["F32", F32], ["Q4_0", Q4_0]] as const) {
  testNeeding(test, needShared, `${label}: a prefix reused once is stored; after a restart it is restored and the answer is the cold one`, async (t) => {
    const dir = tempDir(t);
    const { second, stats } = await fillCache(modelPath(), dir);
    t.true(second.usage.cached_tokens >= 40, `the second request reused ${second.usage.cached_tokens} tokens from memory`);
    t.is(stats.saved, 1);
    t.is(kvFiles(dir).length, 1);
    const stored = readKvFile(path.join(dir, kvFiles(dir)[0]));
    t.is(stored.tokens.length, second.usage.cached_tokens, "the file holds exactly the reused prefix");

    const prompt = PREFIX + ENDINGS[2];
    const cold = await life(modelPath(), null, (s, m) => ask(s, m, prompt));
    const log = recordingLog();
    const warm = await life(modelPath(), { dir, log }, async (s, m, pc) => {
      const r = await ask(s, m, prompt);
      t.is(pc!.stats().restored, 1);
      return r;
    });
    t.is(warm.usage.cached_tokens, stored.tokens.length, "the restored prefix was not read again");
    t.is(cold.usage.cached_tokens, 0);
    t.is(warm.text, cold.text, "greedy answers are identical");
    t.deepEqual(log.lines.filter((l) => /skip|not used|removing/.test(l)), []);
  });
}

testNeeding(test, needShared, "restored cells are the saved ones, bit for bit: the next logits are identical", async (t) => {
  const dir = tempDir(t);
  const model = openModel(F32(), { nCtx: 128, nSeq: 2, threads: 1 });
  t.teardown(() => model.close());
  const tokens = model.tokenize(PREFIX);
  const n = tokens.length;
  const batch = (seq: number, toks: ArrayLike<number>, start: number) => ({
    tokens: Int32Array.from(toks),
    positions: Int32Array.from(toks, (_, i) => start + i),
    seqs: new Int32Array(toks.length).fill(seq),
    logits: Uint8Array.from(toks, (_, i) => (i === toks.length - 1 ? 1 : 0)),
  });
  model.decode(batch(0, tokens, 0));
  const file = path.join(dir, "a.kv");
  const bytes = await model.kvSaveAsync(0, n, file, "{}", tokens);
  t.is(fs.statSync(file).size, bytes);
  await model.kvRestoreAsync(1, n, file, tokens);
  t.is(model.kvLength(1), n);
  const next = [42];
  const a = model.decode(batch(0, next, n));
  const b = model.decode(batch(1, next, n));
  t.deepEqual(Array.from(b), Array.from(a));
  // a prefix of a file restores too
  await model.kvRestoreAsync(1, 10, file, tokens.subarray(0, 10));
  t.is(model.kvLength(1), 10);
  // and a file whose tokens are not the expected ones is refused, leaving the sequence empty
  const wrong = Int32Array.from(tokens.subarray(0, 10), (x) => x + 1);
  await t.throwsAsync(model.kvRestoreAsync(1, 10, file, wrong), { message: /other tokens/ });
  t.is(model.kvLength(1), 0);
});

// ─── Bad files ───────────────────────────────────────────────────────────────────────────────

type Damage = { name: string; why: RegExp; prepare: (dir: string, file: string) => Promise<void> | void; cache?: Partial<PromptCacheOptions> };

const flipByte = (file: string, at: (size: number) => number) => {
  const fd = fs.openSync(file, "r+");
  const size = fs.fstatSync(fd).size;
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at(size));
  b[0] ^= 0x5a;
  fs.writeSync(fd, b, 0, 1, at(size));
  fs.closeSync(fd);
};

const DAMAGES: Damage[] = [
  { name: "truncated", why: /truncated/, prepare: (_d, f) => fs.truncateSync(f, fs.statSync(f).size - 1000) },
  { name: "damaged in its data", why: /damaged data/, prepare: (_d, f) => flipByte(f, (size) => Math.floor(size / 2)) },
  { name: "damaged in its header", why: /damaged header/, prepare: (_d, f) => flipByte(f, () => 40) },
  { name: "not a cache file at all", why: /not a KV cache file/, prepare: (_d, f) => fs.writeFileSync(f, Buffer.alloc(4096, 7)) },
  { name: "of another alpaca version", why: /written by alpaca test/, prepare: () => {}, cache: { version: "other" } },
  {
    name: "of another model",
    why: /another model/,
    prepare: async (dir, f) => {
      // the same prefix stored by the Q4_0 model, under the F32 file's name
      const other = path.join(dir, "other");
      fs.mkdirSync(other);
      await fillCache(Q4_0(), other);
      fs.renameSync(path.join(other, kvFiles(other)[0]), f);
    },
  },
  {
    name: "of another KV type",
    why: /holds a f32 KV cache/,
    prepare: async (dir, f) => {
      const other = path.join(dir, "other");
      fs.mkdirSync(other);
      await fillCache(F32(), other, {}, "f32");
      fs.renameSync(path.join(other, kvFiles(other)[0]), f);
    },
  },
];

for (const d of DAMAGES) {
  testNeeding(test, needShared, `a cache file ${d.name} is skipped with one log line; the answer is the cold one`, async (t) => {
    const dir = tempDir(t);
    await fillCache(F32(), dir);
    const file = path.join(dir, kvFiles(dir)[0]);
    await d.prepare(dir, file);
    const prompt = PREFIX + ENDINGS[3];
    const cold = await life(F32(), null, (s, m) => ask(s, m, prompt));
    const log = recordingLog();
    const warm = await life(F32(), { dir, log, ...d.cache }, async (s, m, pc) => {
      const r = await ask(s, m, prompt);
      t.is(pc!.stats().restored, 0);
      return r;
    });
    t.is(warm.text, cold.text);
    t.is(warm.usage.cached_tokens, 0);
    const said = log.lines.filter((l) => d.why.test(l));
    t.is(said.length, 1, `one line naming the problem, got ${JSON.stringify(log.lines)}`);
  });
}

// ─── Budget ──────────────────────────────────────────────────────────────────────────────────

testNeeding(test, needShared, "the budget holds: by files and by bytes, the least recently used go first", async (t) => {
  const dir = tempDir(t);
  const prefixes = ["Tom had a red ball and he liked to throw it very high up into the blue sky every single day", PREFIX];
  // By files: one at most.
  await life(F32(), { dir, maxEntries: 1 }, async (s, m, pc) => {
    for (const p of prefixes) {
      await ask(s, m, p + ENDINGS[0], 4);
      await ask(s, m, p + ENDINGS[1], 4);
      await pc!.flush();
    }
    t.is(pc!.stats().saved, 2);
    t.is(pc!.stats().files, 1);
  });
  t.is(kvFiles(dir).length, 1);
  const kept = readKvFile(path.join(dir, kvFiles(dir)[0]));
  const model = openModel(F32(), { nCtx: 128, threads: 1 });
  const want = model.tokenize(PREFIX);
  model.close();
  t.deepEqual(Array.from(kept.tokens).slice(0, 20), Array.from(want).slice(0, 20), "the newer prefix stays");
  // By bytes: room for one file of either size.
  const one = fs.statSync(path.join(dir, kvFiles(dir)[0])).size;
  fs.rmSync(dir, { recursive: true });
  await life(F32(), { dir, maxBytes: Math.floor(one * 1.5) }, async (s, m, pc) => {
    for (const p of prefixes) {
      await ask(s, m, p + ENDINGS[0], 4);
      await ask(s, m, p + ENDINGS[1], 4);
      await pc!.flush();
    }
    t.true(pc!.stats().bytes <= Math.floor(one * 1.5));
  });
  const total = kvFiles(dir).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
  t.true(total <= Math.floor(one * 1.5), `${total} bytes on disk`);
  t.is(kvFiles(dir).length, 1);
});

// ─── Killed while writing ────────────────────────────────────────────────────────────────────

testNeeding(test, needShared, "SIGKILL while writing leaves only a temporary file, which the next start removes and never uses", async (t) => {
  const dir = tempDir(t);
  // A child that writes one large prefix file after another until it is killed.
  const script = `
    const { openModel } = await import(${JSON.stringify(path.join(ROOT, "dist", "daemon", "engine", "engine.js"))});
    const m = openModel(${JSON.stringify(F32())}, { nCtx: 2048, nSeq: 1, threads: 1 });
    const toks = new Int32Array(2048).fill(5);
    for (let i = 0; i < toks.length; i += 512) {
      const part = toks.subarray(i, i + 512);
      m.decode({ tokens: part, positions: Int32Array.from(part, (_, j) => i + j), seqs: new Int32Array(part.length), logits: new Uint8Array(part.length) });
    }
    process.stdout.write("ready\\n");
    for (let k = 0; ; k++) await m.kvSaveAsync(0, 2048, ${JSON.stringify(dir)} + "/f" + (k % 3) + ".kv", "{}", toks);
  `;
  const writer = start(t, process.execPath, ["--input-type=module", "-e", script]);
  await writer.waitFor(/ready/, { what: "the writer ready" });
  // Kill it while a write is under way: a temporary file exists then.
  const deadline = Date.now() + scaled(20_000);
  while (!fs.readdirSync(dir).some((f) => f.endsWith(".tmp")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  await writer.kill();
  const left = fs.readdirSync(dir);
  t.true(left.some((f) => f.endsWith(".tmp")), "killed in the middle of a write");
  for (const f of left.filter((x) => x.endsWith(".kv"))) t.notThrows(() => readKvFile(path.join(dir, f)), `${f} is whole`);
  const log = recordingLog();
  await life(F32(), { dir, log }, async () => {});
  t.false(fs.readdirSync(dir).some((f) => f.endsWith(".tmp")), "no temporary file after a start");
  t.true(log.lines.some((l) => /left unfinished/.test(l)));
});

// ─── Through the daemon and the command line ─────────────────────────────────────────────────

testNeeding(test, needShared, "serve: status shows the cache; after a restart the prefix is restored; alpaca cache ls and rm manage the files", async (t) => {
  const dir = tempDir(t);
  const promptCache = { dir, maxBytes: 2 ** 30, maxFiles: 8, minTokens: 8 };
  const generate = async (d: TestDaemon, prompt: string) => {
    const c = await d.connect();
    try {
      const r = await c.request({ op: "generate", prompt, max_tokens: 8, temperature: 0, stream: false });
      if (r.status !== "ok") throw new Error(JSON.stringify(r));
      return r.data as GenerateResult;
    } finally {
      c.close();
    }
  };
  const status = async (d: TestDaemon) => {
    const c = await d.connect();
    try {
      const r = await c.request({ op: "status" });
      return (r as { data: { prompt_cache: PromptCacheStats } }).data.prompt_cache;
    } finally {
      c.close();
    }
  };
  let daemon = await startDaemon({ promptCache });
  t.teardown(() => daemon.stop());
  await generate(daemon, PREFIX + ENDINGS[0]);
  await generate(daemon, PREFIX + ENDINGS[1]);
  await waitFor(async () => (await status(daemon)).saved === 1, 10_000, "the prefix to be stored");
  t.like(await status(daemon), { dir, files: 1, restored: 0 });
  await daemon.stop();

  daemon = await startDaemon({ promptCache });
  const r = await generate(daemon, PREFIX + ENDINGS[2]);
  t.true(r.usage.cached_tokens >= 40);
  t.like(await status(daemon), { files: 1, restored: 1, restored_tokens: r.usage.cached_tokens });
  await daemon.stop();

  const cli = (...args: string[]) => alpaca(["cache", ...args, "--prompt-cache-dir", dir]);
  const listed = JSON.parse((await cli("ls", "--json")).stdout) as { dir: string; files: { name: string; tokens: number; model: string }[] };
  t.is(listed.files.length, 1);
  t.like(listed.files[0], { tokens: r.usage.cached_tokens, model: "stories260K-f32.gguf" });
  t.regex((await cli("ls")).stdout, /1 file.*\n.*tokens of stories260K-f32\.gguf/);
  const refused = await cli("rm", "../../etc/passwd");
  t.is(refused.code, 2);
  t.regex(refused.stderr, /not a prompt-cache file name/);
  t.is((await cli("rm", listed.files[0].name)).code, 0);
  t.deepEqual(kvFiles(dir), []);
});
