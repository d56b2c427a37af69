// The request schema: every field checked at the boundary with a message naming it.
import test from "ava";
import type { GenerateRequest } from "../daemon/serving/protocol.js";
import { LIMITS, parseRequestLine, ProtocolError, transactionOf, validateRequest } from "../daemon/serving/protocol.js";

const ctx = { nCtx: 128 };
let assigned = 0;
const validate = (raw: unknown) => validateRequest(raw, ctx, () => `auto-${++assigned}`);

function rejects(t: import("ava").ExecutionContext, raw: unknown, pattern: RegExp) {
  const e = t.throws(() => validate(raw), { instanceOf: ProtocolError });
  t.is(e?.code, "bad_request");
  t.regex(e?.message ?? "", pattern);
}

test("a minimal generate gets the documented defaults", (t) => {
  const r = validate({ op: "generate", transaction: "abc", prompt: "Hello" }) as GenerateRequest;
  t.is(r.op, "generate");
  t.is(r.transaction, "abc");
  t.deepEqual(r.source, { kind: "prompt", prompt: "Hello" });
  t.is(r.maxTokens, undefined);
  t.true(r.stream);
  t.deepEqual(r.stop, []);
  t.is(r.priority, 0);
  t.is(r.sampling.temperature, 0.8);
  t.is(r.timeoutMs, undefined);
});

test("every generate field is read and converted", (t) => {
  const r = validate({
    op: "generate",
    transaction: "t1",
    instruction: "Name a color",
    input: "sky",
    max_tokens: 16,
    temperature: 0,
    top_k: 5,
    top_p: 0.5,
    min_p: 0.1,
    repeat_penalty: 1.1,
    seed: 42,
    stop: "\n",
    stream: false,
    timeout: 2.5,
    priority: 3,
  }) as GenerateRequest;
  t.deepEqual(r.source, { kind: "instruction", instruction: "Name a color", input: "sky" });
  t.is(r.maxTokens, 16);
  t.deepEqual(r.sampling, { temperature: 0, topK: 5, topP: 0.5, minP: 0.1, repeatPenalty: 1.1, seed: 42 });
  t.deepEqual(r.stop, ["\n"]);
  t.false(r.stream);
  t.is(r.timeoutMs, 2500);
  t.is(r.priority, 3);
});

test("messages are checked entry by entry", (t) => {
  const r = validate({ op: "generate", messages: [{ role: "user", content: "hi" }] }) as GenerateRequest;
  t.deepEqual(r.source, { kind: "messages", messages: [{ role: "user", content: "hi" }] });
  t.regex(String(r.transaction), /^auto-/);
  rejects(t, { op: "generate", messages: [] }, /messages is empty/);
  rejects(t, { op: "generate", messages: "hi" }, /messages must be an array/);
  rejects(t, { op: "generate", messages: [{ role: "user" }] }, /content is required/);
  rejects(t, { op: "generate", messages: [{ role: 1, content: "x" }] }, /role must be a string/);
  rejects(t, { op: "generate", messages: Array(LIMITS.maxMessages + 1).fill({ role: "user", content: "x" }) }, /more than/);
});

test("requests that are not objects, unknown ops and wrong op types are bad_request", (t) => {
  rejects(t, [1, 2], /JSON object/);
  rejects(t, "generate", /JSON object/);
  rejects(t, null, /JSON object/);
  rejects(t, { prompt: "x" }, /op must be a string/);
  rejects(t, { op: "explode" }, /unknown op "explode"/);
  rejects(t, { op: 7 }, /op must be a string/);
});

test("wrong types name the field", (t) => {
  rejects(t, { op: "generate", prompt: 42 }, /prompt must be a string, got number 42/);
  rejects(t, { op: "generate", prompt: "x", temperature: "hot" }, /temperature must be a number/);
  rejects(t, { op: "generate", prompt: "x", stream: "yes" }, /stream must be true or false/);
  rejects(t, { op: "generate", prompt: "x", stop: 5 }, /stop must be a string or an array/);
  rejects(t, { op: "generate", prompt: "x", stop: ["a", 3] }, /stop\[1\] must be a string/);
  rejects(t, { op: "generate", prompt: "x", transaction: true }, /transaction must be a string or a number, got boolean true/);
  rejects(t, { op: "generate", prompt: "x", transaction: { id: 1 } }, /transaction must be a string or a number, got an object/);
  rejects(t, { op: "generate", prompt: "x", seed: 1.5 }, /seed must be an integer/);
  rejects(t, { op: "generate", prompt: "x", top_p: 0 }, /top_p must be from/);
  rejects(t, { op: "generate", prompt: "x", temperature: -1 }, /temperature must be from 0/);
  rejects(t, { op: "generate", prompt: "x", priority: 11 }, /priority must be from -10 to 10/);
  rejects(t, { op: "generate", prompt: "x", frobnicate: true }, /unknown field "frobnicate"/);
  rejects(t, { op: "generate", prompt: "x", input: "y" }, /input goes with instruction/);
  rejects(t, { op: "generate" }, /exactly one of prompt, instruction/);
  rejects(t, { op: "generate", prompt: "x", instruction: "y" }, /exactly one of/);
  rejects(t, { op: "cancel", target: [5] }, /target must be a string or a number/);
});

test("max_tokens 0, negative, fractional and beyond the context are refused", (t) => {
  for (const v of [0, -1, 1.5, 129, 1e12, Number.MAX_SAFE_INTEGER])
    rejects(t, { op: "generate", prompt: "x", max_tokens: v }, /max_tokens must be/);
  rejects(t, { op: "generate", prompt: "x", max_tokens: "8" }, /max_tokens must be a number/);
  t.is((validate({ op: "generate", prompt: "x", max_tokens: 128 }) as GenerateRequest).maxTokens, 128);
});

test("size limits on prompt, stop strings and transaction", (t) => {
  rejects(t, { op: "generate", prompt: "x".repeat(LIMITS.maxPromptChars + 1) }, /prompt is longer than/);
  rejects(t, { op: "generate", prompt: "x", stop: Array(LIMITS.maxStopStrings + 1).fill("a") }, /stop has more than/);
  rejects(t, { op: "generate", prompt: "x", stop: ["a".repeat(LIMITS.maxStopChars + 1)] }, /stop\[0\] is longer/);
  rejects(t, { op: "generate", prompt: "x", stop: [""] }, /stop\[0\] is empty/);
  rejects(t, { op: "status", transaction: "t".repeat(LIMITS.maxTransactionChars + 1) }, /transaction is longer/);
});

test("lone surrogates (valid JSON, invalid Unicode) are refused", (t) => {
  const raw = parseRequestLine(Buffer.from('{"op":"generate","prompt":"a\\ud800b"}'));
  rejects(t, raw, /prompt is not valid Unicode/);
});

test("parseRequestLine: invalid UTF-8 and non-JSON are bad_request", (t) => {
  const utf8 = t.throws(() => parseRequestLine(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), { instanceOf: ProtocolError });
  t.is(utf8?.code, "bad_request");
  t.regex(utf8?.message ?? "", /not valid UTF-8/);
  const json = t.throws(() => parseRequestLine(Buffer.from("hello there")), { instanceOf: ProtocolError });
  t.regex(json?.message ?? "", /not JSON/);
  t.deepEqual(parseRequestLine(Buffer.from('{"op":"info","prompt":"é"}')), { op: "info", prompt: "é" });
});

test("transactionOf finds the id to echo even in a request that fails validation", (t) => {
  t.is(transactionOf({ op: "nope", transaction: "x1" }), "x1");
  t.is(transactionOf({ transaction: 5 }), 5);
  t.is(transactionOf({ transaction: false }), null);
  t.is(transactionOf({ transaction: "a\ud800" }), null, "a lone surrogate cannot be echoed");
  t.is(transactionOf("str"), null);
});

test("numeric transactions and targets are kept as numbers, to be echoed as given", (t) => {
  t.is(validate({ op: "generate", prompt: "x", transaction: 12 }).transaction, 12);
  t.is(validate({ op: "status", transaction: 0.5 }).transaction, 0.5);
  t.deepEqual(validate({ op: "cancel", transaction: 13, target: 12 }), { op: "cancel", transaction: 13, target: 12 });
  t.is(validate({ op: "status", transaction: "12" }).transaction, "12", "a string stays a string");
});

test("status, info, models and cancel need nothing but op", (t) => {
  for (const op of ["status", "info", "models"] as const) t.is(validate({ op, transaction: "s" }).op, op);
  t.deepEqual(validate({ op: "cancel", transaction: "c", target: "abc" }), { op: "cancel", transaction: "c", target: "abc" });
});
