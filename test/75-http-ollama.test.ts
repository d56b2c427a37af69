// The Ollama API with Ollama's own client (the `ollama` package) against the real
// `alpaca serve --http`: list, show, ps, version, generate and chat, streaming and not, the final
// object's counts and nanosecond durations, and Ollama's errors.
import test from "ava";
import { Ollama } from "ollama";
import { runAlone, STORIES } from "./helpers/daemon.js";
import { needQwen3, QWEN3, serveHttp } from "./helpers/http-daemon.js";
import { needShared, testNeeding } from "./helpers/shared.js";

interface OllamaError {
  error: string;
  status_code: number;
}

async function refusal(p: Promise<unknown>): Promise<OllamaError> {
  try {
    await p;
  } catch (e) {
    return e as OllamaError;
  }
  throw new Error("the request was not refused");
}

const integer = (n: unknown) => typeof n === "number" && Number.isInteger(n);

testNeeding(test, needShared, "list, show, ps and version describe the loaded model as Ollama does", async (t) => {
  const d = await serveHttp(t, STORIES());
  const ollama = new Ollama({ host: d.url });
  const { models } = await ollama.list();
  t.is(models.length, 1);
  t.like(models[0], { name: "stories260K-f32:latest", model: "stories260K-f32:latest", size: 1185376 });
  t.like(models[0].details, { format: "gguf", family: "llama", families: ["llama"], quantization_level: "F32" });
  t.regex(models[0].details.parameter_size, /^\d+K$/);
  t.regex(models[0].digest, /^[0-9a-f]{64}$/);
  t.false(Number.isNaN(new Date(models[0].modified_at).getTime()));

  for (const name of ["stories260K-f32", "stories260k-f32:latest"]) {
    const show = await ollama.show({ model: name });
    t.deepEqual(show.capabilities, ["completion"]);
    t.is((show.model_info as unknown as Record<string, unknown>)["general.architecture"], "llama");
    t.is((show.model_info as unknown as Record<string, unknown>)["llama.block_count"], 5);
    t.like(show.details, { family: "llama", format: "gguf" });
    t.regex(show.parameters, /^num_ctx\s+128$/);
  }
  const ps = await ollama.ps();
  t.like(ps.models[0], { name: "stories260K-f32:latest", size_vram: 0 });
  t.is((ps.models[0] as unknown as { context_length: number }).context_length, 128);
  t.regex((await ollama.version()).version, /^\d+\.\d+\.\d+$/);

  const missing = await refusal(ollama.show({ model: "llama3.2" }));
  t.is(missing.status_code, 404);
  t.is(missing.error, 'model "llama3.2" not found, try pulling it first');
});

testNeeding(test, needShared, "generate streams what `alpaca run` gives alone, and the final object counts it", async (t) => {
  const d = await serveHttp(t, STORIES());
  const ollama = new Ollama({ host: d.url });
  const expected = (await runAlone("Once upon a time", 24)).text;
  const options = { temperature: 0, num_predict: 24 };

  const parts: string[] = [];
  let final: Awaited<ReturnType<typeof ollama.generate>> | undefined;
  for await (const chunk of await ollama.generate({ model: "stories260K-f32", prompt: "Once upon a time", stream: true, options })) {
    if (chunk.done) final = chunk;
    else parts.push(chunk.response!);
  }
  t.true(parts.length > 1, "more than one chunk");
  t.is(parts.join(""), expected);
  t.truthy(final);
  t.is(final!.response, "");
  t.is(final!.done_reason, "length");
  t.is(final!.eval_count, 24);
  t.is(final!.prompt_eval_count, 5, "BOS + 4 prompt tokens");
  for (const k of ["total_duration", "prompt_eval_duration", "eval_duration"] as const) t.true(integer(final![k]) && final![k] > 0, k);
  t.true(final!.total_duration >= final!.eval_duration, "nanoseconds, total ≥ eval");

  const whole = await ollama.generate({ model: "stories260K-f32", prompt: "Once upon a time", stream: false, options });
  t.is(whole.response, expected);
  t.like(whole, { done: true, done_reason: "length", eval_count: 24, prompt_eval_count: 5 });
  t.true((whole as unknown as { prompt_eval_cached_count: number }).prompt_eval_cached_count >= 4, "the prompt was in the cache");

  const stop = await ollama.generate({ model: "stories260K-f32", prompt: "Once upon a time", stream: false, options: { ...options, stop: ["girl"] } });
  t.is(stop.done_reason, "stop");
  t.false(stop.response!.includes("girl"));
});

testNeeding(test, needQwen3, "chat on Qwen3, streaming and not, goes through the model's chat template", async (t) => {
  const d = await serveHttp(t, QWEN3());
  const ollama = new Ollama({ host: d.url });
  const messages = [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "Turn on the kitchen light." },
  ];
  const options = { temperature: 0, num_predict: 12, seed: 7 };
  const whole = await ollama.chat({ model: "qwen3-tiny-f32", messages, stream: false, options });
  t.is(whole.message.role, "assistant");
  t.is(typeof whole.message.content, "string");
  t.like(whole, { done: true, eval_count: 12, done_reason: "length" });
  t.true(whole.prompt_eval_count > 10);

  let text = "";
  let last: typeof whole | undefined;
  for await (const chunk of await ollama.chat({ model: "qwen3-tiny-f32", messages, stream: true, options })) {
    t.is(chunk.message.role, "assistant");
    text += chunk.message.content;
    last = chunk;
  }
  t.is(text, whole.message.content, "the stream carries the same answer");
  t.like(last, { done: true, done_reason: "length", eval_count: 12 });
  t.is(last!.message.content, "");

  const load = await ollama.chat({ model: "qwen3-tiny-f32", messages: [] });
  t.like(load, { done: true, done_reason: "load" });
});

testNeeding(test, needShared, "chat without a chat template, images, unknown models and bad options get Ollama's errors", async (t) => {
  const d = await serveHttp(t, STORIES());
  const ollama = new Ollama({ host: d.url });
  const noTemplate = await refusal(ollama.chat({ model: "stories260K-f32", messages: [{ role: "user", content: "hi" }], stream: false }));
  t.is(noTemplate.status_code, 400);
  t.regex(noTemplate.error, /has no chat template: use \/api\/generate/);
  const unknown = await refusal(ollama.chat({ model: "llama3.2:latest", messages: [{ role: "user", content: "hi" }], stream: false }));
  t.is(unknown.status_code, 404);
  const image = await refusal(ollama.generate({ model: "stories260K-f32", prompt: "what is this?", images: ["aGVsbG8="], stream: false }));
  t.is(image.status_code, 400);
  t.regex(image.error, /^images cannot be read: this model reads text only$/);
  const temperature = await refusal(ollama.generate({ model: "stories260K-f32", prompt: "hi", stream: false, options: { temperature: -1 } }));
  t.is(temperature.status_code, 400);
  t.is(temperature.error, "options.temperature must be from 0 to 100, got -1");
  const streamed = await refusal(
    (async () => {
      for await (const _ of await ollama.generate({ model: "stories260K-f32", prompt: "hi", stream: true, options: { top_k: 1.5 } })) void _;
    })(),
  );
  t.is(streamed.status_code, 400, "refused before the stream starts");
  t.true(d.running());
});
