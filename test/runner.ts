// npm test: every test file in an ava process of its own, two at a time, so that each file's
// time is known, a file that hangs is stopped by name (ava then lists the tests still pending),
// and each file's processes are accounted for. Every process of the run carries the
// environment mark ALPACA_TEST_RUN=<run>/<file>, so what a file leaves behind (a daemon, a
// broker, qemu) is found in /proc, named as a failure of that file and killed.
//   node dist/test/runner.js [FILE…] [ava options…]
//   ALPACA_TEST_JOBS=2            files at a time
//   ALPACA_TEST_FILE_MINUTES=30   a file's limit on a quiet machine (stretched by the load)
//   ALPACA_TEST_RUN=<id>          the run's mark (.ci/run sets it to sweep after the run too)
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RUN_MARK, ROOT } from "./helpers/shared.js";

const AVA = path.join(ROOT, "node_modules", "ava", "entrypoints", "cli.mjs");
const JOBS = Math.max(1, Number(process.env.ALPACA_TEST_JOBS ?? 2));
const FILE_MS = Number(process.env.ALPACA_TEST_FILE_MINUTES ?? 30) * 60_000;
const RUN_ID = process.env[RUN_MARK] || `run-${process.pid}-${Date.now()}`;
/** After ava is asked to stop (SIGINT: it lists what was pending), how long before SIGKILL. */
const STOP_GRACE_MS = 20_000;

interface FileRun {
  file: string;
  name: string;
  started: number;
  ended?: number;
  code?: number | null;
  signal?: NodeJS.Signals | null;
  output: string;
  /** Processes of this file still alive after it ended. */
  leftovers: string[];
  /** Why the runner stopped it, if it did. */
  stopped?: string;
  child?: ChildProcess;
}

const loadFactor = () => Math.max(1, os.loadavg()[0] / os.availableParallelism());
const seconds = (ms: number) => (ms >= 60_000 ? `${Math.floor(ms / 60_000)}m ${String(Math.round((ms % 60_000) / 1000)).padStart(2, "0")}s` : `${(ms / 1000).toFixed(1)} s`);
const nameOf = (file: string) => path.basename(file).replace(/\.test\.[jt]s$/, "");

/** Test files from the arguments (dist/test/… or test/….ts), or every test/*.test.ts compiled; the rest goes to ava. */
function parseArgs(argv: string[]): { files: string[]; avaArgs: string[] } {
  const files: string[] = [];
  const avaArgs: string[] = [];
  for (const a of argv) {
    if (/\.test\.[jt]s$/.test(a)) files.push(path.resolve(a.replace(/^(\.\/)?test\/(.*)\.ts$/, "dist/test/$2.js")));
    else avaArgs.push(a);
  }
  if (files.length === 0) {
    // From the sources: a test renamed or removed leaves its old compiled file in dist/test.
    for (const f of fs.readdirSync(path.join(ROOT, "test")).filter((f) => f.endsWith(".test.ts")).sort())
      files.push(path.join(ROOT, "dist", "test", f.replace(/\.ts$/, ".js")));
  }
  return { files, avaArgs };
}

// The longest files start first, so that the two lanes end together: by the times of the last
// run on this machine, else by what is known to be long (the qemu golden runs, x86 golden, fuzzing).
const TIMES = path.join(ROOT, ".cache", "test-times.json");
const KNOWN_LONG = ["63-arm64-e2e", "25-golden", "92-libfuzzer", "54-structured-acceptance", "22-grammar", "61-install", "14-kernels"];

function longestFirst(runs: FileRun[]): FileRun[] {
  let last: Record<string, number> = {};
  try {
    last = JSON.parse(fs.readFileSync(TIMES, "utf8")) as Record<string, number>;
  } catch {
    // not run here yet
  }
  const expected = (name: string) => last[name] ?? (KNOWN_LONG.includes(name) ? 600_000 - KNOWN_LONG.indexOf(name) : 0);
  return [...runs].sort((a, b) => expected(b.name) - expected(a.name));
}

function saveTimes(runs: FileRun[]): void {
  let times: Record<string, number> = {};
  try {
    times = JSON.parse(fs.readFileSync(TIMES, "utf8")) as Record<string, number>;
  } catch {
    // first run here
  }
  for (const r of runs) if (r.ended !== undefined && !r.stopped) times[r.name] = r.ended - r.started;
  try {
    fs.mkdirSync(path.dirname(TIMES), { recursive: true });
    fs.writeFileSync(TIMES, JSON.stringify(times, null, 1) + "\n");
  } catch {
    // a read-only checkout: the next run takes the default order
  }
}

/** Live processes whose environment carries the mark (all of the run's when it ends in "/"). */
export function markedProcesses(mark: string): { pid: number; command: string }[] {
  const found: { pid: number; command: string }[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      const value = env.find((e) => e.startsWith(`${RUN_MARK}=`))?.slice(RUN_MARK.length + 1);
      if (value === undefined || !(mark.endsWith("/") ? value.startsWith(mark) : value === mark)) continue;
      const command = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
      found.push({ pid, command });
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** Kills what a file left behind and says what it was. */
function sweep(mark: string): string[] {
  const left = markedProcesses(mark);
  for (const p of left) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // ended meanwhile
    }
  }
  return left.map((p) => `pid ${p.pid}: ${p.command.slice(0, 200)}`);
}

function stop(run: FileRun, why: string): void {
  if (run.stopped || !run.child?.pid) return;
  run.stopped = why;
  process.stderr.write(`\n  ${run.name}: ${why}; asking ava to stop (it lists the pending tests)\n`);
  run.child.kill("SIGINT");
  setTimeout(() => {
    try {
      process.kill(-run.child!.pid!, "SIGKILL");
    } catch {
      // ended
    }
  }, STOP_GRACE_MS).unref();
}

function runFile(run: FileRun, avaArgs: string[]): Promise<void> {
  const mark = `${RUN_ID}/${run.name}`;
  const child = spawn(process.execPath, [AVA, run.file, ...avaArgs], {
    cwd: ROOT,
    env: { ...process.env, [RUN_MARK]: mark },
    detached: true, // a group of its own: a stop reaches ava's worker too
    stdio: ["ignore", "pipe", "pipe"],
  });
  run.child = child;
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (run.output += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (run.output += d));
  const watch = setInterval(() => {
    if (Date.now() - run.started > FILE_MS * loadFactor()) stop(run, `still running after ${seconds(Date.now() - run.started)} (limit ${seconds(FILE_MS)} on a quiet machine, load ${os.loadavg()[0].toFixed(1)})`);
  }, 1000);
  return new Promise((resolve) => {
    child.once("close", (code, signal) => {
      clearInterval(watch);
      run.ended = Date.now();
      run.code = code;
      run.signal = signal;
      run.leftovers = sweep(mark);
      resolve();
    });
  });
}

function report(run: FileRun): void {
  const out = run.output.trimEnd().split("\n").map((l) => (l.startsWith("  ") ? l : `  ${l}`)).join("\n");
  process.stdout.write(`\n── ${run.name} (${seconds(run.ended! - run.started)}) ──\n${out}\n`);
  if (run.stopped) process.stdout.write(`  ✘ stopped by the runner: ${run.stopped}\n`);
  for (const l of run.leftovers) process.stdout.write(`  ✘ left running after the file ended (killed): ${l}\n`);
}

const failed = (r: FileRun) => r.code !== 0 || r.stopped !== undefined || r.leftovers.length > 0;

function summary(runs: FileRun[], startedAt: number, loads: number[]): void {
  const done = runs.filter((r) => r.ended !== undefined);
  const width = Math.max(...done.map((r) => r.name.length), 10);
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  const load = `load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}, mean ${mean.toFixed(1)}`;
  const lines = [`\ntime per test file (${JOBS} at a time; ${load}; ${os.availableParallelism()} cores):`];
  for (const r of done) lines.push(`  ${r.name.padEnd(width)}  ${seconds(r.ended! - r.started).padStart(8)}${failed(r) ? "  FAILED" : ""}`);
  const bad = done.filter(failed);
  lines.push(`  ${"total".padEnd(width)}  ${seconds(Date.now() - startedAt).padStart(8)}  (${done.length} files, ${bad.length} failed${bad.length ? ": " + bad.map((r) => r.name).join(", ") : ""})`);
  process.stdout.write(lines.join("\n") + "\n");
}

async function main(): Promise<void> {
  const { files, avaArgs } = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  const loads = [os.loadavg()[0]];
  const sampleLoad = setInterval(() => loads.push(os.loadavg()[0]), 30_000);
  const runs: FileRun[] = files.map((file) => ({ file, name: nameOf(file), started: 0, output: "", leftovers: [] }));
  const pending = longestFirst(runs);
  let stopping = false;

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    const running = runs.filter((r) => r.started && r.ended === undefined);
    process.stderr.write(`\nnpm test: ${signal} after ${seconds(Date.now() - startedAt)} while running ${running.map((r) => `${r.name} (${seconds(Date.now() - r.started)})`).join(", ") || "nothing"}\n`);
    pending.length = 0;
    for (const r of running) stop(r, `the run was stopped by ${signal}`);
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));

  // A heartbeat for logs that would otherwise stay silent while long files run.
  const heartbeat = setInterval(() => {
    const running = runs.filter((r) => r.started && r.ended === undefined);
    process.stderr.write(`  … ${seconds(Date.now() - startedAt)}: running ${running.map((r) => `${r.name} (${seconds(Date.now() - r.started)})`).join(", ")}\n`);
  }, 5 * 60_000);

  const worker = async () => {
    for (let run = pending.shift(); run; run = pending.shift()) {
      run.started = Date.now();
      await runFile(run, avaArgs);
      report(run);
    }
  };
  await Promise.all(Array.from({ length: Math.min(JOBS, runs.length) }, worker));
  clearInterval(heartbeat);
  clearInterval(sampleLoad);
  loads.push(os.loadavg()[0]);

  saveTimes(runs);
  const stray = sweep(`${RUN_ID}/`);
  for (const l of stray) process.stdout.write(`✘ left running after the run (killed): ${l}\n`);
  summary(runs, startedAt, loads);
  const bad = runs.filter((r) => r.ended !== undefined && failed(r));
  process.exitCode = stopping ? 124 : bad.length || stray.length ? 1 : 0;
}

await main();
