// The HTTP transport in process, on an engine paced to Pi-like step times: a full queue answers
// 503 (Ollama) and 429 (OpenAI) in each API's error shape, a client that leaves mid-answer
// cancels its generation and frees its cells, num_ctx beyond the plan is said once, browsers from
// elsewhere are turned away, stopping ends streams cleanly, and /api/pull streams Ollama's
// progress while `alpaca pull`'s code downloads.
import test from "ava";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { Ollama } from "ollama";
import type { Catalog } from "../models/catalog.js";
import { pullService } from "../daemon/transports/http/pull.js";
import { STORIES } from "./helpers/daemon.js";
import { withoutOldestTurn } from "../daemon/serving/history.js";
import { LLAMA3, request, startHttpDaemon, streamedObjects, waitFor } from "./helpers/http-daemon.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const generateBody = (n: number, extra: object = {}) =>
  JSON.stringify({ model: "stories260K-f32", prompt: "Once upon a time", options: { num_predict: n, temperature: 0 }, ...extra });

/** Opens a streamed request and resolves once its first chunk has arrived (the generation is running). */
function openStream(url: string, path: string, body: string): Promise<{ req: http.ClientRequest; res: http.IncomingMessage; first: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), { method: "POST", agent: false }, (res) => {
      res.setEncoding("utf8");
      res.once("data", (first: string) => resolve({ req, res, first }));
      res.once("error", () => {});
    });
    req.on("error", reject);
    req.end(body);
  });
}

testNeeding(test, needShared, "a full queue: 503 with Ollama's error, 429 with OpenAI's; nothing else is disturbed", async (t) => {
  const d = await startHttpDaemon({ model: STORIES(), paceMs: 20, nSeq: 1, maxQueue: 1 });
  t.teardown(() => d.stop());
  const running = await openStream(d.url, "/api/generate", generateBody(60));
  const queued = request(d.url, { path: "/api/generate", body: generateBody(3, { stream: false }) });
  await waitFor(() => d.router.status().queue.queued === 1);

  const ollama = await request(d.url, { path: "/api/generate", body: generateBody(3) });
  t.is(ollama.status, 503);
  t.regex(JSON.parse(ollama.body).error, /^the queue is full \(1 waiting\)/);
  const openai = await request(d.url, { path: "/v1/completions", body: JSON.stringify({ model: "m", prompt: "hi", stream: true }) });
  t.is(openai.status, 429);
  t.like(JSON.parse(openai.body), { error: { type: "requests", code: "rate_limit_exceeded", param: null } });

  running.req.destroy();
  const answer = await queued;
  t.is(answer.status, 200, "the queued request is answered once the slot frees");
  t.is(JSON.parse(answer.body).eval_count, 3);
  t.is(d.router.status().totals.rejected_busy, 2);
});

testNeeding(test, needShared, "a client that goes away cancels its generation and frees its cells", async (t) => {
  const d = await startHttpDaemon({ model: STORIES(), paceMs: 10, nSeq: 2 });
  t.teardown(() => d.stop());
  const stream = await openStream(d.url, "/api/generate", generateBody(100));
  t.true(JSON.parse(stream.first.split("\n")[0]).done === false);
  await waitFor(() => d.router.status().memory.kv_used_cells > 5, 5000, "the generation to fill some cells");
  stream.req.destroy();
  await waitFor(() => d.router.status().queue.running === 0, 5000, "the generation to end");
  const s = d.router.status();
  t.is(s.memory.kv_used_cells, 0, "a generation nobody reads keeps no cells");
  t.true(s.totals.generated_tokens < 100, `stopped early (${s.totals.generated_tokens} tokens)`);
  t.true(d.logs.some((l) => /http#\d+: the client went away; cancelling its generation/.test(l)));

  // The same request read to its end keeps its cells for the next one with the same prefix.
  const whole = await request(d.url, { path: "/api/generate", body: generateBody(10, { stream: false }) });
  t.is(whole.status, 200);
  t.true(d.router.status().memory.kv_used_cells >= 14);
});

testNeeding(test, needShared, "num_ctx beyond the memory plan is clamped and said once", async (t) => {
  const d = await startHttpDaemon({ model: STORIES(), nCtx: 128 });
  t.teardown(() => d.stop());
  for (let i = 0; i < 3; i++) {
    const r = await request(d.url, { path: "/api/generate", body: generateBody(4, { stream: false, options: { num_ctx: 8192, num_predict: 4 } }) });
    t.is(r.status, 200);
  }
  const said = d.logs.filter((l) => l.includes("num_ctx 8192"));
  t.is(said.length, 1, said.join("\n"));
  t.regex(said[0], /the memory plan gives 128 tokens per sequence/);
  // num_predict beyond the context ends where the context does instead of being refused
  const long = await request(d.url, { path: "/api/generate", body: generateBody(3000, { stream: false }) });
  t.is(long.status, 200);
  const final = JSON.parse(long.body);
  t.is(final.prompt_eval_count + final.eval_count, 128);
  t.is(final.done_reason, "length");
});

test("a conversation loses its oldest turns, never its system messages or its latest turn", (t) => {
  const m = (role: string, content: string) => ({ role, content });
  const talk = [m("system", "s"), m("user", "u1"), m("assistant", "a1"), m("user", "u2"), m("assistant", ""), m("tool", "r2"), m("assistant", "a2"), m("user", "u3")];
  t.deepEqual(withoutOldestTurn(talk), [m("system", "s"), m("user", "u2"), m("assistant", ""), m("tool", "r2"), m("assistant", "a2"), m("user", "u3")]);
  t.deepEqual(withoutOldestTurn(withoutOldestTurn(talk)!), [m("system", "s"), m("user", "u3")]);
  t.is(withoutOldestTurn([m("system", "s"), m("user", "u3")]), null);
  t.is(withoutOldestTurn([m("user", "only")]), null);
});

testNeeding(test, needShared, "a conversation longer than the context is answered without its oldest turns, as Ollama does", async (t) => {
  const d = await startHttpDaemon({ model: LLAMA3(), nCtx: 256 });
  t.teardown(() => d.stop());
  const turn = (i: number) => [
    { role: "user", content: `Question ${i}: ${"please tell me about the lights in the house ".repeat(3)}` },
    { role: "assistant", content: `Answer ${i}: ${"the lights are on in the kitchen and off in the hall ".repeat(3)}` },
  ];
  const messages = [{ role: "system", content: "You are a voice assistant for Home Assistant." }, ...[1, 2, 3, 4, 5].flatMap(turn), { role: "user", content: "And now?" }];
  const ollama = await request(d.url, { path: "/api/chat", body: JSON.stringify({ model: "llama3-tiny-f32", messages, stream: false, options: { num_predict: 8 } }) });
  t.is(ollama.status, 200, ollama.body);
  const final = JSON.parse(ollama.body);
  t.is(final.eval_count, 8);
  t.true(final.prompt_eval_count <= 256 - 64, `${final.prompt_eval_count} prompt tokens leave a quarter of the context`);
  t.true(d.logs.some((l) => /the \d+ oldest messages were left out so that the answer has room/.test(l)));
  const openai = await request(d.url, { path: "/v1/chat/completions", body: JSON.stringify({ model: "m", messages, max_tokens: 8 }) });
  t.is(openai.status, 200, openai.body);
  t.is(JSON.parse(openai.body).usage.completion_tokens, 8);
});

testNeeding(test, needShared, "pages from other sites and names that are not this machine's are turned away", async (t) => {
  const d = await startHttpDaemon({ model: STORIES() });
  t.teardown(() => d.stop());
  const rebound = await request(d.url, { path: "/api/tags", headers: { host: "evil.example:11434" } });
  t.is(rebound.status, 403, "DNS rebinding: a foreign name on a loopback port");
  const site = await request(d.url, { path: "/api/generate", body: generateBody(2), headers: { origin: "http://evil.example" } });
  t.is(site.status, 403);
  t.is(d.router.status().totals.requests, 0, "nothing was queued");
  const local = await request(d.url, { path: "/api/tags", headers: { origin: "http://localhost:8123" } });
  t.is(local.status, 200);
  t.is(local.headers["access-control-allow-origin"], "http://localhost:8123");
  const preflight = await request(d.url, { method: "OPTIONS", path: "/v1/chat/completions", headers: { origin: "http://127.0.0.1:3000" } });
  t.is(preflight.status, 204);
  t.regex(String(preflight.headers["access-control-allow-headers"]), /Authorization/);
  const method = await request(d.url, { method: "DELETE", path: "/api/tags" });
  t.is(method.status, 405);
  t.is(method.headers.allow, "GET, HEAD");
});

testNeeding(test, needShared, "stopping: a stream in flight ends with an error line, then nobody can connect", async (t) => {
  const d = await startHttpDaemon({ model: STORIES(), paceMs: 20 });
  t.teardown(() => d.stop());
  const stream = await openStream(d.url, "/api/generate", generateBody(100));
  let rest = "";
  stream.res.on("data", (s: string) => (rest += s));
  const ended = new Promise((r) => stream.res.once("end", r));
  await d.stop(0);
  await ended;
  const lines = streamedObjects(stream.first + rest) as { error?: string; done?: boolean }[];
  t.deepEqual(lines.at(-1), { error: "the daemon is shutting down" });
  await t.throwsAsync(request(d.url, { path: "/api/tags" }), { code: "ECONNREFUSED" });
});

// ─── Pull ────────────────────────────────────────────────────────────────────────────────────

testNeeding(test, needShared, "/api/pull downloads a catalog model and streams Ollama's progress objects", async (t) => {
  const body = randomBytes(2_000_000);
  const sha256 = createHash("sha256").update(body).digest("hex");
  const files = http.createServer((req, res) => {
    res.writeHead(200, { "content-length": body.length });
    // in pieces, so that progress has something to report
    let at = 0;
    const next = () => {
      if (at >= body.length) return res.end();
      const piece = body.subarray(at, (at += 250_000));
      setTimeout(() => res.write(piece, next), 30);
    };
    next();
  });
  await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
  t.teardown(() => files.close());
  const port = (files.address() as AddressInfo).port;
  const entry = {
    id: "tiny-test-q4_0", name: "Tiny test", file: "tiny-test.Q4_0.gguf", url: `http://127.0.0.1:${port}/tiny.gguf`, sha256, size: body.length,
    sizeExact: true, architecture: "llama", parameters: "1M", quantization: "q4_0", license: "mit", template: "raw" as const,
    contextLength: 128, memory: body.length, source: "test",
  };
  const catalog: Catalog = { version: 1, models: [entry] };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-77-pull-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const d = await startHttpDaemon({ model: STORIES(), pull: pullService({ dir, catalog }) });
  t.teardown(() => d.stop());
  const ollama = new Ollama({ host: d.url });

  const statuses: { status: string; digest?: string; total?: number; completed?: number }[] = [];
  for await (const p of await ollama.pull({ model: "tiny-test-q4_0:latest", stream: true })) statuses.push(p);
  t.is(statuses[0].status, "pulling manifest");
  const downloading = statuses.filter((s) => s.status === `pulling ${sha256.slice(0, 12)}`);
  t.true(downloading.length >= 2, JSON.stringify(statuses));
  for (const s of downloading) t.like(s, { digest: `sha256:${sha256}`, total: body.length });
  t.deepEqual(statuses.slice(-3).map((s) => s.status), ["verifying sha256 digest", "writing manifest", "success"]);
  t.deepEqual(fs.readFileSync(path.join(dir, entry.file)), body);

  const again = await ollama.pull({ model: "tiny-test-q4_0", stream: false });
  t.is(again.status, "success", "already present");
  const unknown = await t.throwsAsync(ollama.pull({ model: "llama3.2", stream: false }));
  t.is((unknown as unknown as { status_code: number }).status_code, 404);
  t.regex((unknown as unknown as { error: string }).error, /"llama3\.2" is not in alpaca's catalog/);
});
