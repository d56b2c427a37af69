// Locates ../shared (fixtures every developer and CI have). A test that needs it and finds it
// missing skips with a loud reason, except under CI=true, where it fails: CI proves everything.
import fs from "node:fs";
import path from "node:path";
import type { ExecutionContext } from "ava";
import { projectRoot } from "../../daemon/native.js";

export const sharedDir = path.resolve(projectRoot(), "..", "shared");
export const sharedModel = (name: string) => path.join(sharedDir, "models", name);

/**
 * True when every file exists. Otherwise fails the test under CI=true, or marks it as
 * passed-with-warning and logs why, so nobody mistakes the skip for a pass.
 */
export function requireShared(t: ExecutionContext, files: string[]): boolean {
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length === 0) return true;
  const reason = `missing shared fixtures: ${missing.join(", ")}`;
  if (process.env.CI === "true") {
    t.fail(`${reason} (CI=true: fixtures are required)`);
  } else {
    console.warn(`\n*** SKIPPED ${t.title}: ${reason} ***\n`);
    t.log(`SKIPPED: ${reason}`);
    t.pass();
  }
  return false;
}
