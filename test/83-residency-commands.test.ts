// Residency through the commands, on an 8-layer synthetic model of 221 MiB with a 240 MiB
// budget: `alpaca plan` shows what stays and what streams, `alpaca bench --memory-limit` holds
// what serve would under that plan and reports the bytes read per token, and `alpaca serve` opens the model with
// the plan's residency, which `alpaca status` shows as the engine reports it.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SocketClient } from "../daemon/transports/socket.js";
import { writeSyntheticModel } from "../models/synthetic.js";
import { startServe } from "./helpers/daemon.js";
import { alpaca } from "./helpers/process.js";

const SHAPE = { name: "commands-8", dim: 2048, layers: 8, heads: 16, kvHeads: 16, ffn: 5632, vocab: 512, contextLength: 128, rmsEps: 1e-5, ropeTheta: 10000 };
const BUDGET = "240M";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-residency-cmd-"));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));
let written: Promise<string> | undefined;
const model = () =>
  (written ??= writeSyntheticModel(path.join(dir, "eight-layers.gguf"), { shape: SHAPE, type: "q4_0", fill: "random", seed: 5 }).then((m) => m.path));

test("plan --memory-limit: fits by streaming, with resident, locked and streamed bytes", async (t) => {
  const m = await model();
  const r = await alpaca(["plan", "--model", m, "--memory-limit", BUDGET, "--threads", "2"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^plan +fits \(streaming \d layers\)/m);
  t.regex(r.stdout, /^resident +[\d.]+ MiB: \d of 8 layers, locked [\d.]+ MiB; streamed [\d.]+ MiB per token \(\d layers\)/m);
  const plan = JSON.parse((await alpaca(["plan", "--model", m, "--memory-limit", BUDGET, "--threads", "2", "--json"])).stdout);
  t.like(plan, { fits: true, residency: { mode: "streaming", nLayer: 8 } });
  t.is(plan.budget.boundBy, "--memory-limit");
});

test("bench --memory-limit holds what serve would under the plan and reports the bytes read per token", async (t) => {
  const m = await model();
  const r = await alpaca(["bench", "--model", m, "--memory-limit", BUDGET, "-p", "8", "-n", "4", "--reps", "1", "--warmup", "0", "--threads", "2", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /^memory plan under 240\.00 MiB \(--memory-limit\): context 128 × 1, KV q8_0, estimate [\d.]+ MiB; streaming \d of 8 layers \([\d.]+ MiB read per token\)/m);
  const j = JSON.parse(r.stdout);
  // serve's shape when it streams: the whole trained context at q8_0, not just the benchmark's 12 tokens
  t.like(j.plan, { nCtx: 128, nSeq: 1, kvType: "q8_0" });
  t.true(j.plan.estimateBytes <= 240 * 2 ** 20);
  t.true(j.residency.managed);
  t.true(j.residency.streamed_layers.length >= 3);
  t.is(j.residency.streamed_passes, 5, "the prompt and four tokens");
  t.is(typeof j.readBytesPerToken, "number");
  t.is(j.memoryLimit, 240 * 2 ** 20);
  const bad = await alpaca(["bench", "--model", m, "--memory-limit", "lots"]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--memory-limit "lots" is not a size/);
  t.notRegex(bad.stderr, /\n\s+at /, "no stack trace");
  const tooSmall = await alpaca(["bench", "--model", m, "--memory-limit", "100M", "-p", "8", "-n", "4"]);
  t.is(tooSmall.code, 2);
  t.regex(tooSmall.stderr, /^alpaca: memory plan: does not fit: the weights .* cannot stay resident/);
});

test("serve opens the model with the plan's residency; status shows it", async (t) => {
  const m = await model();
  const d = await startServe(t, ["-m", m, "--threads", "2", "--memory-limit", BUDGET, "--no-pressure-watch"]);
  const socketPath = d.socketPath;
  t.regex(d.stderr, /plan: plan +fits \(streaming \d layers\)/);
  const client = await SocketClient.connect(socketPath);
  // One engine pass per token (no speculation), so that four tokens stream the layers four times.
  const final = await client.request({ op: "generate", prompt: "Once upon a time", max_tokens: 4, temperature: 0, speculate: false });
  client.close();
  t.is(final.status, "ok");
  const status = await alpaca(["status", "--socket", socketPath]);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /^weights resident [\d.]+ MiB, locked [\d.]+ MiB \(\d layers\), streamed [\d.]+ MiB per token \(\d layers\)$/m);
  const json = JSON.parse((await alpaca(["status", "--socket", socketPath, "--json"])).stdout);
  const r = json.plan.residency;
  t.like(r, { managed: true, locking_permitted: true });
  t.is(r.streamed_layers.length, json.plan.planned_stream_layers);
  t.true(r.streamed_passes >= 4, JSON.stringify(r));
  d.signal("SIGTERM");
  t.deepEqual(await d.exited, { code: 0, signal: null }, d.stderr);
});
