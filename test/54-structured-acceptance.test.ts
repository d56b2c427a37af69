// Structured output on the real engine, judged by parts that share no code with it: the schemas of
// test/fixtures/schemas through `format` at temperature 1.0 on the random-weight models of ../shared
// and stories260K, checked with ajv; tool calls under tool_choice "required", checked against their
// tool's parameters; and llama.cpp's and home-llm's grammar files through `grammar`, every output
// checked by the test-only recogniser (test/helpers/gbnf.ts).
//
// Random weights almost never close a string or a repetition on their own; the grammar closes each
// answer within its max_tokens (docs/protocol.md, "Closing in budget"), so EVERY answer must end,
// parse and validate. Each budget is the grammar's shortest sentence (as the test-only reader counts
// it) plus room: a budget that cannot hold the shortest sentence cannot promise one.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import type { ExecutionContext } from "ava";
import { openModel } from "../daemon/engine/engine.js";
import { readGguf } from "../daemon/engine/gguf.js";
import type { GenerateResult, ReplyMessage } from "../daemon/serving/protocol.js";
import { Router } from "../daemon/serving/router.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { schemaToGbnf } from "../daemon/serving/json-schema-grammar.js";
import { ChatTemplate } from "../daemon/serving/templates.js";
import { hermes } from "../daemon/serving/tool-formats/hermes.js";
import { toolCallGrammar, validateTools } from "../daemon/serving/tool-calls.js";
import { errorsText, validator } from "./helpers/ajv.js";
import { waitFor } from "./helpers/daemon.js";
import { needQwen3 } from "./helpers/http-daemon.js";
import { parseGbnf, recognise } from "./helpers/gbnf.js";
import { needShared, ROOT, sharedModel, testNeeding } from "./helpers/shared.js";

const fixtures = path.join(ROOT, "test", "fixtures");
const schemas: { name: string; schema: unknown }[] = JSON.parse(fs.readFileSync(path.join(fixtures, "schemas", "schemas.json"), "utf8"));
const tools = validateTools(JSON.parse(fs.readFileSync(path.join(fixtures, "schemas", "tools.json"), "utf8")));
const GENERATIONS = 20;
/** Tokens beyond the shortest sentence: room for the model's own choices before the grammar closes. */
const ROOM = 24;

/** The fewest characters of a sentence of `gbnf`, by the test-only reader; the end token after them. */
const budgetFor = (gbnf: string) => parseGbnf(gbnf).minLength.get("root")! + 1 + ROOM;

type Final = Extract<ReplyMessage, { status: unknown }>;

/** A router over one model that batches every request sent at once (8 sequences per engine call). */
function serve(file: string, chatTemplate?: string) {
  const model = openModel(sharedModel(file), { nCtx: 2048, nSeq: 8, threads: 1 });
  const scheduler = new Scheduler(model, { maxQueue: 4000, maxBatchTokens: 512 });
  scheduler.start();
  const template = chatTemplate ? new ChatTemplate(chatTemplate, { bos: "", eos: "" }) : undefined;
  const router = new Router({ model, scheduler, chatTemplate: template, version: "test" });
  const finals = new Map<string, Final>();
  const session = router.openSession({ send: (m) => void ("status" in m && finals.set(String(m.transaction), m)), congested: () => false, onceDrained: () => {} }, "test");
  return {
    /** Sends every request at once and waits for all finals. */
    async all(requests: Record<string, object>): Promise<Map<string, Final>> {
      for (const [id, r] of Object.entries(requests)) session.handle({ op: "generate", transaction: id, stream: false, ...r });
      await waitFor(() => Object.keys(requests).every((id) => finals.has(id)), 20 * 60_000);
      return finals;
    },
    close: async () => {
      await scheduler.stop(0);
      model.close();
    },
  };
}

function data(f: Final | undefined): GenerateResult {
  if (f?.status !== "ok") throw new Error(`not ok: ${JSON.stringify(f)}`);
  return f.data as GenerateResult;
}

const qwen3Template = () => readGguf(sharedModel("qwen3-tiny-f32.gguf")).metadata["tokenizer.chat_template"] as string;

// stories260K, the K-quant files and llama3-tiny read a plain prompt; Qwen3 is asked through its own
// chat template.
const SCHEMA_MODELS = [
  { file: "stories260K-f32.gguf", need: needShared },
  ...["q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"].map((q) => ({ file: `kq-tiny-${q}.gguf`, need: needShared })),
  { file: "llama3-tiny-f32.gguf", need: needShared },
  { file: "qwen3-tiny-f32.gguf", need: needQwen3, chat: true },
];

for (const m of SCHEMA_MODELS) {
  const title = `${m.file}: ${GENERATIONS} answers to each of ${schemas.length} schemas at temperature 1.0 end, parse and validate`;
  testNeeding(test, m.need, title, async (t) => {
    const s = serve(m.file, m.chat ? qwen3Template() : undefined);
    t.teardown(s.close);
    const requests: Record<string, object> = {};
    schemas.forEach((c, i) => {
      const ask = m.chat ? { messages: [{ role: "user", content: `${c.name} as JSON` }] } : { prompt: `${c.name} as JSON:` };
      const max_tokens = budgetFor(schemaToGbnf(c.schema));
      for (let k = 0; k < GENERATIONS; k++) requests[`${i}/${k}`] = { ...ask, format: c.schema, temperature: 1.0, seed: 1000 * i + k, max_tokens };
    });
    const finals = await s.all(requests);
    let closed = 0;
    schemas.forEach((c, i) => {
      const validate = validator(c.schema);
      for (let k = 0; k < GENERATIONS; k++) {
        const r = data(finals.get(`${i}/${k}`));
        t.is(r.stop_reason, "eos", `${c.name} #${k}: ${r.text}`);
        let value: unknown;
        try {
          value = JSON.parse(r.text);
        } catch {
          t.fail(`${c.name} #${k}: not JSON: ${r.text}`);
          continue;
        }
        t.true(validate(value), `${c.name} #${k}: ${r.text}: ${errorsText(validate)}`);
        t.deepEqual(r.json, value, `${c.name} #${k}: the final's json is the parsed text`);
        if (r.closed_by_budget) closed++;
      }
    });
    t.log(`${schemas.length * GENERATIONS} answers validate; ${closed} of them were closed by their budget`);
  });
}

// A Hermes-style template (as Qwen's and Hermes 2 Pro's) for models whose own template takes no tools.
const TOOL_TEMPLATE =
  "{% if tools %}{{ '<tools>' }}{% for t in tools %}{{ t | tojson }}{% endfor %}{{ '</tools>\\nCall them as <tool_call>{\"name\": …, \"arguments\": …}</tool_call>\\n' }}{% endif %}" +
  "{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}{{ 'assistant: ' }}";

const TOOL_MODELS = [
  { file: "stories260K-f32.gguf", need: needShared, template: () => TOOL_TEMPLATE },
  { file: "kq-tiny-q4_k_m.gguf", need: needShared, template: () => TOOL_TEMPLATE },
  { file: "qwen3-tiny-f32.gguf", need: needQwen3, template: qwen3Template },
];

for (const m of TOOL_MODELS) {
  testNeeding(test, m.need, `${m.file}: with tool_choice "required" every answer calls given tools with arguments that validate`, async (t) => {
    const s = serve(m.file, m.template());
    t.teardown(s.close);
    const validators = new Map(tools.map((x) => [x.function.name, validator(x.function.parameters)]));
    const max_tokens = budgetFor(toolCallGrammar(hermes, tools));
    const requests: Record<string, object> = {};
    for (let k = 0; k < GENERATIONS; k++)
      requests[`t${k}`] = { messages: [{ role: "user", content: "Turn on the kitchen light" }], tools, tool_choice: "required", temperature: 1.0, seed: k, max_tokens };
    requests.named = { messages: [{ role: "user", content: "Say hi" }], tools, tool_choice: { type: "function", function: { name: "GetLiveContext" } }, seed: 1, max_tokens };
    const finals = await s.all(requests);
    let calls = 0;
    let closed = 0;
    for (let k = 0; k < GENERATIONS; k++) {
      const r = data(finals.get(`t${k}`));
      t.is(r.stop_reason, "tool_calls", `#${k}: ${r.text} ${r.tool_call_error ?? ""}`);
      t.true((r.tool_calls?.length ?? 0) > 0);
      for (const c of r.tool_calls ?? []) {
        calls++;
        const v = validators.get(c.name);
        t.truthy(v, `#${k} calls "${c.name}", which is not a given tool`);
        if (v) t.true(v(c.arguments), `#${k} ${c.name} ${JSON.stringify(c.arguments)}: ${errorsText(v)}`);
      }
      if (r.closed_by_budget) closed++;
    }
    const named = data(finals.get("named"));
    t.is(named.stop_reason, "tool_calls");
    t.deepEqual(named.tool_calls?.map((c) => [c.name, c.arguments]), [["GetLiveContext", {}]]);
    t.log(`${calls} calls in ${GENERATIONS} answers, all of given tools with valid arguments; ${closed} answers closed by their budget of ${max_tokens}`);
  });
}

function checkGrammarFile(t: ExecutionContext, name: string, finals: Map<string, Final>) {
  const grammar = parseGbnf(fs.readFileSync(path.join(fixtures, "grammars", `${name}.gbnf`), "utf8"));
  let closed = 0;
  for (let k = 0; k < 200; k++) {
    const r = data(finals.get(`${name}/${k}`));
    t.is(r.stop_reason, "eos", `${name} #${k}: ${JSON.stringify(r.text)}`);
    t.is(recognise(grammar, r.text), "complete", `${name} #${k}: ${JSON.stringify(r.text)}`);
    if (r.closed_by_budget) closed++;
  }
  t.log(`${name}.gbnf: 200 outputs are sentences of the grammar; ${closed} were closed by their budget`);
}

testNeeding(test, needShared, "llama.cpp's json.gbnf and list.gbnf and home-llm's output.gbnf: 200 sampled outputs each are sentences by the test-only recogniser", async (t) => {
  const s = serve("stories260K-f32.gguf");
  t.teardown(s.close);
  const requests: Record<string, object> = {};
  for (const name of ["json", "list", "output"]) {
    const gbnf = fs.readFileSync(path.join(fixtures, "grammars", `${name}.gbnf`), "utf8");
    for (let k = 0; k < 200; k++) requests[`${name}/${k}`] = { prompt: "Once upon a time", grammar: gbnf, temperature: 1.0, seed: k, max_tokens: budgetFor(gbnf) };
  }
  const finals = await s.all(requests);
  for (const name of ["json", "list", "output"]) checkGrammarFile(t, name, finals);
});
