// Daemon fixtures for the 4x tests: an in-process server on a fresh socket, the reference text
// of `alpaca run`, and small waiting helpers.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ServerOptions } from "../../daemon/serving/server.js";
import { Server } from "../../daemon/serving/server.js";
import { SocketClient } from "../../daemon/transports/socket.js";
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
export function runAlone(prompt: string, n: number): { text: string; tokens: number[] } {
  const r = spawnSync(process.execPath, [CLI, "run", "-m", STORIES(), "-p", prompt, "-n", String(n), "--temp", "0", "--json"], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`alpaca run failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { text: string; tokens: number[] };
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
