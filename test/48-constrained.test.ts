// Constrained generation through the scheduler and the router: `format` and `grammar` requests,
// bad ones answered before anything is queued, forced tokens fed in one step giving exactly the
// output of feeding them one per step, and the usage and timings that count them.
import test from "ava";
import type { NativeModel, NativeSampler, SamplerOptions } from "../daemon/engine/engine.js";
import { createSampler, openModel } from "../daemon/engine/engine.js";
import { compileGrammar } from "../daemon/engine/grammar.js";
import type { GenerateResult, ReplyMessage, SamplingParams } from "../daemon/serving/protocol.js";
import { DEFAULT_SAMPLING } from "../daemon/serving/protocol.js";
import type { ReplyChannel } from "../daemon/serving/router.js";
import { Router } from "../daemon/serving/router.js";
import type { GenerationJob } from "../daemon/serving/scheduler.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { STORIES, waitFor } from "./helpers/daemon.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";

const FIXED_KEYS = String.raw`root ::= "{\"room\": \"" room "\", \"action\": \"" ("turn_on" | "turn_off" | "toggle") "\", \"brightness\": " ("0" | [1-9] [0-9]{0,2}) ", \"reason\": \"" [a-z ]{0,20} "\"}"
room ::= "kitchen" | "living room" | "bedroom"`;

interface Run {
  result: GenerateResult;
  tokens: number[];
}

/** One generation through a fresh scheduler, recording every token the sampler hands out. */
async function run(model: NativeModel, job: Partial<GenerationJob>, fastForward: boolean): Promise<Run> {
  const tokens: number[] = [];
  const recording = (o: SamplerOptions): NativeSampler => {
    const s = createSampler(o);
    return {
      sample: (l, off, n) => {
        const t = s.sample(l, off, n);
        tokens.push(t);
        return t;
      },
      accept: (t) => s.accept(t),
      setGrammar: (g, c) => s.setGrammar(g, c),
      takeForced: () => {
        const f = s.takeForced();
        tokens.push(...f);
        return f;
      },
      grammarState: () => s.grammarState(),
      closingTokens: () => s.closingTokens(),
    };
  };
  const scheduler = new Scheduler(model, { fastForward, createSampler: recording });
  scheduler.start();
  try {
    const result = await new Promise<GenerateResult>((resolve, reject) =>
      scheduler.submit(
        { promptTokens: Array.from(model.tokenize("Once upon a time")), maxTokens: 80, sampling: DEFAULT_SAMPLING, stop: [], priority: 0, ...job },
        { delta: () => {}, done: resolve, fail: (_c, m) => reject(new Error(m)) },
      ),
    );
    return { result, tokens };
  } finally {
    await scheduler.stop(0);
  }
}

for (const file of ["stories260K-f32.gguf", "llama3-tiny-f32.gguf"])
  testNeeding(test, needShared, `forced tokens in one step give the output of one step each, greedy and seeded (${file})`, async (t) => {
    const model = openModel(sharedModel(file), { nCtx: 256, nSeq: 1, threads: 1 });
    t.teardown(() => model.close());
    const grammar = compileGrammar(model, FIXED_KEYS);
    const samplings: SamplingParams[] = [
      { ...DEFAULT_SAMPLING, temperature: 0 },
      ...[1, 2, 3, 4].map((seed) => ({ ...DEFAULT_SAMPLING, temperature: 1, topK: 0, topP: 1, minP: 0, seed })),
    ];
    let forcedSeen = 0;
    for (const sampling of samplings) {
      const batched = await run(model, { grammar, sampling }, true);
      const stepped = await run(model, { grammar, sampling }, false);
      t.deepEqual(batched.tokens, stepped.tokens, `seed ${sampling.seed}`);
      t.is(batched.result.text, stepped.result.text);
      t.is(batched.result.stop_reason, "eos", batched.result.text);
      t.is(batched.result.usage.completion_tokens, stepped.result.usage.completion_tokens);
      t.is(batched.result.usage.completion_tokens, batched.tokens.length);
      t.is(stepped.result.timings.forced_tokens, 0);
      t.true(grammar.match(batched.result.text).complete, batched.result.text);
      const parsed = JSON.parse(batched.result.text) as { room: string; action: string };
      t.true(["kitchen", "living room", "bedroom"].includes(parsed.room));
      forcedSeen += batched.result.timings.forced_tokens ?? 0;
      // most of the answer is decided by the grammar: far fewer steps than tokens
      t.true((batched.result.timings.forced_tokens ?? 0) * 2 > batched.result.usage.completion_tokens, JSON.stringify(batched.result));
    }
    t.true(forcedSeen > 0);
  });

testNeeding(test, needShared, "a grammar that decides the whole answer ends it without a step; an unconstrained job is unchanged", async (t) => {
  const model = openModel(STORIES(), { nCtx: 128, nSeq: 1, threads: 1 });
  t.teardown(() => model.close());
  const whole = await run(model, { grammar: compileGrammar(model, 'root ::= "The end."') }, true);
  t.is(whole.result.text, "The end.");
  t.is(whole.result.stop_reason, "eos");
  t.is(whole.result.timings.forced_tokens, whole.result.usage.completion_tokens);
  const free = await run(model, { sampling: { ...DEFAULT_SAMPLING, temperature: 0 }, maxTokens: 20 }, true);
  t.is(free.result.timings.forced_tokens, 0);
  t.is(free.result.usage.completion_tokens, 20);
});

function setup() {
  const model = openModel(STORIES(), { nCtx: 128, nSeq: 2, threads: 1 });
  const scheduler = new Scheduler(model);
  scheduler.start();
  const router = new Router({ model, scheduler, version: "test" });
  const sent: ReplyMessage[] = [];
  const channel: ReplyChannel = { send: (m) => sent.push(m), congested: () => false, onceDrained: () => {} };
  const session = router.openSession(channel, "test");
  const finals = () => sent.filter((m) => "status" in m);
  return { model, scheduler, session, finals, teardown: async () => (await scheduler.stop(0), model.close()) };
}

testNeeding(test, needShared, "generate with format or grammar: constrained text, `json` in the final, bad ones refused with their position", async (t) => {
  const s = setup();
  t.teardown(s.teardown);
  const base = { op: "generate", prompt: "Once upon a time", max_tokens: 100, temperature: 0.9, seed: 3, stream: false };
  s.session.handle({ ...base, transaction: "json", format: "json" });
  s.session.handle({ ...base, transaction: "gbnf", grammar: 'root ::= ("yes" | "no") "."' });
  s.session.handle({ ...base, transaction: "bad-gbnf", grammar: 'root ::= "yes" | maybe' });
  s.session.handle({ ...base, transaction: "bad-left", grammar: 'root ::= root "a"' });
  s.session.handle({ ...base, transaction: "both", grammar: 'root ::= "a"', format: "json" });
  s.session.handle({ ...base, transaction: "bad-format", format: "yaml" });
  s.session.handle({ ...base, transaction: "bad-type", grammar: 42 });
  await waitFor(() => s.finals().length === 7, 60_000);
  const byId = new Map(s.finals().map((m) => [m.transaction, m]));
  t.like(byId.get("bad-gbnf"), { status: "error", error: { code: "bad_request", message: 'grammar: line 1, column 18: rule "maybe" is used but never defined' } });
  t.like(byId.get("bad-left"), { status: "error", error: { code: "bad_request" } });
  t.regex(JSON.stringify(byId.get("bad-left")), /line 1, column 1: left recursion/);
  t.like(byId.get("both"), { status: "error", error: { code: "bad_request", message: "give format or grammar, not both" } });
  t.like(byId.get("bad-format"), { status: "error", error: { code: "bad_request" } });
  t.like(byId.get("bad-type"), { status: "error", error: { code: "bad_request", message: "grammar must be a string, got number 42" } });
  const gbnf = byId.get("gbnf");
  if (gbnf?.status !== "ok") return t.fail(JSON.stringify(gbnf));
  const g = gbnf.data as GenerateResult;
  t.true(g.text === "yes." || g.text === "no.", g.text);
  t.is(g.stop_reason, "eos");
  t.is(g.json, undefined);
  const json = byId.get("json");
  if (json?.status !== "ok") return t.fail(JSON.stringify(json));
  const j = json.data as GenerateResult;
  if (j.stop_reason === "eos") t.deepEqual(j.json, JSON.parse(j.text));
  else t.is(j.stop_reason, "length"); // cut short: the text is not whole JSON, so no `json`
  t.is(j.text.trimStart()[0], "{");
});
