// The command line: the story from the reference prompt, and one-line errors with exit code 2.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { alpaca, run } from "./helpers/process.js";
import { CLI, needShared, ROOT, sharedModel, testNeeding } from "./helpers/shared.js";


testNeeding(test, needShared, "run prints the Lily story greedily", async (t) => {
  const r = await alpaca(["run", "--model", sharedModel("stories260K-f32.gguf"), "--prompt", "Once upon a time", "-n", "40", "--temp", "0"]);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith(", there was a little girl named Lily."), r.stdout);
});

testNeeding(test, needShared, "run --json reports tokens, text and timings", async (t) => {
  const r = await alpaca(["run", "-m", sharedModel("stories260K-q4_0.gguf"), "-p", "Hello", "-n", "8", "--temp", "0", "--json"]);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.deepEqual(j.prompt_tokens.slice(0, 1), [1]);
  t.is(j.tokens.length, 8);
  t.is(typeof j.text, "string");
  t.true(j.timings.decodeTokensPerSecond > 0);
});

testNeeding(test, needShared, "the same seed gives the same sampled tokens", async (t) => {
  const args = ["run", "-m", sharedModel("stories260K-f32.gguf"), "-p", "The little dog", "-n", "24", "--temp", "0.9", "--json"];
  const a = JSON.parse((await alpaca([...args, "--seed", "42"])).stdout);
  const b = JSON.parse((await alpaca([...args, "--seed", "42"])).stdout);
  const c = JSON.parse((await alpaca([...args, "--seed", "43"])).stdout);
  t.deepEqual(a.tokens, b.tokens);
  t.notDeepEqual(a.tokens, c.tokens);
});

testNeeding(test, needShared, "info describes the model", async (t) => {
  const r = await alpaca(["info", "-m", sharedModel("stories260K-q4_0.gguf"), "--json"]);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.like(j, { architecture: "llama", nLayer: 5, nEmbd: 64, nHead: 8, nHeadKv: 4, nVocab: 512, nFf: 172 });
  t.is(j.tensorTypes.f16, 5); // ffn_down of every layer
  t.true(j.memory.total > j.weightBytes);
  // Every type the model multiplies has a kernel named; this machine's SIMD set where it has one.
  t.deepEqual(Object.keys(j.kernels).sort(), ["f16", "f32", "q4_0"]);
  if (process.arch === "x64") {
    // Q4_0 has a one-row AVX512_VNNI kernel, and F16 its dot product there (the one attention's
    // AVX-512 scores repeat); F32 falls through to AVX2.
    const flags = fs.readFileSync("/proc/cpuinfo", "utf8");
    const vnni = [" avx512f ", " avx512bw ", " avx512vl ", " avx512_vnni"].every((f) => flags.includes(f));
    if (flags.includes(" avx2 ")) t.is(j.kernels.q4_0, vnni ? "avx512-vnni" : "avx2");
    if (flags.includes(" avx2 ")) t.is(j.kernels.f16, vnni ? "avx512-vnni" : "avx2");
    if (flags.includes(" avx2 ")) t.is(j.kernels.f32, "avx2");
  }
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-cli-"));
const notGguf = path.join(tmp, "not.gguf");
fs.writeFileSync(notGguf, "this is not a model\n");

const badCases: [string, string[], RegExp][] = [
  ["missing file", ["run", "-m", path.join(tmp, "nope.gguf"), "-p", "x"], /model file not found/],
  ["not a GGUF file", ["run", "-m", notGguf, "-p", "x"], /not a GGUF file/],
  ["-n -1", ["run", "-m", notGguf, "-p", "x", "-n", "-1"], /-n must be an integer/],
  ["negative temperature", ["run", "-m", notGguf, "-p", "x", "--temp", "-1"], /--temp/],
  ["unknown command", ["frobnicate"], /Unknown|frobnicate/i],
  ["bad token list", ["eval", "-m", notGguf, "--tokens", "1,x"], /not a token id|not a GGUF/],
  ["vocabulary-only file has no model", ["run", "-m", path.join("..", "shared", "vocab", "ggml-vocab-llama-spm.gguf"), "-p", "x"], /no model|not found|architecture/],
  ["-n abc", ["run", "-m", notGguf, "-p", "x", "-n", "abc"], /^alpaca: -n: "abc" is not a number\n$/],
  ["--temp= with no number", ["run", "-m", notGguf, "-p", "x", "--temp=warm"], /^alpaca: --temp: "warm" is not a number\n$/],
  ["an unknown flag, named once as typed", ["run", "-m", notGguf, "-p", "x", "--top-kk", "3"], /^alpaca: unknown argument --top-kk \(/],
  ["two unknown flags", ["bench", "-m", notGguf, "--warm-up", "-x"], /^alpaca: unknown arguments --warm-up, -x \(/],
];
for (const [title, args, message] of badCases) {
  test(`bad input gives one line and exit code 2: ${title}`, async (t) => {
    const r = await alpaca(args);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split("\n").length, 1, r.stderr);
    t.notRegex(r.stderr, /\n\s+at /);
  });
}

testNeeding(test, needShared, "run -c beyond the trained context warns once, and runs", async (t) => {
  const r = await alpaca(["run", "-m", sharedModel("stories260K-f32.gguf"), "-p", "Once upon a time", "-n", "4", "--temp", "0", "-c", "256"]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr.match(/trained/g)?.length, 1, r.stderr);
  t.regex(r.stderr, /^alpaca: warning: --ctx 256 is beyond the 128 tokens the model was trained for/m);
  const within = await alpaca(["run", "-m", sharedModel("stories260K-f32.gguf"), "-p", "Once upon a time", "-n", "4", "--temp", "0", "-c", "128"]);
  t.notRegex(within.stderr, /warning/);
});

// `alpaca models | head`: the reader is gone before the listing is written (`true` reads nothing).
test("output into a pipe that is closed ends quietly with exit 0", async (t) => {
  const cmd = `{ "${process.execPath}" "${CLI}" models --dir "${tmp}"; echo "exit $?" >&2; } | true`;
  const r = await run("sh", ["-c", cmd]);
  t.is(r.stderr, "exit 0\n");
});

// ../shared/tools/golden-check.mjs drives the CLI as `npx --no-install alpaca`, which runs the
// package's bin file itself: it must be executable, whatever compiled it last. (Run directly here:
// npx would link the project into its cache, running the install step, which rebuilds the addon
// under the other tests.)
test("the built bin is executable and runs by its shebang", async (t) => {
  t.truthy(fs.statSync(CLI).mode & 0o111, "dist/daemon/cli.js is executable");
  const r = await run(CLI, ["--help"], { cwd: ROOT });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Commands:/);
});
