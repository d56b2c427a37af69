// Daemon fixtures for the 4x tests: an in-process server on a fresh socket, the real `alpaca
// serve` process, the reference text of `alpaca run`, and small waiting helpers.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ServerOptions } from "../../daemon/serving/server.js";
import { Server } from "../../daemon/serving/server.js";
import { SocketClient } from "../../daemon/transports/socket.js";
import { alpaca, scaled, start, type Owner, type TestProcess } from "./process.js";
import { CLI, sharedModel } from "./shared.js";

export const STORIES = () => sharedModel("stories260K-f32.gguf");

export function tempSocketPath(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-test-")), "alpaca.sock");
}

export interface TestDaemon {
  server: Server;
  socketPath: string;
  connect(): Promise<SocketClient>;
  stop(graceMs?: number): Promise<void>;
}

export async function startDaemon(options: Partial<ServerOptions> = {}): Promise<TestDaemon> {
  const socketPath = options.socketPath ?? tempSocketPath();
  const server = await Server.start({ modelPath: STORIES(), socketPath, threads: 1, nSeq: 4, nCtx: 128, ...options });
  return {
    server,
    socketPath,
    connect: () => SocketClient.connect(socketPath),
    stop: (graceMs = 0) => server.stop(graceMs),
  };
}

/** What `alpaca run --temp 0` prints alone for this prompt and length (the reference for batching). */
export async function runAlone(prompt: string, n: number): Promise<{ text: string; tokens: number[] }> {
  const r = await alpaca(["run", "-m", STORIES(), "-p", prompt, "-n", String(n), "--temp", "0", "--json"]);
  if (r.code !== 0) throw new Error(`alpaca run failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { text: string; tokens: number[] };
}

export interface ServeProcess extends TestProcess {
  socketPath: string;
}

/**
 * `alpaca serve` as its own process on a fresh socket (stories260K, one thread unless `args`
 * say otherwise), resolved once the daemon says it is listening. Killed when `owner` tears
 * down; a daemon that does not come up in time is killed before the error is thrown.
 */
export async function startServe(owner: Owner, args: string[] = [], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ServeProcess> {
  const socketPath = args.includes("--socket") ? args[args.indexOf("--socket") + 1] : tempSocketPath();
  const model = args.includes("-m") || args.includes("--model") ? [] : ["-m", STORIES()];
  const socket = args.includes("--socket") ? [] : ["--socket", socketPath];
  const threads = args.includes("--threads") ? [] : ["--threads", "1"];
  const p = start(owner, process.execPath, [CLI, "serve", ...model, ...socket, ...threads, ...args], { env: o.env });
  await p.waitFor(/listening on /, { what: "\"listening on\" from alpaca serve", timeoutMs: o.timeoutMs ?? 20_000 });
  return Object.assign(p, { socketPath });
}

/** Polls `cond` until it holds; `timeoutMs` is for a quiet machine and grows with the load. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const started = Date.now();
  while (!(await cond())) {
    if (Date.now() - started > scaled(timeoutMs)) throw new Error(`timed out waiting for ${what} (${Date.now() - started} ms)`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
