// Tool calls, structured output and thinking over both APIs, with the real client libraries: Ollama's
// `tools` (with a required call) and `format` with a JSON Schema, OpenAI's `tools` with a forced
// call and `response_format` json_schema, streaming included (a call streams as each API streams
// one), every answer checked against its schema with ajv. The grammar makes even random weights
// write calls and JSON that fit; Qwen3's chat template offers the tools. Reasoning streams as
// Ollama's message.thinking and llama.cpp's reasoning_content.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import { Ollama } from "ollama";
import type { Tool } from "ollama";
import OpenAI from "openai";
import { errorsText, validator } from "./helpers/ajv.js";
import type { ServeProcess } from "./helpers/http-daemon.js";
import { LLAMA3, needQwen3, QWEN3, serveHttp, startHttpDaemon } from "./helpers/http-daemon.js";
import { needShared, ROOT, testNeeding } from "./helpers/shared.js";

// Home Assistant's Assist tools (test/fixtures/schemas/tools.json) with their free-text fields bounded
// (enums, maxLength): random weights write any string the grammar allows, and would write one until
// max_tokens ran out. The JSON shapes are Home Assistant's.
const HA_TOOLS = JSON.parse(fs.readFileSync(path.join(ROOT, "test", "fixtures", "schemas", "tools.json"), "utf8")) as OpenAI.ChatCompletionFunctionTool[];
const NAMES = { type: "string", enum: ["Kitchen Light", "Hall Light", "Coffee Maker"] };
const TOOLS: OpenAI.ChatCompletionFunctionTool[] = HA_TOOLS.filter((t) => ["HassTurnOn", "HassLightSet", "GetLiveContext"].includes(t.function.name)).map((t) => {
  const params = structuredClone(t.function.parameters) as { properties: Record<string, Record<string, unknown>>; required?: string[] };
  for (const [key, p] of Object.entries(params.properties)) {
    if (key === "name") params.properties[key] = NAMES;
    else if (p.type === "string") p.maxLength = 12;
    else if (p.type === "array") p.maxItems = 1;
  }
  if (params.properties.name) params.required = ["name"];
  return { type: "function", function: { ...t.function, parameters: params } };
});
const argsValidator = (name: string) => validator(TOOLS.find((t) => t.function.name === name)!.function.parameters);
const MESSAGES = [
  { role: "system", content: "You are a voice assistant for Home Assistant." },
  { role: "user", content: "Turn on the kitchen light." },
];

/** `alpaca serve --http` on Qwen3, whose chat template offers tools (Hermes <tool_call> format). */
const daemon = (t: import("ava").ExecutionContext): Promise<ServeProcess> => serveHttp(t, QWEN3(), ["--ctx", "2048", "--parallel", "2"]);

testNeeding(test, needQwen3, "Ollama: tools with a required call give tool_calls whose arguments fit the tool, streamed as one chunk before the end", async (t) => {
  const d = await daemon(t);
  const ollama = new Ollama({ host: d.url });
  const show = await ollama.show({ model: "qwen3-tiny-f32" });
  t.deepEqual(show.capabilities, ["completion", "tools", "thinking"]);

  // tool_choice is not Ollama's; alpaca reads it as OpenAI defines it.
  // One call per answer: random weights would go on calling until max_tokens.
  const request = {
    model: "qwen3-tiny-f32", messages: MESSAGES, tools: TOOLS as Tool[], tool_choice: "required", parallel_tool_calls: false, options: { temperature: 0.7, seed: 3, num_predict: 200 },
  };
  const whole = await ollama.chat({ ...request, stream: false });
  t.is(whole.done_reason, "stop");
  t.is(whole.message.tool_calls!.length, 1, JSON.stringify(whole.message));
  for (const call of whole.message.tool_calls!) {
    const check = argsValidator(call.function.name);
    t.true(check(call.function.arguments), `${call.function.name}: ${errorsText(check)}`);
  }

  const chunks = [];
  for await (const chunk of await ollama.chat({ ...request, stream: true })) chunks.push(chunk);
  const withCalls = chunks.filter((c) => c.message.tool_calls?.length);
  t.is(withCalls.length, 1, "the calls come in one chunk");
  t.false(withCalls[0].done);
  t.deepEqual(
    withCalls[0].message.tool_calls!.map((c) => c.function),
    whole.message.tool_calls!.map((c) => c.function),
    "the same calls as without streaming (same seed)",
  );
  t.true(chunks.at(-1)!.done);

  // The calls and their results go back as Home Assistant sends them: the next answer reads them.
  const followUp = await ollama.chat({
    model: "qwen3-tiny-f32",
    messages: [...MESSAGES, { role: "assistant", content: "", tool_calls: whole.message.tool_calls }, { role: "tool", content: '{"success": true}' }],
    tools: TOOLS as Tool[],
    stream: false,
    options: { num_predict: 5 },
  });
  t.true(followUp.done);
  t.true(followUp.prompt_eval_count > whole.prompt_eval_count);
});

testNeeding(test, needQwen3, "OpenAI: a forced call streams as tool_call deltas and finishes with tool_calls; arguments fit the tool", async (t) => {
  const d = await daemon(t);
  const openai = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: "x", maxRetries: 0 });
  const request = {
    model: "qwen3-tiny-f32",
    messages: MESSAGES as OpenAI.ChatCompletionMessageParam[],
    tools: TOOLS,
    tool_choice: { type: "function" as const, function: { name: "HassLightSet" } },
    parallel_tool_calls: false,
    seed: 5,
    max_tokens: 200,
  };
  const whole = await openai.chat.completions.create(request);
  t.is(whole.choices[0].finish_reason, "tool_calls");
  const calls = whole.choices[0].message.tool_calls as OpenAI.ChatCompletionMessageFunctionToolCall[];
  t.is(calls.length, 1);
  for (const call of calls) {
    t.is(call.type, "function");
    t.is(call.function.name, "HassLightSet", "the named tool only");
    const check = argsValidator("HassLightSet");
    t.true(check(JSON.parse(call.function.arguments)), errorsText(check));
  }
  const ids = calls.map((c) => c.id);

  // Streamed: accumulate the deltas as the SDK's users (Home Assistant's llama.cpp integration) do.
  const streamed = new Map<number, { id?: string; name?: string; arguments: string }>();
  let finish: string | null = null;
  for await (const chunk of await openai.chat.completions.create({ ...request, stream: true })) {
    for (const choice of chunk.choices) {
      for (const delta of choice.delta.tool_calls ?? []) {
        const call = streamed.get(delta.index) ?? { arguments: "" };
        call.id ??= delta.id;
        call.name ??= delta.function?.name;
        call.arguments += delta.function?.arguments ?? "";
        streamed.set(delta.index, call);
      }
      finish = choice.finish_reason ?? finish;
    }
  }
  t.is(finish, "tool_calls");
  t.deepEqual(
    [...streamed.values()].map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) })),
    calls.map((c) => ({ name: c.function.name, arguments: JSON.parse(c.function.arguments) })),
  );
  for (const c of streamed.values()) t.regex(c.id ?? "", /^\w+$/);
  t.is(ids.length, streamed.size);

  // The call and its result sent back (OpenAI's shapes) are read by the template.
  // Several calls (at most eight per answer): a chunk for each, as OpenAI streams them and as Home
  // Assistant's llama.cpp integration reads them (the first call of each delta).
  const parallel = { ...request, tool_choice: "required" as const, parallel_tool_calls: undefined, seed: 11, max_tokens: 400 };
  const many = await openai.chat.completions.create(parallel);
  const indices: number[] = [];
  for await (const chunk of await openai.chat.completions.create({ ...parallel, stream: true }))
    for (const choice of chunk.choices) {
      t.true((choice.delta.tool_calls?.length ?? 0) <= 1, "one call per chunk");
      for (const c of choice.delta.tool_calls ?? []) indices.push(c.index);
    }
  t.is(many.choices[0].finish_reason, "tool_calls");
  t.deepEqual(indices, many.choices[0].message.tool_calls!.map((_, i) => i));
  t.log(`${indices.length} calls in one answer`);

  const both = await t.throwsAsync(openai.chat.completions.create({ ...request, response_format: { type: "json_object" } }), { instanceOf: OpenAI.BadRequestError });
  t.regex(both!.message, /tools and a response format cannot be combined/);
  t.is((both as InstanceType<typeof OpenAI.BadRequestError>).param, "tools");

  const next = await openai.chat.completions.create({
    model: "m",
    messages: [...request.messages, whole.choices[0].message, { role: "tool", tool_call_id: calls[0].id, content: '{"success": true}' }],
    tools: TOOLS,
    max_tokens: 4,
  });
  t.is(next.choices[0].finish_reason, "length");
});

testNeeding(test, needQwen3, "format and response_format: JSON Schema answers that ajv accepts; json_object gives an object", async (t) => {
  const d = await daemon(t);
  const schema = {
    type: "object",
    properties: { room: { type: "string", enum: ["kitchen", "hall", "bedroom"] }, brightness: { type: "integer", minimum: 0, maximum: 100 }, on: { type: "boolean" } },
    required: ["room", "brightness", "on"],
    additionalProperties: false,
  };
  const check = validator(schema);
  const ollama = new Ollama({ host: d.url });
  for (const seed of [1, 2, 3]) {
    const r = await ollama.chat({ model: "qwen3-tiny-f32", messages: MESSAGES, format: schema, stream: false, options: { seed, temperature: 1 } });
    t.true(check(JSON.parse(r.message.content)), `${r.message.content}: ${errorsText(check)}`);
  }
  const generated = await ollama.generate({ model: "qwen3-tiny-f32", prompt: "A light as JSON:", format: schema, stream: false, options: { seed: 4 } });
  t.true(check(JSON.parse(generated.response!)), errorsText(check));

  const openai = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: "x", maxRetries: 0 });
  const completion = await openai.chat.completions.create({
    model: "m",
    messages: MESSAGES as OpenAI.ChatCompletionMessageParam[],
    response_format: { type: "json_schema", json_schema: { name: "light", strict: true, schema } },
    seed: 9,
  });
  t.true(check(JSON.parse(completion.choices[0].message.content!)), errorsText(check));
  let streamed = "";
  for await (const c of await openai.chat.completions.create({
    model: "m", messages: MESSAGES as OpenAI.ChatCompletionMessageParam[], response_format: { type: "json_schema", json_schema: { name: "light", schema } }, seed: 9, stream: true,
  }))
    streamed += c.choices[0]?.delta.content ?? "";

  t.is(streamed, completion.choices[0].message.content ?? "", "streamed, the same JSON");
  // Any object: random weights may write one string until max_tokens; what arrives is still JSON's start.
  const object = await openai.chat.completions.create({ model: "m", messages: MESSAGES as OpenAI.ChatCompletionMessageParam[], response_format: { type: "json_object" }, seed: 2, max_tokens: 64 });
  t.regex(object.choices[0].message.content!, /^\s*\{/);
  if (object.choices[0].finish_reason === "stop") t.is(typeof JSON.parse(object.choices[0].message.content!), "object");

  const broken = await t.throwsAsync(ollama.chat({ model: "qwen3-tiny-f32", messages: MESSAGES, format: "yaml", stream: false }));
  t.regex((broken as unknown as { error: string }).error, /^format must be "json" or a JSON Schema object/);
});

// A template that opens the reasoning block itself (as DeepSeek-R1's does): whatever the model
// writes is reasoning until it closes the block, which random weights never do.
const THINKING_TEMPLATE =
  "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n<think>\n";

testNeeding(test, needShared, "think (and tools) only where the template has them: reasoning streams as message.thinking (Ollama) and reasoning_content (OpenAI); off, it is kept out", async (t) => {
  const d = await startHttpDaemon({ model: LLAMA3(), template: THINKING_TEMPLATE, nCtx: 512 });
  t.teardown(() => d.stop());
  const ollama = new Ollama({ host: d.url });
  t.deepEqual((await ollama.show({ model: "llama3-tiny-f32" })).capabilities, ["completion", "thinking"]);
  const options = { num_predict: 12, seed: 1 };

  let thinking = "";
  let content = "";
  for await (const chunk of await ollama.chat({ model: "llama3-tiny-f32", messages: MESSAGES, think: true, stream: true, options })) {
    thinking += chunk.message.thinking ?? "";
    content += chunk.message.content;
  }
  t.true(thinking.length > 0, "the reasoning streamed");
  t.is(content, "", "no answer: the block never closed");
  const whole = await ollama.chat({ model: "llama3-tiny-f32", messages: MESSAGES, think: "high", stream: false, options });
  t.is(whole.message.thinking, thinking, "the same reasoning in one piece (same seed)");
  const generated = await ollama.generate({ model: "llama3-tiny-f32", prompt: "Is the light on?", think: true, stream: false, options });
  t.true((generated.thinking ?? "").length > 0, "generate carries thinking too");

  const off = await ollama.chat({ model: "llama3-tiny-f32", messages: MESSAGES, think: false, stream: false, options });
  t.is(off.message.thinking, undefined);
  t.is(off.message.content, "", "the reasoning stays out of the answer");

  const openai = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: "x", maxRetries: 0 });
  const messages = MESSAGES as OpenAI.ChatCompletionMessageParam[];
  const reasoned = await openai.chat.completions.create({ model: "m", messages, reasoning_effort: "high", max_tokens: 12, seed: 1 });
  const message = reasoned.choices[0].message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
  t.is(message.reasoning_content, thinking);
  let streamed = "";
  for await (const chunk of await openai.chat.completions.create({ model: "m", messages, reasoning_effort: "low", max_tokens: 12, seed: 1, stream: true }))
    streamed += (chunk.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? "";
  t.is(streamed, thinking);
  const none = await openai.chat.completions.create({ model: "m", messages, reasoning_effort: "none", max_tokens: 12, seed: 1 });
  t.false("reasoning_content" in none.choices[0].message);

  const noThinking = await startHttpDaemon({ model: LLAMA3() });
  t.teardown(() => noThinking.stop());
  const plain = new Ollama({ host: noThinking.url });
  const refused = await t.throwsAsync(plain.chat({ model: "llama3-tiny-f32", messages: MESSAGES, think: true, stream: false }));
  t.is((refused as unknown as { error: string }).error, '"llama3-tiny-f32:latest" does not support thinking');
  const noTools = await t.throwsAsync(plain.chat({ model: "llama3-tiny-f32", messages: MESSAGES, tools: TOOLS as Tool[], stream: false }));
  t.is((noTools as unknown as { error: string }).error, '"llama3-tiny-f32:latest" does not support tools', "llama3-tiny's own template takes no tools");
});
