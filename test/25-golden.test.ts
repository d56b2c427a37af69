// The engine against llama.cpp's reference outputs (../shared/golden, ../shared/vocab), through the
// CLI exactly as ../shared/tools/golden-check.mjs drives it, with the default thread count.
import test from "ava";
import path from "node:path";
import { run, scaled } from "./helpers/process.js";
import { CLI, ROOT, SHARED, needShared, testNeeding } from "./helpers/shared.js";

/** golden-check's limit on a quiet machine (it takes about a minute there). */
const TIMEOUT_MS = 15 * 60_000;

testNeeding(test, needShared, "golden check: 0 failed", async (t) => {
  t.timeout(scaled(TIMEOUT_MS) + 60_000); // run() stops it first, with what it printed
  const r = await run(process.execPath, [path.join(SHARED, "tools", "golden-check.mjs")], {
    cwd: ROOT,
    env: { ...process.env, ALPACA: `${process.execPath} ${CLI}` },
    timeoutMs: TIMEOUT_MS,
  });
  t.log((r.stdout + r.stderr).trim());
  t.regex(r.stdout, /^\d+ passed, 0 failed$/m);
  t.is(r.code, 0, r.stderr);
});
