// Runs readGguf over many files in child processes, so that a native crash (SIGSEGV, abort,
// out of memory) fails one batch with the file that caused it instead of killing ava.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { BatchResult } from "./gguf-batch-child.js";
import { spawnTracked } from "./process.js";

const childScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "gguf-batch-child.js");

export interface BatchOutcome {
  results: BatchResult[];
  /** Set when the child died or did not report every file: which file, and how it ended. */
  crash?: { file: string | undefined; code: number | null; signal: NodeJS.Signals | null; stderr: string };
  peakRss?: number;
}

export async function loadInChild(files: string[], listPath: string): Promise<BatchOutcome> {
  fs.writeFileSync(listPath, JSON.stringify(files));
  const child = spawnTracked(process.execPath, [childScript, listPath]);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => { stdout += d; });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => { stderr += d; });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on("close", (c, s) => resolve([c, s])));

  const results: BatchResult[] = [];
  let peakRss: number | undefined;
  for (const line of stdout.split("\n")) {
    if (!line) continue;
    const parsed = JSON.parse(line) as BatchResult | { done: true; peakRss: number };
    if ("done" in parsed) peakRss = parsed.peakRss;
    else results.push(parsed);
  }
  const outcome: BatchOutcome = { results, peakRss };
  if (code !== 0 || signal !== null || peakRss === undefined || results.length !== files.length)
    outcome.crash = { file: files[results.length], code, signal, stderr: stderr.slice(-2000) };
  return outcome;
}
