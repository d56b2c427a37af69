// Home Assistant's own requests, replayed: the exact bodies its Ollama and llama.cpp integrations
// send for an Assist turn (test/fixtures/home-assistant, built from Home Assistant's source) go
// through the client libraries those integrations use, streaming on, to the real
// `alpaca serve --http` on Qwen3 (its chat template offers the Assist tools). Every answer parses;
// the same request again reads at least 90 % of its prompt from the cache.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import type { ChatRequest, ChatResponse } from "ollama";
import { Ollama } from "ollama";
import OpenAI from "openai";
import type { ServeProcess } from "./helpers/http-daemon.js";
import { needQwen3, QWEN3, serveHttp, statusOf } from "./helpers/http-daemon.js";
import { ROOT, testNeeding } from "./helpers/shared.js";

const fixture = (name: string) => JSON.parse(fs.readFileSync(path.join(ROOT, "test", "fixtures", "home-assistant", name), "utf8"));
const TOOL_NAMES = new Set((fixture("ollama-chat.json").tools as { function: { name: string } }[]).map((t) => t.function.name));

interface Replayed {
  text: string;
  calls: { name: string; arguments: unknown }[];
  promptTokens: number;
  cachedTokens: number;
}

/** What Home Assistant's Ollama integration does with the stream (entity.py _transform_stream). */
async function replayOllama(d: ServeProcess, body: ChatRequest & { stream: true }): Promise<Replayed> {
  const ollama = new Ollama({ host: d.url });
  let text = "";
  const calls: Replayed["calls"] = [];
  let final: ChatResponse | undefined;
  for await (const chunk of await ollama.chat(body)) {
    if (chunk.message.role !== "assistant") throw new Error(`a chunk from ${chunk.message.role}`);
    text += chunk.message.content ?? "";
    for (const c of chunk.message.tool_calls ?? []) calls.push({ name: c.function.name, arguments: c.function.arguments });
    if (chunk.done) final = chunk;
  }
  if (!final) throw new Error("the stream ended without done: true");
  const cached = (final as unknown as { prompt_eval_cached_count?: number }).prompt_eval_cached_count ?? 0;
  return { text, calls, promptTokens: final.prompt_eval_count, cachedTokens: cached };
}

/** What Home Assistant's llama.cpp integration does with the stream (entity.py _transform_stream). */
async function replayOpenAI(d: ServeProcess, body: OpenAI.ChatCompletionCreateParamsStreaming): Promise<Replayed> {
  const openai = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: "sk-0000000000000000000", maxRetries: 0 });
  const before = (await statusOf(d.socketPath)).totals;
  let text = "";
  const calls = new Map<number, { name: string; arguments: string }>();
  let finish: string | null = null;
  for await (const chunk of await openai.chat.completions.create(body)) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    text += choice.delta.content ?? "";
    for (const c of choice.delta.tool_calls ?? []) {
      const call = calls.get(c.index) ?? { name: "", arguments: "" };
      call.name ||= c.function?.name ?? "";
      call.arguments += c.function?.arguments ?? "";
      calls.set(c.index, call);
    }
    finish = choice.finish_reason ?? finish;
  }
  if (!finish) throw new Error("the stream ended without a finish_reason");
  if (calls.size > 0 && finish !== "tool_calls") throw new Error(`calls with finish_reason ${finish}`);
  // Home Assistant sends no stream_options: the daemon's counters say what the request read.
  const after = (await statusOf(d.socketPath)).totals;
  return {
    text,
    calls: [...calls.values()].map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) })),
    promptTokens: after.prompt_tokens - before.prompt_tokens,
    cachedTokens: after.cached_tokens - before.cached_tokens,
  };
}

function check(t: import("ava").ExecutionContext, r: Replayed, what: string) {
  for (const c of r.calls) {
    t.true(TOOL_NAMES.has(c.name), `${what}: called ${c.name}`);
    t.is(typeof c.arguments, "object", `${what}: arguments are an object`);
  }
  t.true(r.promptTokens > 1000, `${what}: the whole system prompt and tools were read (${r.promptTokens} tokens)`);
}

testNeeding(test, needQwen3, "Home Assistant's Ollama integration: its Assist requests parse, and the second reads its prompt from the cache", async (t) => {
  const d = await serveHttp(t, QWEN3(), ["--ctx", "2048", "--parallel", "2"]);
  const first = await replayOllama(d, fixture("ollama-chat.json"));
  check(t, first, "first");
  const again = await replayOllama(d, fixture("ollama-chat.json"));
  check(t, again, "again");
  t.is(again.promptTokens, first.promptTokens);
  t.true(again.cachedTokens >= 0.9 * again.promptTokens, `${again.cachedTokens} of ${again.promptTokens} prompt tokens from the cache`);
  t.log(`prompt ${first.promptTokens} tokens; the second request read ${again.cachedTokens} from the cache`);

  const next = await replayOllama(d, fixture("ollama-chat-after-tool.json"));
  check(t, next, "after the tool");
  t.true(next.promptTokens > first.promptTokens, "the call and its result are in the prompt");
  t.true(next.cachedTokens >= 0.9 * first.promptTokens, "the conversation so far comes from the cache");
  t.regex(d.output(), /num_ctx 8192/, "Home Assistant's num_ctx is clamped to the plan, and said");
});

testNeeding(test, needQwen3, "Home Assistant's llama.cpp integration: its Assist requests parse, and the second reads its prompt from the cache", async (t) => {
  const d = await serveHttp(t, QWEN3(), ["--ctx", "2048", "--parallel", "2"]);
  const first = await replayOpenAI(d, fixture("llama-cpp-chat.json"));
  check(t, first, "first");
  const again = await replayOpenAI(d, fixture("llama-cpp-chat.json"));
  t.is(again.promptTokens, first.promptTokens);
  t.true(again.cachedTokens >= 0.9 * again.promptTokens, `${again.cachedTokens} of ${again.promptTokens} prompt tokens from the cache`);
  t.log(`prompt ${first.promptTokens} tokens; the second request read ${again.cachedTokens} from the cache`);
  const next = await replayOpenAI(d, fixture("llama-cpp-chat-after-tool.json"));
  check(t, next, "after the tool");
  t.true(next.cachedTokens >= 0.9 * first.promptTokens);
});
