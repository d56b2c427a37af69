// Checking the fields of an Ollama or OpenAI request body, each error naming the field as the
// client wrote it ("options.temperature", "messages[2].content"), then the pieces both APIs share:
// chat messages, stop strings, sampling.
import type { ChatMessage, GenerateRequest, OutputConstraint, PromptSource, SamplingParams } from "../../serving/protocol.js";
import { DEFAULT_SAMPLING, LIMITS, ProtocolError } from "../../serving/protocol.js";
import type { ToolChoice, ToolDefinition } from "../../serving/tool-calls.js";
import { validateMessageToolCalls, validateToolChoice, validateTools } from "../../serving/tool-calls.js";

export type Json = Record<string, unknown>;

/** A bad field: answered 400 with the field's name (OpenAI's `param`). */
export class FieldError extends ProtocolError {
  constructor(
    message: string,
    readonly param: string | null,
  ) {
    super("bad_request", message);
  }
}

export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return "a string";
  return typeof v === "object" ? "an object" : `${typeof v} ${JSON.stringify(v)}`;
}

const isWellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The request body, which must be a JSON object. */
export function bodyObject(v: unknown): Json {
  if (!isObject(v)) throw new FieldError(`the request body must be a JSON object, got ${typeName(v)}`, null);
  return v;
}

/** Reads the fields of one JSON object; `at` is its place in the request ("options", "messages[1]"). */
export class Fields {
  constructor(
    readonly o: Json,
    private readonly at = "",
  ) {}

  name(key: string): string {
    return this.at ? `${this.at}.${key}` : key;
  }

  fail(key: string, problem: string): never {
    throw new FieldError(`${this.name(key)} ${problem}`, this.name(key));
  }

  has(key: string): boolean {
    return this.o[key] !== undefined && this.o[key] !== null;
  }

  string(key: string, maxChars: number = LIMITS.maxPromptChars): string | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") this.fail(key, `must be a string, got ${typeName(v)}`);
    if (v.length > maxChars) this.fail(key, `is longer than ${maxChars} characters`);
    if (!isWellFormed(v)) this.fail(key, "is not valid Unicode (lone surrogate)");
    return v;
  }

  requiredString(key: string, maxChars?: number): string {
    const v = this.string(key, maxChars);
    if (v === undefined) this.fail(key, "is required");
    return v;
  }

  number(key: string, min: number, max: number, integer = false): number | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(key, `must be a number, got ${typeName(v)}`);
    if (integer && !Number.isInteger(v)) this.fail(key, `must be an integer, got ${v}`);
    if (v < min || v > max) this.fail(key, `must be from ${min} to ${max}, got ${v}`);
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") this.fail(key, `must be true or false, got ${typeName(v)}`);
    return v;
  }

  object(key: string): Fields | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) this.fail(key, `must be an object, got ${typeName(v)}`);
    return new Fields(v, this.name(key));
  }

  array(key: string, maxItems: number): unknown[] | undefined {
    const v = this.o[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.fail(key, `must be an array, got ${typeName(v)}`);
    if (v.length > maxItems) this.fail(key, `has more than ${maxItems} entries`);
    return v;
  }

  /** stop: a string or an array of strings. */
  stop(key: string): string[] {
    const v = this.o[key];
    if (v === undefined || v === null) return [];
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list)) this.fail(key, `must be a string or an array of strings, got ${typeName(v)}`);
    if (list.length > LIMITS.maxStopStrings) this.fail(key, `has more than ${LIMITS.maxStopStrings} strings`);
    const out: string[] = [];
    list.forEach((s, i) => {
      const at = `${key}[${i}]`;
      if (typeof s !== "string") this.fail(at, `must be a string, got ${typeName(s)}`);
      if (s.length > LIMITS.maxStopChars) this.fail(at, `is longer than ${LIMITS.maxStopChars} characters`);
      if (!isWellFormed(s)) this.fail(at, "is not valid Unicode (lone surrogate)");
      if (s !== "") out.push(s); // clients send "" for "no stop string"
    });
    return out;
  }
}

/** Runs a check of the protocol's own; its complaint becomes this field's (`param`). */
export function asField<T>(param: string, check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof ProtocolError && !(e instanceof FieldError)) throw new FieldError(e.message, param);
    throw e;
  }
}

export interface ToolsShape {
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
}

/** tools, tool_choice and parallel_tool_calls (OpenAI's shapes; Ollama's tools are the same). */
export function toolsOf(f: Fields): ToolsShape {
  const tools = f.has("tools") ? asField("tools", () => validateTools(f.o.tools)) : undefined;
  const toolChoice = f.has("tool_choice") ? asField("tool_choice", () => validateToolChoice(f.o.tool_choice, tools)) : undefined;
  const parallel = f.bool("parallel_tool_calls");
  return { ...(tools?.length ? { tools } : {}), ...(toolChoice ? { toolChoice } : {}), ...(parallel === false ? { parallelToolCalls: false } : {}) };
}

/** A seed: negative means "pick one" (as llama.cpp's -1), beyond 2^53 is refused. */
export function seedOf(f: Fields, key: string): number | undefined {
  const v = f.number(key, -(2 ** 53), LIMITS.maxSeed, true);
  return v === undefined || v < 0 ? undefined : v;
}

/** Sampling settings from fields named as llama.cpp, Ollama and OpenAI name them; the rest defaults. */
export function samplingOf(f: Fields): SamplingParams {
  const d = DEFAULT_SAMPLING;
  return {
    temperature: f.number("temperature", 0, 100) ?? d.temperature,
    // top_k 0 and top_p 1 switch those filters off, as in llama.cpp; top_p 0 keeps the best token
    topK: f.number("top_k", 0, 1 << 30, true) ?? d.topK,
    topP: Math.max(f.number("top_p", 0, 1) ?? d.topP, Number.MIN_VALUE),
    minP: f.number("min_p", 0, 1) ?? d.minP,
    // 0 is Go's zero value, "not set", for Ollama's clients
    repeatPenalty: f.number("repeat_penalty", 0, 100) || d.repeatPenalty,
    seed: seedOf(f, "seed"),
  };
}

let nextTransaction = 0;

/**
 * The router's request for one HTTP generation: sampling and stop strings read from `f` (the body,
 * or Ollama's options), max tokens a ceiling that the context may lower (docs/http.md).
 */
export function generationOf(
  f: Fields,
  source: PromptSource,
  maxTokens: number | undefined,
  stream: boolean,
  shape: ToolsShape & { constraint?: OutputConstraint; think?: boolean } = {},
): GenerateRequest {
  // The answer is either calls or JSON in a format: a format would forbid the calls' markup.
  if (shape.tools && shape.constraint && shape.toolChoice?.kind !== "none")
    throw new FieldError("tools and a response format cannot be combined: the answer is either tool calls or JSON", "tools");
  return {
    ...shape,
    op: "generate",
    transaction: `http-${++nextTransaction}`,
    source,
    maxTokens,
    sampling: samplingOf(f),
    stop: f.stop("stop"),
    stream,
    priority: 0,
    upToContext: true,
    trimHistory: true,
  };
}

// ─── Chat messages ───────────────────────────────────────────────────────────────────────────

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/**
 * The text of a message's content: a string, or (OpenAI) an array of parts of which only text
 * parts can be read by this model. Null is empty (an assistant turn that only called tools).
 */
function contentText(f: Fields): string {
  const v = f.o.content;
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return f.string("content")!;
  if (!Array.isArray(v)) f.fail("content", `must be a string or an array of content parts, got ${typeName(v)}`);
  let text = "";
  v.forEach((part, i) => {
    const p = new Fields(isObject(part) ? part : {}, `${f.name("content")}[${i}]`);
    if (!isObject(part)) p.fail("", `must be an object {type, text}`);
    const type = p.requiredString("type", 32);
    if (type !== "text") p.fail("type", `"${type.slice(0, 32)}" cannot be read: this model reads text only`);
    text += p.requiredString("text");
  });
  return text;
}

/** Messages as both APIs send them; roles as OpenAI names them are mapped (developer → system). */
export function chatMessages(f: Fields, key = "messages"): ChatMessage[] {
  const list = f.array(key, LIMITS.maxMessages);
  if (list === undefined) f.fail(key, "is required");
  if (list.length === 0) f.fail(key, "is empty");
  let total = 0;
  return list.map((m, i) => {
    const at = `${f.name(key)}[${i}]`;
    if (!isObject(m)) throw new FieldError(`${at} must be an object {role, content}`, at);
    const mf = new Fields(m, at);
    let role = mf.requiredString("role", LIMITS.maxRoleChars).toLowerCase();
    if (role === "developer") role = "system";
    if (!ROLES.has(role)) mf.fail("role", `must be system, user, assistant or tool, got "${role.slice(0, 32)}"`);
    const images = mf.array("images", LIMITS.maxMessages);
    if (images && images.length > 0) mf.fail("images", "cannot be read: this model reads text only");
    const content = contentText(mf);
    // An assistant turn's calls (OpenAI's shape or Ollama's), and which call a tool result answers.
    const toolCalls = mf.has("tool_calls") ? asField(`${at}.tool_calls`, () => validateMessageToolCalls(m.tool_calls, at)) : undefined;
    const toolCallId = mf.string("tool_call_id", LIMITS.maxTransactionChars);
    const name = mf.string("tool_name", LIMITS.maxTransactionChars) ?? (role === "tool" ? mf.string("name", LIMITS.maxTransactionChars) : undefined);
    total += content.length + (toolCalls ? JSON.stringify(toolCalls).length : 0);
    if (total > LIMITS.maxPromptChars) f.fail(key, `hold more than ${LIMITS.maxPromptChars} characters in all`);
    return {
      role,
      content,
      ...(toolCalls?.length ? { tool_calls: toolCalls } : {}),
      ...(toolCallId !== undefined ? { tool_call_id: toolCallId } : {}),
      ...(name !== undefined ? { name } : {}),
    };
  });
}
