// alpaca doctor: is this machine fit to serve the configured model? One verdict per concern, each
// with the advice that would change it. Every file is read through `root` (default "/") so tests
// can feed the /proc, /sys and /etc of a 4 GB Pi 4, an 8 GB Pi 5 or anything else.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { openModel, type ModelInfo } from "../engine/engine.js";
import { kernelsFor, tensorTypes } from "../engine/tensor-types.js";
import { formatBytes } from "../serving/memory.js";
import { PLAN_RULES, planMemory, planModelOf } from "../serving/plan.js";

export type Verdict = "ok" | "warn" | "fail";

export interface DoctorCheck {
  name: string;
  verdict: Verdict;
  summary: string;
  advice?: string;
  data?: Record<string, unknown>;
}

export interface DoctorReport {
  verdict: Verdict; // the worst of the checks
  checks: DoctorCheck[];
}

/** A timed read of `bytes` from the start of a file, bypassing the page cache if it can. */
export interface ReadMeasurement {
  bytes: number;
  seconds: number;
  direct: boolean; // false: O_DIRECT was refused, so the figure may be the page cache's
}
export type ReadMeasurer = (file: string, bytes: number) => ReadMeasurement | { error: string };
/** Runs a helper program; null when it is not installed. */
export type CommandRunner = (cmd: string, args: string[]) => { status: number | null; stdout: string } | null;

export interface DoctorOptions {
  root?: string;
  /** The model to judge; default: $ALPACA_MODEL, then "model" of the config file, as serve takes them. */
  model?: string;
  /** serve's config file (--config); default: $ALPACA_CONFIG, else <root>/etc/alpaca/config.json. */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  /** false skips the timed read (it takes a few seconds on an SD card). */
  readTest?: boolean;
  readBytes?: number;
  measureRead?: ReadMeasurer;
  run?: CommandRunner;
  threads?: number;
}

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** Node, V8, the tokenizer and thread stacks, as the memory plan counts them. */
const PROCESS_BYTES = PLAN_RULES.processBytes;
/** TimeoutStartSec of systemd/alpaca.service: a cold start slower than this never becomes ready. */
const START_TIMEOUT_SECONDS = 15 * 60;

// ─── reading the machine ─────────────────────────────────────────────────────────────────────

class Machine {
  constructor(readonly root: string) {}
  file(p: string): string {
    return this.root === "/" ? path.resolve(p) : path.join(this.root, p);
  }
  read(p: string): string | null {
    try {
      return fs.readFileSync(this.file(p), "utf8");
    } catch {
      return null;
    }
  }
  list(dir: string): string[] {
    try {
      return fs.readdirSync(this.file(dir)).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    } catch {
      return [];
    }
  }
}

/** /proc/meminfo in bytes (its kB are KiB). */
function meminfo(m: Machine): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (m.read("/proc/meminfo") ?? "").split("\n")) {
    const r = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (r) out[r[1]] = Number(r[2]) * (line.includes("kB") ? 1024 : 1);
  }
  return out;
}

interface CgroupLimit {
  bytes: number;
  file: string;
}

/** The tightest memory limit over a cgroup and its ancestors: v2 memory.max/high, v1 limit_in_bytes. */
function cgroupLimit(m: Machine): CgroupLimit | null {
  const lines = (m.read("/proc/self/cgroup") ?? "").split("\n").filter(Boolean);
  const v2 = lines.find((l) => l.startsWith("0::"));
  const candidates: { dir: string; files: string[] }[] = [];
  if (v2) {
    // Run from a shell, doctor sits in the user's session; the service's own cgroup is what counts.
    const service = "/sys/fs/cgroup/system.slice/alpaca.service";
    const own = path.posix.join("/sys/fs/cgroup", v2.slice(3));
    candidates.push({ dir: fs.existsSync(m.file(service)) ? service : own, files: ["memory.max", "memory.high"] });
  } else {
    const v1 = lines.map((l) => l.split(":")).find((f) => f[1]?.split(",").includes("memory"));
    if (v1) candidates.push({ dir: path.posix.join("/sys/fs/cgroup/memory", v1[2] ?? "/"), files: ["memory.limit_in_bytes"] });
  }
  let best: CgroupLimit | null = null;
  for (const { dir, files } of candidates) {
    for (let d = dir; ; d = path.posix.dirname(d)) {
      for (const f of files) {
        const text = m.read(path.posix.join(d, f))?.trim();
        const bytes = text && /^\d+$/.test(text) ? Number(text) : Infinity; // "max", v1's ≈2^63
        if (bytes < 2 ** 60 && (!best || bytes < best.bytes)) best = { bytes, file: path.posix.join(d, f) };
      }
      if (d === "/sys/fs/cgroup" || d === "/sys/fs/cgroup/memory" || d === "/") break;
    }
  }
  return best;
}

interface Cpu {
  model: string;
  board: string | null;
  cores: number;
  arch: "arm64" | "x64" | "other";
  features: Set<string>;
  parts: string[];
}

const ARM_PARTS: Record<string, string> = {
  "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
  "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
  "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd4b": "Cortex-A78C",
};

function cpu(m: Machine): Cpu {
  const text = m.read("/proc/cpuinfo") ?? "";
  const field = (name: string) => [...text.matchAll(new RegExp(`^${name}\\s*:\\s*(.*)$`, "gm"))].map((r) => r[1].trim());
  const flags = field("flags")[0] ?? field("Features")[0] ?? "";
  const parts = field("CPU part").map((p) => ARM_PARTS[p.toLowerCase()] ?? `part ${p}`);
  const arch = field("Features").length > 0 ? "arm64" : field("flags").length > 0 ? "x64" : "other";
  // /proc/device-tree/model ends in a NUL; the Pi's /proc/cpuinfo repeats it as "Model".
  const board = m.read("/proc/device-tree/model")?.replace(/\0/g, "").trim() || field("Model")[0] || null;
  const cores = Math.max(field("processor").length, 1);
  const model = field("model name")[0] ?? (parts.length ? `${cores} × ${[...new Set(parts)].join(" + ")}` : "unknown CPU");
  return { model, board, cores, arch, features: new Set(flags.split(/\s+/).filter(Boolean)), parts };
}

/** The kernel set the engine picks on this CPU (native/kernels/kernel_table.h). */
function kernelSet(c: Cpu): string {
  if (c.arch === "arm64") return c.features.has("asimddp") ? "neon-dotprod" : c.features.has("asimd") ? "neon" : "scalar";
  if (c.arch === "x64") return ["avx2", "fma", "f16c"].every((f) => c.features.has(f)) ? "avx2" : "scalar";
  return "scalar";
}

interface Mount {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** The mount holding `file` (the longest mount point that prefixes it), from /proc/self/mountinfo. */
function mountOf(m: Machine, file: string): Mount | null {
  let best: Mount | null = null;
  for (const line of (m.read("/proc/self/mountinfo") ?? "").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const mountPoint = left.split(" ")[4].replace(/\\040/g, " ");
    const [fsType, source] = right.split(" ");
    const inside = mountPoint === "/" || file === mountPoint || file.startsWith(mountPoint + "/");
    if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, fsType, source };
  }
  return best;
}

function storageKind(source: string): string {
  if (/^\/dev\/mmcblk/.test(source)) return "SD card";
  if (/^\/dev\/nvme/.test(source)) return "NVMe SSD";
  if (/^\/dev\/sd/.test(source)) return "USB or SATA disk";
  if (/^\/dev\/vd/.test(source)) return "virtual disk";
  return source;
}

// ─── helpers that run programs ───────────────────────────────────────────────────────────────

export const runCommand: CommandRunner = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000, env: { ...process.env, LC_ALL: "C" } });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") return null;
  return { status: r.status, stdout: r.stdout ?? "" };
};

/**
 * Reads through dd with iflag=direct (O_DIRECT): dd aligns its buffer as O_DIRECT demands, which
 * Node's Buffers cannot promise, and the figure is the storage's, not that of the page cache
 * where a running daemon keeps the weights. Filesystems without O_DIRECT (tmpfs) get a plain read.
 */
export const measureReadWithDd: ReadMeasurer = (file, bytes) => {
  const blocks = Math.max(1, Math.ceil(bytes / MiB));
  const size = fs.statSync(file).size;
  for (const direct of [true, false]) {
    const args = [`if=${file}`, "of=/dev/null", "bs=1M", `count=${blocks}`, ...(direct ? ["iflag=direct"] : [])];
    const t0 = process.hrtime.bigint();
    const r = runCommand("dd", args);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r === null) return { error: "dd is not installed" };
    if (r.status === 0) return { bytes: Math.min(size, blocks * MiB), seconds, direct };
  }
  return { error: `dd could not read ${file}` };
};

// ─── the checks ──────────────────────────────────────────────────────────────────────────────

function check(name: string, verdict: Verdict, summary: string, advice?: string, data?: Record<string, unknown>): DoctorCheck {
  return { name, verdict, summary, ...(advice ? { advice } : {}), ...(data ? { data } : {}) };
}

function memoryCheck(mem: Record<string, number>): DoctorCheck {
  const total = mem.MemTotal, available = mem.MemAvailable;
  if (!total) return check("memory", "warn", "no /proc/meminfo", "doctor judges memory from /proc/meminfo");
  const summary = `${formatBytes(total)} total, ${formatBytes(available ?? 0)} available`;
  if ((available ?? 0) < 512 * MiB) {
    return check("memory", "warn", summary, "other processes hold most of the memory: see `ps aux --sort=-rss | head`", { total, available });
  }
  return check("memory", "ok", summary, undefined, { total, available });
}

function swapCheck(m: Machine, mem: Record<string, number>): DoctorCheck {
  const devices = (m.read("/proc/swaps") ?? "").split("\n").slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]);
  const zram = devices.filter((d) => d.startsWith("/dev/zram"));
  const other = devices.filter((d) => !d.startsWith("/dev/zram"));
  const data = { swapTotal: mem.SwapTotal ?? 0, devices };
  const why = "the weights are file pages and never swap; swap holds the KV cache, V8's heap and other processes";
  if (other.length > 0) {
    return check("swap", "warn", `${formatBytes(mem.SwapTotal ?? 0)} on ${other.join(", ")}${zram.length ? ` and zram` : ""}`,
      `swap on storage is slow and wears an SD card (${why}); prefer zram: apt install systemd-zram-generator, then dphys-swapfile swapoff && systemctl disable dphys-swapfile`, data);
  }
  if (zram.length > 0) return check("swap", "ok", `${formatBytes(mem.SwapTotal ?? 0)} compressed in RAM (${zram.join(", ")})`, undefined, data);
  const small = (mem.MemTotal ?? 0) < 6 * GiB;
  return check("swap", small ? "warn" : "ok", "none",
    small ? `zram compresses idle memory of other processes, leaving more RAM for the weights (${why}): apt install systemd-zram-generator` : undefined, data);
}

function cgroupCheck(limit: CgroupLimit | null, weights: number | null): DoctorCheck {
  if (!limit) return check("cgroup", "ok", "no memory limit");
  const summary = `limit ${formatBytes(limit.bytes)} (${limit.file})`;
  if (weights !== null && limit.bytes < weights + PROCESS_BYTES) {
    return check("cgroup", "fail", summary,
      `below the weights (${formatBytes(weights)}): the kernel reclaims them inside the cgroup and every token re-reads the file; raise or remove MemoryMax=/MemoryHigh= (systemctl edit alpaca)`, { limit: limit.bytes });
  }
  return check("cgroup", "ok", summary, undefined, { limit: limit.bytes });
}

/**
 * `engine`: what the engine itself runs here for each tensor type, as `alpaca info` names it, when
 * this machine is the one judged; another machine's copied /proc is judged by its CPU flags.
 */
function cpuCheck(c: Cpu, engine: Record<string, string> | null): DoctorCheck {
  const set = engine ? [...new Set(Object.values(engine))].join(", ") || "scalar" : kernelSet(c);
  const shown = engine ? Object.entries(engine).map(([type, k]) => `${type} ${k}`).join(", ") : set;
  const dot = c.arch === "arm64" ? (c.features.has("asimddp") ? ", dot product (sdot)" : ", no dot product") : "";
  const summary = `${c.board ? `${c.board}: ` : ""}${c.model}, ${c.cores} cores${dot}; kernels: ${shown}`;
  const data = { board: c.board, model: c.model, cores: c.cores, arch: c.arch, kernels: set, ...(engine ? { kernelsByType: engine } : {}), dotProduct: c.features.has("asimddp") };
  if (set === "scalar") return check("cpu", "warn", summary, "no SIMD kernels for this CPU: decoding runs the scalar reference, several times slower", data);
  return check("cpu", "ok", summary, undefined, data);
}

function governorCheck(m: Machine): DoctorCheck {
  const cpus = m.list("/sys/devices/system/cpu").filter((d) => /^cpu\d+$/.test(d));
  const governors = cpus.map((c) => m.read(`/sys/devices/system/cpu/${c}/cpufreq/scaling_governor`)?.trim()).filter((g): g is string => !!g);
  if (governors.length === 0) return check("governor", "ok", "no cpufreq (a virtual machine, or fixed clock)");
  const distinct = [...new Set(governors)];
  const slow = distinct.filter((g) => g === "powersave" || g === "conservative");
  if (slow.length > 0) {
    return check("governor", "warn", distinct.join(", "),
      `${slow.join(", ")} keeps the clock low while decoding: echo ondemand | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`, { governors: distinct });
  }
  return check("governor", "ok", distinct.join(", "), undefined, { governors: distinct });
}

function temperatureCheck(m: Machine): DoctorCheck {
  const zones = m.list("/sys/class/thermal").filter((z) => z.startsWith("thermal_zone"));
  const readings = zones
    .map((z) => ({ zone: m.read(`/sys/class/thermal/${z}/type`)?.trim() ?? z, celsius: Number(m.read(`/sys/class/thermal/${z}/temp`)) / 1000 }))
    .filter((r) => Number.isFinite(r.celsius) && r.celsius > -50);
  if (readings.length === 0) return check("temperature", "ok", "no thermal sensors (a virtual machine?)");
  const hottest = readings.reduce((a, b) => (b.celsius > a.celsius ? b : a));
  const summary = `${hottest.celsius.toFixed(1)} °C (${hottest.zone})`;
  const cooling = "decoding keeps every core busy; a Pi 4 slows its clock from 80 °C: add a heatsink and fan, or the official case fan";
  if (hottest.celsius >= 80) return check("temperature", "fail", summary, cooling, { celsius: hottest.celsius });
  if (hottest.celsius >= 70) return check("temperature", "warn", summary, cooling, { celsius: hottest.celsius });
  return check("temperature", "ok", summary, undefined, { celsius: hottest.celsius });
}

const THROTTLE_BITS: [number, string][] = [
  [0, "under-voltage"], [1, "ARM frequency capped"], [2, "throttled"], [3, "soft temperature limit"],
];

/** The firmware's throttle flags: sysfs on recent Raspberry Pi kernels, else `vcgencmd get_throttled`. */
function throttlingCheck(m: Machine, c: Cpu, run: CommandRunner): DoctorCheck | null {
  let raw = m.read("/sys/devices/platform/soc/soc:firmware/get_throttled")?.trim() ?? null;
  let source = "firmware";
  if (raw === null) {
    const r = run("vcgencmd", ["get_throttled"]);
    if (r === null || r.status !== 0) {
      if (!c.board?.startsWith("Raspberry Pi")) return null;
      return check("throttling", "warn", "unknown (no vcgencmd)", "apt install libraspberrypi-bin (or raspi-utils) to see under-voltage and throttling");
    }
    raw = /throttled=(0x[0-9a-f]+)/i.exec(r.stdout)?.[1] ?? null;
    source = "vcgencmd";
  }
  const flags = raw === null ? NaN : Number(raw.startsWith("0x") ? raw : `0x${raw}`);
  if (!Number.isFinite(flags)) return check("throttling", "warn", `unreadable (${source})`);
  const now = THROTTLE_BITS.filter(([b]) => flags & (1 << b)).map(([, n]) => n);
  const past = THROTTLE_BITS.filter(([b]) => flags & (1 << (b + 16))).map(([, n]) => n);
  const hex = `0x${flags.toString(16)}`;
  const power = "use the official supply (5.1 V 3 A for a Pi 4, 5 A for a Pi 5) and a short, thick cable";
  const advice = [...now, ...past].includes("under-voltage") ? power : "improve cooling: a heatsink and fan";
  if (now.length > 0) return check("throttling", "fail", `now: ${now.join(", ")} (${hex})`, advice, { flags });
  if (past.length > 0) return check("throttling", "warn", `since boot: ${past.join(", ")} (${hex})`, advice, { flags });
  return check("throttling", "ok", `none since boot (${hex})`, undefined, { flags });
}

/** The model serve would take: $ALPACA_MODEL, then "model" of its config file (--config, $ALPACA_CONFIG, else /etc/alpaca/config.json). */
function configuredModel(m: Machine, env: NodeJS.ProcessEnv, configFile: string | undefined): string | null {
  if (env.ALPACA_MODEL) return env.ALPACA_MODEL;
  const text = m.read(configFile || env.ALPACA_CONFIG || "/etc/alpaca/config.json");
  if (text) {
    try {
      const model = (JSON.parse(text) as { model?: unknown }).model;
      if (typeof model === "string" && model) return model;
    } catch {
      // a broken config is `alpaca serve`'s to report, with the line
    }
  }
  return null;
}

function storageCheck(m: Machine, file: string, weights: number, o: DoctorOptions): DoctorCheck {
  const mount = mountOf(m, file);
  const where = mount ? `${storageKind(mount.source)} (${mount.fsType} at ${mount.mountPoint})` : "unknown storage";
  if (o.readTest === false) return check("storage", "ok", `${where}; read speed not measured`, undefined, { mount });
  const r = (o.measureRead ?? measureReadWithDd)(m.file(file), o.readBytes ?? 32 * MiB);
  if ("error" in r) return check("storage", "warn", `${where}; read speed unknown: ${r.error}`, undefined, { mount });
  const speed = r.bytes / Math.max(r.seconds, 1e-6);
  const coldStart = weights / speed;
  const summary = `${where}: ${(speed / 1e6).toFixed(1)} MB/s${r.direct ? "" : " (through the page cache)"}; a cold start reads the weights in ${formatSeconds(coldStart)}`;
  const data = { mount, bytesPerSecond: speed, direct: r.direct, coldStartSeconds: coldStart };
  const faster = "a USB 3 SSD reads 300+ MB/s on a Pi 4 (and NVMe more on a Pi 5): keep the models there";
  if (coldStart > START_TIMEOUT_SECONDS) {
    return check("storage", "fail", summary, `longer than the unit's TimeoutStartSec (15 min): ${faster}`, data);
  }
  if (coldStart > 180 || !r.direct) return check("storage", "warn", summary, r.direct ? faster : "the filesystem refused O_DIRECT, so this may be the page cache's speed", data);
  return check("storage", "ok", summary, undefined, data);
}

function formatSeconds(s: number): string {
  return s < 90 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : `${(s / 60).toFixed(1)} min`;
}

/**
 * Will the weights stay resident? Asks the daemon's own memory plan (daemon/serving/plan.ts), with the
 * budget doctor read: MemAvailable and the service's cgroup limit. ok: the plan fits the model's
 * context (up to 2048); warn: it fits only by shortening the context; fail: not even the
 * shortest context fits beside the weights.
 */
function residencyCheck(info: ModelInfo, mem: Record<string, number>, limit: CgroupLimit | null, threads: number, readSpeed: number | null): DoctorCheck {
  const plan = planMemory({
    model: planModelOf(info),
    budget: { memAvailable: mem.MemAvailable ?? mem.MemTotal ?? null, cgroupLimit: limit?.bytes ?? null },
    request: { ctx: null, parallel: null, kvType: "auto", threads },
  });
  const c = plan.costs;
  const shape = `${plan.nCtx} tokens × ${plan.nSeq} sequence${plan.nSeq === 1 ? "" : "s"}, ${plan.kvType}`;
  const costs = `weights ${formatBytes(c.weights)} + KV ${formatBytes(c.kv)} (${shape}) + ${formatBytes(c.scratch + c.process)} = ${formatBytes(c.total)}`;
  const data = { budget: plan.budget.bytes, boundBy: plan.budget.boundBy, nCtx: plan.nCtx, nSeq: plan.nSeq, kvType: plan.kvType, costs: c };
  if (plan.fits && plan.residency.streamLayers > 0) {
    // The whole file does not fit; the plan streams the shortfall. On an SD card that is still
    // seconds per token: a failure unless storage is fast enough for under a second.
    const r = plan.residency;
    const seconds = readSpeed ? r.streamedBytes / readSpeed : null;
    const full = formatBytes(info.weightBytes + c.kv + c.scratch + c.process);
    const summary = `weights ${formatBytes(info.weightBytes)} + KV ${formatBytes(c.kv)} (${shape}) + ${formatBytes(c.scratch + c.process)} = ${full} ` +
      `exceeds the budget of ${formatBytes(plan.budget.bytes)} (${plan.budget.boundBy}); the plan streams ${r.streamLayers} of ${r.nLayer} layers: ` +
      `each token would re-read ${formatBytes(r.streamedBytes)}` + (seconds === null ? "" : `, about ${formatSeconds(seconds)} at this storage's speed`);
    const instead = plan.alternatives.length ? plan.alternatives.join("; ") : "free memory, or use a smaller model or quant, to keep every layer resident";
    return check("residency", seconds !== null && seconds < 1 ? "warn" : "fail", summary, instead, { ...data, streamLayers: r.streamLayers, streamedBytes: r.streamedBytes });
  }
  if (!plan.fits) {
    const perToken = readSpeed ? `; each token would re-read the file, about ${formatSeconds(info.weightBytes / readSpeed)} at this storage's speed` : "; each token would re-read the file from storage";
    const instead = plan.alternatives.length ? `what fits: ${plan.alternatives.join("; ")}` : "use a smaller model or quant, stop other services, or add zram";
    return check("residency", "fail", `${costs} exceeds the budget of ${formatBytes(plan.budget.bytes)} (${plan.budget.boundBy})${perToken}`, instead, data);
  }
  const wanted = Math.min(info.nCtxTrain, PLAN_RULES.defaultCtx);
  const summary = `${costs} fits in ${formatBytes(plan.budget.bytes)} (${plan.budget.boundBy})`;
  if (plan.nCtx < wanted) {
    return check("residency", "warn", summary, `the context is cut to ${plan.nCtx} of ${wanted} tokens to keep the weights resident; free memory or use a smaller quant for more`, data);
  }
  return check("residency", "ok", summary, undefined, data);
}

// ─── the report ──────────────────────────────────────────────────────────────────────────────

const RANK: Record<Verdict, number> = { ok: 0, warn: 1, fail: 2 };

export function runDoctor(o: DoctorOptions = {}): DoctorReport {
  const m = new Machine(o.root ?? "/");
  const run = o.run ?? runCommand;
  const mem = meminfo(m);
  const limit = cgroupLimit(m);
  const c = cpu(m);

  const given = o.model ?? configuredModel(m, o.env ?? process.env, o.configFile);
  // A relative --model means the shell's folder on this machine, the machine's root elsewhere.
  const modelPath = given && m.root === "/" ? path.resolve(given) : given;
  let info: ModelInfo | null = null;
  let modelCheck: DoctorCheck;
  if (!modelPath) {
    modelCheck = check("model", "warn", "none configured", 'set "model" in /etc/alpaca/config.json (or pass --model) to judge storage and residency');
  } else {
    try {
      const model = openModel(m.file(modelPath), { nCtx: 1, threads: 1 });
      info = model.info();
      model.close();
      modelCheck = check("model", "ok", `${modelPath}: ${info.architecture}, ${info.nLayer} layers, weights ${formatBytes(info.weightBytes)}`, undefined, { path: modelPath });
    } catch (e) {
      modelCheck = check("model", "fail", `${modelPath}: ${e instanceof Error ? e.message : String(e)}`, undefined, { path: modelPath });
    }
  }

  // The model's types, or every type the engine multiplies when there is no model.
  const types = info ? Object.keys(info.tensorTypes) : tensorTypes().types().filter((t) => t.computable).map((t) => t.name);
  const engine = m.root === "/" ? kernelsFor(types) : null;
  const checks: DoctorCheck[] = [memoryCheck(mem), swapCheck(m, mem), cgroupCheck(limit, info?.weightBytes ?? null), cpuCheck(c, engine), governorCheck(m), temperatureCheck(m)];
  const throttling = throttlingCheck(m, c, run);
  if (throttling) checks.push(throttling);
  checks.push(modelCheck);
  if (info && modelPath) {
    const storage = storageCheck(m, modelPath, info.weightBytes, o);
    checks.push(storage);
    const speed = typeof storage.data?.bytesPerSecond === "number" ? storage.data.bytesPerSecond : null;
    checks.push(residencyCheck(info, mem, limit, o.threads ?? c.cores, speed));
  }
  const verdict = checks.reduce<Verdict>((w, k) => (RANK[k.verdict] > RANK[w] ? k.verdict : w), "ok");
  return { verdict, checks };
}

export function formatDoctor(r: DoctorReport): string {
  const width = Math.max(...r.checks.map((k) => k.name.length));
  const lines: string[] = [];
  for (const k of r.checks) {
    lines.push(`${k.verdict.padEnd(4)}  ${k.name.padEnd(width)}  ${k.summary}`);
    if (k.advice) lines.push(`${" ".repeat(width + 6)}→ ${k.advice}`);
  }
  return lines.join("\n") + "\n";
}
