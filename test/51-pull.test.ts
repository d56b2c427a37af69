// Downloads against a local server that misbehaves on purpose: dropped connections, no Range
// support, a wrong Content-Length, a wrong checksum, 404, redirects, a server that is gone.
import test from "ava";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { loadCatalog, type Catalog } from "../models/catalog.js";
import { ensureDefaultModel, NetworkError, pullModel, type PullOptions } from "../models/pull.js";
import { alpaca } from "./helpers/process.js";

const BODY = randomBytes(300_000);
const SHA = createHash("sha256").update(BODY).digest("hex");
const OTHER = Buffer.from(BODY).fill(7, 1000, 2000);

interface Seen { path: string; range?: string }
const seen: Seen[] = [];
const dropOnce = new Set<string>(); // paths whose first request is cut half-way

function serveRange(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  if (!m) {
    res.writeHead(200, { "content-length": body.length });
    return res.end(body);
  }
  const start = Number(m[1]);
  if (start >= body.length) {
    res.writeHead(416, { "content-range": `bytes */${body.length}` });
    return res.end();
  }
  res.writeHead(206, { "content-length": body.length - start, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` });
  res.end(body.subarray(start));
}

function cutHalfway(res: http.ServerResponse, body: Buffer) {
  res.writeHead(200, { "content-length": body.length });
  res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  seen.push({ path: url.pathname, range: req.headers.range });
  const p = url.pathname;
  const first = dropOnce.delete(p);
  if (p.startsWith("/loop")) {
    res.writeHead(301, { location: p + "x" });
    return res.end();
  }
  if (p.endsWith("/model.gguf")) {
    if (p.startsWith("/drop/") && first) return cutHalfway(res, BODY);
    if (p.startsWith("/norange/")) {
      if (first) return cutHalfway(res, BODY);
      res.writeHead(200, { "content-length": BODY.length });
      return res.end(BODY);
    }
    if (p.startsWith("/wronglength/")) {
      // announces more than it has, then closes: the classic truncated mirror
      if (req.headers.range) return serveRange(req, res, BODY);
      res.writeHead(200, { "content-length": BODY.length + 5000 });
      return res.write(BODY, () => res.socket?.destroy());
    }
    if (p.startsWith("/other/")) return serveRange(req, res, OTHER);
    if (p.startsWith("/error500/") && first) { res.writeHead(503); return res.end(); }
    return serveRange(req, res, BODY);
  }
  if (p === "/redirect/model.gguf" || p === "/redirect") {
    res.writeHead(302, { location: "/ok/model.gguf" });
    return res.end();
  }
  res.writeHead(404);
  res.end("not here");
});

let base = "";
let closedPort = 0;
test.before(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // a port with nobody listening: bind, note it, close
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
});
test.after.always(() => server.close());

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-pull-"));
const fast: PullOptions = { retries: 3, backoffMs: 10, progressIntervalMs: 0 };

test("a plain download ends with the right bytes, verified, and no part file", async (t) => {
  const dir = tmpDir();
  const r = await pullModel(`${base}/ok/model.gguf`, { ...fast, dir, sha256: SHA });
  t.is(r.path, path.join(dir, "model.gguf"));
  t.true(r.verified);
  t.is(r.sha256, SHA);
  t.deepEqual(fs.readFileSync(r.path), BODY);
  t.false(fs.existsSync(r.path + ".part"));
});

test("a connection dropped half-way resumes with Range and ends with the right sha256", async (t) => {
  const dir = tmpDir();
  dropOnce.add("/drop/model.gguf");
  const warnings: string[] = [];
  const r = await pullModel(`${base}/drop/model.gguf`, { ...fast, dir, sha256: SHA, onWarning: (m) => warnings.push(m) });
  t.is(r.sha256, SHA);
  t.true(r.verified);
  const ranges = seen.filter((s) => s.path === "/drop/model.gguf").map((s) => s.range);
  t.is(ranges[0], undefined);
  t.regex(ranges[1] ?? "", /^bytes=\d+-$/);
  t.true(Number(/\d+/.exec(ranges[1]!)![0]) > 0, "resumed past zero");
  t.true(warnings.some((w) => /retrying/.test(w)), warnings.join("\n"));
});

test("a part file left by an earlier run is hashed and continued", async (t) => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, "model.gguf.part"), BODY.subarray(0, 123_456));
  const phases = new Set<string>();
  const r = await pullModel(`${base}/resume/model.gguf`, { ...fast, dir, sha256: SHA, onProgress: (p) => phases.add(p.phase) });
  t.is(r.sha256, SHA);
  t.deepEqual(seen.filter((s) => s.path === "/resume/model.gguf").map((s) => s.range), ["bytes=123456-"]);
  t.true(phases.has("hashing") && phases.has("downloading"), [...phases].join());
});

test("a server that ignores Range (200 instead of 206) makes the download start again from zero", async (t) => {
  const dir = tmpDir();
  dropOnce.add("/norange/model.gguf");
  const warnings: string[] = [];
  const r = await pullModel(`${base}/norange/model.gguf`, { ...fast, dir, sha256: SHA, onWarning: (m) => warnings.push(m) });
  t.is(r.sha256, SHA);
  t.deepEqual(fs.readFileSync(r.path), BODY);
  t.true(warnings.some((w) => /ignored the range request/.test(w)), warnings.join("\n"));
});

test("a server error (503) is retried", async (t) => {
  dropOnce.add("/error500/model.gguf");
  const r = await pullModel(`${base}/error500/model.gguf`, { ...fast, dir: tmpDir(), sha256: SHA });
  t.is(r.sha256, SHA);
});

test("a Content-Length longer than the file is a wrong-length error", async (t) => {
  const e = await t.throwsAsync(pullModel(`${base}/wronglength/model.gguf`, { ...fast, dir: tmpDir() }));
  t.regex(e!.message, /wrong length/);
  t.notRegex(e!.message, /\n/);
});

test("a file of the wrong size for the catalog is a wrong-length error", async (t) => {
  const e = await t.throwsAsync(pullModel(`${base}/ok/model.gguf`, { ...fast, dir: tmpDir(), size: BODY.length + 1 }));
  t.regex(e!.message, /wrong length: the server offers 300000 bytes/);
});

test("a checksum mismatch removes the bad file", async (t) => {
  const dir = tmpDir();
  const e = await t.throwsAsync(pullModel(`${base}/other/model.gguf`, { ...fast, dir, sha256: SHA }));
  t.regex(e!.message, /checksum mismatch for model\.gguf: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64} \(the download was removed\)/);
  t.deepEqual(fs.readdirSync(dir), []);
});

test("without a published digest the length is checked and a warning says so", async (t) => {
  const warnings: string[] = [];
  const r = await pullModel(`${base}/ok/model.gguf`, { ...fast, dir: tmpDir(), onWarning: (m) => warnings.push(m) });
  t.false(r.verified);
  t.is(r.sha256, SHA);
  t.true(warnings.some((w) => /no published sha256/.test(w)));
});

test("404 is one clear line", async (t) => {
  const e = await t.throwsAsync(pullModel(`${base}/missing.gguf`, { ...fast, dir: tmpDir() }));
  t.is(e!.message, `not found (404): ${base}/missing.gguf`);
});

test("redirects are followed, within a bound", async (t) => {
  const r = await pullModel(`${base}/redirect/model.gguf`, { ...fast, dir: tmpDir(), sha256: SHA });
  t.is(r.sha256, SHA);
  const e = await t.throwsAsync(pullModel(`${base}/loop/model.gguf`, { ...fast, dir: tmpDir(), maxRedirects: 3 }));
  t.regex(e!.message, /too many redirects \(more than 3\)/);
});

test("a server that is gone gives up after the retries with a network error", async (t) => {
  const e = await t.throwsAsync(pullModel(`http://127.0.0.1:${closedPort}/model.gguf`, { ...fast, dir: tmpDir() }));
  t.true(e instanceof NetworkError);
  t.regex(e!.message, /cannot download model\.gguf from 127\.0\.0\.1:\d+: .*gave up after 4 attempts/);
});

test("a download larger than the free space is refused before it starts", async (t) => {
  const dir = tmpDir();
  const e = await t.throwsAsync(pullModel(`${base}/ok/model.gguf`, { ...fast, dir, size: 2 ** 52 }));
  t.regex(e!.message, /not enough disk space in .* more needed, .* free/);
  t.deepEqual(fs.readdirSync(dir), []);
});

test("a file already in place is not downloaded again", async (t) => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, "model.gguf"), BODY);
  const before = seen.length;
  const r = await pullModel(`${base}/ok/model.gguf`, { ...fast, dir });
  t.true(r.alreadyPresent);
  t.is(seen.length, before);
});

// ── the default model for serve ──

function catalogServing(url: string, sha256: string | null): Catalog {
  const c = structuredClone(loadCatalog());
  const d = c.models.find((m) => m.default)!;
  Object.assign(d, { url, file: "default.gguf", sha256, size: BODY.length, sizeExact: true });
  return c;
}

test("ensureDefaultModel downloads the catalog's default once, then finds it", async (t) => {
  const dir = tmpDir();
  const catalog = catalogServing(`${base}/ok/model.gguf`, SHA);
  catalog.models.find((m) => m.default)!.file = "model.gguf";
  let progressed = 0;
  const file = await ensureDefaultModel(dir, { catalog, onProgress: () => progressed++ });
  t.is(file, path.join(dir, "model.gguf"));
  t.true(progressed > 0);
  const before = seen.length;
  t.is(await ensureDefaultModel(dir, { catalog }), file);
  t.is(seen.length, before);
});

test("ensureDefaultModel without a network says in one line how to get a model", async (t) => {
  const dir = tmpDir();
  const catalog = catalogServing(`http://127.0.0.1:${closedPort}/model.gguf`, SHA);
  const e = await t.throwsAsync(ensureDefaultModel(dir, { catalog, retries: 1, backoffMs: 5 }));
  t.regex(e!.message, /^no model is configured and the default model \(.*\) could not be downloaded: .*Run "alpaca pull [a-z0-9._-]+" once the network is up, or copy a GGUF file to /);
  t.notRegex(e!.message, /\n/);
});

// ── the command line ──

test("alpaca pull URL: progress as plain lines when not a terminal, the path on stdout", async (t) => {
  const dir = tmpDir();
  const r = await alpaca(["pull", `${base}/ok/model.gguf`, "--dir", dir, "--sha256", SHA]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), path.join(dir, "model.gguf"));
  t.regex(r.stderr, /sha256 verified/);
  t.notRegex(r.stderr, /\r/);
});

test("alpaca pull errors are one line and exit code 2", async (t) => {
  const dir = tmpDir();
  for (const [args, message] of [
    [["pull", "no-such-model", "--dir", dir], /unknown model "no-such-model" \(known: /],
    [["pull", `${base}/missing.gguf`, "--dir", dir], /not found \(404\)/],
    [["pull", `${base}/other/model.gguf`, "--dir", dir, "--sha256", SHA], /checksum mismatch/],
    [["pull", `${base}/ok/model.gguf`, "--dir", dir, "--sha256", "xyz"], /--sha256 must be 64 hex digits/],
  ] as const) {
    const r = await alpaca([...args]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split("\n").filter((l) => l.startsWith("alpaca:")).length, 1, r.stderr);
  }
});
