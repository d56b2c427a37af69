// alpaca models: local files and the catalog, and whether each fits the memory budget.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { listModels } from "../daemon/cli/models.js";
import { loadCatalog } from "../models/catalog.js";
import { classifyFit, memoryBudget, PLAN_CONTEXT, PROCESS_OVERHEAD } from "../models/fit.js";
import { defaultModelsDir, STATE_MODELS_DIR } from "../models/pull.js";
import { alpaca } from "./helpers/process.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";

const MiB = 1024 * 1024;

test("fit: resident, tight (only a 512-token plan fits), does not fit", (t) => {
  const kvPerToken = 512 * 1024; // LLaMA-7B at f16
  const weights = 3600 * MiB;
  const full = weights + kvPerToken * PLAN_CONTEXT + PROCESS_OVERHEAD;
  t.is(classifyFit(weights, kvPerToken, full).fit, "resident");
  t.is(classifyFit(weights, kvPerToken, full - 1).fit, "tight");
  t.is(classifyFit(weights, kvPerToken, weights + 512 * kvPerToken + PROCESS_OVERHEAD).fit, "tight");
  t.is(classifyFit(weights, kvPerToken, weights).fit, "does not fit");
  t.is(classifyFit(weights, kvPerToken, null).fit, "unknown");
});

test("the budget is MemAvailable, capped by a cgroup limit (v2 on a Pi, v1 here)", (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-mem-"));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const put = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  t.is(memoryBudget(root), null, "nothing to read: unknown");
  put("proc/meminfo", "MemTotal:        3884376 kB\nMemFree:          100000 kB\nMemAvailable:    3500000 kB\n");
  put("proc/self/cgroup", "0::/system.slice/alpaca.service\n");
  put("sys/fs/cgroup/system.slice/alpaca.service/memory.max", "max\n");
  t.is(memoryBudget(root), 3500000 * 1024);
  put("sys/fs/cgroup/system.slice/alpaca.service/memory.max", `${1000 * MiB}\n`);
  t.is(memoryBudget(root), 1000 * MiB);
  put("proc/self/cgroup", "4:memory:/alpaca\n");
  put("sys/fs/cgroup/memory/alpaca/memory.limit_in_bytes", `${1200 * MiB}\n`);
  t.is(memoryBudget(root), 1200 * MiB, "cgroup v1");
});

test("on a 4 GB Pi (3.4 GiB available) TinyLlama is resident and no 7B stays resident", (t) => {
  const rows = listModels("/nonexistent", 3.4 * 1024 * MiB);
  const fit = Object.fromEntries(rows.map((r) => [r.id, r.fit]));
  t.is(fit["tinyllama-1.1b-chat-q4_0"], "resident");
  for (const m of loadCatalog().models.filter((x) => x.parameters === "7B")) t.not(fit[m.id], "resident", m.id);
});

testNeeding(test, needShared, "local GGUF files are read for their weights and KV cache; an unreadable one says why", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-models-"));
  fs.copyFileSync(sharedModel("stories260K-q4_0.gguf"), path.join(dir, "stories.gguf"));
  fs.writeFileSync(path.join(dir, "broken.gguf"), "not a model");
  const rows = listModels(dir, 1024 * MiB);
  const stories = rows.find((r) => r.file === "stories.gguf")!;
  t.true(stories.local);
  t.is(stories.weights, 246240);
  t.is(stories.kv, 5 * 2 * 4 * 8 * 2 * PLAN_CONTEXT); // layers × (k, v) × kv heads × head dim × f16
  t.is(stories.fit, "resident");
  t.regex(rows.find((r) => r.file === "broken.gguf")!.error ?? "", /not a GGUF file/);
  t.is(rows.filter((r) => !r.local).length, loadCatalog().models.length);

  const r = await alpaca(["models", "--dir", dir, "--json"]);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.is(j.dir, dir);
  t.true(j.models.some((m: { file: string; fit: string }) => m.file === "stories.gguf" && ["resident", "tight", "does not fit"].includes(m.fit)));
  const text = await alpaca(["models", "--dir", dir]);
  t.regex(text.stdout, /stories\.gguf/);
  t.regex(text.stdout, /\(default\)/);
});

test("models directory: $ALPACA_MODELS, else the state directory when writable, else ~/.local/share", (t) => {
  t.is(defaultModelsDir({ ALPACA_MODELS: "/srv/models" }), "/srv/models");
  const d = defaultModelsDir({ XDG_DATA_HOME: "/home/pi/.data" });
  t.true(d === STATE_MODELS_DIR || d === "/home/pi/.data/alpaca/models", d);
});
