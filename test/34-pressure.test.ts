// The memory-pressure watch on a made-up /proc: admission stops when the headroom beside the
// weights runs low or memory stalls rise, resumes only past the hysteresis, and the watcher
// starts and stops cleanly.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PressureWatcher, type PressureChange } from "../daemon/system/pressure.js";

const MiB = 2 ** 20, GiB = 2 ** 30;

const roots: string[] = [];
test.after.always(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

function fakeProc() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-pressure-"));
  roots.push(root);
  fs.mkdirSync(path.join(root, "proc", "pressure"), { recursive: true });
  const set = (availableBytes: number, someAvg10: number | null) => {
    fs.writeFileSync(path.join(root, "proc", "meminfo"),
      `MemTotal: ${(4 * GiB) / 1024} kB\nMemFree: ${(100 * MiB) / 1024} kB\nMemAvailable: ${availableBytes / 1024} kB\n`);
    const psi = path.join(root, "proc", "pressure", "memory");
    if (someAvg10 === null) fs.rmSync(psi, { force: true });
    else fs.writeFileSync(psi, `some avg10=${someAvg10.toFixed(2)} avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n`);
  };
  return { root, set };
}

function watched(root: string, residentBytes = 0) {
  const w = new PressureWatcher({ root, residentBytes, minHeadroom: 64 * MiB, maxSomeAvg10: 10 });
  const changes: PressureChange[] = [];
  w.on("change", (c) => changes.push(c));
  return { w, changes };
}

test("admits while headroom and stalls are fine", (t) => {
  const { root, set } = fakeProc();
  set(1 * GiB, 0.5);
  const { w, changes } = watched(root);
  t.true(w.admitting());
  t.like(w.poll(), { memAvailable: GiB, headroom: GiB, someAvg10: 0.5 });
  t.true(w.admitting());
  t.is(changes.length, 0);
});

test("our own mapped weights are not headroom", (t) => {
  const { root, set } = fakeProc();
  set(3.55 * GiB, 0);
  const { w, changes } = watched(root, 3.53 * GiB); // 7B Q4_0 resident in the page cache
  w.poll();
  t.false(w.admitting());
  t.regex(changes[0].reason, /^headroom 20 MiB below 64 MiB$/);
});

test("low headroom stops admission; it resumes only at twice the threshold", (t) => {
  const { root, set } = fakeProc();
  const { w, changes } = watched(root);
  set(40 * MiB, 0);
  w.poll();
  t.false(w.admitting());
  set(100 * MiB, 0); // above the threshold, below the resume point
  w.poll();
  t.false(w.admitting());
  set(200 * MiB, 0);
  w.poll();
  t.true(w.admitting());
  t.deepEqual(changes.map((c) => c.admitting), [false, true]);
  t.is(changes[1].reason, "memory pressure eased");
});

test("memory stalls (PSI some avg10) stop admission; it resumes at half the threshold", (t) => {
  const { root, set } = fakeProc();
  const { w, changes } = watched(root);
  set(GiB, 25);
  w.poll();
  t.false(w.admitting());
  t.regex(changes[0].reason, /memory stalls 25 % of the last 10 s \(above 10 %\)/);
  set(GiB, 7);
  w.poll();
  t.false(w.admitting());
  set(GiB, 4);
  w.poll();
  t.true(w.admitting());
});

test("without PSI, MemAvailable alone decides", (t) => {
  const { root, set } = fakeProc();
  set(GiB, null);
  const { w } = watched(root);
  t.like(w.poll(), { someAvg10: null });
  t.true(w.admitting());
  set(10 * MiB, null);
  w.poll();
  t.false(w.admitting());
});

test("without /proc at all it keeps admitting (no signal is not pressure)", (t) => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-empty-"));
  roots.push(empty);
  const { w } = watched(empty);
  t.like(w.poll(), { memAvailable: null, headroom: null, someAvg10: null });
  t.true(w.admitting());
});

test("start polls on its timer and stop ends it", async (t) => {
  const { root, set } = fakeProc();
  set(GiB, 0);
  const w = new PressureWatcher({ root, intervalMs: 20 });
  const keepAlive = setTimeout(() => {}, 5000); // the watcher's timer is unref'd by design
  t.teardown(() => clearTimeout(keepAlive));
  const flipped = new Promise<PressureChange>((resolve) => w.once("change", resolve));
  t.is(w.start(), w);
  w.start(); // a second start is harmless
  set(10 * MiB, 0);
  const change = await flipped;
  t.false(change.admitting);
  w.stop();
  w.stop();
  set(GiB, 0);
  await new Promise((r) => setTimeout(r, 80));
  t.false(w.admitting(), "no polling after stop");
});
