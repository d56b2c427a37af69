// A memory cgroup of our own to run one command under a limit: v1 (a child of
// /sys/fs/cgroup/memory, memory.limit_in_bytes) or v2 (a child of /sys/fs/cgroup, memory.max,
// as on a Raspberry Pi). Used by bench/residency.mjs and the residency tests; needs root.
//
//   const cg = createMemoryCgroup("alpaca-bench", 3789 * 2 ** 20);
//   spawn(...cg.command(process.execPath, ["cli.js", "bench", …]));  // the child enters it, then execs
//   cg.stats();  // {usage, maxUsage, failcnt, oomKills}
//   cg.remove();
import fs from "node:fs";
import path from "node:path";

const V1 = "/sys/fs/cgroup/memory";
const V2 = "/sys/fs/cgroup";

const read = (file) => {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
};

/** Which cgroup version we can make memory children in, or why not: {version, parent} | {reason}. */
export function memoryCgroupSupport() {
  if (fs.existsSync(path.join(V1, "memory.limit_in_bytes"))) {
    try {
      fs.accessSync(V1, fs.constants.W_OK);
    } catch {
      return { reason: `${V1} is not writable (run as root, outside a read-only container mount)` };
    }
    return { version: 1, parent: V1 };
  }
  const controllers = read(path.join(V2, "cgroup.subtree_control"));
  if (controllers !== null) {
    if (!controllers.split(/\s+/).includes("memory")) return { reason: `the memory controller is not enabled in ${V2}/cgroup.subtree_control` };
    try {
      fs.accessSync(V2, fs.constants.W_OK);
    } catch {
      return { reason: `${V2} is not writable (run as root)` };
    }
    return { version: 2, parent: V2 };
  }
  return { reason: "no memory cgroup controller mounted at /sys/fs/cgroup" };
}

/** Creates (or reuses) a child cgroup with this memory limit; throws when that is not possible. */
export function createMemoryCgroup(name, limitBytes) {
  const support = memoryCgroupSupport();
  if (!support.version) throw new Error(support.reason);
  const dir = path.join(support.parent, name);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir);
  const v1 = support.version === 1;
  fs.writeFileSync(path.join(dir, v1 ? "memory.limit_in_bytes" : "memory.max"), String(Math.floor(limitBytes)));
  if (!v1) {
    try {
      fs.writeFileSync(path.join(dir, "memory.swap.max"), "0"); // a limit, not swapping, is what is measured
    } catch {
      // no swap accounting: nothing to turn off
    }
  }
  const limit = Number(read(path.join(dir, v1 ? "memory.limit_in_bytes" : "memory.max")));
  return {
    dir,
    version: support.version,
    /** The limit the kernel settled on (v1 rounds to pages). */
    limit,
    /** [file, args]: a shell that moves itself into the cgroup, then execs file with args (same pid). */
    command(file, args) {
      return ["/bin/sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, file, ...args]];
    },
    /** Usage, peak, times the limit was hit, OOM kills inside. */
    stats() {
      const num = (f) => {
        const t = read(path.join(dir, f));
        return t === null ? null : Number(t.trim());
      };
      const field = (f, key) => {
        const m = new RegExp(`^${key}\\s+(\\d+)`, "m").exec(read(path.join(dir, f)) ?? "");
        return m ? Number(m[1]) : null;
      };
      if (v1) {
        return {
          usage: num("memory.usage_in_bytes"), maxUsage: num("memory.max_usage_in_bytes"),
          failcnt: num("memory.failcnt"), oomKills: field("memory.oom_control", "oom_kill"),
        };
      }
      return { usage: num("memory.current"), maxUsage: num("memory.peak"), failcnt: field("memory.events", "max"), oomKills: field("memory.events", "oom_kill") };
    },
    /** Resets the peak and the fail count between runs (v1; v2 keeps its counters). */
    resetCounters() {
      if (!v1) return;
      for (const f of ["memory.max_usage_in_bytes", "memory.failcnt"]) {
        try {
          fs.writeFileSync(path.join(dir, f), "0");
        } catch {
          // older kernels refuse; the counters then only grow
        }
      }
    },
    remove() {
      try {
        fs.rmdirSync(dir);
      } catch {
        // still busy (a child not yet reaped): the kernel frees it when it empties
      }
    },
  };
}
