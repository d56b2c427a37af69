#!/usr/bin/env node
// npm run bench:residency: alpaca and llama.cpp (node-llama-cpp) on the same 7B-shaped Q4_0 file
// without a limit and inside memory cgroups of the same limits, page cache dropped before every
// run. Prints decode rates, each engine's limited rate as a share of its own unlimited one, the
// bytes read from storage per token, and whether the OOM killer struck.
//
//   npm run bench:residency -- [--limits 3789M,3500M] [--model FILE] [--threads 2] [-p 16] [-n 16]
//                              [--reps 3] [--warmup 1] [--timeout 300] [--engines alpaca,llama.cpp] [--json]
//
// Needs root (cgroups, drop_caches). cgroup v1 here (memory.limit_in_bytes), v2 on a Pi
// (memory.max): bench/cgroup.mjs picks. alpaca runs `alpaca bench --memory-limit L`, so that it
// holds what `alpaca serve` would in that limit (its context, KV cache taken at start, locked and
// streamed layers); llama.cpp gets the same file, threads and token ids. Runs
// alternate engines and limits in every repetition, so that a neighbour's load falls on all.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createMemoryCgroup, memoryCgroupSupport } from "./cgroup.mjs";
import { CLI, PEER_ENTRY, PEER_PACKAGE, PEER_VERSION, ROOT, RUNNER, ensurePeer, fmt, median, runChild, syntheticModel } from "./peer.mjs";

const MiB = 2 ** 20;
const USAGE = "usage: npm run bench:residency -- [--limits 3789M,3500M] [--model FILE] [--threads T] [-p N] [-n N] " +
  "[--reps R] [--warmup W] [--timeout S] [--engines alpaca,llama.cpp] [--json]";
const ENGINES = ["alpaca", "llama.cpp"];
class UsageError extends Error {}
const log = (s) => process.stderr.write(s + "\n");

function parseOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        limits: { type: "string", default: "3789M,3500M" },
        model: { type: "string" },
        threads: { type: "string", short: "t", default: "2" },
        p: { type: "string", short: "p", default: "16" },
        n: { type: "string", short: "n", default: "16" },
        reps: { type: "string", short: "r", default: "3" },
        warmup: { type: "string", default: "1" },
        timeout: { type: "string", default: "300" },
        engines: { type: "string", default: ENGINES.join(",") },
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
  const limits = values.limits.split(",").map((s) => {
    const m = /^(\d+)M$/i.exec(s.trim());
    if (!m) throw new UsageError(`--limits takes sizes in MiB like 3789M, not ${s}`);
    return Number(m[1]);
  });
  const engines = values.engines.split(",");
  for (const e of engines) if (!ENGINES.includes(e)) throw new UsageError(`--engines takes ${ENGINES.join(", ")}, not ${e}`);
  if (values.model !== undefined && !fs.existsSync(values.model)) throw new UsageError(`model file not found: ${values.model}`);
  return {
    limits, engines, json: values.json,
    model: values.model === undefined ? undefined : path.resolve(values.model),
    threads: int("--threads", values.threads, 1), p: int("-p", values.p, 1), n: int("-n", values.n, 1),
    reps: int("--reps", values.reps, 1), warmup: int("--warmup", values.warmup, 0), timeout: int("--timeout", values.timeout, 10),
  };
}

/** Every cached page of every file, ours and the neighbours': each run starts cold from storage. */
function dropCaches() {
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
}

// ── one run ───────────────────────────────────────────────────────────────────────────────

/** One engine in one condition; limitMiB null = no cgroup. Never throws: failures are results. */
async function runOnce(o, engine, model, tokens, limitMiB, cgroup) {
  dropCaches();
  cgroup?.resetCounters();
  const oomBefore = cgroup?.stats().oomKills ?? 0;
  const wrap = cgroup ? (file, args) => cgroup.command(file, args) : undefined;
  const result = { engine, limitMiB, decode: null, prefill: null, readPerToken: null, oomKilled: false, failure: null, plan: null };
  try {
    if (engine === "alpaca") {
      const args = [CLI, "bench", "--model", model, "-p", o.p, "-n", o.n, "--threads", o.threads, "--reps", 1, "--warmup", o.warmup, "--json"];
      if (limitMiB) args.push("--memory-limit", `${limitMiB}M`);
      const j = await runChild(args.map(String), "alpaca bench", { wrap, timeoutMs: o.timeout * 1000 });
      Object.assign(result, { decode: j.decode.median, prefill: j.prefill.median, readPerToken: j.readBytesPerToken });
      result.plan = {
        lockedLayers: j.residency.locked_layers, streamedLayers: j.residency.streamed_layers.length, streamedBytes: j.residency.streamed_bytes,
        ...(j.plan && { nCtx: j.plan.nCtx, nSeq: j.plan.nSeq, kvType: j.plan.kvType, estimateBytes: j.plan.estimateBytes }),
      };
    } else {
      const job = { nodeLlamaCpp: PEER_ENTRY, model, threads: o.threads, p: o.p, n: o.n, reps: 1, warmup: o.warmup, tokens };
      const j = await runChild([RUNNER, JSON.stringify(job)], "llama.cpp (node-llama-cpp)", { wrap, timeoutMs: o.timeout * 1000 });
      const rep = j.runs[0];
      Object.assign(result, { decode: rep.decode, prefill: rep.prefill, readPerToken: rep.readBytes === null ? null : rep.readBytes / (o.n + 1) });
    }
  } catch (e) {
    result.failure = e.timedOut ? "timed out" : e.signal ? `killed (${e.signal})` : `exit ${e.code}`;
    result.detail = e.message;
  }
  if (cgroup) {
    const s = cgroup.stats();
    result.cgroup = { maxUsage: s.maxUsage, failcnt: s.failcnt, oomKills: (s.oomKills ?? 0) - oomBefore };
    // a SIGKILL we did not send (not a time-out) inside a limit is the OOM killer's too
    result.oomKilled = result.cgroup.oomKills > 0 || result.failure === "killed (SIGKILL)";
  }
  return result;
}

// ── the report ────────────────────────────────────────────────────────────────────────────

const condition = (limitMiB) => (limitMiB ? `${limitMiB} MiB` : "no limit");
const mib = (b) => (b === null || b === undefined ? "?" : `${(b / MiB).toFixed(0)} MiB`);

function summarize(runs, engine, limitMiB) {
  const mine = runs.filter((r) => r.engine === engine && r.limitMiB === limitMiB);
  const ok = mine.filter((r) => r.decode !== null);
  return {
    engine, limitMiB, runs: mine.length, completed: ok.length,
    decode: ok.length ? median(ok.map((r) => r.decode)) : null,
    decodeAll: mine.map((r) => r.decode),
    readPerToken: ok.length ? median(ok.map((r) => r.readPerToken ?? 0)) : null,
    oomKilled: mine.filter((r) => r.oomKilled).length,
    failures: mine.filter((r) => r.failure).map((r) => r.failure),
    plan: ok.find((r) => r.plan)?.plan ?? null,
    maxUsage: mine.map((r) => r.cgroup?.maxUsage ?? null),
    estimate: ok.find((r) => r.plan?.estimateBytes)?.plan.estimateBytes ?? null,
  };
}

async function main() {
  const o = parseOptions(process.argv.slice(2));
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  if (!fs.existsSync(CLI)) throw new UsageError(`${path.relative(ROOT, CLI)} is missing: run npm run build first`);
  const support = memoryCgroupSupport();
  if (!support.version) throw new UsageError(`cannot make memory cgroups: ${support.reason}`);
  try {
    fs.accessSync("/proc/sys/vm/drop_caches", fs.constants.W_OK);
  } catch {
    throw new UsageError("cannot write /proc/sys/vm/drop_caches (run as root)");
  }
  const model = o.model ?? (await syntheticModel("7b", "random"));
  if (o.engines.includes("llama.cpp")) ensurePeer();
  const { benchTokens } = await import(pathToFileURL(path.join(ROOT, "dist", "daemon", "engine", "bench.js")).href);
  const tokens = benchTokens(model, o.p + o.n, 1);

  const cgroups = new Map(o.limits.map((l) => [l, createMemoryCgroup(`alpaca-bench-${process.pid}-${l}`, l * MiB)]));
  log(`model ${path.relative(process.cwd(), model)}, threads ${o.threads}, prompt ${o.p}, decode ${o.n}, ${o.reps} reps ` +
    `(+${o.warmup} warm-up in each process), cgroup v${support.version}, limits ${o.limits.map((l) => `${l} MiB`).join(", ")}; ` +
    `load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const conditions = [null, ...o.limits];
  const runs = [];
  try {
    for (let r = 0; r < o.reps; r++) {
      // alternate the order every repetition: engines, and limits within each engine
      const engines = r % 2 === 0 ? o.engines : [...o.engines].reverse();
      for (const engine of engines) {
        for (const limitMiB of r % 2 === 0 ? conditions : [...conditions].reverse()) {
          const res = await runOnce(o, engine, model, tokens, limitMiB, limitMiB ? cgroups.get(limitMiB) : null);
          runs.push(res);
          const plan = res.plan ? `, ${res.plan.lockedLayers} locked / ${res.plan.streamedLayers} streamed` +
            (res.plan.estimateBytes ? ` (context ${res.plan.nCtx} × ${res.plan.nSeq} ${res.plan.kvType}, estimate ${mib(res.plan.estimateBytes)})` : "") : "";
          log(`rep ${r + 1}  ${engine.padEnd(9)} ${condition(limitMiB).padEnd(9)}  ` +
            (res.decode !== null ? `decode ${fmt(res.decode).padStart(6)} tok/s, read ${mib(res.readPerToken)}/token${plan}` : `FAILED: ${res.failure}`) +
            (res.oomKilled ? "  OOM-KILLED" : "") + (res.cgroup ? `  (peak ${mib(res.cgroup.maxUsage)}, failcnt ${res.cgroup.failcnt})` : ""));
        }
      }
    }
  } finally {
    for (const cg of cgroups.values()) cg.remove();
  }

  const table = [];
  for (const engine of o.engines) for (const limitMiB of conditions) table.push(summarize(runs, engine, limitMiB));
  const own = (engine) => table.find((s) => s.engine === engine && s.limitMiB === null)?.decode ?? null;
  for (const s of table) s.ofUnlimited = s.decode !== null && own(s.engine) ? s.decode / own(s.engine) : null;
  const vs = (limitMiB) => {
    const a = table.find((s) => s.engine === "alpaca" && s.limitMiB === limitMiB)?.decode;
    const l = table.find((s) => s.engine === "llama.cpp" && s.limitMiB === limitMiB)?.decode;
    return a && l ? a / l : null;
  };
  const report = {
    model, threads: o.threads, p: o.p, n: o.n, reps: o.reps, warmup: o.warmup, cgroupVersion: support.version,
    peer: `${PEER_PACKAGE}@${PEER_VERSION}`, table, runs, loadAverage: os.loadavg(), cpu: os.cpus()[0]?.model,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(report) + "\n");
    return 0;
  }
  const lines = ["", `median of ${o.reps}       condition   decode tok/s   of unlimited   alpaca/llama.cpp   read/token   OOM-killed   plan`];
  for (const s of table) {
    const ratio = vs(s.limitMiB);
    lines.push(`${s.engine.padEnd(19)}${condition(s.limitMiB).padStart(10)}` +
      `${(s.decode === null ? "—" : fmt(s.decode)).padStart(15)}` +
      `${(s.ofUnlimited === null ? "—" : `${(100 * s.ofUnlimited).toFixed(0)} %`).padStart(15)}` +
      `${(s.engine === "alpaca" && ratio !== null ? ratio.toFixed(2) : "").padStart(19)}` +
      `${(s.readPerToken === null ? "—" : mib(s.readPerToken)).padStart(13)}` +
      `${`${s.oomKilled}/${s.runs}`.padStart(13)}   ` +
      (s.plan ? `${s.plan.lockedLayers} locked, ${s.plan.streamedLayers} streamed` : "") +
      (s.estimate ? `; estimate ${mib(s.estimate)}, peak ${s.maxUsage.filter((x) => x !== null).map(mib).join(" / ")}` : "") +
      (s.failures.length ? `  failed: ${s.failures.join(", ")}` : ""));
  }
  lines.push("", `load average now ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}; llama.cpp via ${PEER_PACKAGE}@${PEER_VERSION}`);
  console.log(lines.join("\n"));
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    log(`bench:residency: ${e.message}`);
    if (e instanceof UsageError) log(USAGE);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  },
);
