// The real `alpaca serve` process: ask and status against it, shutdown on SIGTERM with a final
// message for every client and exit code 0, a busy socket refused before the model is read, and
// the README's `npm start -- --model …` stopped by SIGTERM to npm.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SocketClient } from "../daemon/transports/socket.js";
import type { FinalMessage } from "../daemon/transports/socket.js";
import { writeSyntheticModel } from "../models/synthetic.js";
import { runAlone, startServe, STORIES, tempSocketPath, waitFor } from "./helpers/daemon.js";
import { which } from "./helpers/pi.js";
import { alpaca, scaled, start } from "./helpers/process.js";
import { CLI, needShared, ROOT, testNeeding } from "./helpers/shared.js";

testNeeding(test, needShared, "ask streams what run gives alone; --json prints the final; status describes the daemon", async (t) => {
  const d = await startServe(t);
  const expected = (await runAlone("Once upon a time", 40)).text;
  const ask = await alpaca(["ask", "--socket", d.socketPath, "Once upon a time", "-n", "40", "--temp", "0"]);
  t.is(ask.code, 0, ask.stderr);
  t.is(ask.stdout, `${expected}\n`);
  const json = await alpaca(["ask", "--socket", d.socketPath, "Once upon a time", "-n", "40", "--temp", "0", "--json"]);
  const final = JSON.parse(json.stdout);
  t.like(final, { status: "ok", data: { text: expected, stop_reason: "length", usage: { completion_tokens: 40 } } });
  const instruction = await alpaca(["ask", "--socket", d.socketPath, "--instruction", "Tell a story", "-n", "5", "--json"]);
  t.is(JSON.parse(instruction.stdout).data.usage.completion_tokens, 5);
  const tooLong = await alpaca(["ask", "--socket", d.socketPath, "Once upon a time", "-n", "100000"]);
  t.is(tooLong.code, 2);
  t.regex(tooLong.stderr, /^alpaca: bad_request: max_tokens must be from 1/);

  const status = await alpaca(["status", "--socket", d.socketPath]);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /^alpaca \S+ \(api 1\)/);
  t.regex(status.stdout, /queue\s+0 running, 0 queued \(max 32\)/);
  t.regex(status.stdout, /memory\s+RSS/);
  const statusJson = JSON.parse((await alpaca(["status", "--socket", d.socketPath, "--json"])).stdout);
  t.is(statusJson.api_version, 1);
  t.true(statusJson.totals.generated_tokens >= 85);
  t.notRegex(d.stderr, /Once upon a time|little girl/, "no prompts or answers in the log at the default level");
  d.signal("SIGTERM");
  t.deepEqual(await d.exited, { code: 0, signal: null }, d.stderr);
});

testNeeding(test, needShared, "ask and status without a daemon say where they looked, exit 2", async (t) => {
  const p = tempSocketPath();
  const r = await alpaca(["ask", "--socket", p, "hi"]);
  t.is(r.code, 2);
  t.true(r.stderr.includes(`cannot reach the daemon at ${p}: no such socket`), r.stderr);
  t.is((await alpaca(["status", "--socket", p])).code, 2);
});

async function shutdownDuringGeneration(t: import("ava").ExecutionContext, grace: string) {
  // No pressure watch: a busy host (PSI is machine-wide in a container) would run one at a time.
  const d = await startServe(t, ["--ctx", "1024", "--parallel", "2", "--grace", grace, "--no-pressure-watch"]);
  const clients = await Promise.all(Array.from({ length: 6 }, () => SocketClient.connect(d.socketPath)));
  const started = new Set<number>();
  const finals: FinalMessage[][] = clients.map(() => []);
  const done = clients.map((c, i) =>
    c
      .request({ op: "generate", prompt: "Once upon a time", max_tokens: 400, temperature: 0 }, () => started.add(i))
      .then((m) => finals[i].push(m)),
  );
  await waitFor(() => started.size === 2 || !d.running, 20_000, "both slots generating");
  d.signal("SIGTERM");
  await Promise.all(done);
  t.deepEqual(await d.exited, { code: 0, signal: null }, d.stderr);
  await new Promise((r) => setTimeout(r, 50)); // nothing more arrives after the final
  t.true(finals.every((f) => f.length === 1), "every client gets exactly one final message");
  t.false(fs.existsSync(d.socketPath), "the socket file is removed");
  t.regex(d.stderr, /SIGTERM: shutting down/);
  return finals.map((f) => f[0]);
}

testNeeding(test, needShared, "SIGTERM: running requests finish within the grace period, queued ones get shutting_down, exit 0", async (t) => {
  const finals = await shutdownDuringGeneration(t, "10");
  const ok = finals.filter((m) => m.status === "ok");
  const shut = finals.filter((m) => m.status === "error" && m.error.code === "shutting_down");
  t.is(ok.length, 2, "the two running requests finish");
  t.true(ok.every((m) => m.status === "ok" && (m.data as { stop_reason: string }).stop_reason === "length"));
  t.is(shut.length, 4, "the queued ones are refused");
});

testNeeding(test, needShared, "SIGTERM with no grace: running requests end with shutting_down too, exit 0", async (t) => {
  const finals = await shutdownDuringGeneration(t, "0");
  t.true(finals.every((m) => m.status === "error" && m.error.code === "shutting_down"), JSON.stringify(finals));
});

testNeeding(test, needShared, "ask - and ask without a prompt read it from stdin; an empty prompt is refused", async (t) => {
  const d = await startServe(t);
  const expected = `${(await runAlone("Once upon a time", 8)).text}\n`;
  const ask = (args: string[], input: string) => alpaca(["ask", "--socket", d.socketPath, "-n", "8", "--temp", "0", ...args], { input });
  const dash = await ask(["-"], "Once upon a time\n");
  t.is(dash.code, 0, dash.stderr);
  t.is(dash.stdout, expected, "the newline echo adds is not part of the prompt");
  const none = await ask([], "Once upon a time");
  t.is(none.code, 0, none.stderr);
  t.is(none.stdout, expected);
  const empty = await ask(["-"], "\n");
  t.is(empty.code, 2);
  t.is(empty.stderr, "alpaca: the prompt read from stdin is empty\n");
  const emptyArg = await ask([""], "");
  t.is(emptyArg.code, 2);
  t.is(emptyArg.stderr, "alpaca: the prompt is empty\n");
});

// A supervisor may stop a daemon that is still starting (npm passes its SIGTERM on at once): a
// signal between the memory plan and the socket listening must not kill it outright with its
// socket left behind. It is handled once the daemon is up, which then stops as usual.
testNeeding(test, needShared, "SIGTERM while serve starts (after its plan, before it listens): exit 0, no socket left", async (t) => {
  const socketPath = tempSocketPath();
  const d = start(t, process.execPath, [CLI, "serve", "-m", STORIES(), "--socket", socketPath, "--threads", "1"]);
  await d.waitFor(/plan: plan /, { what: "the memory plan from alpaca serve" });
  d.signal("SIGTERM");
  t.deepEqual(await d.exited, { code: 0, signal: null }, d.stderr);
  t.regex(d.stderr, /SIGTERM: shutting down\n[^]*stopped\n$/);
  t.false(fs.existsSync(socketPath), "no socket left");
});

// A second daemon on the same socket must be told before it spends minutes reading a 7B model
// from an SD card: the socket is checked first, so even a 3.5 GiB file is refused at once.
testNeeding(test, needShared, "a second serve on a busy socket or HTTP port is refused before the model is read (a 7B-shaped file, in under a second)", async (t) => {
  const model = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-44-7b-")), "7b-q4_0.gguf");
  t.teardown(() => fs.rmSync(path.dirname(model), { recursive: true, force: true }));
  await writeSyntheticModel(model, { shape: "7b", type: "q4_0", fill: "sparse" });
  const first = await startServe(t, ["--http", "127.0.0.1:0"]);
  const port = (await first.waitFor(/http: listening on http:\/\/127\.0\.0\.1:(\d+)/))[1];
  for (const [args, refusal] of [
    [["--socket", first.socketPath], `another daemon is listening on ${first.socketPath}`],
    [["--socket", tempSocketPath(), "--http", `127.0.0.1:${port}`], `--http 127.0.0.1:${port}: cannot listen: the port is taken (another alpaca or Ollama?)`],
  ] as const) {
    const started = performance.now();
    const second = await alpaca(["serve", "-m", model, "--threads", "1", ...args], { timeoutMs: 60_000 });
    const ms = performance.now() - started;
    t.is(second.code, 2, second.stderr);
    // One line and nothing before it: no memory plan, no model loaded.
    t.is(second.stderr, `alpaca: ${refusal}\n`);
    t.log(`refused in ${ms.toFixed(0)} ms (load ${os.loadavg()[0].toFixed(1)}): ${refusal}`);
    t.true(ms < scaled(1000), `${ms.toFixed(0)} ms`);
  }
  t.true(first.running, "the first daemon serves on");
  t.true(fs.existsSync(first.socketPath));
});

// The README's command, as a user or a supervisor runs and stops it: SIGTERM goes to npm, and
// the daemon (exec'd by the start script, so npm's own child) must get it and stop cleanly.
const needNpm = () => (which("npm") ? null : "npm is not on the PATH");
testNeeding(test, () => needShared() ?? needNpm(), "npm start -- --model …: SIGTERM to npm stops the daemon within the grace period and removes its socket", async (t) => {
  const socketPath = tempSocketPath();
  const npm = start(t, "npm", ["start", "--", "--model", STORIES(), "--socket", socketPath, "--threads", "1", "--grace", "5"], { cwd: ROOT });
  await npm.waitFor(`listening on ${socketPath}`, { what: "the daemon listening" });
  const daemon = childrenOf(npm.pid);
  t.is(daemon.length, 1, "npm runs the daemon itself, with no shell between");
  t.regex(fs.readFileSync(`/proc/${daemon[0]}/cmdline`, "utf8"), /dist\/daemon\/cli\.js\0serve\0/);
  npm.signal("SIGTERM");
  const exit = await npm.exited;
  t.is(exit.code, 0, npm.output);
  await waitFor(() => !fs.existsSync(`/proc/${daemon[0]}`), 5000, "the daemon gone");
  t.false(fs.existsSync(socketPath), "the socket is removed");
  t.regex(npm.output, /SIGTERM: shutting down/);
  t.regex(npm.output, /stopped/);
});

/** The pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}
