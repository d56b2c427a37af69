#!/usr/bin/env node
// npm run bench:peer: alpaca against llama.cpp (through node-llama-cpp, the peer a Node user
// would pick instead) on the same GGUF file, thread count, prompt ids and decode ids, in one run.
//
//   npm run bench:peer -- [--shape 7b|tinyllama-1.1b|qwen3-4b|qwen2.5-3b|qwen3-1.7b] [--fill random|sparse] [--model FILE]
//                         [--threads 2] [-p 32] [-n 32] [--reps 3] [--warmup 1] [--seed 1] [--json]
//
// Each repetition runs alpaca and llama.cpp one after the other, each in a fresh child process
// that maps the file, runs `warmup` uncounted repetitions and one counted; the order flips every
// repetition, so that a neighbour's load or a clock change falls on both engines alike.
// Needs a built project (npm run build), and the synthetic writer (models/synthetic.ts).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CACHE = path.join(ROOT, ".bench");
const PEER_DIR = path.join(CACHE, "peer");
export const PEER_PACKAGE = "node-llama-cpp";
export const PEER_VERSION = "3.21.1"; // pinned: a peer that changes under us makes old ratios meaningless
export const PEER_ENTRY = path.join(PEER_DIR, "node_modules", PEER_PACKAGE, "dist", "index.js");
export const CLI = path.join(ROOT, "dist", "daemon", "cli.js");
export const RUNNER = path.join(ROOT, "bench", "llama-runner.mjs");
// llama.cpp runs every architecture of these shapes (llama, qwen2, qwen3).
const SHAPES = ["7b", "tinyllama-1.1b", "qwen3-4b", "qwen2.5-3b", "qwen3-1.7b"];
const USAGE =
  "usage: npm run bench:peer -- [--shape 7b|tinyllama-1.1b|qwen3-4b|qwen2.5-3b|qwen3-1.7b] [--fill random|sparse] [--model FILE] " +
  "[--threads T] [-p N] [-n N] [--reps R] [--warmup W] [--seed S] [--json]";

class UsageError extends Error {}

// ── arguments ─────────────────────────────────────────────────────────────────────────────

function parseOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        shape: { type: "string", default: "7b" },
        fill: { type: "string", default: "random" },
        model: { type: "string" },
        threads: { type: "string", short: "t", default: "2" },
        p: { type: "string", short: "p", default: "32" },
        n: { type: "string", short: "n", default: "32" },
        reps: { type: "string", short: "r", default: "3" },
        warmup: { type: "string", default: "1" },
        seed: { type: "string", default: "1" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    throw new UsageError(e.message);
  }
  if (values.help) return { help: true };
  const int = (name, v, min) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) throw new UsageError(`${name} must be an integer ≥ ${min}, got ${v}`);
    return x;
  };
  if (!SHAPES.includes(values.shape)) throw new UsageError(`--shape must be one of ${SHAPES.join(", ")}, not ${values.shape}`);
  if (values.fill !== "random" && values.fill !== "sparse") throw new UsageError(`--fill must be random or sparse, not ${values.fill}`);
  if (values.model !== undefined && !fs.existsSync(values.model)) throw new UsageError(`model file not found: ${values.model}`);
  return {
    shape: values.shape,
    fill: values.fill,
    model: values.model === undefined ? undefined : path.resolve(values.model),
    threads: int("--threads", values.threads, 1),
    p: int("-p", values.p, 1),
    n: int("-n", values.n, 1),
    reps: int("--reps", values.reps, 1),
    warmup: int("--warmup", values.warmup, 0),
    seed: int("--seed", values.seed, 0),
    json: values.json,
  };
}

const log = (s) => process.stderr.write(s + "\n");

// ── (a) the model file ────────────────────────────────────────────────────────────────────

export async function syntheticModel(shape, fill) {
  const file = path.join(CACHE, `${shape}-q4_0-${fill}.gguf`);
  if (fs.existsSync(file)) return file;
  const writer = path.join(ROOT, "dist", "models", "synthetic.js");
  if (!fs.existsSync(writer))
    throw new UsageError(`${path.relative(ROOT, writer)} is missing: build the project (npm run build:ts) on a branch that has models/synthetic.ts`);
  const { writeSyntheticModel } = await import(pathToFileURL(writer).href);
  fs.mkdirSync(CACHE, { recursive: true });
  log(`writing ${path.relative(ROOT, file)} (${shape}, q4_0, ${fill} fill) once…`);
  const partial = `${file}.partial`;
  const started = Date.now();
  // Random bytes with small normal fp16 scales and norms of 1.0: no kernel gains by skipping zero blocks.
  await writeSyntheticModel(partial, { shape, type: "q4_0", fill, seed: 1 });
  fs.renameSync(partial, file);
  log(`  ${(fs.statSync(file).size / 2 ** 30).toFixed(2)} GiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return file;
}

// ── (b) the peer ──────────────────────────────────────────────────────────────────────────

function installedPeerVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(PEER_DIR, "node_modules", PEER_PACKAGE, "package.json"), "utf8")).version;
  } catch {
    return null;
  }
}

export function ensurePeer() {
  if (installedPeerVersion() === PEER_VERSION && fs.existsSync(PEER_ENTRY)) return;
  // Its own folder, not a dependency of alpaca: it brings ~700 MB of prebuilt llama.cpp libraries.
  log(`installing ${PEER_PACKAGE}@${PEER_VERSION} into ${path.relative(ROOT, PEER_DIR)}/ …`);
  fs.mkdirSync(PEER_DIR, { recursive: true });
  const r = spawnSync(
    "npm",
    ["install", "--prefix", PEER_DIR, "--save-exact", "--no-audit", "--no-fund", `${PEER_PACKAGE}@${PEER_VERSION}`],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  if (r.status !== 0 || installedPeerVersion() !== PEER_VERSION)
    throw new Error(`npm install of ${PEER_PACKAGE}@${PEER_VERSION} failed (exit ${r.status})`);
}

// ── (c) the runs ──────────────────────────────────────────────────────────────────────────

/**
 * Runs a child node to completion; its stdout's last line is its JSON report. `wrap` turns
 * (file, args) into another command line (bench/residency.mjs starts it inside a cgroup);
 * `timeoutMs` kills it. A failure carries {code, signal, timedOut}.
 */
export function runChild(args, what, { wrap, timeoutMs } = {}) {
  return new Promise((resolve, reject) => {
    const [file, argv] = wrap ? wrap(process.execPath, args) : [process.execPath, args];
    const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timedOut = false;
    const timer = timeoutMs ? setTimeout(() => ((timedOut = true), child.kill("SIGKILL")), timeoutMs) : null;
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      const why = timedOut ? `timed out after ${timeoutMs / 1000} s` : (signal ?? `exit ${code}`);
      if (code !== 0) return reject(Object.assign(new Error(`${what} failed (${why}): ${(err.trim() || out.trim()).slice(-500)}`), { code, signal, timedOut }));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()));
      } catch {
        reject(new Error(`${what} printed no JSON report: ${out.trim()} ${err.trim()}`));
      }
    });
  });
}

async function runAlpaca(o, model) {
  const j = await runChild(
    [CLI, "bench", "--model", model, "-p", o.p, "-n", o.n, "--threads", o.threads, "--reps", 1, "--warmup", o.warmup, "--seed", o.seed, "--json"].map(String),
    "alpaca bench",
  );
  return { prefill: j.prefill.median, decode: j.decode.median, weightBytes: j.weightBytes, stream: j.stream };
}

async function runLlamaCpp(o, model, tokens) {
  const job = { nodeLlamaCpp: PEER_ENTRY, model, threads: o.threads, p: o.p, n: o.n, reps: 1, warmup: o.warmup, tokens };
  const j = await runChild([RUNNER, JSON.stringify(job)], "llama.cpp (node-llama-cpp)");
  if (j.threads !== o.threads) log(`  note: llama.cpp ran ${j.threads} threads, not ${o.threads}`);
  return { prefill: j.runs[0].prefill, decode: j.runs[0].decode, setup: j };
}

// ── (d) the report ────────────────────────────────────────────────────────────────────────

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
export const spread = (v) => ({ median: median(v), min: Math.min(...v), max: Math.max(...v) });
export const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

async function main() {
  const o = parseOptions(process.argv.slice(2));
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  if (!fs.existsSync(CLI)) throw new UsageError(`${path.relative(ROOT, CLI)} is missing: run npm run build first`);
  const model = o.model ?? (await syntheticModel(o.shape, o.fill));
  ensurePeer();

  // The prompt and decode ids, from alpaca's own list, so that both engines get the same ones.
  const { benchTokens } = await import(pathToFileURL(path.join(ROOT, "dist", "daemon", "engine", "bench.js")).href);
  const tokens = benchTokens(model, o.p + o.n, o.seed);

  log(`model ${path.relative(process.cwd(), model)}, threads ${o.threads}, prompt ${o.p}, decode ${o.n}, ` +
    `${o.reps} reps (+${o.warmup} warm-up in each process); load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const engines = {
    alpaca: () => runAlpaca(o, model),
    "llama.cpp": () => runLlamaCpp(o, model, tokens),
  };
  const runs = { alpaca: [], "llama.cpp": [] };
  let setup;
  let weightBytes = 0;
  const ceilings = []; // decode tokens/s the memory allows, measured in each alpaca process
  for (let r = 0; r < o.reps; r++) {
    const order = r % 2 === 0 ? ["alpaca", "llama.cpp"] : ["llama.cpp", "alpaca"];
    for (const name of order) {
      const res = await engines[name]();
      if (res.setup) setup = res.setup;
      if (res.weightBytes) weightBytes = res.weightBytes;
      if (res.stream) ceilings.push(res.stream);
      runs[name].push({ prefill: res.prefill, decode: res.decode });
      log(`rep ${r + 1}  ${name.padEnd(9)}  prefill ${fmt(res.prefill).padStart(7)} tok/s   decode ${fmt(res.decode).padStart(7)} tok/s`);
    }
  }

  const summary = {};
  for (const name of Object.keys(runs)) {
    const prefill = spread(runs[name].map((x) => x.prefill));
    const decode = spread(runs[name].map((x) => x.decode));
    summary[name] = { prefill, decode, decodeGBs: (decode.median * weightBytes) / 1e9, runs: runs[name] };
  }
  const ratio = {
    prefill: summary.alpaca.prefill.median / summary["llama.cpp"].prefill.median,
    decode: summary.alpaca.decode.median / summary["llama.cpp"].decode.median,
  };
  const report = {
    model,
    shape: o.model ? null : o.shape,
    fill: o.model ? null : o.fill,
    weightBytes,
    threads: o.threads,
    p: o.p,
    n: o.n,
    reps: o.reps,
    warmup: o.warmup,
    alpaca: summary.alpaca,
    llamaCpp: summary["llama.cpp"],
    ratio,
    // The fastest read of the weights a decode step uses, per alpaca run (alpaca bench's
    // "memory" line): no engine decodes faster than tokensPerSecond on this machine.
    memoryCeiling: ceilings.length
      ? { gbs: spread(ceilings.map((c) => c.gbs)), tokensPerSecond: spread(ceilings.map((c) => c.tokensPerSecond)) }
      : null,
    peer: {
      package: `${PEER_PACKAGE}@${PEER_VERSION}`,
      llamaCppRelease: setup?.llamaCppRelease,
      flashAttention: setup?.flashAttention,
      contextSize: setup?.contextSize,
      batchSize: setup?.batchSize,
    },
    loadAverage: os.loadavg(),
    cpu: os.cpus()[0]?.model,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(report) + "\n");
    return 0;
  }
  const a = summary.alpaca;
  const l = summary["llama.cpp"];
  const row = (what, x, y, r) => `${what.padEnd(16)}${fmt(x).padStart(10)}${fmt(y).padStart(12)}${r.toFixed(3).padStart(20)}`;
  console.log(
    [
      "",
      `median of ${o.reps}        alpaca   llama.cpp   alpaca / llama.cpp`,
      row("prefill tok/s", a.prefill.median, l.prefill.median, ratio.prefill),
      row("decode tok/s", a.decode.median, l.decode.median, ratio.decode),
      row("decode GB/s", a.decodeGBs, l.decodeGBs, ratio.decode),
      ...(report.memoryCeiling
        ? [
            `memory ceiling: the weights a decode step reads stream at ${fmt(report.memoryCeiling.gbs.median)} GB/s ` +
              `(${fmt(report.memoryCeiling.gbs.min)}–${fmt(report.memoryCeiling.gbs.max)}), so decode ≤ ` +
              `${fmt(report.memoryCeiling.tokensPerSecond.median)} tok/s: alpaca ` +
              `${Math.round((100 * a.decode.median) / report.memoryCeiling.tokensPerSecond.median)} %, llama.cpp ` +
              `${Math.round((100 * l.decode.median) / report.memoryCeiling.tokensPerSecond.median)} % of it`,
          ]
        : []),
      "",
      `weights ${(weightBytes / 2 ** 30).toFixed(2)} GiB; llama.cpp ${setup?.llamaCppRelease ?? "?"} via ${PEER_PACKAGE}@${PEER_VERSION} ` +
        `(flash attention ${setup?.flashAttention}); load average now ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`,
    ].join("\n"),
  );
  return 0;
}

// Run as a script (npm run bench:peer); imported for its helpers by bench/residency.mjs.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main().then(
  (code) => (process.exitCode = code),
  (e) => {
    log(`bench:peer: ${e.message}`);
    if (e instanceof UsageError) log(USAGE);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
