// Tool calls (OpenAI's and Ollama's function calling) for `messages` requests: the tools and
// tool_choice of a request, checked at the boundary; the format the model's chat template writes
// calls in (a table, one file per format); the grammar that makes a call's arguments fit its tool's
// parameters; holding call markup back from the stream; and reading the calls out of the answer.
import { randomInt } from "node:crypto";
import { GbnfRules } from "./gbnf-writer.js";
import { SchemaError, SchemaTranslator } from "./json-schema-grammar.js";
import type { GenerateResult } from "./protocol.js";
import type { GenerationSink } from "./scheduler.js";
import { ProtocolError } from "./protocol.js";
import type { ToolFormat } from "./tool-formats/format.js";
import { hermes } from "./tool-formats/hermes.js";
import { llama3 } from "./tool-formats/llama3.js";
import { mistral } from "./tool-formats/mistral.js";

/** The formats, by the first whose mark a chat template carries. */
export const TOOL_FORMATS: readonly ToolFormat[] = [hermes, mistral, llama3];

export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

export type ToolChoice = { kind: "auto" } | { kind: "none" } | { kind: "required" } | { kind: "function"; name: string };

/** A call in the final: `arguments` is the parsed object (they always validate when a grammar constrained them). */
export interface ToolCall {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
}

/** An assistant turn's earlier calls, as the chat templates read them (transformers' shape). */
export interface TemplateToolCall {
  id?: string;
  type: "function";
  function: { name: string; arguments: Record<string, unknown> };
}

export const TOOL_LIMITS = { maxTools: 128, maxNameChars: 64, maxToolCalls: 64 } as const;

function bad(message: string): never {
  throw new ProtocolError("bad_request", message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const TOOL_NAME = /^[a-zA-Z0-9_.-]{1,64}$/;

// ─── Validation at the boundary ────────────────────────────────────────────────────────────────

/** `tools`: OpenAI's and Ollama's [{type: "function", function: {name, description, parameters}}]. */
export function validateTools(v: unknown): ToolDefinition[] {
  if (!Array.isArray(v)) bad(`tools must be an array of {type: "function", function: {...}}`);
  if (v.length > TOOL_LIMITS.maxTools) bad(`tools has more than ${TOOL_LIMITS.maxTools} entries`);
  const names = new Set<string>();
  return v.map((t, i) => {
    const at = `tools[${i}]`;
    if (!isObject(t)) bad(`${at} must be an object {type: "function", function: {...}}`);
    if (t.type !== undefined && t.type !== "function") bad(`${at}.type must be "function"`);
    const f = t.function;
    if (!isObject(f)) bad(`${at}.function must be an object {name, description, parameters}`);
    if (typeof f.name !== "string" || !TOOL_NAME.test(f.name)) bad(`${at}.function.name must be 1 to 64 letters, digits, "_", "." or "-"`);
    if (names.has(f.name)) bad(`${at}.function.name "${f.name}" is given twice`);
    names.add(f.name);
    if (f.description !== undefined && typeof f.description !== "string") bad(`${at}.function.description must be a string`);
    const parameters = f.parameters ?? { type: "object", properties: {} };
    if (!isObject(parameters)) bad(`${at}.function.parameters must be a JSON Schema object`);
    return {
      type: "function",
      function: { name: f.name, ...(f.description !== undefined ? { description: f.description } : {}), parameters },
    };
  });
}

/** `tool_choice`: "auto" | "none" | "required" | {type: "function", function: {name}} (OpenAI). */
export function validateToolChoice(v: unknown, tools: ToolDefinition[] | undefined): ToolChoice {
  if (v === undefined || v === null) return { kind: "auto" };
  if (v === "auto" || v === "none" || v === "required") {
    if (v === "required" && !tools?.length) bad('tool_choice "required" needs tools');
    return { kind: v };
  }
  const name = isObject(v) && isObject(v.function) ? v.function.name : undefined;
  if (typeof name !== "string") bad('tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": …}}');
  if (!tools?.some((t) => t.function.name === name)) bad(`tool_choice names "${name.slice(0, 64)}", which is not among the tools`);
  return { kind: "function", name };
}

/**
 * An assistant message's `tool_calls`, in OpenAI's ({id, type, function: {name, arguments: "JSON"}})
 * or Ollama's shape ({function: {name, arguments: {…}}}) or this daemon's own final ({id, name,
 * arguments}); arguments become objects, as the templates expect.
 */
export function validateMessageToolCalls(v: unknown, at: string): TemplateToolCall[] {
  if (!Array.isArray(v)) bad(`${at}.tool_calls must be an array`);
  if (v.length > TOOL_LIMITS.maxToolCalls) bad(`${at}.tool_calls has more than ${TOOL_LIMITS.maxToolCalls} entries`);
  return v.map((c, i) => {
    const where = `${at}.tool_calls[${i}]`;
    if (!isObject(c)) bad(`${where} must be an object`);
    const f = isObject(c.function) ? c.function : c;
    if (typeof f.name !== "string" || f.name.length === 0 || f.name.length > TOOL_LIMITS.maxNameChars) bad(`${where} needs a function name`);
    let args = f.arguments ?? {};
    if (typeof args === "string") {
      try {
        args = JSON.parse(args);
      } catch {
        bad(`${where}.function.arguments is not valid JSON`);
      }
    }
    if (!isObject(args)) bad(`${where}.function.arguments must be a JSON object`);
    if (c.id !== undefined && typeof c.id !== "string") bad(`${where}.id must be a string`);
    return { ...(typeof c.id === "string" ? { id: c.id } : {}), type: "function", function: { name: f.name, arguments: args } };
  });
}

// ─── Choosing a format and building its grammar ────────────────────────────────────────────────

/** The format a chat template writes calls in, or null when the template does not take tools. */
export function toolFormatFor(templateSource: string): ToolFormat | null {
  if (!/\btools\b/.test(templateSource)) return null;
  return TOOL_FORMATS.find((f) => f.speaks(templateSource)) ?? null;
}

/** How one request uses tools: what the grammar engine needs and what reads the answer. */
export interface ToolPlan {
  format: ToolFormat;
  tools: ToolDefinition[];
  /** GBNF of the calls (start rule "root"), from a trigger's first byte. */
  grammar: string;
  /** true: the answer must be calls from its first token (required or a named tool). */
  fromStart: boolean;
}

/**
 * The plan for a request's tools, or null when tool_choice is "none" (the tools are not shown);
 * `parallel` false allows one call per answer (OpenAI's parallel_tool_calls).
 */
export function planToolCalls(format: ToolFormat, tools: ToolDefinition[], choice: ToolChoice, parallel = true): ToolPlan | null {
  if (choice.kind === "none" || tools.length === 0) return null;
  const callable = choice.kind === "function" ? tools.filter((t) => t.function.name === choice.name) : tools;
  // A named tool is called once.
  return { format, tools, grammar: toolCallGrammar(format, callable, parallel && choice.kind !== "function"), fromStart: choice.kind !== "auto" };
}

/** GBNF for calls of these tools in this format, each tool's arguments fitting its parameters. */
export function toolCallGrammar(format: ToolFormat, tools: ToolDefinition[], parallel = true): string {
  const rules = new GbnfRules();
  const root = rules.reserve("root");
  const rulesOfTools = tools.map((t, i) => {
    try {
      const translator = new SchemaTranslator(rules, t.function.parameters, true);
      return { name: t.function.name, args: translator.ref(t.function.parameters, "", `${t.function.name}-args`) };
    } catch (e) {
      if (e instanceof SchemaError) bad(`tools[${i}].function.parameters${e.path}: ${e.message.slice(e.path ? e.path.length + 2 : 0)}`);
      throw e;
    }
  });
  rules.define(root, format.grammar(rulesOfTools, rules, parallel));
  return rules.toString(root);
}

// ─── The answer ────────────────────────────────────────────────────────────────────────────────

/**
 * Holds back streamed text from where a call may start (a trigger, or what could still become one),
 * so that clients see the answer's words but not the call markup; the final carries the calls.
 */
export class ToolCallStream {
  private held = "";
  private inCall = false;

  constructor(private readonly triggers: readonly string[]) {}

  /** The part of `text` that can be shown now. */
  push(text: string): string {
    if (this.inCall) return "";
    const all = this.held + text;
    for (const t of this.triggers) {
      const i = all.indexOf(t);
      if (i >= 0) {
        this.inCall = true;
        this.held = "";
        return all.slice(0, i);
      }
    }
    // Keep the longest tail that is the start of a trigger.
    let keep = 0;
    for (const t of this.triggers) for (let n = Math.min(t.length - 1, all.length); n > keep; n--) if (all.endsWith(t.slice(0, n))) keep = n;
    this.held = all.slice(all.length - keep);
    return all.slice(0, all.length - keep);
  }

  /** What is still held when the answer ends without a call. */
  flush(): string {
    const rest = this.inCall ? "" : this.held;
    this.held = "";
    return rest;
  }
}

/** Reads the calls out of a finished answer: text, tool_calls and stop_reason "tool_calls", or the text as it is with "invalid_tool_call". */
export function withToolCalls(result: GenerateResult, plan: ToolPlan): GenerateResult {
  // Cut short (length, cancelled, timeout): the answer stays text, the stop_reason says why.
  if (result.stop_reason !== "eos" && result.stop_reason !== "stop") return result;
  const outcome = plan.format.parse(result.text);
  if ("error" in outcome) return { ...result, stop_reason: "invalid_tool_call", tool_call_error: outcome.error };
  if (outcome.calls.length === 0) {
    if (plan.fromStart) return { ...result, stop_reason: "invalid_tool_call", tool_call_error: "the answer holds no tool call" };
    return result;
  }
  const known = new Set(plan.tools.map((t) => t.function.name));
  const unknown = outcome.calls.find((c) => !known.has(c.name));
  if (unknown) return { ...result, stop_reason: "invalid_tool_call", tool_call_error: `the model called "${unknown.name}", which is not among the tools` };
  return { ...result, text: outcome.content, stop_reason: "tool_calls", tool_calls: outcome.calls.map((c) => ({ id: callId(), ...c })) };
}

/** A sink that streams only the answer's words and puts the calls into the final. */
export function toolCallSink(sink: GenerationSink, plan: ToolPlan): GenerationSink {
  // An answer that must be calls from its first token has no words to stream.
  const stream = new ToolCallStream(plan.fromStart ? [""] : plan.format.triggers);
  return {
    delta: (text) => {
      const shown = stream.push(text);
      if (shown) sink.delta(shown);
    },
    thinking: sink.thinking && ((text) => sink.thinking!(text)),
    done: (result) => {
      const rest = stream.flush();
      if (rest) sink.delta(rest);
      sink.done(withToolCalls(result, plan));
    },
    fail: (code, message) => sink.fail(code, message),
  };
}

const ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** Nine letters and digits: the id shape Mistral's templates insist on, and fine for everyone else. */
function callId(): string {
  let id = "";
  for (let i = 0; i < 9; i++) id += ID_CHARS[randomInt(ID_CHARS.length)];
  return id;
}
