// Child process for the corruption tests: loads each GGUF file named in a JSON list with
// readGguf and writes one JSON line per file as soon as it is done, so that if the native
// code crashes the parent knows exactly which file did it (the first one without a line).
import fs from "node:fs";
import { readGguf } from "../../daemon/engine/gguf.js";

export interface BatchResult {
  file: string;
  ok: boolean;
  errorName?: string;
  message?: string;
  fileSize?: number;
  dataOffset?: number;
  tensorEnds?: number[]; // dataOffset + offset + nbytes of every tensor, for successful loads
}

/** Peak resident memory of this process in bytes (VmHWM), to catch amplification. */
function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

const files = JSON.parse(fs.readFileSync(process.argv[2]!, "utf8")) as string[];
for (const file of files) {
  let result: BatchResult;
  try {
    const info = readGguf(file);
    result = {
      file, ok: true, fileSize: info.fileSize, dataOffset: info.dataOffset,
      tensorEnds: info.tensors.map((t) => info.dataOffset + t.offset + t.nbytes),
    };
  } catch (e) {
    const err = e as Error;
    result = { file, ok: false, errorName: err?.constructor?.name ?? typeof e, message: String(err?.message ?? e) };
  }
  fs.writeSync(1, JSON.stringify(result) + "\n");
}
fs.writeSync(1, JSON.stringify({ done: true, peakRss: peakRss() }) + "\n");
