// The arm64 build end to end: Node for arm64 under qemu-aarch64 loads the cross-built addon and
// passes ../shared's golden check, once as a Pi 4 and once as a CPU with the dot product:
//   -cpu cortex-a72  ARMv8.0 like the Pi 4: qemu raises SIGILL on any SDOT/UDOT, so a pass proves
//                    that the code the Pi 4 runs never strays into the Pi 5's kernels
//   -cpu max         every extension qemu knows, dotprod included: the Pi 5's kernels
// Everything under qemu is slow (a CLI start alone takes seconds), so `npm test` checks a sample:
// golden-check's GOLDEN_QUICK form (3 prompts of every golden file: tokenization, teacher-forced
// logits, free-running greedy ids for F32), without the tokenizer vectors (the tokenizers hold no
// SIMD code, and the sampled prompts still go through them on arm64). `npm run test:arm64`
// (ALPACA_ARM64_GOLDEN=full) checks every prompt and every vector: ≈14 min per CPU on a quiet
// 2-core x86-64 for stories260K alone, ≈28 min with both CPUs at once.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { run, scaled } from "./helpers/process.js";
import { CLI, ROOT, SHARED, needShared, testNeeding } from "./helpers/shared.js";
import { needTools, runScript, scratchDir } from "./helpers/pi.js";

const SYSROOT = "/usr/aarch64-linux-gnu";
const FULL = process.env.ALPACA_ARM64_GOLDEN === "full";
const need = () => needTools("aarch64-linux-gnu-g++", "qemu-aarch64")() ?? needShared() ??
  (fs.existsSync(path.join(SYSROOT, "lib", "ld-linux-aarch64.so.1")) ? null : `no arm64 runtime in ${SYSROOT} (apt-get install g++-aarch64-linux-gnu)`);

/** The golden sets checked on arm64: a folder of golden files and the folder of their vocabularies. */
const GOLDEN_SETS: { golden: string; vocab: string }[] = [{ golden: "golden", vocab: "vocab" }];

// Built (or brought up to date: make rebuilds only what changed) once for every test here.
let built: Promise<{ addon: string; node: string }> | undefined;
function arm64Build() {
  built ??= (async () => ({
    addon: await runScript("cross/build-addon-arm64.sh"),
    node: path.join(await runScript("cross/node-arm64.sh"), "bin", "node"),
  }))();
  return built;
}

const qemu = (cpu: string, node: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  run("qemu-aarch64", ["-cpu", cpu, "-L", SYSROOT, node, ...args], { env: { ...process.env, ...env } });

/** golden-check over one set under qemu; the quick form leaves the tokenizer vectors out. */
async function golden(cpu: string, set: { golden: string; vocab: string }) {
  const { addon, node } = await arm64Build();
  const vocab = FULL ? path.join(SHARED, set.vocab) : scratchDir("alpaca-63-no-vectors-");
  const started = Date.now();
  const r = await run(process.execPath, [path.join(SHARED, "tools", "golden-check.mjs"), path.join(SHARED, set.golden), vocab], {
    cwd: ROOT,
    env: { ...process.env, ALPACA: `qemu-aarch64 -cpu ${cpu} -L ${SYSROOT} ${node} ${CLI}`, ALPACA_ADDON: addon, GOLDEN_QUICK: FULL ? "" : "1" },
    timeoutMs: GOLDEN_MINUTES * 60_000,
  });
  if (!FULL) fs.rmSync(vocab, { recursive: true, force: true });
  return { ...r, out: r.stdout + r.stderr, seconds: (Date.now() - started) / 1000 };
}

/** A golden run's limit on a quiet machine. */
const GOLDEN_MINUTES = FULL ? 45 : 10;

testNeeding(test, need, "the cross-built addon is an aarch64 ELF that Node for arm64 loads under qemu", async (t) => {
  t.timeout(scaled(20 * 60_000)); // the first build compiles the whole addon
  const { addon, node } = await arm64Build();
  const header = fs.readFileSync(addon).subarray(0, 20);
  t.is(header.readUInt16LE(18), 183, "e_machine must be EM_AARCH64");
  const r = await qemu("cortex-a72", node, ["-e", "const a = require(process.argv[1]); console.log(process.arch, typeof a.readGguf)", addon]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), "arm64 function");
});

// Which kernels the addon picks is what each CPU's golden run below exercises: the Pi 4's plain
// NEON under cortex-a72, the dot-product kernels under max.
for (const [cpu, expected] of [["cortex-a72", "neon"], ["max", "neon-dotprod"]]) {
  testNeeding(test, need, `under qemu-aarch64 -cpu ${cpu} the engine runs the ${expected} kernels`, async (t) => {
    t.timeout(scaled(20 * 60_000));
    const { addon, node } = await arm64Build();
    const r = await qemu(cpu, node, [CLI, "info", "--json", "-m", path.join(SHARED, "models", "stories260K-q4_0.gguf")], { ALPACA_ADDON: addon });
    t.is(r.code, 0, r.stderr);
    const kernels = (JSON.parse(r.stdout) as { kernels: Record<string, string> }).kernels;
    t.is(kernels.q4_0, expected);
    t.is(kernels.f32, "neon");
  });
}

for (const cpu of ["cortex-a72", "max"]) {
  testNeeding(test, need, `golden check under qemu-aarch64 -cpu ${cpu}${FULL ? " (every prompt and vector)" : " (a sample: 3 prompts per golden file)"}`, async (t) => {
    t.timeout(scaled((GOLDEN_MINUTES + 20) * 60_000) * GOLDEN_SETS.length);
    for (const set of GOLDEN_SETS) {
      const r = await golden(cpu, set);
      t.log(`${set.golden}: ${r.seconds.toFixed(0)} s under qemu -cpu ${cpu}`);
      t.log(r.out.trim().split("\n").slice(-6).join("\n"));
      t.is(r.code, 0, r.out.slice(-2000));
      t.regex(r.out, /^\d+ passed, 0 failed$/m);
      // every golden file of the set was checked, and every case of the sample passed
      for (const f of fs.readdirSync(path.join(SHARED, set.golden)).filter((f) => f.endsWith(".json"))) {
        const cases = FULL ? (JSON.parse(fs.readFileSync(path.join(SHARED, set.golden, f), "utf8")) as { cases: unknown[] }).cases.length : 3;
        t.regex(r.out, new RegExp(`^${f.replace(/\./g, "\\.")}: tokenize ${cases}/${cases}, teacher-forced ${cases}/${cases}`, "m"));
      }
    }
  });
}
