// Downloading models: `alpaca pull ID|URL` and the first start of `serve` (ensureDefaultModel).
//
// A 4 GB file over a Pi's Wi-Fi takes a while and connections drop, so the download goes to
// FILE.part and resumes from there with a Range request (from zero when the server ignores
// Range), retries dropped connections with backoff, checks free space first, verifies the
// sha256 (hashing the part it resumes from), and renames into place only when complete: a
// models directory never holds a half file under a model's name.
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { UserError } from "../daemon/errors.js";
import { formatBytes } from "../daemon/serving/memory.js";
import { defaultCatalogEntry, findCatalogEntry, loadCatalog, type Catalog, type CatalogEntry } from "./catalog.js";

// ── where models live ──────────────────────────────────────────────────────────────────────

export const STATE_MODELS_DIR = "/var/lib/alpaca/models";

function writableDir(dir: string): boolean {
  // The directory, or the nearest existing parent it would be created in, must be writable.
  let d = path.resolve(dir);
  while (!fs.existsSync(d)) {
    const parent = path.dirname(d);
    if (parent === d) return false;
    d = parent;
  }
  try {
    fs.accessSync(d, fs.constants.W_OK);
    return fs.statSync(d).isDirectory();
  } catch {
    return false;
  }
}

/** $ALPACA_MODELS, else the state directory when this user may write it, else ~/.local/share. */
export function defaultModelsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ALPACA_MODELS) return path.resolve(env.ALPACA_MODELS);
  if (writableDir(STATE_MODELS_DIR)) return STATE_MODELS_DIR;
  const dataHome = env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share");
  return path.join(dataHome, "alpaca", "models");
}

// ── options and results ────────────────────────────────────────────────────────────────────

export interface PullProgress {
  file: string;
  phase: "hashing" | "downloading" | "verifying";
  /** Bytes in the part file (downloading) or hashed so far (hashing, verifying). */
  bytes: number;
  total: number | null;
  bytesPerSecond: number;
  etaSeconds: number | null;
  /** Where this download started (0 unless it resumed). */
  resumedFrom: number;
  attempt: number;
}

export interface PullOptions {
  dir?: string;
  onProgress?: (p: PullProgress) => void;
  onWarning?: (message: string) => void;
  /** Attempts after a dropped connection or a server error before giving up (default 6). */
  retries?: number;
  /** First backoff delay, doubled per attempt up to 30 s (default 1000 ms). */
  backoffMs?: number;
  maxRedirects?: number; // default 10
  /** A connection silent this long counts as dropped (default 60 s). */
  idleTimeoutMs?: number;
  /** Minimum interval between progress callbacks (default 250 ms). */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  /** For a URL: the sha256 (hex) and byte count the file must have, when known. */
  sha256?: string;
  size?: number;
  /** Another catalog than the shipped one (tests, a site's own list). */
  catalog?: Catalog;
}

export interface PullResult {
  path: string;
  bytes: number;
  sha256: string;
  /** false when there was no published digest to compare with. */
  verified: boolean;
  alreadyPresent: boolean;
}

/** A download that failed for lack of a network or a server: ensureDefaultModel explains it. */
export class NetworkError extends UserError {
  override name = "NetworkError";
}

interface Target {
  url: string;
  file: string;
  sha256: string | null;
  /** Bytes the file must have (catalog, exact) or is expected to have (rounded). */
  size: number | null;
  sizeExact: boolean;
  label: string;
}

function resolveTarget(idOrUrl: string, catalog: Catalog, o: PullOptions): Target {
  if (o.sha256 !== undefined && !/^[0-9a-f]{64}$/i.test(o.sha256)) throw new UserError(`--sha256 must be 64 hex digits`);
  if (o.size !== undefined && !(Number.isSafeInteger(o.size) && o.size > 0)) throw new UserError(`--size must be a positive number of bytes`);
  if (/^https?:\/\//i.test(idOrUrl)) {
    let u: URL;
    try {
      u = new URL(idOrUrl);
    } catch {
      throw new UserError(`not a valid URL: ${idOrUrl}`);
    }
    const file = decodeURIComponent(path.posix.basename(u.pathname));
    if (!file || file === "/" || file.startsWith(".")) throw new UserError(`cannot tell a file name from ${idOrUrl}`);
    const known = catalog.models.find((m) => m.url === idOrUrl);
    if (known && o.sha256 === undefined && o.size === undefined) return targetOf(known);
    return { url: idOrUrl, file, sha256: o.sha256?.toLowerCase() ?? null, size: o.size ?? null, sizeExact: o.size !== undefined, label: file };
  }
  const entry = findCatalogEntry(idOrUrl, catalog);
  if (!entry)
    throw new UserError(`unknown model "${idOrUrl}" (known: ${catalog.models.map((m) => m.id).join(", ")}; or give an https URL)`);
  return targetOf(entry);
}

const targetOf = (e: CatalogEntry): Target => ({
  url: e.url, file: e.file, sha256: e.sha256, size: e.size, sizeExact: e.sizeExact, label: e.id,
});

// ── HTTP ───────────────────────────────────────────────────────────────────────────────────

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });

/** GET following redirects; resolves with the final response (body unread). */
async function get(url: string, headers: Record<string, string>, o: Required<Pick<PullOptions, "maxRedirects" | "idleTimeoutMs">> & { signal?: AbortSignal }) {
  let current = url;
  for (let hop = 0; ; hop++) {
    const u = new URL(current);
    const lib = u.protocol === "https:" ? https : u.protocol === "http:" ? http : null;
    if (!lib) throw new UserError(`unsupported URL scheme in ${current}`);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = lib.get(u, { headers: { "user-agent": "alpaca-pull", ...headers }, signal: o.signal }, resolve);
      req.setTimeout(o.idleTimeoutMs, () => req.destroy(Object.assign(new Error("no data for too long"), { code: "ETIMEDOUT" })));
      req.on("error", reject);
    });
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
      res.resume();
      if (hop >= o.maxRedirects) throw new UserError(`too many redirects (more than ${o.maxRedirects}) from ${url}`);
      current = new URL(res.headers.location, current).toString();
      continue;
    }
    return { res, finalUrl: current };
  }
}

// Errors worth another attempt: the connection, not the request, went wrong.
const TRANSIENT = new Set(["ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENETDOWN", "ERR_STREAM_PREMATURE_CLOSE", "DROPPED"]);
const isTransient = (e: unknown) => e instanceof Error && TRANSIENT.has((e as NodeJS.ErrnoException).code ?? "");

class Dropped extends Error {
  code = "DROPPED";
}

// ── the download ───────────────────────────────────────────────────────────────────────────

async function hashFile(file: string, hash: Hash, report: (n: number) => void, signal?: AbortSignal): Promise<number> {
  let n = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20, signal })) {
    hash.update(chunk as Buffer);
    n += (chunk as Buffer).length;
    report(n);
  }
  return n;
}

async function freeBytes(dir: string): Promise<number> {
  const s = await fsp.statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

async function checkSpace(dir: string, needed: number, what: string): Promise<void> {
  const free = await freeBytes(dir);
  if (needed > free) throw new UserError(`not enough disk space in ${dir} for ${what}: ${formatBytes(needed)} more needed, ${formatBytes(free)} free`);
}

/** Downloads a catalog model (by id) or a URL into the models directory. */
export async function pullModel(idOrUrl: string, options: PullOptions = {}): Promise<PullResult> {
  const target = resolveTarget(idOrUrl, options.catalog ?? loadCatalog(), options);
  const dir = path.resolve(options.dir ?? defaultModelsDir());
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new UserError(`cannot create the models directory ${dir}: ${(e as Error).message}`);
  }
  const finalPath = path.join(dir, target.file);
  const partPath = `${finalPath}.part`;
  const warn = options.onWarning ?? (() => {});

  if (fs.existsSync(finalPath)) {
    const size = fs.statSync(finalPath).size;
    if (target.sizeExact && target.size !== null && size !== target.size)
      throw new UserError(`${finalPath} exists but has ${size} bytes, not ${target.size}: remove it and pull again`);
    return { path: finalPath, bytes: size, sha256: "", verified: false, alreadyPresent: true };
  }

  const retries = options.retries ?? 6;
  const backoffMs = options.backoffMs ?? 1000;
  const interval = options.progressIntervalMs ?? 250;
  const httpOptions = { maxRedirects: options.maxRedirects ?? 10, idleTimeoutMs: options.idleTimeoutMs ?? 60_000, signal: options.signal };

  let hash = createHash("sha256");
  let have = fs.existsSync(partPath) ? fs.statSync(partPath).size : 0;
  const resumedFrom = have;
  let lastReport = 0;
  const progress = (p: Omit<PullProgress, "file" | "resumedFrom">, force = false) => {
    const now = Date.now();
    if (!options.onProgress || (!force && now - lastReport < interval)) return;
    lastReport = now;
    options.onProgress({ ...p, file: target.file, resumedFrom });
  };

  if (have > 0) {
    const started = Date.now();
    await hashFile(partPath, hash, (n) => progress({ phase: "hashing", bytes: n, total: have, bytesPerSecond: n / Math.max(1e-3, (Date.now() - started) / 1000), etaSeconds: null, attempt: 0 }), options.signal);
  }
  if (target.size !== null) await checkSpace(dir, Math.max(0, target.size - have), target.label);

  let total: number | null = null; // as the server announces it
  let attempt = 0;
  let failures = 0;
  const restartFromZero = async (why: string) => {
    if (have > 0) warn(`${why}: starting ${target.file} again from the beginning`);
    await fsp.truncate(partPath).catch(() => {});
    hash = createHash("sha256");
    have = 0;
  };

  for (;;) {
    attempt++;
    try {
      const headers: Record<string, string> = have > 0 ? { range: `bytes=${have}-` } : {};
      const { res, finalUrl } = await get(target.url, headers, httpOptions);
      const status = res.statusCode ?? 0;
      if (status === 416 && have > 0) {
        res.resume();
        const m = /\/(\d+)\s*$/.exec(String(res.headers["content-range"] ?? ""));
        const serverSize = m ? Number(m[1]) : null;
        if (serverSize !== null && total !== null && serverSize !== total)
          throw new UserError(`wrong length: the server announced ${total} bytes for ${target.file} but has ${serverSize}`);
        if (serverSize === have) break; // the part was already complete
        await restartFromZero("the server cannot continue the partial download");
        continue;
      }
      if (status === 404 || status === 410) { res.resume(); throw new UserError(`not found (${status}): ${finalUrl}`); }
      if (status >= 500) { res.resume(); throw Object.assign(new Error(`server error ${status} from ${new URL(finalUrl).host}`), { code: "ECONNRESET" }); }
      if (status !== 200 && status !== 206) { res.resume(); throw new UserError(`download refused (HTTP ${status}): ${finalUrl}`); }

      const length = res.headers["content-length"] !== undefined ? Number(res.headers["content-length"]) : null;
      if (status === 200) {
        if (have > 0) await restartFromZero("the server ignored the range request");
        total = length;
      } else {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers["content-range"] ?? ""));
        if (!m || Number(m[1]) !== have) {
          res.resume();
          await restartFromZero("the server answered the range request with another range");
          continue;
        }
        const announced = m[3] === "*" ? null : Number(m[3]);
        if (announced !== null && total !== null && announced !== total)
          throw new UserError(`wrong length: the server announced ${total} bytes for ${target.file}, now ${announced}`);
        total = announced ?? (length !== null ? have + length : null);
      }
      if (total !== null && target.sizeExact && target.size !== null && total !== target.size) {
        res.resume();
        throw new UserError(`wrong length: the server offers ${total} bytes for ${target.file}, the catalog says ${target.size}`);
      }
      if (total !== null) await checkSpace(dir, Math.max(0, total - have), target.file);

      // Stream the body into the part file, hashing as it goes.
      const out = fs.createWriteStream(partPath, { flags: have > 0 ? "a" : "w" });
      const outDone = new Promise<void>((resolve, reject) => { out.on("error", reject); out.on("close", resolve); });
      const windowStart = { t: Date.now(), bytes: have };
      let speed = 0;
      let received = 0;
      try {
        await new Promise<void>((resolve, reject) => {
          res.on("data", (chunk: Buffer) => {
            hash.update(chunk);
            have += chunk.length;
            received += chunk.length;
            if (received > 0) failures = 0; // progress was made: the next drop gets a full set of retries
            if (!out.write(chunk)) { res.pause(); out.once("drain", () => res.resume()); }
            const now = Date.now();
            if (now - windowStart.t >= 1000) {
              speed = ((have - windowStart.bytes) * 1000) / (now - windowStart.t);
              windowStart.t = now;
              windowStart.bytes = have;
            }
            progress({ phase: "downloading", bytes: have, total, bytesPerSecond: speed, etaSeconds: total !== null && speed > 0 ? (total - have) / speed : null, attempt });
          });
          res.on("aborted", () => reject(new Dropped("the connection dropped")));
          res.on("error", (e) => reject(Object.assign(e, { code: (e as NodeJS.ErrnoException).code ?? "DROPPED" })));
          res.on("end", () => (res.complete ? resolve() : reject(new Dropped("the connection dropped"))));
          out.on("error", reject);
        });
      } finally {
        out.end();
        await outDone.catch((e) => { throw diskError(e, partPath, have); });
      }
      if (length !== null && received < length) throw new Dropped("the connection dropped");
      progress({ phase: "downloading", bytes: have, total, bytesPerSecond: speed, etaSeconds: 0, attempt }, true);
      break;
    } catch (e) {
      if (options.signal?.aborted) throw e;
      const err = diskError(e, partPath, have);
      if (err instanceof UserError) throw err;
      // No such host: no network (or a typo); waiting will not help.
      if ((err as NodeJS.ErrnoException).code === "ENOTFOUND") throw new NetworkError(`cannot reach ${new URL(target.url).host}: no such host (is the network up?)`);
      if (!isTransient(err)) throw err;
      failures++;
      if (failures > retries)
        throw new NetworkError(`cannot download ${target.file} from ${new URL(target.url).host}: ${(err as Error).message} (gave up after ${failures} attempts; run pull again to resume)`);
      const delay = Math.min(30_000, backoffMs * 2 ** (failures - 1));
      warn(`${(err as Error).message} at ${formatBytes(have)}; retrying in ${(delay / 1000).toFixed(1)} s (${failures}/${retries})`);
      await sleep(delay, options.signal);
    }
  }

  // ── verify and move into place ──
  const size = fs.statSync(partPath).size;
  if (total !== null && size !== total) throw new UserError(`wrong length: ${target.file} has ${size} bytes, the server announced ${total}`);
  if (target.sizeExact && target.size !== null && size !== target.size) {
    await fsp.rm(partPath, { force: true });
    throw new UserError(`wrong length: ${target.file} has ${size} bytes, the catalog says ${target.size} (the download was removed)`);
  }
  progress({ phase: "verifying", bytes: size, total: size, bytesPerSecond: 0, etaSeconds: 0, attempt }, true);
  const digest = hash.digest("hex");
  if (target.sha256 && digest !== target.sha256) {
    await fsp.rm(partPath, { force: true });
    throw new UserError(`checksum mismatch for ${target.file}: expected sha256 ${target.sha256}, got ${digest} (the download was removed)`);
  }
  if (!target.sha256)
    warn(`no published sha256 for ${target.label}: checked the length only (sha256 of the download: ${digest})`);
  await fsp.rename(partPath, finalPath);
  return { path: finalPath, bytes: size, sha256: digest, verified: !!target.sha256, alreadyPresent: false };
}

function diskError(e: unknown, partPath: string, have: number): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === "ENOSPC" || code === "EDQUOT")
    return new UserError(`disk full while writing ${partPath} (${formatBytes(have)} kept: free some space and pull again to resume)`);
  if (code === "EACCES" || code === "EROFS") return new UserError(`cannot write ${partPath}: ${(e as Error).message}`);
  return e;
}

// ── the default model for `serve` ──────────────────────────────────────────────────────────

/**
 * The path of the catalog's default model in `dir`, downloading it first when it is missing.
 * For `serve` with no model configured. Without a network it throws one UserError that says how
 * to get a model by hand.
 */
export async function ensureDefaultModel(
  dir: string,
  options: Pick<PullOptions, "onProgress" | "onWarning" | "signal" | "catalog" | "retries" | "backoffMs"> = {},
): Promise<string> {
  const entry = defaultCatalogEntry(options.catalog);
  const file = path.join(dir, entry.file);
  if (fs.existsSync(file)) return file;
  try {
    return (await pullModel(entry.id, { ...options, dir })).path;
  } catch (e) {
    if (e instanceof NetworkError)
      throw new UserError(
        `no model is configured and the default model (${entry.name}, ${formatBytes(entry.size)}) could not be downloaded: ${e.message}. ` +
          `Run "alpaca pull ${entry.id}" once the network is up, or copy a GGUF file to ${dir} and set it as the model`,
      );
    throw e;
  }
}
