// alpaca doctor on made-up machines: the /proc, /sys and /etc of a 4 GB Pi 4, an 8 GB Pi 5 in a
// tight cgroup, and this machine as it is. The 7B model is a sparse Q4_0 file (3.53 GiB that
// costs no disk); the read speed is given, not measured, so that verdicts do not depend on the disk.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { runDoctor, type DoctorCheck, type DoctorReport, type ReadMeasurer } from "../daemon/system/doctor.js";
import { writeSyntheticModel } from "../models/synthetic.js";
import { alpaca } from "./helpers/process.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";
import { scratchDir } from "./helpers/pi.js";

const work = scratchDir("alpaca-62-");
test.after.always(() => fs.rmSync(work, { recursive: true, force: true }));
const MODEL = "/var/lib/alpaca/models/7b-q4_0.gguf";

let trees = 0;
/** A fresh tree per call: the tests run concurrently and change their trees. */
function tree(name: string, files: Record<string, string>): string {
  const root = path.join(work, `${name}-${++trees}`);
  for (const [p, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text);
  }
  return root;
}

const kB = (bytes: number) => `${Math.round(bytes / 1024)} kB`;
const GiB = 2 ** 30;
const meminfo = (total: number, available: number, swap = 0) =>
  `MemTotal:       ${kB(total)}\nMemFree:        ${kB(available / 2)}\nMemAvailable:   ${kB(available)}\nSwapTotal:      ${kB(swap)}\nSwapFree:       ${kB(swap)}\n`;
const armCpus = (n: number, features: string, part: string, model: string) =>
  Array.from({ length: n }, (_, i) => `processor\t: ${i}\nBogoMIPS\t: 108.00\nFeatures\t: ${features}\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: ${part}\nCPU revision\t: 3\n\n`).join("") +
  `Revision\t: c03114\nSerial\t\t: 100000002e2b6c5e\nModel\t\t: ${model}\n`;
const governors = (n: number, g: string) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`/sys/devices/system/cpu/cpu${i}/cpufreq/scaling_governor`, `${g}\n`]));
const mountinfo = (source: string) => `22 1 179:2 / / rw,noatime shared:1 - ext4 ${source} rw\n25 22 0:22 / /proc rw shared:12 - proc proc rw\n`;

const PI4 = "Raspberry Pi 4 Model B Rev 1.4";
const PI5 = "Raspberry Pi 5 Model B Rev 1.0";
function pi4Tree(): string {
  return tree("pi4", {
    "/proc/meminfo": meminfo(3.70 * GiB, 3.40 * GiB, 100 * 2 ** 20),
    "/proc/swaps": "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/var/swap                               file\t\t102396\t\t0\t\t-2\n",
    "/proc/cpuinfo": armCpus(4, "fp asimd evtstrm crc32 cpuid", "0xd08", PI4),
    "/proc/device-tree/model": `${PI4}\0`,
    "/proc/self/cgroup": "0::/user.slice/user-1000.slice/session-3.scope\n",
    "/sys/fs/cgroup/user.slice/memory.max": "max\n",
    "/proc/self/mountinfo": mountinfo("/dev/mmcblk0p2"),
    ...governors(4, "ondemand"),
    "/sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
    "/sys/class/thermal/thermal_zone0/temp": "61835\n",
    "/etc/alpaca/config.json": JSON.stringify({ model: MODEL }),
  });
}
function pi5Tree(): string {
  return tree("pi5", {
    "/proc/meminfo": meminfo(7.87 * GiB, 7.30 * GiB, 2 * GiB),
    "/proc/swaps": "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/zram0                              partition\t2097148\t\t0\t\t100\n",
    "/proc/cpuinfo": armCpus(4, "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp", "0xd0b", PI5),
    "/proc/device-tree/model": `${PI5}\0`,
    "/proc/self/cgroup": "0::/user.slice\n",
    // The service's own cgroup, as systemd made it from MemoryMax=3G: below the weights.
    "/sys/fs/cgroup/system.slice/alpaca.service/memory.max": `${3 * GiB}\n`,
    "/sys/fs/cgroup/system.slice/alpaca.service/memory.high": "max\n",
    "/proc/self/mountinfo": mountinfo("/dev/nvme0n1p2"),
    ...governors(4, "powersave"),
    "/sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
    "/sys/class/thermal/thermal_zone0/temp": "83100\n",
    "/sys/devices/platform/soc/soc:firmware/get_throttled": "0\n",
  });
}

/** 32 MiB in `seconds`, read with O_DIRECT. */
const readsAt = (seconds: number): ReadMeasurer => (_file, bytes) => ({ bytes, seconds, direct: true });
const byName = (r: DoctorReport) => Object.fromEntries(r.checks.map((c) => [c.name, c])) as Record<string, DoctorCheck>;

let sparse7b: Promise<unknown> | undefined;
function with7b(root: string) {
  const file = path.join(root, MODEL);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  sparse7b ??= writeSyntheticModel(path.join(work, "7b-q4_0.gguf"), { shape: "7b", type: "q4_0", fill: "sparse" });
  return sparse7b.then(() => fs.symlinkSync(path.join(work, "7b-q4_0.gguf"), file));
}

test("a 4 GB Pi 4: NEON without dot product, SD-card swap, past under-voltage, and a 7B Q4_0 that cannot stay resident", async (t) => {
  const root = pi4Tree();
  await with7b(root);
  const report = runDoctor({ root, measureRead: readsAt(0.8), run: (cmd) => (cmd === "vcgencmd" ? { status: 0, stdout: "throttled=0x50000\n" } : null) });
  const c = byName(report);
  t.like(c.cpu, { verdict: "ok", data: { board: PI4, cores: 4, arch: "arm64", kernels: "neon", dotProduct: false } });
  t.regex(c.cpu.summary, /Cortex-A72.*no dot product/);
  t.like(c.memory, { verdict: "ok" });
  t.like(c.swap, { verdict: "warn" });
  t.regex(c.swap.advice!, /zram/);
  t.like(c.cgroup, { verdict: "ok", summary: "no memory limit" });
  t.like(c.governor, { verdict: "ok", summary: "ondemand" });
  t.like(c.temperature, { verdict: "ok", summary: "61.8 °C (cpu-thermal)" });
  t.like(c.throttling, { verdict: "warn" });
  t.regex(c.throttling.summary, /since boot: under-voltage, throttled \(0x50000\)/);
  t.regex(c.throttling.advice!, /5\.1 V 3 A/);
  t.like(c.model, { verdict: "ok" });
  t.regex(c.storage.summary, /^SD card \(ext4 at \/\): 41\.9 MB\/s; a cold start reads the weights in 1\.5 min/);
  t.is(c.storage.verdict, "ok");
  // 3.53 GiB of weights against 3.40 GiB available less the reserve: the plan streams the
  // shortfall, which an SD card still reads for seconds every token.
  t.is(c.residency.verdict, "fail");
  t.regex(c.residency.summary, /weights 3\.53 GiB .* exceeds the budget of 3\.30 GiB \(MemAvailable\); the plan streams \d+ of 32 layers: each token would re-read [\d.]+ MiB, about \d+(\.\d)? s at this storage's speed/);
  t.truthy(c.residency.advice);
  t.is(report.verdict, "fail");
});

test("an 8 GB Pi 5: dot product, zram, but powersave, too hot and a MemoryMax below the weights", async (t) => {
  const root = pi5Tree();
  await with7b(root);
  const report = runDoctor({ root, model: MODEL, measureRead: readsAt(0.08), run: () => null });
  const c = byName(report);
  t.like(c.cpu, { verdict: "ok", data: { board: PI5, kernels: "neon-dotprod", dotProduct: true } });
  t.regex(c.cpu.summary, /Cortex-A76.*dot product \(sdot\)/);
  t.like(c.swap, { verdict: "ok" });
  t.like(c.governor, { verdict: "warn", summary: "powersave" });
  t.like(c.temperature, { verdict: "fail" });
  t.like(c.throttling, { verdict: "ok", summary: "none since boot (0x0)" });
  t.like(c.cgroup, { verdict: "fail", data: { limit: 3 * GiB } });
  t.regex(c.cgroup.summary, /system\.slice\/alpaca\.service\/memory\.max/);
  t.regex(c.storage.summary, /^NVMe SSD/);
  t.is(c.residency.verdict, "fail");
});

test("the Pi 5 without the cgroup limit keeps the 7B resident with the model's full context", async (t) => {
  const root = pi5Tree();
  fs.rmSync(path.join(root, "sys/fs/cgroup"), { recursive: true });
  await with7b(root);
  const c = byName(runDoctor({ root, model: MODEL, readTest: false, run: () => null }));
  t.like(c.cgroup, { verdict: "ok" });
  t.is(c.residency.verdict, "ok", c.residency.summary);
  t.like(c.residency.data, { nCtx: 2048, kvType: "f16" });
  t.regex(c.residency.summary, /\(2048 tokens × \d sequences?, f16\)/);
});

test("a tight machine gets a warning and a shorter context instead of a failure", async (t) => {
  const root = pi4Tree();
  fs.writeFileSync(path.join(root, "proc/meminfo"), meminfo(5 * GiB, 3.95 * GiB));
  await with7b(root);
  const c = byName(runDoctor({ root, readTest: false, run: () => null }));
  t.is(c.residency.verdict, "warn", c.residency.summary);
  t.true((c.residency.data!.nCtx as number) < 2048);
  t.regex(c.residency.advice!, /context is cut to \d+ of 2048 tokens/);
  t.like(c.throttling, { verdict: "warn", summary: "unknown (no vcgencmd)" });
});

test("no model configured: a warning, and no storage or residency lines", (t) => {
  const root = pi4Tree();
  fs.rmSync(path.join(root, "etc/alpaca/config.json"));
  const report = runDoctor({ root, env: {}, run: () => null });
  const c = byName(report);
  t.like(c.model, { verdict: "warn", summary: "none configured" });
  t.false("storage" in c);
  t.false("residency" in c);
});

test("the model judged is the one serve would take: $ALPACA_MODEL, then --config or $ALPACA_CONFIG, then /etc/alpaca/config.json", (t) => {
  const root = pi4Tree();
  fs.writeFileSync(path.join(root, "etc/alpaca/other.json"), JSON.stringify({ model: "/models/other.gguf" }));
  const judged = (o: { env: NodeJS.ProcessEnv; configFile?: string }) => byName(runDoctor({ root, readTest: false, run: () => null, ...o })).model.data?.path;
  t.is(judged({ env: {} }), MODEL);
  t.is(judged({ env: { ALPACA_CONFIG: "/etc/alpaca/other.json" } }), "/models/other.gguf");
  t.is(judged({ env: {}, configFile: "/etc/alpaca/other.json" }), "/models/other.gguf");
  t.is(judged({ env: { ALPACA_MODEL: "/models/env.gguf", ALPACA_CONFIG: "/etc/alpaca/other.json" } }), "/models/env.gguf");
});

testNeeding(test, needShared, "alpaca doctor --config reads the model from serve's config file", async (t) => {
  const config = path.join(work, "config.json");
  fs.writeFileSync(config, JSON.stringify({ model: sharedModel("stories260K-q4_0.gguf") }));
  const r = await alpaca(["doctor", "--json", "--no-read-test", "--config", config], { env: { ...process.env, ALPACA_MODEL: "", ALPACA_CONFIG: "" } });
  t.like(byName(JSON.parse(r.stdout) as DoctorReport).model, { verdict: "ok", data: { path: sharedModel("stories260K-q4_0.gguf") } });
});

testNeeding(test, needShared, "this machine, through the command line: every line has a verdict, the read is real", async (t) => {
  const r = await alpaca(["doctor", "--json", "--model", sharedModel("stories260K-q4_0.gguf")]);
  const report = JSON.parse(r.stdout) as DoctorReport;
  t.is(r.code, report.verdict === "fail" ? 1 : 0, r.stderr);
  const c = byName(report);
  for (const name of ["memory", "swap", "cgroup", "cpu", "governor", "temperature", "model", "storage", "residency"]) t.truthy(c[name], name);
  for (const k of report.checks) t.true(["ok", "warn", "fail"].includes(k.verdict), k.name);
  t.is(c.cpu.data?.arch, process.arch === "arm64" ? "arm64" : "x64");
  t.is(c.residency.verdict, "ok");
  t.true((c.storage.data?.bytesPerSecond as number | undefined ?? 1) > 0, c.storage.summary);
  // The kernels it names are the engine's own, as `alpaca info` names them.
  const model = sharedModel("stories260K-q4_0.gguf");
  const info = await alpaca(["info", "--json", "-m", model]);
  t.deepEqual(c.cpu.data?.kernelsByType, JSON.parse(info.stdout).kernels);
  const infoLine = /^kernels +(.*) \(\w+\)$/m.exec((await alpaca(["info", "-m", model])).stdout)?.[1];
  t.truthy(infoLine);
  t.regex((await alpaca(["doctor", "--no-read-test", "--model", model])).stdout, new RegExp(`^\\w+ +cpu .*; kernels: ${infoLine}$`, "m"));
  const text = await alpaca(["doctor", "--no-read-test", "--root", pi4Tree(), "--model", "/nope.gguf"]);
  t.is(text.code, 1);
  t.regex(text.stdout, /^ok {4}memory {7}3\.70 GiB total, 3\.40 GiB available$/m);
  t.regex(text.stdout, /^fail {2}model .*nope\.gguf/m);
});
