// `alpaca run` inside a memory cgroup whose limit is below the model's weights plus the process:
// the plan reads the limit, streams the layers that do not fit, and the run completes with the
// tokens of an unlimited run, never killed. Needs a writable memory cgroup (root; v1 here, v2
// on a Pi); without one it skips and says why, even under CI=true, where one that is writable
// must work.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { writeSyntheticModel } from "../models/synthetic.js";
import { run } from "./helpers/process.js";
import { CLI, ROOT } from "./helpers/shared.js";

const MiB = 2 ** 20;
// 8 layers of 27.6 MiB (Q4_0): 221 MiB of weights, more than the limit leaves beside Node.
const SHAPE = { name: "cgroup-8", dim: 2048, layers: 8, heads: 16, kvHeads: 16, ffn: 5632, vocab: 512, contextLength: 128, rmsEps: 1e-5, ropeTheta: 10000 };
const LIMIT = 256 * MiB;

interface CgroupModule {
  memoryCgroupSupport(): { version?: 1 | 2; reason?: string };
  createMemoryCgroup(name: string, limit: number): {
    limit: number;
    version: 1 | 2;
    command(file: string, args: string[]): [string, string[]];
    stats(): { usage: number | null; maxUsage: number | null; failcnt: number | null; oomKills: number | null };
    remove(): void;
  };
}
const cgroups = (await import(pathToFileURL(path.join(ROOT, "bench", "cgroup.mjs")).href)) as CgroupModule;

const support = cgroups.memoryCgroupSupport();
// Not writable is a property of the machine (not root, a container): skip and say so, CI included.
const cgroupTest = support.version ? test : test.skip;
if (!support.version) process.stderr.write(`\n  SKIPPED 82-residency-cgroup: ${support.reason}\n`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-cgroup-"));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

function runArgs(model: string): string[] {
  return [CLI, "run", "--model", model, "--prompt", "Once upon a time", "-n", "16", "--temp", "0", "--ctx", "64", "--threads", "2", "--json"];
}

cgroupTest(`run under a ${LIMIT / MiB} MiB cgroup limit streams layers and gives the unlimited run's tokens`, async (t) => {
  const model = path.join(dir, "eight-layers-q4_0.gguf");
  const written = await writeSyntheticModel(model, { shape: SHAPE, type: "q4_0", fill: "random", seed: 3 });
  t.true(written.weightBytes + 50 * MiB > LIMIT, "the weights and the process exceed the limit");

  const unlimited = await run(process.execPath, runArgs(model));
  t.is(unlimited.code, 0, unlimited.stderr);
  const reference = JSON.parse(unlimited.stdout);
  t.is(reference.tokens.length, 16);

  const cg = cgroups.createMemoryCgroup(`alpaca-test-${process.pid}`, LIMIT);
  try {
    // Out of the page cache first: pages cached by the writer stay charged to the writer's
    // cgroup, and the limited run would not be charged for them.
    await run("dd", [`if=${model}`, "iflag=nocache", "count=0", "status=none"]);
    const [file, args] = cg.command(process.execPath, runArgs(model));
    const limited = await run(file, args);
    t.is(limited.signal, null, `killed by ${limited.signal} (OOM?) ${limited.stderr}`);
    t.is(limited.code, 0, limited.stderr);
    const out = JSON.parse(limited.stdout);
    t.deepEqual(out.tokens, reference.tokens, "the same tokens as without a limit");
    // the plan read the cgroup's limit and streamed what did not fit
    t.true(out.residency.managed);
    t.true(out.residency.streamed_layers.length >= 3, JSON.stringify(out.residency));
    t.is(out.residency.streamed_layers.length + out.residency.locked_layers, SHAPE.layers);
    t.is(out.residency.streamed_passes, 16);
    t.true(out.residency.locking_permitted);
    const stats = cg.stats();
    t.true(stats.oomKills === null || stats.oomKills === 0, JSON.stringify(stats));
    if (stats.maxUsage !== null) {
      t.true(stats.maxUsage <= cg.limit, JSON.stringify(stats));
      t.true(stats.maxUsage >= out.residency.locked_bytes, `the locked layers were charged here: ${JSON.stringify(stats)}`);
    }
  } finally {
    cg.remove();
  }
});
