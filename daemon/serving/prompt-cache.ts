// The persistent prompt cache (docs/prompt-cache.md): the KV cells of prefixes that requests
// share — Home Assistant's system prompt with its entities and tools, 1,500–4,000 tokens that a
// Pi prefills in minutes — kept in files in the state directory, so that the first request after
// a restart skips that prefill too.
//
// A prefix earns a file when a request reused it from memory (it was asked for at least twice),
// it is at least minTokens long and no file holds it yet. The scheduler writes it after the
// request that reused it, off the request path (native/model/kv_store.h: temporary file, fsync,
// rename), and restores the longest stored prefix of a new prompt when that is longer than what
// memory holds. A file of another model, KV type or version, a damaged or truncated one, and a
// leftover of a daemon killed while writing are skipped with one log line each; a full disk
// costs the file, never an answer. The least recently used files go first when the budget of
// bytes or files is reached.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { NativeModel } from "../engine/engine.js";
import { addon } from "../engine/native.js";
import type { Logger } from "../log.js";
import type { PromptCacheStats } from "./protocol.js";
import { silentLogger } from "../log.js";

export const PROMPT_CACHE_SUFFIX = ".kv";

export interface PromptCacheOptions {
  dir: string;
  /** Bytes of files at most (default 1 GiB). */
  maxBytes?: number;
  /** Files at most: the longest recently used prefixes. */
  maxEntries?: number;
  /** A shorter shared prefix is cheaper to prefill than to store. */
  minTokens?: number;
  /** alpaca's version: numerics may change between versions, so their files are not mixed. */
  version: string;
  log?: Logger;
}

/** What a file's header says (readKvFile, native/napi/napi_kv_store.cc). */
export interface KvFileHeader {
  meta: string;
  tokens: Int32Array;
  nLayer: number;
  rowBytes: number;
  kvType: string;
  fileBytes: number;
}

/** Who wrote a file: only files of this very model, KV type and version are used. */
export interface KvFileMeta {
  model: string; // NativeModel.identity()
  modelFile: string; // the model's file name, for `alpaca cache ls`
  kvType: string;
  version: string;
  created: number; // ms since the epoch
}

export interface PromptCacheEntry {
  file: string;
  tokens: Int32Array;
  bytes: number;
  lastUsed: number; // ms since the epoch (the file's mtime, so that it survives restarts)
}

export function readKvFile(file: string): KvFileHeader {
  return addon<{ readKvFile(p: string): KvFileHeader }>().readKvFile(file);
}

export function parseKvMeta(text: string): KvFileMeta | null {
  try {
    const m = JSON.parse(text) as Partial<KvFileMeta>;
    return typeof m.model === "string" && typeof m.kvType === "string" && typeof m.version === "string" ? (m as KvFileMeta) : null;
  } catch {
    return null;
  }
}

export class PromptCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly maxEntries: number;
  readonly minTokens: number;
  private readonly entries: PromptCacheEntry[] = [];
  private readonly identity: string;
  private readonly bytesPerToken: number;
  private readonly meta: string;
  private readonly log: Logger;
  private readonly counts = { restored: 0, restoredTokens: 0, saved: 0, skipped: 0 };
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly model: NativeModel,
    o: PromptCacheOptions,
  ) {
    this.dir = o.dir;
    this.maxBytes = o.maxBytes ?? 2 ** 30;
    this.maxEntries = o.maxEntries ?? 8;
    this.minTokens = o.minTokens ?? 32;
    this.log = o.log ?? silentLogger;
    const info = model.info();
    this.identity = model.identity();
    this.bytesPerToken = info.kvBytes / (info.nCtx * info.nSeq); // K and V of every layer
    const meta: KvFileMeta = { model: this.identity, modelFile: path.basename(info.path), kvType: info.kvType, version: o.version, created: 0 };
    this.meta = JSON.stringify(meta);
    this.load(info.kvType, o.version);
  }

  // ─── The index ───────────────────────────────────────────────────────────────────────────────

  /** Reads every file's header once: the usable ones become entries, the rest are named and left or removed. */
  private load(kvType: string, version: string): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    for (const name of fs.readdirSync(this.dir).sort()) {
      const file = path.join(this.dir, name);
      if (name.endsWith(`${PROMPT_CACHE_SUFFIX}.tmp`)) {
        // a daemon stopped while writing it: never complete, never used
        this.skip(`prompt cache: removing ${name}, left unfinished by an earlier run`, file);
        continue;
      }
      if (!name.endsWith(PROMPT_CACHE_SUFFIX)) continue;
      let header: KvFileHeader;
      try {
        header = readKvFile(file);
      } catch (e) {
        this.skip(`prompt cache: removing ${name}: ${reason(e)}`, file);
        continue;
      }
      const meta = parseKvMeta(header.meta);
      const other =
        meta === null ? "it has no readable description"
        : meta.model !== this.identity ? `it belongs to another model (${meta.modelFile})`
        : meta.kvType !== kvType ? `it holds a ${meta.kvType} KV cache, this one is ${kvType}`
        : meta.version !== version ? `it was written by alpaca ${meta.version}`
        : null;
      if (other !== null) {
        // another model's file may serve again when that model does: kept, but counted in the budget
        this.log.info(`prompt cache: skipping ${name}: ${other}`);
        this.counts.skipped++;
        this.entries.push({ file, tokens: new Int32Array(0), bytes: header.fileBytes, lastUsed: mtimeOf(file) });
        continue;
      }
      this.entries.push({ file, tokens: header.tokens, bytes: header.fileBytes, lastUsed: mtimeOf(file) });
    }
    this.evict(0);
    const usable = this.entries.filter((e) => e.tokens.length > 0);
    if (usable.length > 0)
      this.log.info(`prompt cache: ${usable.length} stored prefix${usable.length === 1 ? "" : "es"} (${usable.map((e) => e.tokens.length).join(", ")} tokens) in ${this.dir}`);
  }

  /** The stored prefix sharing the most tokens with a prompt, when that is worth restoring. */
  match(prompt: ArrayLike<number>, usable: number): { entry: PromptCacheEntry; n: number } | null {
    let best: { entry: PromptCacheEntry; n: number } | null = null;
    for (const entry of this.entries) {
      const n = commonPrefix(entry.tokens, prompt, usable);
      if (n >= this.minTokens && n > (best?.n ?? 0)) best = { entry, n };
    }
    return best;
  }

  /** True when a prefix of this length that a request reused deserves a file. */
  wants(tokens: ArrayLike<number>, n: number): boolean {
    if (n < this.minTokens || n * this.bytesPerToken > this.maxBytes) return false;
    return !this.entries.some((e) => commonPrefix(e.tokens, tokens, n) === n);
  }

  // ─── Restoring and saving ────────────────────────────────────────────────────────────────────

  /** Restores the first n positions of an entry into a sequence; false (and the file gone) when it was unusable. */
  async restore(seq: number, entry: PromptCacheEntry, n: number): Promise<boolean> {
    try {
      await this.model.kvRestoreAsync(seq, n, entry.file, entry.tokens.subarray(0, n));
    } catch (e) {
      this.drop(entry);
      this.skip(`prompt cache: ${path.basename(entry.file)} not used: ${reason(e)}`, entry.file);
      return false;
    }
    this.counts.restored++;
    this.counts.restoredTokens += n;
    this.touch(entry);
    return true;
  }

  /**
   * Writes the first tokens.length positions of a sequence to a new file; the caller keeps those
   * cells unchanged until the promise settles. Failures are logged, never thrown.
   */
  save(seq: number, tokens: number[]): Promise<void> {
    const done = this.write(seq, tokens).finally(() => this.writing.delete(done));
    this.writing.add(done);
    return done;
  }

  private async write(seq: number, tokens: number[]): Promise<void> {
    const n = tokens.length;
    const ids = Int32Array.from(tokens);
    const digest = crypto.createHash("sha256").update(new Uint8Array(ids.buffer)).digest("hex").slice(0, 16);
    const file = path.join(this.dir, `${this.identity}-${n}-${digest}${PROMPT_CACHE_SUFFIX}`);
    // Stored prefixes of this one are covered by it.
    for (const e of [...this.entries]) if (e.tokens.length > 0 && e.tokens.length <= n && commonPrefix(e.tokens, ids, n) === e.tokens.length) this.remove(e);
    this.evict(Math.ceil(n * this.bytesPerToken));
    const meta = JSON.stringify({ ...JSON.parse(this.meta), created: Date.now() });
    try {
      const bytes = await this.model.kvSaveAsync(seq, n, file, meta, ids);
      this.entries.push({ file, tokens: ids, bytes, lastUsed: Date.now() });
      this.counts.saved++;
      this.log.info(`prompt cache: stored a ${n}-token prefix (${(bytes / 2 ** 20).toFixed(1)} MiB)`);
      this.evict(0);
    } catch (e) {
      this.counts.skipped++;
      this.log.warn(`prompt cache: could not store a ${n}-token prefix: ${reason(e)}`);
    }
  }

  /** Resolves when no file is being written (before the model closes). */
  async flush(): Promise<void> {
    while (this.writing.size > 0) await Promise.allSettled([...this.writing]);
  }

  stats(): PromptCacheStats {
    return {
      dir: this.dir,
      files: this.entries.length,
      bytes: this.entries.reduce((a, e) => a + e.bytes, 0),
      max_bytes: this.maxBytes,
      max_files: this.maxEntries,
      restored: this.counts.restored,
      restored_tokens: this.counts.restoredTokens,
      saved: this.counts.saved,
      skipped: this.counts.skipped,
    };
  }

  // ─── Budget ──────────────────────────────────────────────────────────────────────────────────

  /** Removes least recently used files until `incoming` more bytes and one more file fit (0: just fit). */
  private evict(incoming: number): void {
    const extra = incoming > 0 ? 1 : 0;
    this.entries.sort((a, b) => b.lastUsed - a.lastUsed);
    let bytes = this.entries.reduce((a, e) => a + e.bytes, 0);
    while (this.entries.length > 0 && (bytes + incoming > this.maxBytes || this.entries.length + extra > this.maxEntries)) {
      const victim = this.entries[this.entries.length - 1];
      bytes -= victim.bytes;
      this.remove(victim);
    }
  }

  private remove(entry: PromptCacheEntry): void {
    this.drop(entry);
    fs.rmSync(entry.file, { force: true });
  }

  private drop(entry: PromptCacheEntry): void {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
  }

  private touch(entry: PromptCacheEntry): void {
    entry.lastUsed = Date.now();
    try {
      const now = new Date(entry.lastUsed);
      fs.utimesSync(entry.file, now, now);
    } catch {
      // removed meanwhile (alpaca cache rm): the restore already read it
    }
  }

  private skip(message: string, file: string): void {
    this.log.warn(message);
    this.counts.skipped++;
    fs.rmSync(file, { force: true });
  }
}

function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>, limit: number): number {
  const n = Math.min(a.length, b.length, limit);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function mtimeOf(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
