// The Unix socket transport with the real engine: framing, bad input answered while the daemon
// keeps serving, many clients at once, a full queue, clients that leave or do not read.
import test from "ava";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { ChunkMessage } from "../daemon/serving/protocol.js";
import { API_VERSION } from "../daemon/serving/protocol.js";
import type { FinalMessage, SocketClient } from "../daemon/transports/socket.js";
import { LineReader } from "../daemon/transports/socket.js";
import { runAlone, startDaemon, tempSocketPath, waitFor } from "./helpers/daemon.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const PROMPT = "Once upon a time";

function okData(t: import("ava").ExecutionContext, m: FinalMessage): Record<string, unknown> {
  if (m.status !== "ok") {
    t.fail(`expected ok, got ${JSON.stringify(m)}`);
    return {};
  }
  return m.data as Record<string, unknown>;
}

function errorCode(m: FinalMessage): string | undefined {
  return m.status === "error" ? m.error.code : undefined;
}

async function stillServes(t: import("ava").ExecutionContext, c: SocketClient) {
  const r = await c.request({ op: "generate", prompt: PROMPT, max_tokens: 4, temperature: 0 });
  t.is(okData(t, r).stop_reason, "length", "the connection still serves after the bad request");
}

test("LineReader splits lines across chunks, strips CR, skips blank lines and discards over-long ones", (t) => {
  const lines: string[] = [];
  let tooLong = 0;
  const r = new LineReader(8, { line: (l) => lines.push(l.toString()), tooLong: () => tooLong++ });
  r.push(Buffer.from("ab"));
  r.push(Buffer.from("c\r\n\n  \nde"));
  r.push(Buffer.from("f\n0123456789"));
  r.push(Buffer.from("abc\nok\n"));
  r.push(Buffer.from("12345678\n123456789\nz\n"));
  t.deepEqual(lines, ["abc", "def", "ok", "12345678", "z"]);
  t.is(tooLong, 2);
});

testNeeding(test, needShared, "20 concurrent clients each get one final with the text alpaca run gives alone, chunks in seq order", async (t) => {
  const reference = (await runAlone(PROMPT, 40)).text;
  const d = await startDaemon({ nSeq: 4 });
  try {
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const c = await d.connect();
        const chunks: ChunkMessage[] = [];
        const finals: FinalMessage[] = [];
        const final = await c.request({ op: "generate", transaction: `tx${i}`, prompt: PROMPT, max_tokens: 40, temperature: 0 }, (ch) =>
          chunks.push(ch),
        );
        finals.push(final);
        // nothing else arrives for this transaction
        await new Promise((r) => setTimeout(r, 20));
        c.close();
        return { i, chunks, final };
      }),
    );
    for (const { i, chunks, final } of results) {
      const data = okData(t, final);
      t.is(final.transaction, `tx${i}`);
      t.is(data.text, reference, `client ${i}`);
      t.deepEqual(
        chunks.map((c) => c.seq),
        chunks.map((_, k) => k),
      );
      t.is(chunks.map((c) => c.delta).join(""), reference);
      t.true(chunks.every((c) => c.transaction === `tx${i}`));
    }
    const cached = results.map((r) => (okData(t, r.final).usage as { cached_tokens: number }).cached_tokens);
    t.true(cached.some((n) => n > 0), "later requests reuse the cached prompt");
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "many requests in flight on one connection, stream false sends only the final", async (t) => {
  const d = await startDaemon();
  try {
    const c = await d.connect();
    let chunks = 0;
    const replies = await Promise.all(
      ["The sun was", "Tom had a red ball", PROMPT].map((p) =>
        c.request({ op: "generate", prompt: p, max_tokens: 12, temperature: 0, stream: false }, () => chunks++),
      ),
    );
    t.is(chunks, 0);
    t.true(replies.every((r) => r.status === "ok"));
    t.is(okData(t, replies[2]).text, (await runAlone(PROMPT, 12)).text);
    c.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "bad input gets its documented error and the daemon keeps serving", async (t) => {
  const d = await startDaemon();
  try {
    const c = await d.connect();
    const raw = async (bytes: string | Buffer) => {
      c.writeRaw(bytes);
      return c.nextUnmatched();
    };
    const notJson = await raw("this is not json\n");
    t.is(errorCode(notJson), "bad_request");
    t.is(notJson.transaction, null);
    await stillServes(t, c);

    const badUtf8 = await raw(Buffer.concat([Buffer.from('{"op":"generate","prompt":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]));
    t.is(errorCode(badUtf8), "bad_request");
    t.regex(badUtf8.status === "error" ? badUtf8.error.message : "", /UTF-8/);
    await stillServes(t, c);

    const huge = await raw(`{"op":"generate","prompt":"${"a".repeat(1 << 20)}"}\n`);
    t.is(errorCode(huge), "bad_request");
    t.regex(huge.status === "error" ? huge.error.message : "", /longer than 1048576 bytes/);
    await stillServes(t, c);

    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ op: "dance" }, "bad_request", /unknown op/],
      [{ op: "generate", prompt: 7 }, "bad_request", /prompt must be a string/],
      [{ op: "generate", prompt: "x", temperature: "warm" }, "bad_request", /temperature must be a number/],
      [{ op: "generate", prompt: "x", max_tokens: 0 }, "bad_request", /max_tokens must be from 1 to 128/],
      [{ op: "generate", prompt: "x", max_tokens: -5 }, "bad_request", /max_tokens/],
      [{ op: "generate", prompt: "x", max_tokens: 1e9 }, "bad_request", /max_tokens/],
      [{ op: "generate", prompt: "once upon a time ".repeat(40) }, "too_long", /context of 128 tokens/],
      [{ op: "generate", prompt: "Once upon a time", max_tokens: 126 }, "too_long", /exceed the context/],
      [{ op: "generate", messages: [{ role: "user", content: "hi" }] }, "bad_request", /no chat template/],
    ];
    for (const [body, code, message] of cases) {
      const r = await c.request(body);
      t.is(errorCode(r), code, JSON.stringify(body).slice(0, 80));
      t.regex(r.status === "error" ? r.error.message : "", message);
    }
    await stillServes(t, c);
    c.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "status, info and models carry api_version and the model", async (t) => {
  const d = await startDaemon();
  try {
    const c = await d.connect();
    const status = okData(t, await c.request({ op: "status" }));
    t.is(status.api_version, API_VERSION);
    t.like(status, { queue: { queued: 0, running: 0, max_queue: 32, accepting: true }, plan: { n_ctx: 128, n_seq: 4 } });
    const info = okData(t, await c.request({ op: "info" }));
    t.is(info.api_version, API_VERSION);
    t.deepEqual(info.ops, ["generate", "cancel", "status", "info", "models"]);
    const models = okData(t, await c.request({ op: "models" })) as { models: { architecture: string; loaded: boolean }[] };
    t.like(models.models[0], { architecture: "llama", loaded: true });
    c.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "200 requests against a queue of 32: the rest are busy, every request gets one final", async (t) => {
  const d = await startDaemon({ nSeq: 2, maxQueue: 32 });
  try {
    const c = await d.connect();
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => c.request({ op: "generate", prompt: PROMPT, max_tokens: 20, temperature: 0, transaction: `r${i}` })),
    );
    const busy = replies.filter((r) => errorCode(r) === "busy").length;
    const ok = replies.filter((r) => r.status === "ok").length;
    t.is(busy + ok, 200);
    // 166 when all 200 lines are read in one go; a little fewer if the socket delivers them in
    // pieces while slots free up in between
    t.true(busy >= 100, `${busy} busy`);
    t.true(ok >= 32, `${ok} served`);
    await stillServes(t, c);
    c.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "a client gone mid-stream has its request cancelled and the KV cells go back to the baseline", async (t) => {
  const d = await startDaemon({ nSeq: 2, nCtx: 1024, maxBatchTokens: 4 });
  try {
    const watcher = await d.connect();
    const first = await watcher.request({ op: "generate", prompt: "The sun was", max_tokens: 6, temperature: 0 });
    t.is(first.status, "ok");
    const cells = async () => ((okData(t, await watcher.request({ op: "status" })).memory as { kv_used_cells: number }).kv_used_cells);
    const baseline = await cells();
    t.true(baseline > 0);

    const leaver = await d.connect();
    let chunks = 0;
    void leaver.request({ op: "generate", prompt: PROMPT, max_tokens: 1000, temperature: 0.8 }, () => {
      if (++chunks === 3) leaver.socket.destroy();
    });
    await waitFor(() => leaver.socket.destroyed, 5000, "the client to leave");
    await waitFor(async () => ((okData(t, await watcher.request({ op: "status" })).queue as { running: number }).running === 0), 5000, "the cancel");
    t.is(await cells(), baseline);
    t.is(d.server.model.kvUsedCells(), baseline);
    watcher.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "cancel by target ends a generation with stop_reason cancelled", async (t) => {
  const d = await startDaemon({ nCtx: 1024, maxBatchTokens: 4 });
  try {
    const c = await d.connect();
    let started!: () => void;
    const firstChunk = new Promise<void>((r) => (started = r));
    const gen = c.request({ op: "generate", transaction: "long", prompt: PROMPT, max_tokens: 1000 }, () => started());
    await firstChunk;
    const ack = okData(t, await c.request({ op: "cancel", transaction: "stop-it", target: "long" }));
    t.deepEqual(ack.cancelled, ["long"]);
    t.is(okData(t, await gen).stop_reason, "cancelled");
    t.deepEqual(okData(t, await c.request({ op: "cancel", target: "nothing" })).cancelled, []);
    c.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "a client that does not read gets merged chunks, in order, and nothing is lost", async (t) => {
  const d = await startDaemon({ nCtx: 512, highWaterBytes: 1024 });
  try {
    // A raw socket that stops reading: the daemon's write buffer fills, chunks are merged.
    const s = net.connect(d.socketPath);
    await new Promise((r) => s.once("connect", r));
    s.pause();
    // More text than the kernel's socket buffer holds (~200 KiB), so the daemon's own buffer fills.
    const n = 8;
    for (let i = 0; i < n; i++)
      s.write(JSON.stringify({ op: "generate", transaction: `s${i}`, prompt: PROMPT, max_tokens: 500, temperature: 0 }) + "\n");
    // ~300 tokens per running request: far more small writes than the kernel queues
    await waitFor(() => d.server.scheduler.stats().totals.generatedTokens >= 1200, 30000, "tokens while the client does not read");
    let buf = "";
    s.on("data", (b) => (buf += b.toString()));
    s.resume();
    await waitFor(() => (buf.match(/"status"/g) ?? []).length === n, 30000, "every final");
    const messages = buf.trim().split("\n").map((l) => JSON.parse(l));
    let merged = false;
    for (let i = 0; i < n; i++) {
      const chunks = messages.filter((m) => m.transaction === `s${i}` && "delta" in m);
      const final = messages.find((m) => m.transaction === `s${i}` && m.status);
      t.is(final.status, "ok");
      t.deepEqual(
        chunks.map((c: ChunkMessage) => c.seq),
        chunks.map((_: unknown, k: number) => k),
      );
      t.is(chunks.map((c: ChunkMessage) => c.delta).join(""), final.data.text);
      if (chunks.length < final.data.usage.completion_tokens * 0.9) merged = true;
    }
    t.true(merged, "chunks were merged while the client did not read");
    s.destroy();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "the socket is mode 0660, a stale socket is replaced, a live one or a plain file is refused", async (t) => {
  const p = tempSocketPath();
  // a stale socket: bound, then the server closed without unlinking it
  const stale = net.createServer();
  await new Promise<void>((r) => stale.listen(p, r));
  // moved aside while the server closes, in case closing removes the file
  const staleCopy = path.join(path.dirname(p), "stale.sock");
  fs.renameSync(p, staleCopy);
  await new Promise<void>((r) => stale.close(() => r()));
  fs.renameSync(staleCopy, p);
  t.true(fs.lstatSync(p).isSocket());

  const d = await startDaemon({ socketPath: p });
  try {
    t.is(fs.statSync(p).mode & 0o777, 0o660);
    const c = await d.connect();
    t.is((await c.request({ op: "info" })).status, "ok");
    c.close();
    await t.throwsAsync(startDaemon({ socketPath: p }), { message: /another daemon is listening/ });
  } finally {
    await d.stop();
  }
  const plain = path.join(path.dirname(p), "plain.sock");
  fs.writeFileSync(plain, "not a socket");
  await t.throwsAsync(startDaemon({ socketPath: plain }), { message: /not a socket/ });
});
