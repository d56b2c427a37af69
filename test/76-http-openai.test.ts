// The OpenAI API with OpenAI's own client (the `openai` package) against the real
// `alpaca serve --http`: the model list, chat completions streaming (server-sent events, [DONE],
// usage with stream_options.include_usage) and not, completions, and OpenAI's error objects.
import test from "ava";
import OpenAI from "openai";
import { runAlone, STORIES } from "./helpers/daemon.js";
import { needQwen3, QWEN3, request, serveHttp, streamedObjects } from "./helpers/http-daemon.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const client = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-0000000000000000000", maxRetries: 0 });

testNeeding(test, needShared, "models list and retrieve name the loaded model", async (t) => {
  const d = await serveHttp(t, STORIES());
  const openai = client(d.url);
  const ids: string[] = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  t.deepEqual(ids, ["stories260K-f32:latest"]);
  const one = await openai.models.retrieve("stories260K-f32:latest");
  t.like(one, { id: "stories260K-f32:latest", object: "model", owned_by: "alpaca" });
  const missing = await t.throwsAsync(openai.models.retrieve("gpt-4o"), { instanceOf: OpenAI.NotFoundError });
  t.is((missing as InstanceType<typeof OpenAI.NotFoundError>).code, "model_not_found");
});

testNeeding(test, needShared, "completions, streaming and not, give what `alpaca run` gives alone", async (t) => {
  const d = await serveHttp(t, STORIES());
  const openai = client(d.url);
  const expected = (await runAlone("Once upon a time", 20)).text;
  const whole = await openai.completions.create({ model: "stories260K-f32", prompt: "Once upon a time", max_tokens: 20, temperature: 0 });
  t.is(whole.object, "text_completion");
  t.is(whole.choices[0].text, expected);
  t.is(whole.choices[0].finish_reason, "length");
  t.like(whole.usage, { prompt_tokens: 5, completion_tokens: 20, total_tokens: 25 });

  let text = "";
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  const stream = await openai.completions.create({
    model: "stories260K-f32", prompt: "Once upon a time", max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  const ids = new Set<string>();
  for await (const chunk of stream) {
    ids.add(chunk.id);
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      finish = c.finish_reason ?? finish;
    }
  }
  t.is(text, expected);
  t.is(ids.size, 1, "one id for the whole stream");
  t.is(finish, "length");
  t.like(usage, { prompt_tokens: 5, completion_tokens: 20 });
  t.true((usage as unknown as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details.cached_tokens >= 4);

  const echoed = await openai.completions.create({ model: "x", prompt: "Once upon a time", max_tokens: 20, temperature: 0, echo: true });
  t.is(echoed.choices[0].text, `Once upon a time${expected}`);
  const defaultLength = await openai.completions.create({ model: "x", prompt: "Once upon a time", temperature: 0 });
  t.is(defaultLength.usage!.completion_tokens, 16, "OpenAI's default max_tokens for completions");
});

testNeeding(test, needQwen3, "chat completions on Qwen3, streaming and not, with usage and [DONE]", async (t) => {
  const d = await serveHttp(t, QWEN3());
  const openai = client(d.url);
  const messages: OpenAI.ChatCompletionMessageParam[] = [
    { role: "developer", content: "You are a voice assistant for Home Assistant." },
    { role: "user", content: [{ type: "text", text: "What time is it?" }] },
  ];
  const whole = await openai.chat.completions.create({ model: "qwen3-tiny-f32:latest", messages, max_tokens: 10, temperature: 0 });
  t.is(whole.object, "chat.completion");
  t.regex(whole.id, /^chatcmpl-/);
  t.is(whole.choices.length, 1);
  t.like(whole.choices[0], { index: 0, finish_reason: "length", message: { role: "assistant" } });
  t.is(whole.usage!.completion_tokens, 10);
  t.is(whole.usage!.total_tokens, whole.usage!.prompt_tokens + 10);

  const stream = await openai.chat.completions.create({
    model: "qwen3-tiny-f32:latest", messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  const roles: string[] = [];
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | null | undefined;
  const ids = new Set<string>();
  for await (const chunk of stream) {
    t.is(chunk.object, "chat.completion.chunk");
    ids.add(chunk.id);
    if (chunk.usage) usage = chunk.usage;
    else t.is(chunk.usage, null, "usage is null on every chunk but the last");
    for (const c of chunk.choices) {
      if (c.delta.role) roles.push(c.delta.role);
      text += c.delta.content ?? "";
      finish = c.finish_reason ?? finish;
    }
  }
  t.deepEqual(roles, ["assistant"], "the role comes once, first");
  t.is(ids.size, 1);
  t.is(text, whole.choices[0].message.content!);
  t.is(finish, "length");
  t.like(usage, { completion_tokens: 10, prompt_tokens: whole.usage!.prompt_tokens });
  t.true(usage!.prompt_tokens_details!.cached_tokens! >= whole.usage!.prompt_tokens - 1, "the same prompt again comes from the cache");

  // On the wire: server-sent events, the last one [DONE].
  const raw = await request(d.url, {
    path: "/v1/chat/completions",
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 3, stream: true }),
  });
  t.is(raw.status, 200);
  t.regex(raw.headers["content-type"]!, /^text\/event-stream/);
  const events = streamedObjects(raw.body);
  t.is(events.at(-1), "[DONE]");
  t.false(JSON.stringify(events).includes('"usage"'), "no usage without include_usage");
});

testNeeding(test, needShared, "OpenAI's error objects: bad fields, unknown arguments, n > 1, no chat template", async (t) => {
  const d = await serveHttp(t, STORIES());
  const openai = client(d.url);
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "hi" }];
  const bad = async (p: Promise<unknown>, param: string | null, message: RegExp) => {
    const e = (await t.throwsAsync(p, { instanceOf: OpenAI.BadRequestError })) as InstanceType<typeof OpenAI.BadRequestError>;
    t.is(e.status, 400);
    t.is(e.param, param);
    t.is(e.type, "invalid_request_error");
    t.regex(e.message, message);
  };
  await bad(openai.completions.create({ model: "m", prompt: "hi", temperature: 101 }), "temperature", /temperature must be from 0 to 100, got 101/);
  await bad(openai.completions.create({ model: "m", prompt: "hi", n: 2 }), "n", /n must be 1/);
  await bad(openai.completions.create({ model: "m", prompt: "hi", frobnicate: 1 } as never), "frobnicate", /Unrecognized request argument supplied: frobnicate/);
  await bad(openai.chat.completions.create({ model: "m", messages }), "messages", /no chat template; use \/v1\/completions/);
  await bad(openai.chat.completions.create({ model: "m", messages: [] }), "messages", /messages is empty/);
  const wrongRoute = await request(d.url, { path: "/v1/embeddings", body: "{}" });
  t.is(wrongRoute.status, 404);
  t.like(JSON.parse(wrongRoute.body), { error: { message: "Invalid URL (POST /v1/embeddings)", type: "invalid_request_error" } });
  const notJson = await request(d.url, { path: "/v1/completions", body: "{not json" });
  t.is(notJson.status, 400);
  t.regex(JSON.parse(notJson.body).error.message, /^the request body is not JSON/);
});
