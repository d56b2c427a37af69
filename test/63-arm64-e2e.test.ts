// The arm64 build end to end: Node for arm64 under qemu-aarch64 loads the cross-built addon and
// passes ../shared's golden check, once as a Pi 4 and once as a CPU with the dot product:
//   -cpu cortex-a72  ARMv8.0 like the Pi 4: qemu raises SIGILL on any SDOT/UDOT, so a pass proves
//                    that the code the Pi 4 runs never strays into the Pi 5's kernels
//   -cpu max         every extension qemu knows, dotprod included: the Pi 5's kernels
// Each run checks stories260K F32 and Q4_0 on all 16 golden prompts (tokenization, teacher-forced
// logits within 0.02 / 0.3, free-running greedy ids for F32). Measured under qemu on a 2-core
// x86-64: ≈6 min per CPU for these two files alone, ≈13 min each with both CPUs at once (the two
// runs share the cores), ≈14 min per CPU for the whole of ../shared (Q8_0 and the tokenizer
// vectors too), so CI runs the two files; ALPACA_ARM64_GOLDEN=full runs everything.
// The tokenizer vectors are left out of the quick form: the tokenizers hold no SIMD code, and the
// 32 golden prompts (UTF-8 and emoji among them) still go through them on arm64.
import test from "ava";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CLI, ROOT, SHARED, needShared, testNeeding } from "./helpers/shared.js";
import { needTools, runScript, scratchDir } from "./helpers/pi.js";

const SYSROOT = "/usr/aarch64-linux-gnu";
const FULL = process.env.ALPACA_ARM64_GOLDEN === "full";
const need = () => needTools("aarch64-linux-gnu-g++", "qemu-aarch64")() ?? needShared() ??
  (fs.existsSync(path.join(SYSROOT, "lib", "ld-linux-aarch64.so.1")) ? null : `no arm64 runtime in ${SYSROOT} (apt-get install g++-aarch64-linux-gnu)`);

// Built (or brought up to date: make rebuilds only what changed) once for both runs.
let built: { addon: string; node: string } | undefined;
function arm64Build() {
  built ??= { addon: runScript("cross/build-addon-arm64.sh"), node: path.join(runScript("cross/node-arm64.sh"), "bin", "node") };
  return built;
}

/** The golden files the quick form checks, in a folder of their own. */
function goldenDirs(): [string, string] {
  if (FULL) return [path.join(SHARED, "golden"), path.join(SHARED, "vocab")];
  const dir = scratchDir("alpaca-63-golden-");
  fs.mkdirSync(path.join(dir, "golden"));
  fs.mkdirSync(path.join(dir, "vocab"));
  for (const f of ["stories260K-f32.json", "stories260K-q4_0.json"]) fs.copyFileSync(path.join(SHARED, "golden", f), path.join(dir, "golden", f));
  return [path.join(dir, "golden"), path.join(dir, "vocab")];
}

function golden(cpu: string, env: NodeJS.ProcessEnv, dirs: string[]): Promise<{ code: number | null; out: string; seconds: number }> {
  const { addon, node } = arm64Build();
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(SHARED, "tools", "golden-check.mjs"), ...dirs], {
      cwd: ROOT,
      env: { ...process.env, ...env, ALPACA: `qemu-aarch64 -cpu ${cpu} -L ${SYSROOT} ${node} ${CLI}`, ALPACA_ADDON: addon },
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => resolve({ code, out, seconds: (Date.now() - started) / 1000 }));
  });
}

testNeeding(test, need, "the cross-built addon is an aarch64 ELF that Node for arm64 loads under qemu", (t) => {
  const { addon, node } = arm64Build();
  const header = fs.readFileSync(addon).subarray(0, 20);
  t.is(header.readUInt16LE(18), 183, "e_machine must be EM_AARCH64");
  const r = spawnSync("qemu-aarch64", ["-cpu", "cortex-a72", "-L", SYSROOT, node, "-e",
    "const a = require(process.argv[1]); console.log(process.arch, typeof a.readGguf)", addon], { encoding: "utf8" });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), "arm64 function");
});

// Which kernels the addon picks is what each CPU's golden run below exercises: the Pi 4's plain
// NEON under cortex-a72, the dot-product kernels under max.
for (const [cpu, expected] of [["cortex-a72", "neon"], ["max", "neon-dotprod"]]) {
  testNeeding(test, need, `under qemu-aarch64 -cpu ${cpu} the engine runs the ${expected} kernels`, (t) => {
    const { addon, node } = arm64Build();
    const r = spawnSync("qemu-aarch64", ["-cpu", cpu, "-L", SYSROOT, node, CLI, "info", "--json", "-m", path.join(SHARED, "models", "stories260K-q4_0.gguf")],
      { encoding: "utf8", env: { ...process.env, ALPACA_ADDON: addon } });
    t.is(r.status, 0, r.stderr);
    const kernels = (JSON.parse(r.stdout) as { kernels: Record<string, string> }).kernels;
    t.is(kernels.q4_0, expected);
    t.is(kernels.f32, "neon");
  });
}

for (const cpu of ["cortex-a72", "max"]) {
  testNeeding(test, need, `golden check under qemu-aarch64 -cpu ${cpu}${FULL ? " (everything in ../shared)" : " (F32 and Q4_0, every prompt)"}`, async (t) => {
    t.timeout(60 * 60_000);
    const r = await golden(cpu, {}, goldenDirs());
    t.log(`${r.seconds.toFixed(0)} s under qemu -cpu ${cpu}`);
    t.log(r.out.trim().split("\n").slice(-4).join("\n"));
    t.is(r.code, 0, r.out.slice(-2000));
    t.regex(r.out, / 0 failed/);
    t.regex(r.out, /stories260K-f32\.json: tokenize 16\/16, teacher-forced 16\/16/);
    t.regex(r.out, /stories260K-q4_0\.json: tokenize 16\/16, teacher-forced 16\/16/);
  });
}
