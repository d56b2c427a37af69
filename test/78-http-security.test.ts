// The HTTP door of the real `alpaca serve`: beyond loopback only with a token (or --http-insecure),
// a wrong or missing token is 401 and queues nothing, a body over the limit is 413, a client that
// trickles its headers is closed, and 100 streams against a queue of 32 are each answered (tokens
// or 503/429) while the daemon stays up.
import test from "ava";
import net from "node:net";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { STORIES } from "./helpers/daemon.js";
import { request, serveHttp, statusOf, streamedObjects, tokenFile } from "./helpers/http-daemon.js";
import { alpaca } from "./helpers/process.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const TOKEN = "0123456789abcdef0123456789abcdef";

test("beyond loopback without a token: one line, exit 2, before the model is even opened", async (t) => {
  const r = await alpaca(["serve", "-m", "/nonexistent.gguf", "--http", "0.0.0.0:0"]);
  t.is(r.code, 2);
  t.is(
    r.stderr,
    "alpaca: --http 0.0.0.0:0 can be reached from other machines: give a token with --http-token-file (or ALPACA_HTTP_TOKEN_FILE), or allow it without one with --http-insecure\n",
  );
  const short = await alpaca(["serve", "-m", "/nonexistent.gguf", "--http", "0.0.0.0:0", "--http-token-file", tokenFile("short")]);
  t.is(short.code, 2);
  t.regex(short.stderr, /^alpaca: --http-token-file \/ ALPACA_HTTP_TOKEN_FILE: .* must hold one token of at least 16 characters/);
  const badAddress = await alpaca(["serve", "-m", "/nonexistent.gguf", "--http", "11434"]);
  t.is(badAddress.code, 2);
  t.regex(badAddress.stderr, /^alpaca: --http must be HOST:PORT, e\.g\. 127\.0\.0\.1:11434/);
});

testNeeding(test, needShared, "--http-insecure lets it listen beyond loopback without a token, and says so", async (t) => {
  const d = await serveHttp(t, STORIES(), ["--http", "0.0.0.0:0", "--http-insecure"]);
  t.regex(d.output(), /warn: http: 0\.0\.0\.0:0 serves anyone who can reach it, without a token/);
  const r = await request(d.url.replace("0.0.0.0", "127.0.0.1"), { path: "/api/version" });
  t.is(r.status, 200);
});

testNeeding(test, needShared, "with a token: a wrong or missing one is 401 in each API's shape and nothing is queued", async (t) => {
  const d = await serveHttp(t, STORIES(), ["--http-token-file", tokenFile(TOKEN), "--log-level", "debug"]);
  const body = JSON.stringify({ model: "stories260K-f32", prompt: "Once upon a time", stream: false, options: { num_predict: 3 } });
  const attempts: Record<string, string>[] = [{}, { authorization: "Bearer wrong-token-wrong-token-wrong" }, { authorization: `Basic ${TOKEN}` }];
  for (const headers of attempts) {
    const ollama = await request(d.url, { path: "/api/generate", body, headers });
    t.is(ollama.status, 401);
    t.regex(JSON.parse(ollama.body).error, /^unauthorized: send the token/);
    t.regex(String(ollama.headers["www-authenticate"]), /^Bearer/);
  }
  const wrongPath = await request(d.url, { path: "/not-the-token/api/generate", body });
  t.is(wrongPath.status, 401);
  const openai = new OpenAI({ baseURL: `${d.url}/v1`, apiKey: "sk-0000000000000000000", maxRetries: 0 });
  const e = await t.throwsAsync(openai.completions.create({ model: "m", prompt: "hi", max_tokens: 2 }), { instanceOf: OpenAI.AuthenticationError });
  t.is((e as InstanceType<typeof OpenAI.AuthenticationError>).code, "invalid_api_key");
  t.is((await statusOf(d.socketPath)).totals.requests, 0, "nothing was queued");

  // The right token, as an API key, as a bearer header and as the first segment of the URL.
  const ok = await new OpenAI({ baseURL: `${d.url}/v1`, apiKey: TOKEN, maxRetries: 0 }).completions.create({ model: "m", prompt: "hi", max_tokens: 2 });
  t.is(ok.usage!.completion_tokens, 2);
  const viaHeader = await new Ollama({ host: d.url, headers: { Authorization: `Bearer ${TOKEN}` } }).generate({ model: "stories260K-f32", prompt: "hi", stream: false, options: { num_predict: 2 } });
  t.is(viaHeader.eval_count, 2);
  const viaUrl = new Ollama({ host: `${d.url}/${TOKEN}` });
  t.is((await viaUrl.list()).models.length, 1);
  t.is((await viaUrl.generate({ model: "stories260K-f32", prompt: "hi", stream: false, options: { num_predict: 2 } })).eval_count, 2);
  t.is((await statusOf(d.socketPath)).totals.requests, 3);
  t.is((await request(d.url, { path: `/${TOKEN}` })).status, 200, "the root, with the token as the whole path");
  // Broken %-escapes where the token or a model id is read: refused, and the daemon stays up.
  t.is((await request(d.url, { path: "/%E0%A4%A/api/tags" })).status, 401);
  t.is((await request(d.url, { path: `/${TOKEN}/v1/models/%ZZ` })).status, 404);
  t.true(d.running());
  t.regex(d.output(), /debug: http#\d+ GET \/api\/tags → 200/, "requests are logged (at debug)…");
  t.false(d.output().includes(TOKEN), "…and the token never is");
});

testNeeding(test, needShared, "a body over the limit is 413, declared or streamed, and the daemon reads no further", async (t) => {
  const d = await serveHttp(t, STORIES(), ["--http-max-body", "64K"]);
  const big = JSON.stringify({ model: "stories260K-f32", prompt: "x".repeat(70_000) });
  const declared = await request(d.url, { path: "/api/generate", body: big });
  t.is(declared.status, 413);
  t.is(JSON.parse(declared.body).error, "the request body is larger than 65536 bytes");
  const chunked = await request(d.url, { path: "/v1/completions", body: big, headers: { "transfer-encoding": "chunked" } });
  t.is(chunked.status, 413);
  t.like(JSON.parse(chunked.body), { error: { type: "invalid_request_error" } });
  const fits = await request(d.url, { path: "/api/generate", body: JSON.stringify({ model: "stories260K-f32", prompt: "x".repeat(60_000), stream: false, options: { num_predict: 1 } }) });
  t.not(fits.status, 413);
  t.is((await statusOf(d.socketPath)).totals.requests, 0, "an oversized or too-long prompt queued nothing");
});

testNeeding(test, needShared, "a client that trickles its headers is closed at the header timeout", async (t) => {
  const d = await serveHttp(t, STORIES(), ["--http-header-timeout", "1"]);
  const { port } = new URL(d.url);
  const socket = net.connect(Number(port), "127.0.0.1");
  t.teardown(() => socket.destroy());
  await new Promise((r) => socket.once("connect", r));
  const started = Date.now();
  let answer = "";
  socket.setEncoding("utf8").on("data", (s: string) => (answer += s));
  socket.write("POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  const header = "X-Slow: " + "a".repeat(200);
  let i = 0;
  const drip = setInterval(() => socket.writable && socket.write(header[i++ % header.length]), 200);
  t.teardown(() => clearInterval(drip));
  await new Promise((r) => socket.once("close", r));
  const elapsed = Date.now() - started;
  t.true(elapsed >= 900 && elapsed < 6000, `closed after ${elapsed} ms`);
  t.regex(answer, /^HTTP\/1\.1 408/);
  t.is((await request(d.url, { path: "/api/version" })).status, 200, "others are still served");
});

testNeeding(test, needShared, "100 concurrent streams against a queue of 32: each gets tokens or a 503/429, the daemon stays up", async (t) => {
  const d = await serveHttp(t, STORIES(), ["--queue-size", "32", "--parallel", "4"]);
  const requests = Array.from({ length: 100 }, (_, i) =>
    i % 2 === 0
      ? request(d.url, { path: "/api/generate", body: JSON.stringify({ model: "stories260K-f32", prompt: `Story ${i}:`, options: { num_predict: 100 } }) })
      : request(d.url, { path: "/v1/completions", body: JSON.stringify({ model: "m", prompt: `Story ${i}:`, max_tokens: 100, stream: true }) }),
  );
  const answers = await Promise.all(requests);
  let streamed = 0;
  let refused = 0;
  answers.forEach((a, i) => {
    if (a.status === 200) {
      const last = streamedObjects(a.body).at(-1) as { done?: boolean } | string;
      t.true(i % 2 === 0 ? (last as { done?: boolean }).done === true : last === "[DONE]", `request ${i} ended its stream`);
      streamed++;
    } else {
      t.is(a.status, i % 2 === 0 ? 503 : 429, `request ${i}: ${a.body}`);
      refused++;
    }
  });
  t.log(`${streamed} streamed, ${refused} refused`);
  t.true(streamed >= 36, "4 running + 32 queued at the least");
  t.true(d.running());
  const s = await statusOf(d.socketPath);
  t.is(s.totals.rejected_busy, refused);
  t.is((await request(d.url, { path: "/api/version" })).status, 200);
});
