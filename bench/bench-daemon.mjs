// Shared by bench/fuzz-protocol.mjs and bench/soak.mjs: starts bench/protocol-daemon.mjs in a
// child process (and Mosquitto when MQTT is wanted) and reads the daemon's own status.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Mosquitto, mosquittoBinary } from "../dist/test/helpers/mosquitto.js";
import { SocketClient } from "../dist/daemon/transports/socket.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const MODEL = process.env.ALPACA_BENCH_MODEL ?? path.resolve(ROOT, "..", "shared", "models", "stories260K-f32.gguf");

/** { socketPath, mqttUrl, baseTopic, status(), stop(), exitCode() } */
export async function startBenchDaemon({ mqtt = false, baseTopic = "fz" } = {}) {
  if (!fs.existsSync(MODEL)) throw new Error(`no model at ${MODEL} (set ALPACA_BENCH_MODEL)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-bench-"));
  const socketPath = path.join(dir, "alpaca.sock");
  let broker = null;
  if (mqtt) {
    if (!mosquittoBinary()) throw new Error("mosquitto is not installed (apt-get install -y mosquitto)");
    broker = await Mosquitto.start();
  }
  const args = ["--expose-gc", path.join(ROOT, "bench", "protocol-daemon.mjs"), MODEL, socketPath, ...(broker ? [broker.url, baseTopic] : [])];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (b) => (stderr = (stderr + b.toString()).slice(-10000)));
  let exit = null;
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve((exit = { code, signal }))));
  await new Promise((resolve, reject) => {
    child.stdout.on("data", (b) => b.toString().includes("ready") && resolve());
    exited.then(() => reject(new Error(`the daemon did not start: ${stderr}`)));
  });
  const control = await SocketClient.connect(socketPath);
  return {
    socketPath,
    mqttUrl: broker?.url,
    baseTopic,
    stderr: () => stderr,
    exit: () => exit,
    /** The daemon's status after a full GC: { rss, heapUsed, kvUsedCells, clients }. */
    async status() {
      child.kill("SIGUSR2");
      await new Promise((r) => setTimeout(r, 200));
      const r = await control.request({ op: "status" });
      if (r.status !== "ok") throw new Error(`status failed: ${JSON.stringify(r)}`);
      const m = r.data.memory;
      return { rss: m.rss_bytes, heapUsed: m.heap_used_bytes, kvUsedCells: m.kv_used_cells, clients: r.data.clients, completed: r.data.totals.completed };
    },
    async stop() {
      control.close();
      if (!exit) child.kill("SIGTERM");
      await exited;
      await broker?.dispose();
      return exit;
    },
  };
}

/** A seeded PRNG (xorshift32), so a run can be repeated with --seed. */
export function rng(seed) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (list) => list[Math.floor(next() * list.length)],
    chance: (p) => next() < p,
  };
}

export const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export function parseArgs(defaults) {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in defaults)) throw new Error(`unknown option --${key} (known: ${Object.keys(defaults).map((k) => `--${k}`).join(", ")})`);
    out[key] = typeof defaults[key] === "boolean" ? true : typeof defaults[key] === "number" ? Number(argv[++i]) : argv[++i];
  }
  return out;
}
