// alpaca models: the GGUF files in the models directory and the catalog, with their size and
// whether each fits this machine's memory (resident / tight / does not fit).
import fs from "node:fs";
import path from "node:path";
import type { CommandModule } from "yargs";
import { readGguf } from "../engine/gguf.js";
import { formatBytes } from "../serving/memory.js";
import { loadCatalog } from "../../models/catalog.js";
import { classifyFit, kvPerTokenOf, memoryBudget, PLAN_CONTEXT, PROCESS_OVERHEAD, type FitEstimate } from "../../models/fit.js";
import { defaultModelsDir } from "../../models/pull.js";

interface ModelsArgs {
  dir?: string;
  json: boolean;
}

export interface ModelRow extends FitEstimate {
  id: string | null;        // catalog id, when the file is a catalog model
  name: string;
  file: string;
  path: string | null;      // set for local files
  size: number;
  local: boolean;
  default: boolean;
  error?: string;           // a local file that could not be read
}

export function listModels(dir: string, budget = memoryBudget()): ModelRow[] {
  const catalog = loadCatalog();
  const rows: ModelRow[] = [];
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".gguf")).sort() : [];
  for (const file of files) {
    const full = path.join(dir, file);
    const entry = catalog.models.find((m) => m.file === file);
    const base = { id: entry?.id ?? null, name: entry?.name ?? file, file, path: full, size: fs.statSync(full).size, local: true, default: !!entry?.default };
    try {
      const info = readGguf(full);
      const weights = info.tensors.reduce((s, t) => s + t.nbytes, 0);
      rows.push({ ...base, ...classifyFit(weights, kvPerTokenOf(info) ?? 0, budget) });
    } catch (e) {
      rows.push({ ...base, ...classifyFit(base.size, 0, null), error: (e as Error).message });
    }
  }
  for (const m of catalog.models) {
    if (files.includes(m.file)) continue;
    // The catalog's memory figure already holds weights + KV(2048, f16) + overhead.
    const kvPerToken = Math.max(0, (m.memory - m.size - PROCESS_OVERHEAD) / PLAN_CONTEXT);
    rows.push({ id: m.id, name: m.name, file: m.file, path: null, size: m.size, local: false, default: !!m.default, ...classifyFit(m.size, kvPerToken, budget) });
  }
  return rows;
}

export const modelsCommand: CommandModule<object, ModelsArgs> = {
  command: "models",
  describe: "List local models and the catalog, and whether each fits in memory",
  builder: (y) =>
    y
      .option("dir", { type: "string", describe: "models directory (default: $ALPACA_MODELS, /var/lib/alpaca/models or ~/.local/share/alpaca/models)" })
      .option("json", { type: "boolean", default: false, describe: "print JSON" }),
  handler: (a) => {
    const dir = a.dir ?? defaultModelsDir();
    const budget = memoryBudget();
    const rows = listModels(dir, budget);
    if (a.json) {
      process.stdout.write(JSON.stringify({ dir, memoryBudget: budget, context: PLAN_CONTEXT, models: rows }) + "\n");
      return;
    }
    process.stdout.write(`models in ${dir}; memory available: ${budget === null ? "unknown" : formatBytes(budget)} (a ${PLAN_CONTEXT}-token f16 KV cache assumed)\n`);
    const table = rows.map((r) => [
      r.local ? "local" : "catalog",
      (r.id ?? r.file) + (r.default ? " (default)" : ""),
      formatBytes(r.size),
      r.error ? "unreadable" : formatBytes(r.total),
      r.error ? r.error : r.fit,
    ]);
    const header = ["where", "model", "size", "needs", "fit"];
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    for (const row of [header, ...table]) process.stdout.write(row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd() + "\n");
  },
};
