// SIMD kernels against the scalar references, on this machine and on both Raspberry Pi CPUs.
// native/tools/kernel_check (a plain C++ program) compares every kernel set the CPU runs with
// the scalar dot products and quantizer, and the threaded matmul with a naive loop. The arm64
// build runs under qemu twice: as a Cortex-A72 (Pi 4: any SDOT outside the dotprod set would die
// with SIGILL) and as `max` (dotprod, standing in for the Pi 5's A76). Without the cross compiler
// or qemu those two skip with the reason, except under CI=true, where they fail.
import test, { type ExecutionContext } from "ava";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { run as runCommand } from "./helpers/process.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const IN_CI = process.env.CI === "true";

interface Run { code: number | null; signal: string | null; text: string }

async function run(file: string, args: string[]): Promise<Run> {
  const r = await runCommand(file, args, { cwd: ROOT, timeoutMs: 20 * 60_000 });
  return { code: r.code, signal: r.signal, text: `${r.stdout}${r.stderr}` };
}

const onPath = (program: string) => spawnSync("sh", ["-c", `command -v ${program}`]).status === 0;

/** Missing tools for the arm64 runs, or null. Decided when the file loads, so a skip is a real skip. */
function missingCrossTools(): string | null {
  const missing: string[] = [];
  if (!onPath("aarch64-linux-gnu-g++")) missing.push("aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)");
  if (!onPath("qemu-aarch64")) missing.push("qemu-aarch64 (apt-get install qemu-user)");
  return missing.length ? `missing ${missing.join(" and ")}` : null;
}
const crossToolsMissing = missingCrossTools();

let crossBuild: Promise<Run> | undefined;
const buildCross = () => (crossBuild ??= run(path.join(ROOT, "cross", "build-kernel-check.sh"), ["aarch64"]));

function expectAllPassed(t: ExecutionContext, r: Run) {
  t.log(r.text.trim());
  t.is(r.signal, null, `killed by ${r.signal}`);
  t.regex(r.text, /^\d+ passed, 0 failed$/m);
  t.is(r.code, 0);
}

test("kernel_check on this machine: every SIMD set it runs equals the scalar reference", async (t) => {
  const build = await run(path.join(ROOT, "cross", "build-kernel-check.sh"), ["native"]);
  t.is(build.code, 0, build.text);
  const check = await run(build.text.trim().split("\n").pop()!, []);
  expectAllPassed(t, check);
  if (process.arch === "x64") t.regex(check.text, /set avx2: (checking|not run)/);
});

/** Registers a qemu run; without the tools it skips with the reason, or fails under CI=true. */
function qemuTest(title: string, cpu: string, expectations: RegExp[]) {
  if (crossToolsMissing === null) return test(title, (t) => qemuCheck(t, cpu, expectations));
  if (IN_CI) return test(title, (t) => t.fail(`CI=true but ${crossToolsMissing}`));
  process.stderr.write(`\n  SKIPPED "${title}": ${crossToolsMissing}\n`);
  return test.skip(title, () => {});
}

async function qemuCheck(t: ExecutionContext, cpu: string, expectations: RegExp[]) {
  const build = await buildCross();
  t.is(build.code, 0, build.text);
  if (build.code !== 0) return;
  const check = await run(path.join(ROOT, "cross", "run-kernel-check.sh"), [cpu]);
  expectAllPassed(t, check);
  for (const e of expectations) t.regex(check.text, e);
}

// kernel_check checks whatever the tables hold; these lines of its table (every compiled set, run
// or not) hold the arm64 sets to the types that have decode and panel kernels for both Pi CPUs,
// so that an entry dropped from a table fails here instead of falling back to a slower set unnoticed.
const ARM_PANEL_TYPES = ["q4_0", "q4_1", "q8_0", "q4_K", "q5_K", "q6_K"];
const armTable = ARM_PANEL_TYPES.map(
  (type) => new RegExp(`^table ${type}\\s+neon-dotprod:dot\\+rows\\+panel\\s+neon:dot\\+rows\\+panel`, "m"));

qemuTest("kernel_check as a Cortex-A72 (Pi 4, no SDOT) under qemu", "cortex-a72",
  [/neon-dotprod=0/, /set neon: checking/, /set neon-sdot-emulated: checking/, /set neon-dotprod: not run/, ...armTable]);

qemuTest("kernel_check with dotprod (Pi 5 stand-in, qemu -cpu max) under qemu", "max",
  [/neon-dotprod=1/, /set neon-dotprod: checking/, /set neon: checking/, /set neon-sdot-emulated: checking/, ...armTable]);
