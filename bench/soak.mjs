#!/usr/bin/env node
// Soak run: many generate requests in a row over the Unix socket with random options, some
// cancelled at a random point, some clients vanishing mid-stream. Afterwards the daemon's RSS and
// KV cells in use must come back to their baseline (measured after a warm-up with the same mix).
// Usage: node bench/soak.mjs [--requests 2000] [--seed 1] [--json]   (needs `npm run build`)
import { SocketClient } from "../dist/daemon/transports/socket.js";
import { mib, parseArgs, rng, startBenchDaemon } from "./bench-daemon.mjs";

const o = parseArgs({ requests: 2000, seed: 1, json: false, "rss-slack-mib": 16 });
const r = rng(o.seed);
const PROMPTS = ["Once upon a time", "Lily and Ben went to the park", "The little dog", "One day, a girl named Sue", "Tom had a red ball."];

function randomRequest() {
  const m = { op: "generate", prompt: r.pick(PROMPTS), max_tokens: r.int(1, 100), stream: r.chance(0.7) };
  if (r.chance(0.7)) m.temperature = r.pick([0, 0.3, 0.8, 1.5]);
  if (r.chance(0.4)) m.top_k = r.int(1, 80);
  if (r.chance(0.4)) m.top_p = r.pick([0.5, 0.9, 1]);
  if (r.chance(0.3)) m.min_p = r.pick([0, 0.05, 0.2]);
  if (r.chance(0.2)) m.repeat_penalty = r.pick([1, 1.1, 1.3]);
  if (r.chance(0.5)) m.seed = r.int(0, 1e9);
  if (r.chance(0.2)) m.stop = [r.pick([".", "the", "\n"])];
  return m;
}

let counts;
const resetCounts = () => (counts = { ok: 0, cancelled: 0, error: 0, vanished: 0, byStop: {}, errors: {} });
resetCounts();

/** One request; cancelled after a random number of chunks, or its client gone mid-stream. */
async function one(client, socketPath, i) {
  const body = randomRequest();
  const fate = r.next();
  if (fate < 0.05) {
    // A client that disconnects mid-generation: the daemon must free its slot.
    const c = await SocketClient.connect(socketPath);
    await new Promise((resolve) => {
      c.request({ ...body, stream: true, max_tokens: 100, transaction: `v${i}` }, () => c.socket.destroy()).then(() => c.socket.destroy());
      c.socket.once("close", resolve);
    });
    counts.vanished++;
    return;
  }
  const cancelAfter = fate < 0.25 ? r.int(0, 5) : -1;
  let chunks = 0;
  const transaction = `t${i}`;
  const done = client.request({ ...body, stream: body.stream || cancelAfter >= 0, transaction }, () => {
    if (chunks++ === cancelAfter) client.request({ op: "cancel", target: transaction });
  });
  if (cancelAfter === 0 && r.chance(0.5)) client.request({ op: "cancel", target: transaction }); // before any token
  const final = await done;
  if (final.status === "ok") {
    counts.ok++;
    counts.byStop[final.data.stop_reason] = (counts.byStop[final.data.stop_reason] ?? 0) + 1;
    if (final.data.stop_reason === "cancelled") counts.cancelled++;
  } else {
    counts.error++;
    counts.errors[final.error.code] = (counts.errors[final.error.code] ?? 0) + 1;
  }
}

const daemon = await startBenchDaemon();
try {
  const client = await SocketClient.connect(daemon.socketPath);
  for (let i = 0; i < 40; i++) await one(client, daemon.socketPath, -i - 1); // warm-up: same mix
  await new Promise((resolve) => setTimeout(resolve, 300));
  const before = await daemon.status();
  resetCounts();
  const started = Date.now();
  // Mostly one at a time ("in a row"), sometimes up to four at once to exercise the batch path.
  for (let i = 0; i < o.requests; ) {
    const n = Math.min(r.chance(0.2) ? r.int(2, 4) : 1, o.requests - i);
    await Promise.all(Array.from({ length: n }, (_, k) => one(client, daemon.socketPath, i + k)));
    i += n;
  }
  client.close();
  await new Promise((resolve) => setTimeout(resolve, 300)); // vanished clients' cancels land
  const after = await daemon.status();
  const kvTotal = 128 * 4;
  const problems = [];
  if (after.kvUsedCells > kvTotal) problems.push(`KV cells ${after.kvUsedCells} exceed the cache (${kvTotal})`);
  if (after.rss > before.rss + o["rss-slack-mib"] * 2 ** 20) problems.push(`RSS grew by ${mib(after.rss - before.rss)}`);
  if (after.clients !== 1) problems.push(`${after.clients} clients still open (only the status connection should be)`);
  if (counts.ok + counts.error + counts.vanished !== o.requests) problems.push(`${o.requests} requests but ${counts.ok + counts.error + counts.vanished} answers`);
  if (daemon.exit()) problems.push(`the daemon exited: ${JSON.stringify(daemon.exit())}`);
  const summary = {
    requests: o.requests, ...counts, seconds: (Date.now() - started) / 1000,
    rss_before: before.rss, rss_after: after.rss, heap_before: before.heapUsed, heap_after: after.heapUsed,
    kv_used_cells_before: before.kvUsedCells, kv_used_cells_after: after.kvUsedCells, kv_total_cells: kvTotal, problems,
  };
  if (o.json) console.log(JSON.stringify(summary));
  else {
    console.log(`${o.requests} requests in ${summary.seconds} s: ${counts.ok} ok (${JSON.stringify(counts.byStop)}), ${counts.error} errors ${JSON.stringify(counts.errors)}, ${counts.vanished} clients vanished mid-stream`);
    console.log(`daemon RSS ${mib(before.rss)} -> ${mib(after.rss)}, heap ${mib(before.heapUsed)} -> ${mib(after.heapUsed)}, KV cells ${before.kvUsedCells} -> ${after.kvUsedCells} of ${kvTotal}`);
    console.log(problems.length ? `problems:\n  ${problems.join("\n  ")}` : "no problems");
  }
  process.exitCode = problems.length ? 1 : 0;
} finally {
  await daemon.stop();
}
