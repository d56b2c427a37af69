// Tools the Pi tests need (systemd-analyze, the aarch64 cross compiler, qemu-user) and how to find
// them; a missing one skips the test loudly, or fails it under CI=true (testNeeding).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { run } from "./process.js";
import { ROOT } from "./shared.js";

export function which(cmd: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

export const needTools = (...cmds: string[]) => () => {
  const missing = cmds.filter((c) => !which(c));
  return missing.length === 0 ? null : `${missing.join(", ")} not installed (apt-get install g++-aarch64-linux-gnu qemu-user systemd)`;
};

/** Runs a project script and returns its last stdout line (the path it prints); throws with its stderr. */
export async function runScript(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(path.join(ROOT, script), args, { cwd: ROOT, env: { ...process.env, ...env }, timeoutMs: 30 * 60_000 });
  if (r.code !== 0) throw new Error(`${script} ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout.trim().split("\n").pop() ?? "";
}

export function scratchDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
