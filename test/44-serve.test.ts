// The real `alpaca serve` process: ask and status against it, and shutdown on SIGTERM with a
// final message for every client and exit code 0.
import test from "ava";
import fs from "node:fs";
import { SocketClient } from "../daemon/transports/socket.js";
import type { FinalMessage } from "../daemon/transports/socket.js";
import { runAlone, startServe, tempSocketPath, waitFor } from "./helpers/daemon.js";
import { alpaca } from "./helpers/process.js";
import { needShared, testNeeding } from "./helpers/shared.js";

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
