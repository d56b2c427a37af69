// alpaca cache ls|rm: the prompt cache's files (docs/prompt-cache.md). It reads the directory
// itself, so it works whether the daemon runs or not; a running daemon skips a removed file
// with one log line the next time it would have used it.
import fs from "node:fs";
import path from "node:path";
import type { CommandModule } from "yargs";
import { loadConfig, withConfigOptions } from "../config.js";
import { UserError } from "../errors.js";
import { formatBytes } from "../serving/memory.js";
import { parseKvMeta, PROMPT_CACHE_SUFFIX, readKvFile } from "../serving/prompt-cache.js";
import { stateDirectory } from "../transports/socket.js";

interface CacheArgs {
  action: "ls" | "rm";
  names: string[];
  all: boolean;
  json: boolean;
  [key: string]: unknown;
}

export interface CacheFileRow {
  name: string;
  bytes: number;
  tokens: number | null;
  model: string | null; // the model file it was written for
  kv_type: string | null;
  version: string | null;
  created: string | null;
  last_used: string;
  problem?: string; // unreadable: the daemon removes it at its next start
}

export function promptCacheDir(configured: string | null): string {
  return configured ?? path.join(stateDirectory(), "prompt-cache");
}

export function listCacheFiles(dir: string): CacheFileRow[] {
  if (!fs.existsSync(dir)) return [];
  const rows: CacheFileRow[] = [];
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(PROMPT_CACHE_SUFFIX)).sort()) {
    const file = path.join(dir, name);
    const st = fs.statSync(file);
    const base = { name, bytes: st.size, last_used: st.mtime.toISOString() };
    try {
      const h = readKvFile(file);
      const meta = parseKvMeta(h.meta);
      rows.push({
        ...base,
        tokens: h.tokens.length,
        model: meta?.modelFile ?? null,
        kv_type: h.kvType,
        version: meta?.version ?? null,
        created: meta?.created ? new Date(meta.created).toISOString() : null,
      });
    } catch (e) {
      rows.push({ ...base, tokens: null, model: null, kv_type: null, version: null, created: null, problem: (e as Error).message });
    }
  }
  return rows;
}

export const cacheCommand: CommandModule<object, CacheArgs> = {
  command: "cache <action> [names..]",
  describe: "List (ls) or remove (rm NAME… | rm --all) the prompt cache's stored prefixes",
  builder: (y) =>
    withConfigOptions(y)
      .positional("action", { choices: ["ls", "rm"] as const, describe: "ls: list the files; rm: remove them" })
      .positional("names", { type: "string", array: true, default: [], describe: "files to remove, as `cache ls` names them" })
      .option("all", { type: "boolean", default: false, describe: "with rm: remove every file" })
      .option("json", { type: "boolean", default: false, describe: "print JSON" }) as never,
  handler: (a) => {
    const dir = promptCacheDir(loadConfig(a).promptCacheDir);
    if (a.action === "ls") {
      const rows = listCacheFiles(dir);
      if (a.json) {
        process.stdout.write(JSON.stringify({ dir, files: rows }, null, 2) + "\n");
        return;
      }
      process.stdout.write(`${dir}: ${rows.length} file${rows.length === 1 ? "" : "s"}, ${formatBytes(rows.reduce((s, r) => s + r.bytes, 0))}\n`);
      for (const r of rows) {
        const what = r.problem ? `unusable: ${r.problem}` : `${r.tokens} tokens of ${r.model ?? "an unknown model"}, KV ${r.kv_type}, alpaca ${r.version}`;
        process.stdout.write(`  ${r.name}  ${formatBytes(r.bytes)}  last used ${r.last_used}  ${what}\n`);
      }
      return;
    }
    if (a.all === (a.names.length > 0)) throw new UserError("cache rm: name the files to remove, or give --all");
    const names = a.all ? listCacheFiles(dir).map((r) => r.name) : a.names;
    for (const name of names) {
      if (name !== path.basename(name) || !name.endsWith(PROMPT_CACHE_SUFFIX))
        throw new UserError(`cache rm: ${JSON.stringify(name)} is not a prompt-cache file name (alpaca cache ls lists them)`);
      if (!fs.existsSync(path.join(dir, name))) throw new UserError(`cache rm: no file ${name} in ${dir}`);
    }
    for (const name of names) fs.rmSync(path.join(dir, name), { force: true });
    process.stdout.write(`removed ${names.length} file${names.length === 1 ? "" : "s"} from ${dir}\n`);
  },
};
