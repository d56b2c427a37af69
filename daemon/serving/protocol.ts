// The wire protocol shared by every transport (docs/protocol.md): request schema, validation at the
// boundary, error codes and the reply envelopes. Nothing here knows about sockets or the engine.
import type { TemplateToolCall, ToolCall, ToolChoice, ToolDefinition } from "./tool-calls.js";
import { validateMessageToolCalls, validateToolChoice, validateTools } from "./tool-calls.js";

export const API_VERSION = 1;

/**
 * Every operation, defined once: validation, the router's table (which must answer each), the
 * `info` answer and the transports' request topics and routes all read this list.
 */
export const OPS = ["generate", "cancel", "status", "info", "models"] as const;
export type Op = (typeof OPS)[number];

export type ErrorCode = "bad_request" | "too_long" | "busy" | "timeout" | "cancelled" | "shutting_down" | "internal";

export type StopReason = "eos" | "length" | "stop" | "cancelled" | "timeout" | "tool_calls" | "invalid_tool_call";

/** An error that is answered to the client as {"status":"error","error":{code,message}}. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ─── Limits ────────────────────────────────────────────────────────────────────────────────────
// Sized for a Pi: a request can never make the daemon hold more than a few MiB of text.

export const LIMITS = {
  maxLineBytes: 1 << 20, // one request line on the socket
  maxTransactionChars: 128,
  maxPromptChars: 256 * 1024,
  maxMessages: 256,
  maxRoleChars: 32,
  maxStopStrings: 16,
  maxStopChars: 128,
  maxTimeoutMs: 24 * 3600 * 1000,
  maxSeed: 2 ** 53 - 1,
  maxGrammarChars: 64 * 1024, // GBNF text, or a JSON Schema as JSON
  minPriority: -10,
  maxPriority: 10,
} as const;

// ─── Requests ──────────────────────────────────────────────────────────────────────────────────

/**
 * What a client names a request by: a string, or a number echoed as given (zigbee2mqtt's clients
 * count their transactions). 7 and "7" are different transactions.
 */
export type TransactionId = string | number;

export interface ChatMessage {
  role: string;
  content: string;
  tool_calls?: TemplateToolCall[]; // an assistant turn's calls
  tool_call_id?: string; // a tool result: the call it answers
  name?: string; // a tool result: the tool's name
}

/** Exactly one of prompt / instruction(+input) / messages says what to complete. */
export type PromptSource =
  | { kind: "prompt"; prompt: string }
  | { kind: "instruction"; instruction: string; input?: string }
  | { kind: "messages"; messages: ChatMessage[] };

/** What the output must be: JSON (any object, or fitting a JSON Schema) or a GBNF grammar's language. */
export type OutputConstraint = { kind: "format"; format: "json" | Record<string, unknown> } | { kind: "grammar"; grammar: string };

export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  seed?: number;
}

export interface GenerateRequest {
  op: "generate";
  transaction: TransactionId;
  source: PromptSource;
  maxTokens?: number; // undefined: as many as fit, at most DEFAULT_MAX_TOKENS
  sampling: SamplingParams;
  stop: string[];
  stream: boolean;
  timeoutMs?: number;
  priority: number;
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  /** false: at most one call per answer (OpenAI's parallel_tool_calls); default true. */
  parallelToolCalls?: boolean;
  /**
   * maxTokens is a ceiling, not a promise: the answer ends where the context does instead of the
   * request being refused, and without maxTokens it may fill the context (the HTTP APIs, whose
   * clients send max_tokens 3000 to a 2048-token context as they would to llama.cpp or Ollama).
   */
  upToContext?: boolean;
  /**
   * A conversation that leaves the answer too little room (less than max_tokens or a quarter of the
   * context) loses its oldest turns, system messages and the latest turn kept (Ollama's way).
   */
  trimHistory?: boolean;
  constraint?: OutputConstraint;
  /** false: no speculative decoding for this request (docs/speculation.md); the answer is the same either way. */
  speculate?: boolean;
  /** Let a thinking model reason first, and return its reasoning as `thinking` (messages only; default off). */
  think?: boolean;
}

export interface CancelRequest {
  op: "cancel";
  transaction: TransactionId;
  target?: TransactionId; // the generation to cancel; absent: every generation of this client
}

/** The ops whose request is nothing but op and transaction (an empty MQTT payload means one). */
export const SIMPLE_OPS = ["status", "info", "models"] as const satisfies readonly Op[];

export interface SimpleRequest {
  op: (typeof SIMPLE_OPS)[number];
  transaction: TransactionId;
}

export type Request = GenerateRequest | CancelRequest | SimpleRequest;
// Each op has its request type and each request type is an op: a new op is added to OPS and here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const requestsCoverOps: Same<Request["op"], Op> = true;
void requestsCoverOps;

export const DEFAULT_MAX_TOKENS = 256;

export const DEFAULT_SAMPLING: SamplingParams = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1.0,
};

// ─── Replies ───────────────────────────────────────────────────────────────────────────────────

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
}

export interface Timings {
  queue_ms: number;
  prompt_ms: number;
  decode_ms: number;
  first_token_ms: number; // from arrival to the first generated token
  total_ms: number;
  prompt_tokens_per_second: number;
  decode_tokens_per_second: number;
  forced_tokens?: number; // generated tokens a grammar decided, fed without a decode step of their own
  decode_passes?: number; // engine calls that produced generated tokens after the first (see speculation)
  draft_tokens?: number; // tokens proposed by speculation and checked
  accepted_tokens?: number; // of those, the ones the sampler kept
}

export interface GenerateResult {
  text: string;
  json?: unknown; // with `format`: the text, parsed
  stop_reason: StopReason;
  usage: Usage;
  timings: Timings;
  tool_calls?: ToolCall[];
  tool_call_error?: string; // with stop_reason "invalid_tool_call": what is wrong with the call
  thinking?: string; // with think: the model's reasoning, apart from text
  closed_by_budget?: true; // a grammar's answer was steered to its end so as to fit max_tokens
}

/** One model as `models`, `info` and `status` describe it. */
export interface ModelSummary {
  name: string;
  path: string;
  architecture: string;
  n_ctx_train: number;
  n_vocab: number;
  loaded: true;
}

/** What the engine keeps in RAM and streams, as it is now. */
export interface ResidencyFacts {
  managed: boolean;
  resident_bytes: number;
  locked_bytes: number;
  streamed_bytes: number;
  window_bytes: number;
  locked_layers: number;
  streamed_layers: number[];
  locking_permitted: boolean;
  lock_error?: string;
  streamed_passes: number;
}

/** The memory plan in force; `alpaca serve` adds the planner's facts (budget, fits, …). */
export interface PlanFacts {
  n_ctx: number;
  n_seq: number;
  threads: number;
  kv_type: string;
  kv_bytes: number;
  weight_bytes: number;
  residency: ResidencyFacts;
  [fact: string]: unknown;
}

/** The `info` answer: what is loaded and what a request may hold. */
export interface InfoData {
  api_version: number;
  version: string;
  model: ModelSummary;
  plan: PlanFacts;
  chat_template: boolean;
  ops: readonly Op[];
  limits: {
    max_line_bytes: number;
    max_prompt_chars: number;
    max_messages: number;
    max_stop_strings: number;
    max_stop_chars: number;
  };
}

/** The `status` answer: the queue, the slots and the counters, now. */
export interface StatusData {
  api_version: number;
  version: string;
  uptime_s: number;
  model: ModelSummary;
  plan: PlanFacts;
  queue: { queued: number; running: number; max_queue: number; accepting: boolean; admitting: boolean; held_because?: string };
  slots: { slot: number; busy: boolean; cached_tokens: number }[];
  tokens_per_second: number;
  totals: {
    requests: number;
    completed: number;
    rejected_busy: number;
    prompt_tokens: number;
    cached_tokens: number;
    generated_tokens: number;
  };
  memory: { rss_bytes: number; heap_used_bytes: number; kv_bytes: number; kv_used_cells: number; kv_total_cells: number };
  /** Shared prefixes kept on disk (docs/prompt-cache.md); absent when the cache is off. */
  prompt_cache?: PromptCacheStats;
  clients: number;
}

/** The prompt cache in `status`: its files and what it saved. */
export interface PromptCacheStats {
  dir: string;
  files: number;
  bytes: number;
  max_bytes: number;
  max_files: number;
  restored: number; // requests that skipped a prefill thanks to a file
  restored_tokens: number;
  saved: number;
  skipped: number; // files found unusable, restores or saves that failed
}

/** The `models` answer. */
export interface ModelsData {
  models: ModelSummary[];
}

export interface ChunkMessage {
  transaction: TransactionId;
  seq: number;
  delta: string;
  thinking?: string; // with think: reasoning streamed before the answer (delta is "" while it lasts)
}

export interface OkMessage<T = unknown> {
  status: "ok";
  transaction: TransactionId;
  data: T;
}

export interface ErrorMessage {
  status: "error";
  /** null when the request could not be read far enough to find it, or when it was a duplicate. */
  transaction: TransactionId | null;
  /** duplicate_of: the transaction already in flight that this refused request named. */
  error: { code: ErrorCode; message: string; duplicate_of?: TransactionId };
}

export type ReplyMessage = ChunkMessage | OkMessage | ErrorMessage;

export function okMessage<T>(transaction: TransactionId, data: T): OkMessage<T> {
  return { status: "ok", transaction, data };
}

export function errorMessage(transaction: TransactionId | null, code: ErrorCode, message: string): ErrorMessage {
  return { status: "error", transaction, error: { code, message } };
}

/**
 * The answer to a generate whose transaction is already in flight for the same client. It is not
 * addressed to that transaction (a client takes the first final carrying its transaction as the
 * answer, and this is not the running request's answer): transaction null, the id in duplicate_of.
 */
export function duplicateMessage(transaction: TransactionId): ErrorMessage {
  return {
    status: "error",
    transaction: null,
    error: { code: "bad_request", message: `transaction ${JSON.stringify(transaction)} is already in flight; this request was not run`, duplicate_of: transaction },
  };
}

// ─── Validation ────────────────────────────────────────────────────────────────────────────────
// Every field is checked for type and range before anything else sees the request; the first
// problem is reported by field name, so a client knows what to fix.

type Json = Record<string, unknown>;

const GENERATE_FIELDS = new Set([
  "op", "transaction", "prompt", "instruction", "input", "messages", "max_tokens", "temperature", "top_k",
  "top_p", "min_p", "repeat_penalty", "seed", "stop", "stream", "timeout", "priority", "tools", "tool_choice",
  "format", "grammar", "speculate", "think",
]);

function bad(message: string): never {
  throw new ProtocolError("bad_request", message);
}

/** The transaction id of a parsed request, if it has a usable one (for error replies). */
export function transactionOf(raw: unknown): TransactionId | null {
  if (typeof raw !== "object" || raw === null) return null;
  const t = (raw as Json).transaction;
  if (typeof t === "number") return Number.isFinite(t) ? t : null;
  return typeof t === "string" && t.length <= LIMITS.maxTransactionChars && isWellFormed(t) ? t : null;
}

/** A transaction or cancel target: a string of at most 128 characters or a finite number. */
function transactionField(o: Json, key: string): TransactionId | undefined {
  const v = o[key];
  if (typeof v === "number") {
    if (!Number.isFinite(v)) bad(`${key} must be a string or a finite number`);
    return v;
  }
  if (v !== undefined && v !== null && typeof v !== "string") bad(`${key} must be a string or a number, got ${typeName(v)}`);
  return text(o, key, LIMITS.maxTransactionChars);
}

function text(o: Json, key: string, maxChars: number, required: true): string;
function text(o: Json, key: string, maxChars: number, required?: false): string | undefined;
function text(o: Json, key: string, maxChars: number, required = false): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) bad(`${key} is required`);
    return undefined;
  }
  if (typeof v !== "string") bad(`${key} must be a string, got ${typeName(v)}`);
  if (v.length > maxChars) bad(`${key} is longer than ${maxChars} characters`);
  if (!isWellFormed(v)) bad(`${key} is not valid Unicode (lone surrogate)`);
  return v;
}

function num(o: Json, key: string, min: number, max: number, integer: boolean): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) bad(`${key} must be a number, got ${typeName(v)}`);
  if (integer && !Number.isInteger(v)) bad(`${key} must be an integer, got ${v}`);
  if (v < min || v > max) bad(`${key} must be from ${min} to ${max}, got ${v}`);
  return v;
}

// String.prototype.isWellFormed (Node 20) is not in the ES2022 typings.
function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return "a string";
  return typeof v === "object" ? "an object" : `${typeof v} ${JSON.stringify(v)}`;
}

export interface ValidationContext {
  nCtx: number; // max_tokens can never exceed the context
}

/** Checks a parsed JSON value and returns the typed request, or throws ProtocolError(bad_request). */
export function validateRequest(raw: unknown, ctx: ValidationContext, assignTransaction: () => string): Request {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad("a request must be a JSON object");
  const o = raw as Json;
  const transaction = transactionField(o, "transaction") ?? assignTransaction();
  const op = o.op;
  if (typeof op !== "string") bad(`op must be a string, one of ${OPS.join(", ")}`);
  if (!(OPS as readonly string[]).includes(op)) bad(`unknown op "${op.slice(0, 40)}"; expected one of ${OPS.join(", ")}`);
  switch (op as Op) {
    case "generate":
      return validateGenerate(o, transaction, ctx);
    case "cancel":
      return { op: "cancel", transaction, target: transactionField(o, "target") };
    default:
      return { op: op as SimpleRequest["op"], transaction };
  }
}

function validateGenerate(o: Json, transaction: TransactionId, ctx: ValidationContext): GenerateRequest {
  for (const key of Object.keys(o)) if (!GENERATE_FIELDS.has(key)) bad(`unknown field "${key.slice(0, 40)}" for op generate`);
  const given = ["prompt", "instruction", "messages"].filter((k) => o[k] !== undefined && o[k] !== null);
  if (given.length !== 1) bad("give exactly one of prompt, instruction (with optional input) or messages");
  let source: PromptSource;
  if (given[0] === "prompt") source = { kind: "prompt", prompt: text(o, "prompt", LIMITS.maxPromptChars, true) };
  else if (given[0] === "instruction") {
    source = {
      kind: "instruction",
      instruction: text(o, "instruction", LIMITS.maxPromptChars, true),
      input: text(o, "input", LIMITS.maxPromptChars),
    };
    // Both go into one prompt: together they get the prompt's limit, not twice it.
    if (source.instruction.length + (source.input?.length ?? 0) > LIMITS.maxPromptChars)
      bad(`instruction and input hold more than ${LIMITS.maxPromptChars} characters together`);
  }
  else source = { kind: "messages", messages: validateMessages(o.messages) };
  if (source.kind !== "instruction" && o.input !== undefined) bad("input goes with instruction");

  const maxTokens = num(o, "max_tokens", 1, ctx.nCtx, true);
  const d = DEFAULT_SAMPLING;
  const sampling: SamplingParams = {
    temperature: num(o, "temperature", 0, 100, false) ?? d.temperature,
    topK: num(o, "top_k", 0, 1 << 30, true) ?? d.topK,
    topP: num(o, "top_p", Number.MIN_VALUE, 1, false) ?? d.topP,
    minP: num(o, "min_p", 0, 1, false) ?? d.minP,
    repeatPenalty: num(o, "repeat_penalty", Number.MIN_VALUE, 100, false) ?? d.repeatPenalty,
    seed: num(o, "seed", 0, LIMITS.maxSeed, true),
  };
  const stream = o.stream ?? true;
  if (typeof stream !== "boolean") bad(`stream must be true or false, got ${typeName(stream)}`);
  const timeout = num(o, "timeout", 0.001, LIMITS.maxTimeoutMs / 1000, false);
  if (o.speculate !== undefined && typeof o.speculate !== "boolean") bad(`speculate must be true or false, got ${typeName(o.speculate)}`);
  const tools = o.tools === undefined || o.tools === null ? undefined : validateTools(o.tools);
  if ((tools || (o.tool_choice !== undefined && o.tool_choice !== null)) && source.kind !== "messages") bad("tools and tool_choice go with messages");
  const think = o.think ?? undefined;
  if (think !== undefined && typeof think !== "boolean") bad(`think must be true or false, got ${typeName(think)}`);
  if (think && source.kind !== "messages") bad("think goes with messages (the chat template turns thinking on or off)");
  return {
    op: "generate",
    transaction,
    source,
    maxTokens,
    sampling,
    stop: validateStop(o.stop),
    stream,
    timeoutMs: timeout === undefined ? undefined : timeout * 1000,
    priority: num(o, "priority", LIMITS.minPriority, LIMITS.maxPriority, true) ?? 0,
    ...(tools ? { tools } : {}),
    ...(o.tool_choice !== undefined && o.tool_choice !== null ? { toolChoice: validateToolChoice(o.tool_choice, tools) } : {}),
    constraint: validateConstraint(o),
    ...(o.speculate === false ? { speculate: false } : {}),
    ...(think !== undefined ? { think } : {}),
  };
}

function validateConstraint(o: Json): OutputConstraint | undefined {
  const format = o.format ?? undefined;
  const grammar = o.grammar ?? undefined;
  if (format !== undefined && grammar !== undefined) bad("give format or grammar, not both");
  if (grammar !== undefined) {
    const g = text(o, "grammar", LIMITS.maxGrammarChars, true);
    if (g.trim() === "") bad("grammar is empty");
    return { kind: "grammar", grammar: g };
  }
  if (format === undefined) return undefined;
  if (format === "json") return { kind: "format", format };
  if (typeof format !== "object" || Array.isArray(format))
    bad(`format must be "json" or a JSON Schema object, got ${typeof format === "string" ? JSON.stringify(format.slice(0, 40)) : typeName(format)}`);
  if (JSON.stringify(format).length > LIMITS.maxGrammarChars) bad(`format holds more than ${LIMITS.maxGrammarChars} characters of schema`);
  return { kind: "format", format: format as Record<string, unknown> };
}

function validateMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v)) bad(`messages must be an array of {role, content}, got ${typeName(v)}`);
  if (v.length === 0) bad("messages is empty");
  if (v.length > LIMITS.maxMessages) bad(`messages has more than ${LIMITS.maxMessages} entries`);
  let total = 0;
  return v.map((m, i) => {
    if (typeof m !== "object" || m === null || Array.isArray(m)) bad(`messages[${i}] must be an object {role, content}`);
    const o = m as Json;
    const role = text(o, "role", LIMITS.maxRoleChars, true);
    // An assistant turn that only called tools may have no content.
    const toolCalls = o.tool_calls === undefined || o.tool_calls === null ? undefined : validateMessageToolCalls(o.tool_calls, `messages[${i}]`);
    const content = toolCalls === undefined ? text(o, "content", LIMITS.maxPromptChars, true) : (text(o, "content", LIMITS.maxPromptChars) ?? "");
    total += content.length + (toolCalls ? JSON.stringify(toolCalls).length : 0);
    if (total > LIMITS.maxPromptChars) bad(`messages hold more than ${LIMITS.maxPromptChars} characters in all`);
    const toolCallId = text(o, "tool_call_id", LIMITS.maxTransactionChars);
    const name = text(o, "name", LIMITS.maxTransactionChars) ?? text(o, "tool_name", LIMITS.maxTransactionChars);
    return {
      role,
      content,
      ...(toolCalls ? { tool_calls: toolCalls } : {}),
      ...(toolCallId !== undefined ? { tool_call_id: toolCallId } : {}),
      ...(name !== undefined ? { name } : {}),
    };
  });
}

function validateStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list)) bad(`stop must be a string or an array of strings, got ${typeName(v)}`);
  if (list.length > LIMITS.maxStopStrings) bad(`stop has more than ${LIMITS.maxStopStrings} strings`);
  return list.map((s, i) => {
    if (typeof s !== "string") bad(`stop[${i}] must be a string, got ${typeName(s)}`);
    if (s.length === 0) bad(`stop[${i}] is empty`);
    if (s.length > LIMITS.maxStopChars) bad(`stop[${i}] is longer than ${LIMITS.maxStopChars} characters`);
    if (!isWellFormed(s)) bad(`stop[${i}] is not valid Unicode (lone surrogate)`);
    return s;
  });
}

// ─── Framing helpers for line-based transports ─────────────────────────────────────────────────

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes one request line; invalid UTF-8 or JSON is a bad_request naming the problem. */
export function parseRequestLine(line: Buffer): unknown {
  let s: string;
  try {
    s = strictUtf8.decode(line);
  } catch {
    bad("the request is not valid UTF-8");
  }
  try {
    return JSON.parse(s);
  } catch (e) {
    bad(`the request is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}
