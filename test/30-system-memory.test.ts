// Readers of /proc and /sys memory facts, fed made-up trees: meminfo, cgroup v1 and v2 limits
// (with "max", the v1 "unlimited" value, nested and hybrid layouts), RLIMIT_MEMLOCK, PSI.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  parseCgroupValue, readCgroupLimit, readMeminfo, readMemlockLimit, readMemoryPressure, readSystemMemory,
} from "../daemon/system/system-memory.js";

const GiB = 2 ** 30;

/** A temp dir holding the given files (paths relative to the fake root). */
const roots: string[] = [];
test.after.always(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

function fakeRoot(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-root-"));
  roots.push(root);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

const MEMINFO = "MemTotal:        3884376 kB\nMemFree:          812345 kB\nMemAvailable:    3512000 kB\nBuffers:           12000 kB\nCached:          2400000 kB\n";
const V1_UNLIMITED = "9223372036854771712\n";

test("meminfo: MemTotal, MemFree and MemAvailable in bytes", (t) => {
  const m = readMeminfo(fakeRoot({ "proc/meminfo": MEMINFO }));
  t.deepEqual(m, { memTotal: 3884376 * 1024, memFree: 812345 * 1024, memAvailable: 3512000 * 1024 });
});

test("meminfo without MemAvailable (old kernel): free + buffers + cached", (t) => {
  const m = readMeminfo(fakeRoot({ "proc/meminfo": "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n" }));
  t.is(m?.memAvailable, 310 * 1024);
});

test("meminfo missing: null, not an exception", (t) => {
  t.is(readMeminfo(fakeRoot({})), null);
});

test("cgroup values: max, empty, -1 and ~2^63 are no limit", (t) => {
  t.is(parseCgroupValue("max\n"), null);
  t.is(parseCgroupValue(""), null);
  t.is(parseCgroupValue("-1"), null);
  t.is(parseCgroupValue(V1_UNLIMITED), null);
  t.is(parseCgroupValue("3221225472\n"), 3 * GiB);
  t.is(parseCgroupValue("garbage"), null);
});

test("cgroup v2: memory.max of the process's cgroup", (t) => {
  const root = fakeRoot({
    "proc/self/cgroup": "0::/system.slice/alpaca.service\n",
    "sys/fs/cgroup/system.slice/alpaca.service/memory.max": "3221225472\n",
    "sys/fs/cgroup/system.slice/alpaca.service/memory.high": "max\n",
    "sys/fs/cgroup/system.slice/memory.max": "max\n",
  });
  t.deepEqual(readCgroupLimit(root), {
    version: 2, bytes: 3 * GiB, file: "/sys/fs/cgroup/system.slice/alpaca.service/memory.max",
  });
});

test("cgroup v2: \"max\" everywhere is no limit", (t) => {
  const root = fakeRoot({
    "proc/self/cgroup": "0::/user.slice/session-1.scope\n",
    "sys/fs/cgroup/user.slice/session-1.scope/memory.max": "max\n",
    "sys/fs/cgroup/user.slice/memory.max": "max\n",
  });
  t.is(readCgroupLimit(root), null);
});

test("cgroup v2: a parent's smaller limit or memory.high binds", (t) => {
  const root = fakeRoot({
    "proc/self/cgroup": "0::/a/b\n",
    "sys/fs/cgroup/a/b/memory.max": String(4 * GiB),
    "sys/fs/cgroup/a/memory.max": String(3 * GiB),
    "sys/fs/cgroup/a/b/memory.high": String(2.5 * GiB),
  });
  t.is(readCgroupLimit(root)?.bytes, 2.5 * GiB);
});

test("cgroup v2 in a container: \"0::/\" reads the mount's root", (t) => {
  const root = fakeRoot({ "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": String(2 * GiB) });
  t.is(readCgroupLimit(root)?.bytes, 2 * GiB);
});

test("cgroup v1: memory.limit_in_bytes, the huge value meaning none", (t) => {
  const cgroup = "12:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n";
  const limited = fakeRoot({
    "proc/self/cgroup": cgroup,
    "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": String(1.5 * GiB),
    "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_UNLIMITED,
  });
  t.deepEqual(readCgroupLimit(limited), {
    version: 1, bytes: 1.5 * GiB, file: "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
  });
  const unlimited = fakeRoot({
    "proc/self/cgroup": cgroup,
    "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": V1_UNLIMITED,
    "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_UNLIMITED,
  });
  t.is(readCgroupLimit(unlimited), null);
});

test("no /proc/self/cgroup: no limit", (t) => {
  t.is(readCgroupLimit(fakeRoot({})), null);
});

test("RLIMIT_MEMLOCK and CAP_IPC_LOCK from /proc/self/limits and status", (t) => {
  const limits = (soft: string, hard: string) =>
    "Limit                     Soft Limit           Hard Limit           Units     \n" +
    "Max open files            1024                 524288               files     \n" +
    `Max locked memory         ${soft.padEnd(20)} ${hard.padEnd(20)} bytes     \n`;
  t.deepEqual(readMemlockLimit(fakeRoot({ "proc/self/limits": limits("8388608", "8388608"), "proc/self/status": "CapEff:\t0000000000000000\n" })),
    { soft: 8388608, capIpcLock: false });
  t.deepEqual(readMemlockLimit(fakeRoot({ "proc/self/limits": limits("unlimited", "unlimited") })), { soft: null, capIpcLock: false });
  t.deepEqual(readMemlockLimit(fakeRoot({ "proc/self/limits": limits("65536", "65536"), "proc/self/status": "CapEff:\t0000000000004000\n" })),
    { soft: 65536, capIpcLock: true });
  t.is(readMemlockLimit(fakeRoot({})), null);
});

test("PSI: some and full avg10; null without PSI", (t) => {
  const root = fakeRoot({
    "proc/pressure/memory": "some avg10=12.50 avg60=3.00 avg300=1.00 total=123456\nfull avg10=4.25 avg60=1.00 avg300=0.50 total=2345\n",
  });
  t.deepEqual(readMemoryPressure(root), { someAvg10: 12.5, fullAvg10: 4.25 });
  t.is(readMemoryPressure(fakeRoot({})), null);
});

test("this machine's files parse (whatever they say)", (t) => {
  const sys = readSystemMemory();
  t.truthy(sys.meminfo, "Linux has /proc/meminfo");
  t.true(sys.meminfo!.memAvailable > 0 && sys.meminfo!.memAvailable <= sys.meminfo!.memTotal);
  if (sys.cgroup) t.true(sys.cgroup.bytes > 0);
});
