// The helpers every test starts processes with (test/helpers/process.ts): whatever happens to a
// test or to the worker running it — a failed assertion, a start that never comes, ava's timeout
// (SIGTERM), a kill -9 — nothing it started may outlive it, grandchildren included.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { waitFor } from "./helpers/daemon.js";
import { run, start, type Owner } from "./helpers/process.js";
import { ROOT } from "./helpers/shared.js";

const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readStatus(pid));
function readStatus(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return "State: Z (gone)";
  }
}

/** An owner whose teardowns the test runs itself, as ava would after a failed assertion. */
function owner(): Owner & { tearDown(): Promise<void> } {
  const fns: (() => unknown)[] = [];
  return { teardown: (fn) => fns.push(fn), tearDown: async () => void (await Promise.all(fns.map((fn) => fn()))) };
}

// A shell that starts a grandchild in the background and prints its pid: the grandchild is not
// the helper's child, only a member of its process group.
const WITH_GRANDCHILD = ["-c", "sleep 600 & echo grandchild $!; wait"];

test("teardown kills the process and what it started, as after a failed assertion", async (t) => {
  const o = owner();
  const p = start(o, "sh", WITH_GRANDCHILD);
  const grandchild = Number((await p.waitFor(/grandchild (\d+)/))[1]);
  t.true(alive(grandchild));
  await o.tearDown();
  t.like(await p.exited, { signal: "SIGKILL" });
  await waitFor(() => !alive(grandchild), 5000, "the grandchild gone");
  t.pass();
});

test("a start whose ready line never comes is killed before the error", async (t) => {
  const p = start(owner(), "sh", WITH_GRANDCHILD);
  const grandchild = Number((await p.waitFor(/grandchild (\d+)/))[1]);
  const error = await t.throwsAsync(p.waitFor(/listening on/, { what: "ready line", timeoutMs: 200 }));
  t.regex(error!.message, /^no ready line after [\d.]+ s .*; killed sh -c sleep 600/);
  t.false(p.running);
  await waitFor(() => !alive(grandchild), 5000, "the grandchild gone");
});

test("run() of a command that overruns rejects and kills it with its group", async (t) => {
  const error = await t.throwsAsync(run("sh", ["-c", "sleep 600 & echo $! >&2; wait"], { timeoutMs: 300 }));
  t.regex(error!.message, /^sh -c sleep 600 .* did not finish in [\d.]+ s/);
  const grandchild = Number(/\n(\d+)\s*$/.exec(error!.message)?.[1]);
  t.true(grandchild > 0, error!.message);
  await waitFor(() => !alive(grandchild), 5000, "the grandchild gone");
});

// A worker of its own that starts two processes with the helpers (one with a grandchild) and
// prints their pids, then waits to be ended.
const WORKER = `
import { start } from ${JSON.stringify(path.join(ROOT, "dist", "test", "helpers", "process.js"))};
const owner = { teardown() {} };
const a = start(owner, "sleep", ["600"]);
const b = start(owner, "sh", ${JSON.stringify(WITH_GRANDCHILD)});
const g = (await b.waitFor(/grandchild (\\d+)/))[1];
console.log("pids", a.pid, b.pid, g);
setInterval(() => {}, 1000);
`;

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  const how = signal === "SIGTERM" ? "stopped as ava's timeout stops it (SIGTERM)" : "killed outright (SIGKILL)";
  test(`a worker ${how} leaves nothing it started running`, async (t) => {
    const worker = start(t, process.execPath, ["--input-type=module", "-e", WORKER]);
    const pids = (await worker.waitFor(/pids (\d+) (\d+) (\d+)/, { what: "the worker's pids" })).slice(1).map(Number);
    t.true(pids.every(alive));
    worker.signal(signal);
    t.like(await worker.exited, { signal });
    await waitFor(() => !pids.some(alive), 5000, `${pids.filter(alive).join(", ")} gone`);
    t.pass();
  });
}
