// Thinking (daemon/serving/thinking.ts): the reasoning block split from the answer however the
// text arrives, and through the router and scheduler on the real qwen3 model — with a sampler that
// writes a scripted answer, since random weights would never write a <think> block — `think`
// turning the template's thinking on or off, `thinking` in the final and in the stream, stop
// strings reading the answer only.
import test from "ava";
import { openModel, type NativeModel, type NativeSampler } from "../daemon/engine/engine.js";
import { readGguf } from "../daemon/engine/gguf.js";
import type { ChunkMessage, GenerateResult, ReplyMessage } from "../daemon/serving/protocol.js";
import { ProtocolError, validateRequest } from "../daemon/serving/protocol.js";
import { Router } from "../daemon/serving/router.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { ChatTemplate } from "../daemon/serving/templates.js";
import { promptOpensThinking, templateThinks, ThinkingSplitter } from "../daemon/serving/thinking.js";
import { STORIES, waitFor } from "./helpers/daemon.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";

/** The output cut into pieces of `size` characters, as a model's tokens might cut it. */
function split(text: string, size: number, startsInside = false) {
  const s = new ThinkingSplitter(startsInside);
  let answer = "", thinking = "";
  for (let i = 0; i < text.length; i += size) {
    const p = s.push(text.slice(i, i + size));
    answer += p.answer;
    thinking += p.thinking;
  }
  const end = s.finish();
  return { answer: answer + end.answer, thinking: thinking + end.thinking };
}

test("the reasoning block is split from the answer however the text is cut", (t) => {
  const output = "<think>\nThe user wants the light.\n\nIt is in the kitchen.\n</think>\n\nThe kitchen light is on.";
  for (let size = 1; size <= output.length; size++)
    t.deepEqual(split(output, size), { thinking: "The user wants the light.\n\nIt is in the kitchen.", answer: "The kitchen light is on." }, `pieces of ${size}`);
  // the template opened the block: the output starts inside it
  for (const size of [1, 3, 100]) t.deepEqual(split("Short.\n</think>\n\nYes.", size, true), { thinking: "Short.", answer: "Yes." });
});

test("output without a block at its start is all answer, byte for byte", (t) => {
  for (const output of ["Hello <think>not a block</think>", "  \n<thinking about it", "<thi", "", "\n\nplain"])
    for (const size of [1, 2, 5, 64]) t.deepEqual(split(output, size), { thinking: "", answer: output }, JSON.stringify(output));
});

test("a block that never closes is all reasoning; an empty one leaves only the answer", (t) => {
  t.deepEqual(split("<think>\nstill going\n", 4), { thinking: "still going", answer: "" });
  t.deepEqual(split("<think>\n\n</think>\n\nDone.", 2), { thinking: "", answer: "Done." });
  t.deepEqual(split("\n<think>a</thi", 1), { thinking: "a</thi", answer: "" });
});

test("which prompts open a block, and which templates think", (t) => {
  t.true(promptOpensThinking("<|im_start|>assistant\n<think>\n"));
  t.false(promptOpensThinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  t.false(promptOpensThinking("<|im_start|>assistant\n"));
  t.false(promptOpensThinking("<think>\nreasoning already there"));
  t.true(templateThinks("{{ '<think>\\n\\n</think>' }}"));
  t.false(templateThinks("{% for m in messages %}{{ m.content }}{% endfor %}"));
});

// ─── Through the router, on the real qwen3 model ────────────────────────────────────────────────

const IM_END = 151645;

/** A sampler that writes `script`, whatever the logits say; its last token (an end of turn) repeats. */
function scripted(script: number[]): () => NativeSampler {
  return () => {
    let i = 0;
    return {
      sample: () => script[Math.min(i++, script.length - 1)],
      accept: () => {},
      setGrammar: () => true,
      takeForced: () => [],
      grammarState: () => "none",
      closingTokens: () => 0,
    };
  };
}

function routerFor(modelPath: string, template: string | undefined, script: (m: NativeModel) => number[]) {
  const model = openModel(modelPath, { nCtx: 256, nSeq: 1, threads: 1 });
  const scheduler = new Scheduler(model, { createSampler: scripted(script(model)) });
  scheduler.start();
  const router = new Router({
    model,
    scheduler,
    chatTemplate: template ? new ChatTemplate(template, { bos: "", eos: "<|im_end|>" }) : undefined,
    version: "test",
  });
  const sent: ReplyMessage[] = [];
  const session = router.openSession({ send: (m) => sent.push(m), congested: () => false, onceDrained: () => {} }, "test");
  const ask = async (transaction: string, extra: object) => {
    session.handle({ op: "generate", transaction, messages: [{ role: "user", content: "Is the kitchen light on?" }], max_tokens: 64, ...extra });
    await waitFor(() => sent.some((m) => "status" in m && m.transaction === transaction), 60_000, transaction);
    const final = sent.find((m): m is Extract<ReplyMessage, { status: unknown }> => "status" in m && m.transaction === transaction)!;
    const chunks = sent.filter((m): m is ChunkMessage => "delta" in m && m.transaction === transaction);
    return { final, chunks };
  };
  return { ask, teardown: async () => (await scheduler.stop(0), model.close()) };
}

const ANSWER = "<think>\nI check the light.\n</think>\n\nIt is on.";
const qwen3 = () => sharedModel("qwen3-tiny-f32.gguf");
const qwen3Template = () => readGguf(qwen3()).metadata["tokenizer.chat_template"] as string;

testNeeding(test, needShared, "think: the reasoning comes apart from the text, in the final and streamed first; off by default", async (t) => {
  const r = routerFor(qwen3(), qwen3Template(), (m) => [...m.tokenize(ANSWER, false, false), IM_END]);
  t.teardown(r.teardown);

  const on = await r.ask("on", { think: true });
  if (on.final.status !== "ok") return t.fail(JSON.stringify(on.final));
  const data = on.final.data as GenerateResult;
  t.is(data.text, "It is on.");
  t.is(data.thinking, "I check the light.");
  t.is(data.stop_reason, "eos");
  t.is(on.chunks.map((c) => c.thinking ?? "").join(""), "I check the light.");
  t.is(on.chunks.map((c) => c.delta).join(""), "It is on.");
  const firstAnswer = on.chunks.findIndex((c) => c.delta !== "");
  t.true(on.chunks.slice(firstAnswer + 1).every((c) => c.thinking === undefined), "reasoning is streamed before the answer");

  const off = await r.ask("off", {});
  if (off.final.status !== "ok") return t.fail(JSON.stringify(off.final));
  const offData = off.final.data as GenerateResult;
  t.is(offData.text, "It is on.", "a block the model writes anyway stays out of the text");
  t.false("thinking" in offData);
  t.true(off.chunks.every((c) => c.thinking === undefined));
  // think off renders the template's empty block: more prompt tokens than with thinking on
  t.true(offData.usage.prompt_tokens > data.usage.prompt_tokens);
});

testNeeding(test, needShared, "stop strings read the answer only, never the reasoning", async (t) => {
  const r = routerFor(qwen3(), qwen3Template(), (m) => [...m.tokenize(ANSWER, false, false), IM_END]);
  t.teardown(r.teardown);
  const res = await r.ask("stop", { think: true, stop: ["check", "is"] });
  if (res.final.status !== "ok") return t.fail(JSON.stringify(res.final));
  const data = res.final.data as GenerateResult;
  t.is(data.stop_reason, "stop");
  t.is(data.text, "It ");
  t.is(data.thinking, "I check the light.");
});

testNeeding(test, needShared, "think on a model whose template does not think, or without messages, is a bad_request", async (t) => {
  const chatml = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{{ '<|im_start|>assistant\\n' }}";
  const r = routerFor(STORIES(), chatml, () => [2]);
  t.teardown(r.teardown);
  const res = await r.ask("no", { think: true });
  t.like(res.final, { status: "error", error: { code: "bad_request" } });
  if (res.final.status === "error") t.regex(res.final.error.message, /does not think/);
  const off = await r.ask("fine", { think: false });
  t.is(off.final.status, "ok");
  const check = (extra: object) => () => validateRequest({ op: "generate", prompt: "Hi", ...extra }, { nCtx: 64 }, () => "x");
  t.throws(check({ think: true }), { instanceOf: ProtocolError, message: /think goes with messages/ });
  t.throws(check({ messages: undefined, think: "yes" }), { instanceOf: ProtocolError, message: /think must be true or false/ });
  t.notThrows(check({ think: false }));
});
