// alpaca bench: the report is well formed. Never its speed: these machines are shared and noisy.
import test from "ava";
import { benchTokens, median, seededRandom } from "../daemon/engine/bench.js";
import { openVocab } from "../daemon/engine/tokenizer.js";
import { alpaca } from "./helpers/process.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";


const model = () => sharedModel("stories260K-q4_0.gguf");

testNeeding(test, needShared, "bench --json reports positive medians within their spread", async (t) => {
  const r = await alpaca(["bench", "-m", model(), "-p", "8", "-n", "4", "--reps", "3", "--threads", "1", "--json"]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  t.is(lines.length, 1, "one JSON object");
  const j = JSON.parse(lines[0]);
  t.like(j, { model: model(), threads: 1, p: 8, n: 4, reps: 3 });
  for (const key of ["prefill", "decode"] as const) {
    const s = j[key];
    for (const v of [s.median, s.min, s.max]) t.true(Number.isFinite(v) && v > 0, `${key}: ${JSON.stringify(s)}`);
    t.true(s.min <= s.median && s.median <= s.max, `${key}: ${JSON.stringify(s)}`);
  }
  t.true(Number.isFinite(j.decodeGBs) && j.decodeGBs > 0);
  t.is(j.runs.length, 3);
  // The stream ceiling reads every matrix a decode step uses: all of the weights but the
  // embedding table (stories260K Q4_0: 18 KiB of 240 KiB) and the norms.
  const { stream } = j;
  t.true(stream.bytesPerToken < j.weightBytes && stream.bytesPerToken > 0.85 * j.weightBytes, JSON.stringify(stream));
  t.true(Number.isFinite(stream.gbs) && stream.gbs > 0, JSON.stringify(stream));
  t.true(Math.abs(stream.tokensPerSecond - (stream.gbs * 1e9) / stream.bytesPerToken) < 1e-6 * stream.tokensPerSecond);
});

testNeeding(test, needShared, "bench under --memory-limit does not read the streamed weights to measure memory", async (t) => {
  const r = await alpaca(["bench", "-m", model(), "-p", "4", "-n", "2", "--reps", "1", "--warmup", "0", "--memory-limit", "64G", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.is(JSON.parse(r.stdout).stream, null);
});

testNeeding(test, needShared, "bench prints a table with both phases", async (t) => {
  const r = await alpaca(["bench", "-m", model(), "-p", "4", "-n", "2", "--reps", "1", "--warmup", "0"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^prefill\s+4\s+\d/m);
  t.regex(r.stdout, /^decode\s+2\s+\d/m);
  t.regex(r.stdout, /GB\/s/);
  t.regex(r.stdout, /^memory: .* stream at [\d.]+ GB\/s with \d+ threads .*: decode ≤ [\d.]+ tok\/s here, this run \d+ % of it$/m);
});

testNeeding(test, needShared, "bench feeds the same ordinary tokens for the same seed", (t) => {
  const a = benchTokens(model(), 200, 7);
  t.deepEqual(benchTokens(model(), 200, 7), a);
  t.notDeepEqual(benchTokens(model(), 200, 8), a);
  const vocab = openVocab(model());
  const info = vocab.info();
  for (const id of a) {
    t.true(id >= 0 && id < info.size);
    t.not(id, info.bos);
    t.false(vocab.isEndOfGeneration(id));
    t.true(vocab.tokenBytes(id).length > 0, `token ${id} renders as nothing`);
  }
});

test("median of odd and even counts; the seeded generator stays in [0, 1)", (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  const r = seededRandom(1);
  for (let i = 0; i < 1000; i++) {
    const v = r();
    t.true(v >= 0 && v < 1);
  }
});

const badCases: [string, string[], RegExp][] = [
  ["-p 0", ["-p", "0"], /-p must be an integer/],
  ["-n -1", ["-n", "-1"], /-n must be an integer/],
  ["--reps 0", ["--reps", "0"], /--reps must be an integer/],
  ["--threads 0", ["--threads", "0"], /--threads/],
  ["more tokens than the context", ["-p", "100000"], /exceed the model's context length/],
];
for (const [title, args, message] of badCases) {
  testNeeding(test, needShared, `bench: bad input gives one line and exit code 2: ${title}`, async (t) => {
    const r = await alpaca(["bench", "-m", model(), ...args]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split("\n").length, 1, r.stderr);
  });
}
