// Readers of the kernel's memory facts: /proc/meminfo, the process's cgroup limit (v1 or v2),
// RLIMIT_MEMLOCK and CAP_IPC_LOCK, and pressure stall information. Every reader takes the
// file-system root so that tests can feed made-up trees; every reader returns null (or an
// empty value) when a file is missing, because a Pi kernel without PSI or a container without
// a memory controller is normal, not an error.
import fs from "node:fs";
import path from "node:path";

/** cgroup "no limit" values are ~2^63 (v1: PAGE_COUNTER_MAX × page size); anything this big is none. */
const NO_LIMIT_THRESHOLD = 2 ** 60;

function readText(root: string, file: string): string | null {
  try {
    return fs.readFileSync(path.join(root, file), "utf8");
  } catch {
    return null;
  }
}

// ── /proc/meminfo ────────────────────────────────────────────────────────────────────────────

export interface Meminfo {
  memTotal: number; // bytes
  /** The kernel's estimate of what can be allocated without swapping (includes reclaimable page cache). */
  memAvailable: number;
  memFree: number;
}

/** Parses /proc/meminfo; kernels before 3.14 lack MemAvailable, then free + buffers + cached stands in. */
export function readMeminfo(root = "/"): Meminfo | null {
  const text = readText(root, "proc/meminfo");
  if (text === null) return null;
  const kb = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m) kb.set(m[1], Number(m[2]) * 1024);
  }
  const memTotal = kb.get("MemTotal");
  const memFree = kb.get("MemFree");
  if (memTotal === undefined || memFree === undefined) return null;
  const memAvailable = kb.get("MemAvailable") ?? memFree + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  return { memTotal, memAvailable, memFree };
}

// ── cgroup memory limit ──────────────────────────────────────────────────────────────────────

export interface CgroupLimit {
  version: 1 | 2;
  /** The smallest limit on the way from the process's cgroup to the root, in bytes. */
  bytes: number;
  /** The file that set it (for the log: "memory.max of /system.slice/alpaca.service"). */
  file: string;
}

/** "max", empty or ~2^63 mean no limit (null); anything else is bytes. */
export function parseCgroupValue(text: string): number | null {
  const t = text.trim();
  if (t === "" || t === "max" || t === "-1") return null;
  const n = Number(t);
  if (!Number.isFinite(n) || n < 0 || n >= NO_LIMIT_THRESHOLD) return null;
  return n;
}

/** The process's cgroup paths: v2 is the "0::" line, v1 the line whose controllers include memory. */
function ownCgroups(root: string): { v2?: string; v1Memory?: string } {
  const text = readText(root, "proc/self/cgroup") ?? "";
  const out: { v2?: string; v1Memory?: string } = {};
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") out.v2 = m[3];
    else if (m[2].split(",").includes("memory")) out.v1Memory = m[3];
  }
  return out;
}

/** "/a/b" → ["/a/b", "/a", "/"]: a parent's limit binds its children too. */
function ancestors(cgroupPath: string): string[] {
  const parts = cgroupPath.split("/").filter(Boolean);
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push("/" + parts.slice(0, i).join("/"));
  return out;
}

function smallestLimit(
  root: string, mount: string, cgroupPath: string, files: string[], version: 1 | 2,
): CgroupLimit | null {
  let best: CgroupLimit | null = null;
  for (const dir of ancestors(cgroupPath)) {
    for (const file of files) {
      const rel = path.join(mount, dir, file);
      const text = readText(root, rel);
      if (text === null) continue;
      const bytes = parseCgroupValue(text);
      if (bytes !== null && (best === null || bytes < best.bytes)) best = { version, bytes, file: "/" + rel };
    }
  }
  return best;
}

/**
 * The memory limit of this process's cgroup, or null when there is none. v2 reads memory.max
 * and memory.high (above high the kernel throttles and reclaims hard: as bad as a limit for
 * us); v1 reads memory.limit_in_bytes. Ancestors are read too. In a container the cgroup
 * namespace shows "/" and the container's own limit sits at the mount's root, which the walk
 * reaches last.
 */
export function readCgroupLimit(root = "/"): CgroupLimit | null {
  const own = ownCgroups(root);
  const v2 = own.v2 !== undefined
    ? smallestLimit(root, "sys/fs/cgroup", own.v2, ["memory.max", "memory.high"], 2)
    : null;
  const v1 = own.v1Memory !== undefined
    ? smallestLimit(root, "sys/fs/cgroup/memory", own.v1Memory, ["memory.limit_in_bytes"], 1)
    : null;
  if (v1 && v2) return v1.bytes < v2.bytes ? v1 : v2;
  return v1 ?? v2;
}

// ── mlock permission ─────────────────────────────────────────────────────────────────────────

export interface MemlockLimit {
  /** RLIMIT_MEMLOCK soft limit in bytes; null = unlimited. */
  soft: number | null;
  /** CAP_IPC_LOCK in the effective set: locking ignores the rlimit. */
  capIpcLock: boolean;
}

const CAP_IPC_LOCK = 14n;

/** Reads "Max locked memory" from /proc/self/limits and CapEff from /proc/self/status. */
export function readMemlockLimit(root = "/"): MemlockLimit | null {
  const limits = readText(root, "proc/self/limits");
  if (limits === null) return null;
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) return null;
  const soft = m[1] === "unlimited" ? null : Number(m[1]);
  const status = readText(root, "proc/self/status") ?? "";
  const cap = /^CapEff:\s*([0-9a-fA-F]+)/m.exec(status);
  const capIpcLock = cap ? ((BigInt("0x" + cap[1]) >> CAP_IPC_LOCK) & 1n) === 1n : false;
  return { soft: soft !== null && Number.isFinite(soft) ? soft : null, capIpcLock };
}

// ── pressure stall information ───────────────────────────────────────────────────────────────

export interface MemoryPressure {
  /** Share of the last 10 s (percent) in which at least one task stalled on memory. */
  someAvg10: number;
  /** Share of the last 10 s in which all non-idle tasks stalled at once. */
  fullAvg10: number;
}

/** /proc/pressure/memory, or null without PSI (Raspberry Pi OS kernels need psi=1 on the command line). */
export function readMemoryPressure(root = "/"): MemoryPressure | null {
  const text = readText(root, "proc/pressure/memory");
  if (text === null) return null;
  const avg10 = (kind: string): number | null => {
    const m = new RegExp(`^${kind}\\s.*?avg10=([\\d.]+)`, "m").exec(text);
    return m ? Number(m[1]) : null;
  };
  const some = avg10("some");
  if (some === null) return null;
  return { someAvg10: some, fullAvg10: avg10("full") ?? 0 };
}

// ── all of it ────────────────────────────────────────────────────────────────────────────────

export interface SystemMemory {
  meminfo: Meminfo | null;
  cgroup: CgroupLimit | null;
  memlock: MemlockLimit | null;
}

export function readSystemMemory(root = "/"): SystemMemory {
  return { meminfo: readMeminfo(root), cgroup: readCgroupLimit(root), memlock: readMemlockLimit(root) };
}
