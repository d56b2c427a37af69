// The router without a transport: the op table, chat templates on the real tokenizer, duplicate
// transactions, and a session that closes with work in flight.
import test from "ava";
import { openModel } from "../daemon/engine/engine.js";
import type { ReplyMessage } from "../daemon/serving/protocol.js";
import type { ReplyChannel } from "../daemon/serving/router.js";
import { Router } from "../daemon/serving/router.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { ChatTemplate } from "../daemon/serving/templates.js";
import { STORIES, waitFor } from "./helpers/daemon.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}";

function setup(chatTemplate = true) {
  const model = openModel(STORIES(), { nCtx: 128, nSeq: 2, threads: 1 });
  const scheduler = new Scheduler(model);
  scheduler.start();
  const router = new Router({
    model,
    scheduler,
    chatTemplate: chatTemplate ? new ChatTemplate(TEMPLATE, { bos: "<s>", eos: "</s>" }) : undefined,
    version: "test",
  });
  const sent: ReplyMessage[] = [];
  const channel: ReplyChannel = { send: (m) => sent.push(m), congested: () => false, onceDrained: () => {} };
  const session = router.openSession(channel, "test");
  const finals = () => sent.filter((m) => "status" in m);
  const teardown = async () => {
    await scheduler.stop(0);
    model.close();
  };
  return { model, scheduler, router, session, sent, finals, teardown };
}

testNeeding(test, needShared, "messages go through the chat template with one BOS, parsed as the template wrote it", async (t) => {
  const s = setup();
  try {
    s.session.handle({ op: "generate", transaction: "chat", messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 8, temperature: 0 });
    await waitFor(() => s.finals().length === 1);
    const final = s.finals()[0];
    if (final.status !== "ok") return t.fail(JSON.stringify(final));
    const expected = s.model.tokenize("<s>user: Tell me a story\nassistant:", false, true);
    t.is(expected[0], s.router.modelInfo.bos, "the template's <s> is the BOS token");
    t.is(expected.filter((id) => id === s.router.modelInfo.bos).length, 1);
    t.is((final.data as { usage: { prompt_tokens: number } }).usage.prompt_tokens, expected.length);
  } finally {
    await s.teardown();
  }
});

testNeeding(test, needShared, "a transaction already in flight is refused apart from the running one's final; an unknown op names the choices", async (t) => {
  const s = setup(false);
  try {
    s.session.handle({ op: "generate", transaction: "same", prompt: "Once upon a time", max_tokens: 60 });
    s.session.handle({ op: "generate", transaction: "same", prompt: "Once upon a time", max_tokens: 60 });
    s.session.handle({ op: "launch", transaction: "x" });
    s.session.handle({ op: "generate", transaction: 7, prompt: "Once upon a time", max_tokens: 4 });
    s.session.handle({ op: "generate", transaction: 7, prompt: "Once upon a time", max_tokens: 4 });
    await waitFor(() => s.finals().length === 5);
    const [dup, unknown, dup7] = s.finals();
    t.deepEqual(dup, {
      status: "error",
      transaction: null,
      error: { code: "bad_request", message: 'transaction "same" is already in flight; this request was not run', duplicate_of: "same" },
    });
    t.like(unknown, { status: "error", transaction: "x", error: { code: "bad_request", message: 'unknown op "launch"; expected one of generate, cancel, status, info, models' } });
    t.like(dup7, { status: "error", transaction: null, error: { duplicate_of: 7 } });
    t.is(s.finals().filter((m) => m.transaction === "same").length, 1, "one final carries the running transaction");
    t.like(s.finals().find((m) => m.transaction === "same"), { status: "ok" });
    const numbered = s.sent.filter((m) => m.transaction === 7);
    t.true(numbered.length > 1 && numbered.every((m) => m.transaction === 7), "a numeric transaction is echoed as a number on chunks and final");
    t.like(numbered[numbered.length - 1], { status: "ok" });
  } finally {
    await s.teardown();
  }
});

testNeeding(test, needShared, "closing a session cancels its generations and sends nothing more", async (t) => {
  const s = setup(false);
  try {
    s.session.handle({ op: "generate", transaction: "a", prompt: "Once upon a time", max_tokens: 100 });
    s.session.handle({ op: "generate", transaction: "b", prompt: "The sun was", max_tokens: 100 });
    s.session.handle({ op: "generate", transaction: "c", prompt: "Tom had a red ball", max_tokens: 100 });
    await waitFor(() => s.sent.length > 0);
    s.session.close();
    const count = s.sent.length;
    await waitFor(() => s.scheduler.stats().running === 0 && s.scheduler.stats().queued === 0);
    t.is(s.sent.length, count);
    t.is(s.scheduler.stats().kvUsedCells, 0, "cancelled sequences free their cells");
    t.is(s.model.kvUsedCells(), 0);
  } finally {
    await s.teardown();
  }
});

testNeeding(test, needShared, "after stopAccepting, generate is shutting_down while status still answers", async (t) => {
  const s = setup(false);
  try {
    s.router.stopAccepting();
    s.session.handle({ op: "generate", transaction: "g", prompt: "hi" });
    s.session.handle({ op: "status", transaction: "s" });
    await waitFor(() => s.finals().length === 2);
    t.like(s.finals()[0], { status: "error", error: { code: "shutting_down" } });
    t.like(s.finals()[1], { status: "ok", data: { queue: { accepting: false } } });
  } finally {
    await s.teardown();
  }
});
