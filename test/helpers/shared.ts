// Locating ../shared (fixtures beside the project) and the rule for tests that need something
// the machine may lack: skip loudly on a user's machine, fail under CI=true.
import fs from "node:fs";
import path from "node:path";
import type { ExecutionContext, TestFn } from "ava";
import { projectRoot } from "../../daemon/engine/native.js";

export const ROOT = projectRoot();
export const SHARED = path.resolve(ROOT, "..", "shared");
export const CLI = path.join(ROOT, "dist", "daemon", "cli.js");
export const IN_CI = process.env.CI === "true";
/** The environment variable that marks every process of one test run (test/runner.ts). */
export const RUN_MARK = "ALPACA_TEST_RUN";

export const sharedModel = (name: string) => path.join(SHARED, "models", name);
export const hasShared = () => fs.existsSync(path.join(SHARED, "models", "stories260K-f32.gguf"));

/** Registers a test that needs `need()`; without it the test skips with the reason, or fails in CI. */
export function testNeeding(test: TestFn, need: () => string | null, title: string, fn: (t: ExecutionContext) => unknown) {
  const missing = need();
  if (missing === null) return test(title, fn);
  if (IN_CI) return test(title, (t) => t.fail(`CI=true but ${missing}`));
  process.stderr.write(`\n  SKIPPED "${title}": ${missing}\n`);
  return test.skip(title, () => {});
}

export const needShared = () => (hasShared() ? null : `../shared fixtures are missing (looked in ${SHARED})`);
