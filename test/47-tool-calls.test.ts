// Tool calls (daemon/serving/tool-calls.ts, tool-formats/*): reading calls out of answers as the
// models people run write them (recorded outputs, malformed ones among them), the grammar of a call
// for each format, holding call markup back from the stream, the request fields at the boundary and
// rendering tools through a real chat template (Qwen3's, from ../shared).
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import { openModel } from "../daemon/engine/engine.js";
import { readGguf } from "../daemon/engine/gguf.js";
import type { GenerateResult, ReplyMessage } from "../daemon/serving/protocol.js";
import { ProtocolError, validateRequest } from "../daemon/serving/protocol.js";
import { Router } from "../daemon/serving/router.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { ChatTemplate } from "../daemon/serving/templates.js";
import type { ToolDefinition } from "../daemon/serving/tool-calls.js";
import { planToolCalls, ToolCallStream, toolCallGrammar, toolFormatFor, validateTools, withToolCalls } from "../daemon/serving/tool-calls.js";
import type { ToolFormat } from "../daemon/serving/tool-formats/format.js";
import { hermes } from "../daemon/serving/tool-formats/hermes.js";
import { llama3 } from "../daemon/serving/tool-formats/llama3.js";
import { mistral } from "../daemon/serving/tool-formats/mistral.js";
import { errorsText, validator } from "./helpers/ajv.js";
import { STORIES, waitFor } from "./helpers/daemon.js";
import { parseGbnf, recognise, rng, sample } from "./helpers/gbnf.js";
import { needShared, ROOT, sharedModel, testNeeding } from "./helpers/shared.js";

const tools: ToolDefinition[] = validateTools(JSON.parse(fs.readFileSync(path.join(ROOT, "test", "fixtures", "schemas", "tools.json"), "utf8")));
const recorded: Record<string, { output: string; calls?: { name: string; arguments: unknown }[]; content?: string; error?: RegExp }[]> = {
  // Qwen2.5 / Qwen3 / Hermes 2 Pro answers to "turn on the kitchen light" and the like.
  hermes: [
    { output: '<tool_call>\n{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}\n</tool_call>', calls: [{ name: "HassTurnOn", arguments: { name: "kitchen light" } }], content: "" },
    {
      output: 'Sure, dimming both.\n<tool_call>\n{"name": "HassLightSet", "arguments": {"area": "Kitchen", "brightness": 30}}\n</tool_call>\n<tool_call>\n{"name": "HassLightSet", "arguments": {"area": "Hall", "brightness": 30}}\n</tool_call>',
      calls: [{ name: "HassLightSet", arguments: { area: "Kitchen", brightness: 30 } }, { name: "HassLightSet", arguments: { area: "Hall", brightness: 30 } }],
      content: "Sure, dimming both.",
    },
    // Arguments as a JSON string, and a model that stops right after the JSON (no closing tag).
    { output: '<tool_call>\n{"name": "HassStartTimer", "arguments": "{\\"minutes\\": 5}"}', calls: [{ name: "HassStartTimer", arguments: { minutes: 5 } }], content: "" },
    { output: "The kitchen light is already on.", calls: [], content: "The kitchen light is already on." },
    { output: '<tool_call>\n{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}\n</tool_call>', error: /not complete JSON/ },
    { output: '<tool_call>\n{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}\nDone!', error: /not closed/ },
    { output: '<tool_call>\n{"arguments": {"name": "kitchen light"}}\n</tool_call>', error: /no "name"/ },
    { output: '<tool_call>\n{"name": "HassTurnOn", "arguments": ["kitchen light"]}\n</tool_call>', error: /not a JSON object/ },
  ],
  // Llama 3.1 (with <|python_tag|> where the control token is rendered) and Llama 3.2 JSON calls.
  llama3: [
    { output: '<|python_tag|>{"name": "HassTurnOn", "parameters": {"name": "kitchen light"}}', calls: [{ name: "HassTurnOn", arguments: { name: "kitchen light" } }], content: "" },
    { output: '{"name": "HassBroadcast", "parameters": {"message": "Dinner is ready"}}', calls: [{ name: "HassBroadcast", arguments: { message: "Dinner is ready" } }], content: "" },
    { output: '{"type": "function", "name": "GetLiveContext", "parameters": {}}', calls: [{ name: "GetLiveContext", arguments: {} }], content: "" },
    {
      output: '{"name": "HassTurnOn", "parameters": {"area": "Hall"}}; {"name": "HassLightSet", "parameters": {"area": "Hall", "brightness": 80}}',
      calls: [{ name: "HassTurnOn", arguments: { area: "Hall" } }, { name: "HassLightSet", arguments: { area: "Hall", brightness: 80 } }],
      content: "",
    },
    { output: "It is 21 degrees in the living room.", calls: [], content: "It is 21 degrees in the living room." },
    { output: '{"answer": 42}', calls: [], content: '{"answer": 42}' },
    { output: '<|python_tag|>brave_search.call(query="weather Berlin")', error: /no JSON tool call/ },
    { output: '{"name": "HassTurnOn", "parameters": {"name": "kitch', error: /not complete JSON/ },
  ],
  // Mistral v3 ([TOOL_CALLS] + JSON list, the tag rendered or not) and v11 (name[ARGS]{…}).
  mistral: [
    { output: '[TOOL_CALLS][{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}]', calls: [{ name: "HassTurnOn", arguments: { name: "kitchen light" } }], content: "" },
    {
      output: '[{"name": "HassTurnOn", "arguments": {"area": "Hall"}}, {"name": "HassBroadcast", "arguments": {"message": "Lights on"}}]',
      calls: [{ name: "HassTurnOn", arguments: { area: "Hall" } }, { name: "HassBroadcast", arguments: { message: "Lights on" } }],
      content: "",
    },
    {
      output: '[TOOL_CALLS]HassTurnOn[ARGS]{"name": "kitchen light"}[TOOL_CALLS]HassLightSet[ARGS]{"name": "kitchen light", "brightness": 50}',
      calls: [{ name: "HassTurnOn", arguments: { name: "kitchen light" } }, { name: "HassLightSet", arguments: { name: "kitchen light", brightness: 50 } }],
      content: "",
    },
    { output: "All lights are off.", calls: [], content: "All lights are off." },
    { output: '[TOOL_CALLS][{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}', error: /not a complete JSON list/ },
    { output: "[TOOL_CALLS] I will turn it on.", error: /neither a JSON list/ },
    { output: '[TOOL_CALLS][{"name": "HassTurnOn", "arguments": {}}] and done', error: /text follows/ },
  ],
};
const FORMATS: Record<string, ToolFormat> = { hermes, llama3, mistral };

for (const [format, outputs] of Object.entries(recorded)) {
  test(`${format}: recorded answers are read into calls, or into the reason they are broken`, (t) => {
    for (const r of outputs) {
      const outcome = FORMATS[format].parse(r.output);
      if (r.error) {
        t.true("error" in outcome, r.output);
        if ("error" in outcome) t.regex(outcome.error, r.error, r.output);
      } else {
        t.false("error" in outcome, r.output);
        if (!("error" in outcome)) {
          t.deepEqual(outcome.calls, r.calls, r.output);
          t.is(outcome.content as string | undefined, r.content, r.output);
        }
      }
    }
  });
}

const result = (text: string, stop_reason: GenerateResult["stop_reason"] = "eos"): GenerateResult => ({
  text,
  stop_reason,
  usage: { prompt_tokens: 1, completion_tokens: 1, cached_tokens: 0 },
  timings: { queue_ms: 0, prompt_ms: 0, decode_ms: 0, first_token_ms: 0, total_ms: 0, prompt_tokens_per_second: 0, decode_tokens_per_second: 0 },
});

test("the final carries tool_calls with ids, or the text and a clear stop_reason when a call is broken", (t) => {
  const auto = planToolCalls(hermes, tools, { kind: "auto" })!;
  const ok = withToolCalls(result('Turning it on.\n<tool_call>\n{"name": "HassTurnOn", "arguments": {"name": "lamp"}}\n</tool_call>'), auto);
  t.is(ok.stop_reason, "tool_calls");
  t.is(ok.text, "Turning it on.");
  t.is(ok.tool_calls?.length, 1);
  t.regex(ok.tool_calls![0].id, /^[a-zA-Z0-9]{9}$/);
  t.deepEqual({ ...ok.tool_calls![0], id: "" }, { id: "", name: "HassTurnOn", arguments: { name: "lamp" } });

  const broken = '<tool_call>\n{"name": "HassTurnOn", "arguments": {"name": "lamp"\n</tool_call>';
  const b = withToolCalls(result(broken), auto);
  t.is(b.stop_reason, "invalid_tool_call");
  t.is(b.text, broken);
  t.regex(b.tool_call_error ?? "", /not complete JSON/);

  const unknown = withToolCalls(result('<tool_call>\n{"name": "OpenGarage", "arguments": {}}\n</tool_call>'), auto);
  t.is(unknown.stop_reason, "invalid_tool_call");
  t.regex(unknown.tool_call_error ?? "", /"OpenGarage", which is not among the tools/);

  // Cut off by max_tokens: stays text, stop_reason length.
  t.deepEqual(withToolCalls(result('<tool_call>\n{"name": "HassTu', "length"), auto), result('<tool_call>\n{"name": "HassTu', "length"));
  const required = planToolCalls(hermes, tools, { kind: "required" })!;
  t.is(withToolCalls(result("No."), required).stop_reason, "invalid_tool_call");
  t.is(withToolCalls(result("No."), auto).stop_reason, "eos");
  t.is(planToolCalls(hermes, tools, { kind: "none" }), null);
});

test("the stream shows the answer's words and holds back the call markup", (t) => {
  const s = new ToolCallStream(hermes.triggers);
  const shown = ["Sure", ", on it. <", "tool", "_call>\n{\"name\"", ": \"HassTurnOn\"}"].map((d) => s.push(d));
  t.deepEqual(shown, ["Sure", ", on it. ", "", "", ""]);
  t.is(s.flush(), "");
  const plain = new ToolCallStream(hermes.triggers);
  t.deepEqual(["a <b", "old> <t", "ext> <"].map((d) => plain.push(d)), ["a <b", "old> ", "<text> "]);
  t.is(plain.flush(), "<");
});

for (const [name, format] of Object.entries(FORMATS)) {
  test(`${name}: the grammar of a call admits the calls the format writes, and its sentences are calls whose arguments validate`, (t) => {
    const g = parseGbnf(toolCallGrammar(format, tools));
    const validators = new Map(tools.map((x) => [x.function.name, validator(x.function.parameters)]));
    const random = rng(18);
    for (let i = 0; i < 200; i++) {
      const text = sample(g, random, 1 + (i % 80));
      t.is(recognise(g, text), "complete");
      const outcome = format.parse(text);
      if ("error" in outcome) return t.fail(`${outcome.error}: ${text}`);
      t.true(outcome.calls.length > 0, text);
      for (const call of outcome.calls) {
        const v = validators.get(call.name);
        if (!v) return t.fail(`unknown tool in ${text}`);
        if (!v(call.arguments)) return t.fail(`${text}: ${errorsText(v)}`);
      }
    }
    const first = recorded[name].find((r) => r.calls?.length === 1)!.output;
    t.not(recognise(g, first), "reject", first);
  });
}

test("a named tool_choice admits calls of that tool only", (t) => {
  const plan = planToolCalls(hermes, tools, { kind: "function", name: "HassBroadcast" })!;
  t.true(plan.fromStart);
  const g = parseGbnf(plan.grammar);
  t.is(recognise(g, '<tool_call>\n{"name": "HassBroadcast", "arguments": {"message": "hi"}}\n</tool_call>'), "complete");
  t.is(recognise(g, '<tool_call>\n{"name": "HassTurnOn", "arguments": {}}\n</tool_call>'), "reject");
});

test("parallel_tool_calls false admits one call per answer (Hermes, Mistral; a Llama 3 answer is one call anyway)", (t) => {
  const one = '<tool_call>\n{"name": "HassBroadcast", "arguments": {"message": "hi"}}\n</tool_call>';
  const single = parseGbnf(planToolCalls(hermes, tools, { kind: "required" }, false)!.grammar);
  t.is(recognise(single, one), "complete");
  t.is(recognise(single, `${one}\n${one}`), "reject");
  t.is(recognise(parseGbnf(planToolCalls(hermes, tools, { kind: "required" })!.grammar), `${one}\n${one}`), "complete", "parallel by default");
  const call = '{"name": "HassBroadcast", "arguments": {"message": "hi"}}';
  const mistralOne = parseGbnf(toolCallGrammar(mistral, tools, false));
  t.is(recognise(mistralOne, `[TOOL_CALLS][${call}]`), "complete");
  t.is(recognise(mistralOne, `[TOOL_CALLS][${call}, ${call}]`), "reject");
});

test("the format comes from the chat template; a template without tools takes none", (t) => {
  t.is(toolFormatFor("{% if tools %}<tool_call>{% endif %}"), hermes);
  t.is(toolFormatFor("{% if tools %}[AVAILABLE_TOOLS]{{ tools|tojson }}[/AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS]"), mistral);
  t.is(toolFormatFor('{% if tools %}<|start_header_id|>ipython<|end_header_id|>{"name": "x", "parameters": {}}<|python_tag|>{% endif %}'), llama3);
  t.is(toolFormatFor("{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{% endfor %}"), null);
});

test("tools, tool_choice and tool messages are checked at the boundary", (t) => {
  const ctx = { nCtx: 128 };
  const v = (o: object) => validateRequest({ op: "generate", messages: [{ role: "user", content: "hi" }], ...o }, ctx, () => "t");
  const e = (o: object) => t.throws(() => v(o), { instanceOf: ProtocolError })?.message ?? "";
  t.regex(e({ tools: {} }), /tools must be an array/);
  t.regex(e({ tools: [{ type: "function", function: { name: "bad name!" } }] }), /tools\[0\]\.function\.name/);
  t.regex(e({ tools: [{ function: { name: "a" } }, { function: { name: "a" } }] }), /given twice/);
  t.regex(e({ tools: [{ function: { name: "a", parameters: "x" } }] }), /parameters must be a JSON Schema object/);
  t.regex(e({ tools: [{ function: { name: "a" } }], tool_choice: { type: "function", function: { name: "b" } } }), /not among the tools/);
  t.regex(e({ tool_choice: "required" }), /needs tools/);
  t.regex(e({ tool_choice: "sometimes" }), /tool_choice must be/);
  t.regex(t.throws(() => validateRequest({ op: "generate", prompt: "x", tools: [] }, ctx, () => "t"))?.message ?? "", /go with messages/);
  t.regex(e({ messages: [{ role: "assistant", tool_calls: [{ function: { name: "a", arguments: "{oops" } }] }] }), /not valid JSON/);

  const r = v({
    tools: [{ type: "function", function: { name: "HassTurnOn", parameters: { type: "object", properties: {} } } }],
    tool_choice: "required",
    messages: [
      { role: "user", content: "on" },
      { role: "assistant", content: null, tool_calls: [{ id: "x1", type: "function", function: { name: "HassTurnOn", arguments: '{"name": "lamp"}' } }] },
      { role: "tool", content: '{"success": true}', tool_call_id: "x1", tool_name: "HassTurnOn" },
    ],
  });
  if (r.op !== "generate" || r.source.kind !== "messages") return t.fail();
  t.deepEqual(r.toolChoice, { kind: "required" });
  t.deepEqual(r.source.messages[1], { role: "assistant", content: "", tool_calls: [{ id: "x1", type: "function", function: { name: "HassTurnOn", arguments: { name: "lamp" } } }] });
  t.deepEqual(r.source.messages[2], { role: "tool", content: '{"success": true}', tool_call_id: "x1", name: "HassTurnOn" });
});

testNeeding(test, needShared, "Qwen3's chat template renders the tools, earlier calls and tool results as transformers does", (t) => {
  const source = readGguf(sharedModel("qwen3-tiny-f32.gguf")).metadata["tokenizer.chat_template"] as string;
  t.is(toolFormatFor(source), hermes);
  const tpl = new ChatTemplate(source, { bos: "", eos: "<|im_end|>" });
  const text = tpl.render(
    [
      { role: "user", content: "Turn on the kitchen light" },
      { role: "assistant", content: "", tool_calls: [{ id: "a1", type: "function", function: { name: "HassTurnOn", arguments: { name: "kitchen light" } } }] },
      { role: "tool", content: '{"success": true}', tool_call_id: "a1" },
    ],
    { tools: tools.slice(0, 1) },
  );
  t.true(text.includes('<tools>\n{"type": "function", "function": {"name": "HassTurnOn"'));
  t.true(text.includes('<|im_start|>assistant\n<tool_call>\n{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}\n</tool_call><|im_end|>'));
  t.true(text.includes('<tool_response>\n{"success": true}\n</tool_response>'));
  t.true(text.endsWith("<|im_start|>assistant\n"));
});

// ─── Through the router, on the real engine ──────────────────────────────────────────────────────

const TOOL_TEMPLATE =
  "{% if tools %}{{ 'tools: ' }}{% for t in tools %}{{ t.function.name + ' ' }}{% endfor %}{{ '<tool_call>\\n' }}{% endif %}" +
  "{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}{{ 'assistant:' }}";

function routerWith(template: string) {
  const model = openModel(STORIES(), { nCtx: 128, nSeq: 1, threads: 1 });
  const scheduler = new Scheduler(model);
  scheduler.start();
  const router = new Router({ model, scheduler, chatTemplate: new ChatTemplate(template, { bos: "<s>", eos: "</s>" }), version: "test" });
  const sent: ReplyMessage[] = [];
  const session = router.openSession({ send: (m) => sent.push(m), congested: () => false, onceDrained: () => {} }, "test");
  const finals = () => sent.filter((m): m is Extract<ReplyMessage, { status: unknown }> => "status" in m);
  return { session, finals, teardown: async () => (await scheduler.stop(0), model.close()) };
}

testNeeding(test, needShared, "the router renders tools into the prompt, and refuses them for a template that takes none", async (t) => {
  const tool = [{ type: "function", function: { name: "HassTurnOn", parameters: { type: "object", properties: { name: { type: "string" } } } } }];
  const s = routerWith(TOOL_TEMPLATE);
  t.teardown(s.teardown);
  const ask = (transaction: string, extra: object) =>
    s.session.handle({ op: "generate", transaction, messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0, ...extra });
  ask("plain", {});
  ask("tools", { tools: tool });
  ask("none", { tools: tool, tool_choice: "none" });
  await waitFor(() => s.finals().length === 3);
  const usage = (id: string) => {
    const f = s.finals().find((m) => m.transaction === id);
    if (f?.status !== "ok") throw new Error(JSON.stringify(f));
    return (f.data as GenerateResult).usage.prompt_tokens;
  };
  t.true(usage("tools") > usage("plain"), "the tools are in the prompt");
  t.is(usage("none"), usage("plain"), 'tool_choice "none" shows no tools');

  const bare = routerWith("{% for m in messages %}{{ m.content }}{% endfor %}");
  t.teardown(bare.teardown);
  bare.session.handle({ op: "generate", transaction: "t", messages: [{ role: "user", content: "Hi" }], tools: tool, max_tokens: 2 });
  await waitFor(() => bare.finals().length === 1);
  const f = bare.finals()[0];
  t.is(f.status, "error");
  if (f.status === "error") t.regex(f.error.message, /chat template does not take tools/);
});
