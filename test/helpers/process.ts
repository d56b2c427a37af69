// Child processes for tests. Every process started here dies with its test (t.teardown), on its
// own deadline, on a failed start and when the test worker exits, is stopped (ava's timeout sends
// it SIGTERM) or is killed outright; output is collected without ever blocking the event loop.
// Each child leads a process group of its own, so that what it started in turn (golden-check's
// CLI runs, qemu) goes with it. Deadlines grow with the machine's load: a shared CI machine runs
// everything several times slower than a quiet one, and a slow start is not a failure.
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CLI, RUN_MARK } from "./shared.js";

// Tests neither read nor write the user's state (the prompt cache, the fallback socket): each
// worker has a state directory of its own, which its children inherit, removed when it exits.
const STATE_HOME = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-test-state-"));
process.env.XDG_STATE_HOME = STATE_HOME;
delete process.env.STATE_DIRECTORY;
process.once("exit", () => fs.rmSync(STATE_HOME, { recursive: true, force: true }));

// ─── Load ────────────────────────────────────────────────────────────────────────────────────

/** How many times slower than a quiet machine this one is now: runnable tasks per core, at least 1. */
export function loadFactor(): number {
  return Math.max(1, os.loadavg()[0] / os.availableParallelism());
}

/** A duration meant for a quiet machine, stretched by the current load. */
export function scaled(ms: number): number {
  return Math.round(ms * loadFactor());
}

/** A deadline of `ms` on a quiet machine; checked against the load at every look. */
function deadline(ms: number): { passed(): boolean; describe(): string } {
  const started = Date.now();
  return {
    passed: () => Date.now() - started > ms * loadFactor(),
    describe: () => `${((Date.now() - started) / 1000).toFixed(1)} s (${(ms / 1000).toFixed(0)} s on a quiet machine, load ${os.loadavg()[0].toFixed(1)})`,
  };
}

// ─── Every child this worker started ────────────────────────────────────────────────────────

const live = new Set<ChildProcess>();

/** SIGKILL to the child's whole process group (it leads one: detached). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone already
    }
  }
}

function killAll(): void {
  for (const child of live) {
    killGroup(child);
    tellReaper("-", child);
  }
  live.clear();
}

// A worker killed outright (SIGKILL from the OOM killer, a `kill -9`, a tool ending ava's process
// group) runs no handler, and its children, each leading a group of its own, would live on. So
// one small shell per worker holds a pipe from it and is told each group as it starts and as its
// leader exits; when the pipe closes, however the worker ended, it kills the groups still listed.
// It carries no run mark: it ends by itself a moment after the worker.
const REAPER = `set -f; groups=""
while read -r op group; do
  if [ "$op" = + ]; then groups="$groups $group"; continue; fi
  rest=""; for g in $groups; do [ "$g" = "$group" ] || rest="$rest $g"; done; groups=$rest
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done`;

let reaper: ChildProcess | null | undefined;

function tellReaper(op: "+" | "-", child: ChildProcess): void {
  if (child.pid === undefined) return;
  if (reaper === undefined) {
    reaper = null;
    try {
      const r = spawn("/bin/sh", ["-c", REAPER], { detached: true, stdio: ["pipe", "ignore", "ignore"], env: { PATH: process.env.PATH } });
      r.on("error", () => (reaper = null));
      r.stdin!.on("error", () => (reaper = null));
      r.unref();
      reaper = r;
    } catch {
      // no /bin/sh: the worker's own handlers are all there is
    }
  }
  reaper?.stdin?.write(`${op} ${child.pid}\n`);
}

// The worker's last moments: a normal exit, or ava's SIGTERM on a timeout or an interrupt. A
// process with handlers of its own (a bench script using these helpers) keeps its way of stopping;
// otherwise the signal is raised again, the handler gone, to end the process as it would have.
process.once("exit", killAll);
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  process.once(signal, () => {
    killAll();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

function track(child: ChildProcess): void {
  live.add(child);
  tellReaper("+", child);
  const untrack = () => {
    if (live.delete(child)) tellReaper("-", child);
  };
  child.once("exit", untrack);
  child.once("error", untrack);
}

/** Children of the test run carry the runner's mark, so that nothing escapes its check. */
function markedEnv(env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  const base = env ?? process.env;
  return process.env[RUN_MARK] === undefined ? base : { ...base, [RUN_MARK]: process.env[RUN_MARK] };
}

const describeCommand = (command: string, args: string[]) =>
  [command === process.execPath ? "node" : command, ...args].join(" ").replace(CLI, "alpaca").slice(0, 160);

// ─── Commands that finish ────────────────────────────────────────────────────────────────────

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** On a quiet machine (scaled by the load); then the command is killed and run() rejects. */
  timeoutMs?: number;
}

/** What spawnSync gives, without blocking (`code` is its `status`). */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, like spawnSync but asynchronous; rejects when it cannot start or overruns. */
export function run(command: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: o.cwd, env: markedEnv(o.env), detached: true, stdio: ["pipe", "pipe", "pipe"] });
    track(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdin.on("error", () => {}); // a command that does not read its input
    child.stdin.end(o.input);
    const limit = deadline(o.timeoutMs ?? 300_000);
    const watch = setInterval(() => {
      if (!limit.passed()) return;
      killGroup(child);
      reject(new Error(`${describeCommand(command, args)} did not finish in ${limit.describe()}:\n${stderr.slice(-2000)}`));
    }, 250);
    child.once("error", (e) => (clearInterval(watch), reject(e)));
    child.once("close", (code, signal) => (clearInterval(watch), resolve({ code, signal, stdout, stderr })));
  });
}

/** The project's CLI (`node dist/daemon/cli.js …`), run to its end. */
export function alpaca(args: string[], o: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], o);
}

// ─── Processes that stay up ──────────────────────────────────────────────────────────────────

/** What t.teardown is to an ava test (hooks and helpers may pass their own). */
export interface Owner {
  teardown(fn: () => unknown): void;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdin of the child: closed by default. */
  stdin?: "ignore" | "pipe";
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A started process: its output so far, its exit, and ways to wait for it and to end it. */
export class TestProcess {
  stdout = "";
  stderr = "";
  /** stdout and stderr in arrival order. */
  output = "";
  readonly exited: Promise<Exit>;
  private exit?: Exit;

  constructor(
    readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.stdout?.setEncoding("utf8").on("data", (d: string) => ((this.stdout += d), (this.output += d)));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => ((this.stderr += d), (this.output += d)));
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve((this.exit = { code, signal })));
      child.once("error", (e) => {
        this.output += `\n${e.message}`;
        resolve((this.exit = { code: null, signal: null }));
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The exit code once it has exited (null while running or after a signal). */
  get exitCode(): number | null {
    return this.exit?.code ?? null;
  }

  /**
   * Resolves with the first match of `pattern` in the output (stdout and stderr). When the
   * process exits first or the deadline passes, the process is killed and the promise rejects
   * with what it printed.
   */
  async waitFor(pattern: RegExp | string, o: { what?: string; timeoutMs?: number } = {}): Promise<RegExpMatchArray> {
    const re = typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
    const limit = deadline(o.timeoutMs ?? 30_000);
    const what = o.what ?? `${re} from ${this.name}`;
    for (;;) {
      const m = this.output.match(re);
      if (m) return m;
      if (!this.running) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before ${what}:\n${this.output.slice(-3000)}`);
      if (limit.passed()) {
        await this.kill();
        throw new Error(`no ${what} after ${limit.describe()}; killed ${this.name}:\n${this.output.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends a signal to the process alone (not its group): what a user or a supervisor does. */
  signal(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILL to the process and everything it started; resolves once it is gone. */
  async kill(): Promise<Exit> {
    if (this.running) killGroup(this.child);
    return this.exited;
  }
}

/**
 * spawn() for helpers that own a process themselves (the Mosquitto fixture): a group of its own,
 * the run's mark, and killed when the worker exits; the helper must still end it in its teardown.
 */
export function spawnTracked(command: string, args: string[], o: StartOptions = {}): ChildProcess {
  const stdio: StdioOptions = [o.stdin ?? "ignore", "pipe", "pipe"];
  const child = spawn(command, args, { cwd: o.cwd, env: markedEnv(o.env), detached: true, stdio });
  track(child);
  return child;
}

/**
 * Starts a process that the test (or hook owner) outlives: killed with everything it started
 * when the owner tears down, whatever happened in between.
 */
export function start(owner: Owner, command: string, args: string[], o: StartOptions = {}): TestProcess {
  const p = new TestProcess(spawnTracked(command, args, o), describeCommand(command, args));
  owner.teardown(() => p.kill());
  return p;
}
