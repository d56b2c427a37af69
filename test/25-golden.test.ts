// The engine against llama.cpp's reference outputs (../shared/golden, ../shared/vocab), through the
// CLI exactly as ../shared/tools/golden-check.mjs drives it, with the default thread count.
import test from "ava";
import { spawn } from "node:child_process";
import path from "node:path";
import { CLI, ROOT, SHARED, needShared, testNeeding } from "./helpers/shared.js";

testNeeding(test, needShared, "golden check: 0 failed", async (t) => {
  const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn(process.execPath, [path.join(SHARED, "tools", "golden-check.mjs")], {
      cwd: ROOT,
      env: { ...process.env, ALPACA: `${process.execPath} ${CLI}` },
    });
    let text = "";
    child.stdout.on("data", (d) => (text += d));
    child.stderr.on("data", (d) => (text += d));
    child.on("close", (code) => resolve({ code, text }));
  });
  t.log(out.text.trim());
  t.regex(out.text, /^\d+ passed, 0 failed$/m);
  t.is(out.code, 0);
});
