// Fixtures for the HTTP tests: the real `alpaca serve --http` process on a free loopback port
// (killed when the test ends), and an in-process daemon behind the HTTP transport whose engine
// can be paced to Pi-like step times, so that a test can fill the queue or leave mid-answer.
import type { ExecutionContext } from "ava";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { openModel } from "../../daemon/engine/engine.js";
import { createLogger } from "../../daemon/log.js";
import { Router } from "../../daemon/serving/router.js";
import { Scheduler } from "../../daemon/serving/scheduler.js";
import { readChatTemplate } from "../../daemon/serving/server.js";
import { ChatTemplate } from "../../daemon/serving/templates.js";
import { readModelCard } from "../../daemon/transports/http/model-card.js";
import type { PullService } from "../../daemon/transports/http/pull.js";
import type { HttpSettings } from "../../daemon/transports/http/settings.js";
import { HTTP_DEFAULTS } from "../../daemon/transports/http/settings.js";
import { HttpTransport } from "../../daemon/transports/http/transport.js";
import type { StatusData } from "../../daemon/serving/protocol.js";
import { SocketClient } from "../../daemon/transports/socket.js";
import { tempSocketPath, waitFor } from "./daemon.js";
import { paced } from "./mqtt-daemon.js";
import { start } from "./process.js";
import { CLI, needShared, sharedModel } from "./shared.js";

export { waitFor };

export const QWEN3 = () => sharedModel("qwen3-tiny-f32.gguf");
export const LLAMA3 = () => sharedModel("llama3-tiny-f32.gguf");

/** Null when this engine loads Qwen3 (its chat template offers tools), else why not. */
export function needQwen3(): string | null {
  const missing = needShared();
  if (missing) return missing;
  try {
    openModel(QWEN3(), { nCtx: 8, threads: 1 }).close();
    return null;
  } catch (e) {
    return `this engine cannot load ${QWEN3()}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** The daemon's status, asked over its Unix socket. */
export async function statusOf(socketPath: string): Promise<StatusData> {
  const client = await SocketClient.connect(socketPath);
  try {
    const reply = await client.request({ op: "status" });
    if (reply.status !== "ok") throw new Error(`status: ${JSON.stringify(reply)}`);
    return reply.data as StatusData;
  } finally {
    client.close();
  }
}

// ─── The real process ────────────────────────────────────────────────────────────────────────

export interface ServeProcess {
  url: string;
  socketPath: string;
  output: () => string;
  exited: Promise<number | null>;
  running: () => boolean;
}

/** `alpaca serve --http 127.0.0.1:0 …` on the model; resolves once it listens. Killed at the test's end. */
export async function serveHttp(t: ExecutionContext, model: string, extra: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const socketPath = tempSocketPath();
  const http = extra.includes("--http") ? [] : ["--http", "127.0.0.1:0"];
  const args = [CLI, "serve", "-m", model, "--socket", socketPath, "--threads", "1", "--no-pressure-watch", ...http, ...extra];
  const p = start(t, process.execPath, args, { env });
  const m = await p.waitFor(/http: listening on (http:\/\/\S+)/, { what: "alpaca serve listening on HTTP" });
  return { url: m[1], socketPath, output: () => p.stderr, exited: p.exited.then((e) => e.code), running: () => p.running };
}

/** A token file (mode 0600) in a fresh directory. */
export function tokenFile(token: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-http-"));
  const file = path.join(dir, "token");
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

// ─── In process ──────────────────────────────────────────────────────────────────────────────

export interface HttpDaemon {
  url: string;
  router: Router;
  scheduler: Scheduler;
  transport: HttpTransport;
  logs: string[];
  stop(graceMs?: number): Promise<void>;
}

export interface HttpDaemonOptions {
  model: string;
  /** Milliseconds added to every engine step. */
  paceMs?: number;
  nSeq?: number;
  nCtx?: number;
  maxQueue?: number;
  settings?: Partial<HttpSettings>;
  pull?: PullService;
  /** Another GGUF file whose chat template to use (a real template on other weights). */
  templateFrom?: string;
  /** A chat template of the test's own. */
  template?: string;
}

export async function startHttpDaemon(o: HttpDaemonOptions): Promise<HttpDaemon> {
  const logs: string[] = [];
  const log = createLogger("debug", (line) => logs.push(line.trimEnd()));
  const model = openModel(o.model, { nCtx: o.nCtx ?? 256, nSeq: o.nSeq ?? 4, threads: 1 });
  const engine = paced(model, o.paceMs ?? 0);
  const scheduler = new Scheduler(engine, { maxQueue: o.maxQueue ?? 32 });
  const source = o.template ?? readChatTemplate(o.templateFrom ?? o.model);
  const text = (id: number) => (id >= 0 ? model.tokenBytes(id, true).toString("utf8") : "");
  const chatTemplate = source ? new ChatTemplate(source, { bos: text(model.info().bos), eos: text(model.info().eos) }) : undefined;
  const router = new Router({ model: engine, scheduler, chatTemplate, version: "0.0.0-test", log });
  const settings: HttpSettings = {
    given: "127.0.0.1:0",
    address: "127.0.0.1",
    port: 0,
    loopback: true,
    token: null,
    ...HTTP_DEFAULTS,
    ...o.settings,
  };
  const transport = new HttpTransport(router, settings, { card: readModelCard(o.model), version: "0.0.0-test", pull: o.pull, log });
  scheduler.start();
  await transport.start();
  let stopped: Promise<void> | undefined;
  return {
    url: transport.url,
    router,
    scheduler,
    transport,
    logs,
    stop: (graceMs = 0) =>
      (stopped ??= (async () => {
        router.stopAccepting();
        transport.stopListening();
        await scheduler.stop(graceMs);
        await transport.close(1000);
        model.close();
      })()),
  };
}

// ─── Plain HTTP, for what the client libraries hide ─────────────────────────────────────────

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with Node's own client; the whole body as text. */
export function request(url: string, o: { method?: string; path: string; body?: string | Buffer; headers?: Record<string, string> }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(o.path, url), { method: o.method ?? (o.body === undefined ? "GET" : "POST"), headers: o.headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

/** The NDJSON lines (Ollama) or SSE data events (OpenAI) of a streamed body. */
export function streamedObjects(body: string): unknown[] {
  const lines = body.includes("data: ")
    ? body.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6))
    : body.split("\n").filter((l) => l.trim() !== "");
  return lines.map((l) => (l === "[DONE]" ? "[DONE]" : JSON.parse(l)));
}
