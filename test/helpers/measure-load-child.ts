// Child process for the memory tests: loads one file and reports how long it took and how
// much anonymous memory (RssAnon: heap, not the mapped file) the process holds afterwards.
// A fresh process keeps ava's own memory out of the measurement.
//   node measure-load-child.js gguf|engine FILE
import fs from "node:fs";
import { openModel } from "../../daemon/engine/engine.js";
import { readGguf } from "../../daemon/engine/gguf.js";

export interface LoadMeasurement {
  ms: number;
  rssAnonBefore: number; // bytes
  rssAnonAfter: number;  // bytes
  rssFileAfter: number;  // bytes of the mapping (and node itself) resident in the page cache
  tensors?: number;                  // gguf mode
  metadata?: Record<string, unknown>; // gguf mode: the scalar values
  kvBytes?: number;                  // engine mode: the KV cache the engine allocated
  weightBytes?: number;              // engine mode
}

function statusBytes(field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync("/proc/self/status", "utf8"));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

const [mode, file] = process.argv.slice(2);
if ((mode !== "gguf" && mode !== "engine") || !file) {
  console.error("usage: measure-load-child.js gguf|engine FILE");
  process.exit(2);
}
const rssAnonBefore = statusBytes("RssAnon");
const started = process.hrtime.bigint();
let result: LoadMeasurement;
if (mode === "gguf") {
  const info = readGguf(file);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const scalars = Object.fromEntries(Object.entries(info.metadata).filter(([, v]) => typeof v !== "object"));
  result = {
    ms, rssAnonBefore, rssAnonAfter: statusBytes("RssAnon"), rssFileAfter: statusBytes("RssFile"),
    tensors: info.tensors.length, metadata: JSON.parse(JSON.stringify(scalars, (_, v) => typeof v === "bigint" ? String(v) : v)),
  };
} else {
  // A small context: what is measured is the weights, not the KV cache.
  const model = openModel(file, { nCtx: 64, nSeq: 1, threads: 1 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const info = model.info();
  result = {
    ms, rssAnonBefore, rssAnonAfter: statusBytes("RssAnon"), rssFileAfter: statusBytes("RssFile"),
    kvBytes: info.kvBytes, weightBytes: info.weightBytes,
  };
  model.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
