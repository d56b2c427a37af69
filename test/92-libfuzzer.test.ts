// A short libFuzzer run of each harness in native/fuzz/ (the long one is `npm run fuzz`): the GGUF
// reader and both tokenizers under ASan and UBSan, seeded from ../shared. Any crash fails the test
// and leaves its input in the run's directory for a regression test.
import test from "ava";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { run, scaled } from "./helpers/process.js";
import { hasShared, ROOT, SHARED, testNeeding } from "./helpers/shared.js";

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 20);
const FUZZ_DIR = path.join(ROOT, ".fuzz");

function needClangFuzzer(): string | null {
  if (!hasShared()) return `../shared fixtures are missing (looked in ${SHARED})`;
  const probe = spawnSync("clang++", ["--version"], { encoding: "utf8" });
  if (probe.error) return "clang++ is not installed (apt-get install clang libclang-rt-14-dev)";
  const lib = spawnSync("sh", ["-c", 'echo \'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long){return 0;}\' | clang++ -x c++ -fsanitize=fuzzer -o /dev/null -'], {
    encoding: "utf8",
  });
  return lib.status === 0 ? null : `clang++ cannot link libFuzzer (apt-get install libclang-rt-14-dev): ${lib.stderr.trim().split("\n")[0]}`;
}

// One fuzzer at a time: each gets the machine's cores to itself.
let queue: Promise<unknown> = Promise.resolve();
function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

let built: Promise<{ status: number | null; output: string }> | undefined;
function build() {
  built ??= run(path.join(ROOT, "native", "fuzz", "build.sh"), [], { env: { ...process.env, ALPACA_FUZZ_DIR: FUZZ_DIR }, timeoutMs: 15 * 60_000 })
    .then((r) => ({ status: r.code, output: r.stdout + r.stderr }));
  return built;
}

function runFuzzer(target: string): Promise<{ code: number | null; output: string; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `alpaca-fuzz-${target}-`));
  fs.mkdirSync(path.join(dir, "corpus"));
  const args = [path.join(dir, "corpus"), path.join(FUZZ_DIR, "seeds", target), `-max_total_time=${SECONDS}`, "-timeout=10",
    "-rss_limit_mb=4096", "-max_len=65536", "-print_final_stats=1", `-artifact_prefix=${dir}/crash-`];
  return run(path.join(FUZZ_DIR, `fuzz_${target}`), args, { timeoutMs: (SECONDS + 120) * 1000 })
    .then((r) => ({ code: r.code, output: r.stderr.slice(-20000), dir }));
}

for (const target of ["gguf", "spm", "bpe", "gbnf"]) {
  testNeeding(test, needClangFuzzer, `fuzz_${target}: ${SECONDS} s of libFuzzer find no crash`, async (t) => {
    t.timeout(scaled((SECONDS + 180) * 1000) + scaled(15 * 60_000)); // the build, then the run
    const b = await build();
    t.is(b.status, 0, b.output);
    if (b.status !== 0) return;
    const r = await oneAtATime(() => runFuzzer(target));
    const crashes = fs.readdirSync(r.dir).filter((f) => f.startsWith("crash-"));
    t.deepEqual(crashes, [], `crash inputs in ${r.dir}:\n${r.output}`);
    t.is(r.code, 0, r.output);
    const runs = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(r.output)?.[1] ?? 0);
    t.true(runs > 0, r.output);
    t.log(`fuzz_${target}: ${runs} executions`);
    if (crashes.length === 0) fs.rmSync(r.dir, { recursive: true, force: true });
  });
}
