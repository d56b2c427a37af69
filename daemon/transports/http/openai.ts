// The OpenAI API (docs/http.md): /v1/models, /v1/chat/completions and /v1/completions, with
// OpenAI's objects, server-sent events ending in [DONE], usage (also streamed, with
// stream_options.include_usage) and errors ({"error": {message, type, param, code}}), so that the
// OpenAI SDKs (Home Assistant's llama.cpp integration, Extended OpenAI Conversation) need no change.
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { ErrorCode, GenerateRequest, GenerateResult, OutputConstraint } from "../../serving/protocol.js";
import { LIMITS, ProtocolError } from "../../serving/protocol.js";
import type { ToolCall } from "../../serving/tool-calls.js";
import { toolFormatFor } from "../../serving/tool-calls.js";
import type { ChatTemplate } from "../../serving/templates.js";
import { templateThinks } from "../../serving/thinking.js";
import type { Exchange, HttpServices } from "./exchange.js";
import { decoded, runGeneration, sendJson, startStream, statusOf } from "./exchange.js";
import type { Json } from "./fields.js";
import { bodyObject, chatMessages, FieldError, Fields, generationOf, toolsOf, typeName } from "./fields.js";

const SSE = "text/event-stream";

/** Fields of OpenAI's request bodies that are read, or accepted and ignored (docs/http.md). */
const CHAT_FIELDS = new Set([
  "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream", "stream_options",
  "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user",
  "response_format", "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "store", "metadata",
  "service_tier", "reasoning_effort", "modalities", "prediction", "safety_identifier", "prompt_cache_key", "verbosity",
  // llama.cpp's server reads these too
  "top_k", "min_p", "repeat_penalty",
]);
const COMPLETION_FIELDS = new Set([
  "model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "logprobs", "echo",
  "stop", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "user", "seed", "top_k", "min_p", "repeat_penalty",
]);

/** OpenAI's `type` for each status it answers with. */
function errorType(status: number): string {
  if (status === 429) return "requests";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export function openaiError(
  res: ServerResponse,
  status: number,
  message: string,
  extra: { param?: string | null; code?: string | null; headers?: Record<string, string> } = {},
): void {
  sendJson(
    res,
    status,
    { error: { message, type: errorType(status), param: extra.param ?? null, code: extra.code ?? null } },
    extra.headers,
  );
}

function guarded(handler: (x: Exchange) => void): (x: Exchange) => void {
  return (x) => {
    try {
      handler(x);
    } catch (e) {
      if (e instanceof FieldError) return openaiError(x.res, 400, e.message, { param: e.param });
      if (e instanceof ProtocolError) return openaiError(x.res, statusOf(e.code, 429), e.message);
      const message = e instanceof Error ? e.message : String(e);
      x.services.log.error(`${x.label}: ${message}`);
      openaiError(x.res, 500, message);
    }
  };
}

// ─── Models ──────────────────────────────────────────────────────────────────────────────────

function modelObject(s: HttpServices) {
  return { id: s.card.name, object: "model", created: Math.floor(s.card.modifiedAt.getTime() / 1000), owned_by: "alpaca" };
}

function oneModel(x: Exchange): void {
  const id = decoded(x.path.slice("/v1/models/".length));
  if (!x.services.card.aliases.has(id.toLowerCase()))
    return openaiError(x.res, 404, `The model \`${id}\` does not exist or you do not have access to it.`, { param: "model", code: "model_not_found" });
  sendJson(x.res, 200, modelObject(x.services));
}

// ─── Requests ────────────────────────────────────────────────────────────────────────────────

interface Common {
  f: Fields;
  stream: boolean;
  includeUsage: boolean;
}

/** Checks what chat and completions share; OpenAI refuses what it does not know, and so do we. */
function commonFields(body: unknown, known: Set<string>): Common {
  const f = new Fields(bodyObject(body));
  for (const key of Object.keys(f.o))
    if (!known.has(key)) throw new FieldError(`Unrecognized request argument supplied: ${key.slice(0, 64)}`, key.slice(0, 64));
  f.requiredString("model", 256); // any name: one model is loaded (as llama.cpp's server does)
  if ((f.number("n", 1, 128, true) ?? 1) !== 1) f.fail("n", "must be 1: one choice is generated per request");
  if (f.o.logprobs === true || (typeof f.o.logprobs === "number" && f.o.logprobs > 0)) f.fail("logprobs", "is not supported");
  const bias = f.object("logit_bias");
  if (bias && Object.keys(bias.o).length > 0) f.fail("logit_bias", "is not supported");
  f.number("presence_penalty", -2, 2);
  f.number("frequency_penalty", -2, 2);
  const stream = f.bool("stream") ?? false;
  const options = f.object("stream_options");
  if (options && !stream) f.fail("stream_options", "is only allowed when stream is true");
  return { f, stream, includeUsage: options?.bool("include_usage") ?? false };
}


function usage(r: GenerateResult) {
  const u = r.usage;
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens },
  };
}

const finishReason = (r: GenerateResult) => (r.stop_reason === "length" ? "length" : r.tool_calls?.length ? "tool_calls" : "stop");

/** A call as OpenAI writes it: arguments as a JSON string. */
const openaiCall = (c: ToolCall) => ({ id: c.id, type: "function", function: { name: c.name, arguments: JSON.stringify(c.arguments) } });

interface Shape {
  /** The object of an answer that is not streamed, and of each streamed chunk. */
  object: string;
  chunkObject: string;
  /** The first streamed choice (the role, for chat), or null. */
  opening: Json | null;
  /** A streamed choice carrying text (and, for chat, reasoning a thinking model writes before it). */
  piece(text: string, thinking?: string): Json;
  /** The streamed choice carrying one of the answer's tool calls (they arrive with its end), if the API has them. */
  call?(call: ToolCall, index: number): Json;
  /** The last streamed choice, with its finish reason. */
  closing(r: GenerateResult): Json;
  /** The one choice of an answer that is not streamed. */
  whole(r: GenerateResult): Json;
}

/** Streams (server-sent events) or answers one generation in the shape of `shape`. */
function answer(x: Exchange, c: Common, request: GenerateRequest, idPrefix: string, shape: Shape): void {
  const { res, services } = x;
  const head = {
    id: `${idPrefix}-${randomBytes(12).toString("base64url")}`,
    object: shape.chunkObject,
    created: Math.floor(Date.now() / 1000),
    model: services.card.name,
    system_fingerprint: `alpaca-${services.version}`,
  };
  const event = (o: Json | string) => res.write(`data: ${typeof o === "string" ? o : JSON.stringify(o)}\n\n`);
  const chunk = (choice: Json) => event({ ...head, choices: [choice], ...(c.includeUsage ? { usage: null } : {}) });
  runGeneration(x, request, {
    accepted: () => {
      if (!c.stream) return;
      startStream(res, SSE);
      if (shape.opening) chunk(shape.opening);
    },
    delta: (text, thinking) => chunk(shape.piece(text, thinking)),
    done: (r) => {
      if (r.stop_reason === "invalid_tool_call") services.log.debug(`${x.label}: the answer stays text: ${r.tool_call_error}`);
      if (!c.stream) return sendJson(res, 200, { ...head, object: shape.object, choices: [shape.whole(r)], usage: usage(r) });
      // A chunk per call, as OpenAI streams them (clients read the first call of each delta).
      if (shape.call) r.tool_calls?.forEach((call, i) => chunk(shape.call!(call, i)));
      chunk(shape.closing(r));
      if (c.includeUsage) event({ ...head, choices: [], usage: usage(r) });
      event("[DONE]");
      res.end();
    },
    failed: (code: ErrorCode, message: string) => {
      const status = statusOf(code, 429);
      const param = code === "too_long" ? "messages" : null;
      const errorCode = code === "too_long" ? "context_length_exceeded" : code === "busy" ? "rate_limit_exceeded" : null;
      if (!res.headersSent) return openaiError(res, status, message, { param, code: errorCode });
      event({ error: { message, type: errorType(status), param, code: errorCode } });
      res.end();
    },
  });
}

/**
 * reasoning_effort: "none" or "minimal" lets a thinking model answer straight away, "low",
 * "medium" or "high" lets it reason first (returned as reasoning_content); absent, it does not.
 */
function reasoningOf(f: Fields, template: ChatTemplate | undefined): boolean | undefined {
  const effort = f.string("reasoning_effort", 16);
  if (effort === undefined) return undefined;
  if (effort === "none" || effort === "minimal") return false;
  if (effort !== "low" && effort !== "medium" && effort !== "high")
    f.fail("reasoning_effort", `must be "none", "minimal", "low", "medium" or "high", got "${effort}"`);
  if (!template || !templateThinks(template.source)) f.fail("reasoning_effort", "cannot be met: this model does not reason (its chat template has no <think> block)");
  return true;
}

/** response_format: text; json_object (any JSON object); json_schema (an answer fitting its schema). */
function responseFormatOf(f: Fields): OutputConstraint | undefined {
  const format = f.object("response_format");
  if (!format) return undefined;
  const type = format.requiredString("type", 32);
  if (type === "text") return undefined;
  if (type === "json_object") return { kind: "format", format: "json" };
  if (type !== "json_schema") format.fail("type", `must be "text", "json_object" or "json_schema", got "${type}"`);
  const spec = format.object("json_schema") ?? format.fail("json_schema", "is required with type json_schema");
  spec.requiredString("name", 64);
  const schema = spec.object("schema");
  // Without a schema OpenAI accepts any JSON object.
  return { kind: "format", format: schema ? schema.o : "json" };
}

function chatCompletions(x: Exchange): void {
  const c = commonFields(x.body, CHAT_FIELDS);
  const { f } = c;
  const maxTokens = f.number("max_completion_tokens", 1, 1 << 24, true) ?? f.number("max_tokens", 1, 1 << 24, true);
  for (const key of ["functions", "function_call"]) if (f.has(key)) f.fail(key, "is deprecated: send tools and tool_choice");
  const tools = toolsOf(f);
  const template = x.services.router.chatTemplate;
  if (tools.tools && tools.toolChoice?.kind !== "none" && template && !toolFormatFor(template.source))
    f.fail("tools", "cannot be offered: this model's chat template takes no tools");
  const constraint = responseFormatOf(f);
  const think = reasoningOf(f, template);
  const messages = chatMessages(f);
  if (!x.services.router.chatTemplate)
    f.fail("messages", "cannot be read: this model has no chat template; use /v1/completions with a prompt");
  answer(x, c, generationOf(f, { kind: "messages", messages }, maxTokens, c.stream, { ...tools, constraint, ...(think !== undefined ? { think } : {}) }), "chatcmpl", {
    object: "chat.completion",
    chunkObject: "chat.completion.chunk",
    opening: { index: 0, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null },
    // Reasoning as reasoning_content, as llama.cpp's server sends it.
    piece: (text, thinking) => ({
      index: 0,
      delta: thinking ? { ...(text ? { content: text } : {}), reasoning_content: thinking } : { content: text },
      logprobs: null,
      finish_reason: null,
    }),
    // Each call whole in one delta (index, id, type, name, arguments), as OpenAI's first delta of a call is.
    call: (call, index) => ({ index: 0, delta: { tool_calls: [{ index, ...openaiCall(call) }] }, logprobs: null, finish_reason: null }),
    closing: (r) => ({ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(r) }),
    whole: (r) => ({
      index: 0,
      message: {
        role: "assistant",
        // OpenAI's content is null when the answer is only calls
        content: r.tool_calls?.length && r.text === "" ? null : r.text,
        refusal: null,
        ...(r.thinking ? { reasoning_content: r.thinking } : {}),
        ...(r.tool_calls?.length ? { tool_calls: r.tool_calls.map(openaiCall) } : {}),
      },
      logprobs: null,
      finish_reason: finishReason(r),
    }),
  });
}

function completions(x: Exchange): void {
  const c = commonFields(x.body, COMPLETION_FIELDS);
  const { f } = c;
  let given = f.o.prompt;
  if (Array.isArray(given)) {
    if (given.length !== 1) f.fail("prompt", "must be one string: one completion is generated per request");
    given = given[0];
  }
  if (typeof given !== "string") return f.fail("prompt", `must be a string, got ${typeName(given)}`);
  const prompt: string = given;
  if (prompt.length > LIMITS.maxPromptChars) f.fail("prompt", `is longer than ${LIMITS.maxPromptChars} characters`);
  if (f.string("suffix")) f.fail("suffix", "is not supported");
  if ((f.number("best_of", 1, 128, true) ?? 1) !== 1) f.fail("best_of", "must be 1");
  const echo = f.bool("echo") ?? false;
  // OpenAI's default for this endpoint is 16 tokens
  const maxTokens = f.number("max_tokens", 1, 1 << 24, true) ?? 16;
  const text = (t: string) => ({ index: 0, text: t, logprobs: null, finish_reason: null });
  answer(x, c, generationOf(f, { kind: "prompt", prompt }, maxTokens, c.stream), "cmpl", {
    object: "text_completion",
    chunkObject: "text_completion",
    opening: echo ? text(prompt) : null,
    piece: text,
    closing: (r) => ({ ...text(""), finish_reason: finishReason(r) }),
    whole: (r) => ({ ...text(echo ? prompt + r.text : r.text), finish_reason: finishReason(r) }),
  });
}

// ─── Routes ──────────────────────────────────────────────────────────────────────────────────

export const OPENAI_ROUTES: Record<string, { method: "GET" | "POST"; handler: (x: Exchange) => void }> = {
  "/v1/models": { method: "GET", handler: (x) => sendJson(x.res, 200, { object: "list", data: [modelObject(x.services)] }) },
  "/v1/models/*": { method: "GET", handler: oneModel },
  "/v1/chat/completions": { method: "POST", handler: guarded(chatCompletions) },
  "/v1/completions": { method: "POST", handler: guarded(completions) },
};
