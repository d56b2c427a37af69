// Short runs of bench/fuzz-protocol.mjs (random and mutated requests over the socket and MQTT)
// and bench/soak.mjs (requests in a row with random options and cancels), against a daemon in a
// process of its own: it stays up, every well-formed request gets exactly one final message, and
// its memory and KV cache come back to their baseline.
import test from "ava";
import path from "node:path";
import { needMosquitto } from "./helpers/mosquitto.js";
import { run, scaled } from "./helpers/process.js";
import { needShared, ROOT, testNeeding } from "./helpers/shared.js";

const runBench = (script: string, args: string[]) =>
  run(process.execPath, [path.join(ROOT, "bench", script), ...args, "--json"], { cwd: ROOT, timeoutMs: 200_000 });

const needBoth = () => needShared() ?? needMosquitto();

testNeeding(test, needBoth, "3,000 random and mutated requests over the socket and MQTT: one final per well-formed request, no crash", async (t) => {
  t.timeout(scaled(240_000));
  const r = await runBench("fuzz-protocol.mjs", ["--messages", "3000", "--mqtt-share", "0.3", "--seed", "95"]);
  t.is(r.code, 0, r.stderr + r.stdout);
  const s = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number | string[]>;
  t.is(s.messages, 3000);
  t.true((s.well_formed as number) > 1000);
  t.deepEqual(s.first_violations, []);
  t.is(s.violations, 0);
  t.log(`daemon RSS ${s.rss_before} -> ${s.rss_after} bytes`);
  t.true((s.rss_after as number) < (s.rss_before as number) + 128 * 2 ** 20, "RSS stays bounded");
});

testNeeding(test, needShared, "200 requests with random options, cancels and vanishing clients: KV and RSS back to baseline", async (t) => {
  t.timeout(scaled(240_000));
  const r = await runBench("soak.mjs", ["--requests", "200", "--seed", "95"]);
  t.is(r.code, 0, r.stderr + r.stdout);
  const s = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number | string[]>;
  t.deepEqual(s.problems, []);
  t.is((s.ok as number) + (s.error as number) + (s.vanished as number), 200);
  t.true((s.cancelled as number) > 0, "some generations were cancelled");
  t.true((s.kv_used_cells_after as number) <= (s.kv_total_cells as number));
});
