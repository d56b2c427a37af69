// Speculative decoding by prompt lookup: proposals come from earlier text, the sampler keeps its
// distribution exactly (a draft is kept with its probability), greedy answers are token for token
// those of decoding without it — on the golden prompts, on copy-heavy prompts, under a grammar and
// with stop strings — and a seeded run with a temperature is reproducible.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import type { NativeModel } from "../daemon/engine/engine.js";
import { createSampler, openModel } from "../daemon/engine/engine.js";
import { compileGrammar } from "../daemon/engine/grammar.js";
import type { GenerateResult, SamplingParams } from "../daemon/serving/protocol.js";
import { DEFAULT_SAMPLING } from "../daemon/serving/protocol.js";
import type { GenerationJob } from "../daemon/serving/scheduler.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { findMatch, lookupDraft, Speculator } from "../daemon/serving/speculation.js";
import { needShared, SHARED, sharedModel, testNeeding } from "./helpers/shared.js";

const GREEDY: SamplingParams = { ...DEFAULT_SAMPLING, temperature: 0 };

// ─── Proposals ───────────────────────────────────────────────────────────────────────────────

test("lookup: the tokens after the most recent earlier occurrence of the longest match of the history's end", (t) => {
  //             0  1  2  3  4  5  6  7  8  9 10 11 12
  const history = [1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 1, 2, 3];
  // "1 2 3" occurred at 0 (three tokens, longer than "2 3" at 6): what followed was 4 5 9 …
  t.deepEqual(lookupDraft(history, 3), [4, 5, 9]);
  t.deepEqual(findMatch(history), { from: 3, length: 3 });
  // equally long matches: the most recent ("2 3" at 3 and at 0: the one at 3, followed by 7 8)
  t.deepEqual(lookupDraft([2, 3, 4, 2, 3, 7, 8, 5, 2, 3], 2), [7, 8]);
  // one token when nothing longer matches; the most recent occurrence
  t.deepEqual(lookupDraft([6, 1, 6, 2, 9, 6], 1), [2]);
  t.deepEqual(findMatch([6, 1, 6, 2, 9, 6]), { from: 3, length: 1 });
  // a longer match further back wins over a shorter recent one: "4 1 2" at 0, not "1 2" at 5
  t.deepEqual(lookupDraft([4, 1, 2, 8, 9, 1, 2, 6, 4, 1, 2], 2), [8, 9]);
  // proposals stop where the history does
  t.deepEqual(lookupDraft([5, 6, 5], 8), [6, 5]);
  t.deepEqual(lookupDraft([1, 2, 3], 4), []);
  t.deepEqual(lookupDraft([], 4), []);
  t.deepEqual(lookupDraft([1, 1], 0), []);
  t.is(findMatch([7]), null);
});

test("adaptive size: grows while every proposal is kept, shrinks to what was kept, never past the match", (t) => {
  const s = new Speculator();
  const copying = Array.from({ length: 40 }, (_, i) => i % 10); // its end matches 30 tokens back
  t.is(s.propose(copying, 100).length, 4);
  s.record(4, 4);
  t.is(s.propose(copying, 100).length, 8);
  s.record(8, 8);
  t.is(s.propose(copying, 100).length, 8, "at most eight");
  s.record(8, 2);
  t.is(s.propose(copying, 100).length, 3);
  s.record(3, 1);
  t.is(s.propose(copying, 100).length, 2, "at least two after a partial match");
  // a match of n tokens backs at most n - 1: a lone repeated token backs nothing
  const three = [1, 2, 3, 5, 6, 7, 8, 9, 1, 2, 3]; // "1 2 3": at most two
  s.record(2, 2);
  t.deepEqual(s.propose(three, 100), [5, 6]);
  t.deepEqual(s.propose([4, 9, 5, 9], 100), [], "one matching token");
  t.is(s.propose(copying, 0).length, 0, "never past the room left");
  t.like(s, { drafted: 25, accepted: 17 });
});

test("after a proposal of which nothing was kept, only long matches are proposed for a few steps", (t) => {
  const s = new Speculator();
  const short = [1, 2, 3, 5, 6, 7, 8, 9, 1, 2, 3]; // a match of three tokens
  const long = Array.from({ length: 40 }, (_, i) => i % 10);
  t.is(s.propose(short, 100).length, 2);
  s.record(2, 0);
  // one step of pause: the short match is not proposed, then it is again
  t.deepEqual([s.propose(short, 100).length, s.propose(short, 100).length], [0, 2]);
  s.record(2, 0);
  // two steps now; a long match is proposed even during the pause
  t.deepEqual([s.propose(short, 100).length, s.propose(long, 100).length, s.propose(short, 100).length], [0, 2, 2]);
  s.record(2, 1);
  s.record(2, 0);
  t.deepEqual([s.propose(short, 100).length, s.propose(short, 100).length], [0, 2], "a kept token starts the pauses over at one step");
});

testNeeding(test, needShared, "a draft is kept with its probability: the token frequencies are those of sampling without one", (t) => {
  // Fixed logits, temperature 1 with top-k and min-p in play: draw 40,000 tokens each way.
  const logits = new Float32Array([2.0, 1.5, 1.0, 0.2, -0.5, -3, 0.9, 1.4]);
  const draws = 40_000;
  const count = (draft: number) => {
    const s = createSampler({ temperature: 1, topK: 6, topP: 1, minP: 0.05, seed: 7 });
    const c = new Array<number>(logits.length).fill(0);
    for (let i = 0; i < draws; i++) c[s.sample(logits, 0, logits.length, draft)]++;
    return c;
  };
  const plain = count(-1);
  for (const draft of [0, 2, 3, 5]) {
    const drafted = count(draft);
    for (let id = 0; id < logits.length; id++) {
      const p = plain[id] / draws, q = drafted[id] / draws;
      // four standard errors of a binomial frequency
      t.true(Math.abs(p - q) <= 4 * Math.sqrt((p * (1 - p)) / draws) + 1e-9, `draft ${draft}: token ${id} ${q.toFixed(4)} vs ${p.toFixed(4)}`);
    }
    if (draft === 5) t.is(drafted[5], 0, "a token outside top-k is never kept");
  }
  // greedy ignores the draft
  const g = createSampler({ temperature: 0 });
  t.is(g.sample(logits, 0, logits.length, 3), 0);
});

// ─── Answers ─────────────────────────────────────────────────────────────────────────────────

async function answers(model: NativeModel, jobs: Partial<GenerationJob>[], speculate: boolean, nSeq = 1): Promise<GenerateResult[]> {
  const s = new Scheduler(model, { speculate });
  s.start();
  try {
    return await Promise.all(
      jobs.map(
        (j) =>
          new Promise<GenerateResult>((resolve, reject) =>
            s.submit(
              { promptTokens: [], maxTokens: 48, sampling: GREEDY, stop: [], priority: 0, ...j },
              { delta: () => {}, done: resolve, fail: (code, message) => reject(new Error(`${code}: ${message}`)) },
            ),
          ),
      ),
    );
  } finally {
    await s.stop(0);
    void nSeq;
  }
}

function goldenPrompts(): string[] {
  const d = JSON.parse(fs.readFileSync(path.join(SHARED, "golden", "stories260K-f32.json"), "utf8")) as { cases: { prompt: string }[] };
  return d.cases.map((c) => c.prompt).filter((p) => p !== "");
}

// Prompts whose answers copy: a story told twice, lists, names repeated.
const COPY_HEAVY = [
  "Lily had a red ball, a blue car and a big teddy bear. Lily had a red ball, a blue car and",
  "Tom said: the cat, the dog, the bird, the fish. Then Tom said again: the cat, the dog,",
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. Once upon a time, there was",
  '{"name": "Lily", "toy": "ball"} {"name": "Tom", "toy": "car"} {"name": "Lily", "toy":',
];

for (const file of ["stories260K-f32.gguf", "stories260K-q4_0.gguf"]) {
  testNeeding(test, needShared, `greedy: ${file} answers every golden and copy-heavy prompt token for token as without speculation`, async (t) => {
    const model = openModel(sharedModel(file), { nCtx: 256, nSeq: 4, threads: 2 });
    t.teardown(() => model.close());
    const prompts = [...goldenPrompts(), ...COPY_HEAVY];
    const jobs = prompts.map((p) => ({ promptTokens: Array.from(model.tokenize(p)) }));
    const off = await answers(model, jobs, false);
    const on = await answers(model, jobs, true);
    let drafted = 0, accepted = 0, passes = 0, generated = 0;
    for (let i = 0; i < prompts.length; i++) {
      t.is(on[i].text, off[i].text, JSON.stringify(prompts[i]));
      t.is(on[i].usage.completion_tokens, off[i].usage.completion_tokens);
      drafted += on[i].timings.draft_tokens ?? 0;
      accepted += on[i].timings.accepted_tokens ?? 0;
      passes += on[i].timings.decode_passes ?? 0;
      generated += on[i].usage.completion_tokens - 1;
      t.is(off[i].timings.draft_tokens, undefined);
    }
    t.true(accepted > 0, "speculation kept some tokens");
    t.true(passes < generated, `${generated} tokens in ${passes} passes`);
    t.log(`${file}: ${accepted}/${drafted} proposed tokens kept; ${generated} decoded tokens in ${passes} passes = ${(generated / passes).toFixed(2)} per pass`);
  });
}

testNeeding(test, needShared, "greedy with stop strings, in a batch of concurrent sequences: the same texts and stop reasons", async (t) => {
  const model = openModel(sharedModel("stories260K-f32.gguf"), { nCtx: 256, nSeq: 4, threads: 2 });
  t.teardown(() => model.close());
  const jobs = COPY_HEAVY.map((p, i) => ({ promptTokens: Array.from(model.tokenize(p)), stop: [[" the", ".", "Lily", "ball"][i]] }));
  const off = await answers(model, jobs, false);
  const on = await answers(model, jobs, true);
  t.deepEqual(on.map((r) => [r.text, r.stop_reason]), off.map((r) => [r.text, r.stop_reason]));
  t.true(off.some((r) => r.stop_reason === "stop"));
});

testNeeding(test, needShared, "a seeded run with a temperature is reproducible with speculation", async (t) => {
  const model = openModel(sharedModel("stories260K-f32.gguf"), { nCtx: 256, nSeq: 4, threads: 2 });
  t.teardown(() => model.close());
  const sampling = { ...DEFAULT_SAMPLING, temperature: 0.8, seed: 1234 };
  const jobs = COPY_HEAVY.map((p) => ({ promptTokens: Array.from(model.tokenize(p)), sampling }));
  const a = await answers(model, jobs, true);
  const b = await answers(model, jobs, true);
  t.deepEqual(a.map((r) => r.text), b.map((r) => r.text));
  t.true(a.some((r) => (r.timings.accepted_tokens ?? 0) > 0));
});

testNeeding(test, needShared, "speculate false on a request: no proposals for it", async (t) => {
  const model = openModel(sharedModel("stories260K-f32.gguf"), { nCtx: 256, threads: 1 });
  t.teardown(() => model.close());
  const [r] = await answers(model, [{ promptTokens: Array.from(model.tokenize(COPY_HEAVY[2])), speculate: false }], true);
  t.is(r.timings.draft_tokens, undefined);
  t.is(r.timings.decode_passes, r.usage.completion_tokens - 1);
});

testNeeding(test, needShared, "under a grammar, with fast-forward on or off and closed within max_tokens: the same constrained answers as without speculation", async (t) => {
  const model = openModel(sharedModel("stories260K-f32.gguf"), { nCtx: 256, nSeq: 4, threads: 2 });
  t.teardown(() => model.close());
  // A list that repeats itself: the grammar admits names, the proposals copy earlier ones.
  const grammar = compileGrammar(model, 'root ::= "[" name ("," " "? name){2,6} "]"\nname ::= "\\"" [a-zA-Z ]{1,12} "\\""');
  // 24 tokens: the grammar closes most of them (its shortest sentence is 13 bytes, then the end)
  const jobs = COPY_HEAVY.map((p) => ({ promptTokens: Array.from(model.tokenize(p)), grammar, maxTokens: 24 }));
  for (const fastForward of [true, false]) {
    const run = async (speculate: boolean) => {
      const s = new Scheduler(model, { speculate, fastForward });
      s.start();
      try {
        return await Promise.all(jobs.map((j) => new Promise<GenerateResult>((resolve, reject) =>
          s.submit({ sampling: GREEDY, stop: [], priority: 0, ...j }, { delta: () => {}, done: resolve, fail: (c, m) => reject(new Error(`${c}: ${m}`)) }))));
      } finally {
        await s.stop(0);
      }
    };
    const off = await run(false);
    const on = await run(true);
    t.deepEqual(on.map((r) => r.text), off.map((r) => r.text), `fastForward ${fastForward}`);
    for (const r of on) {
      t.true(grammar.match(r.text).complete, r.text);
      t.is(r.stop_reason, "eos");
    }
    t.true(on.some((r) => r.closed_by_budget && (r.timings.draft_tokens ?? 0) > 0), "closed by the budget while speculating");
  }
});
