// The memory plan on made-up machines: fits, tight (q8_0 KV, shorter context, smaller batch),
// does not fit (and what would), a cgroup limit below MemAvailable, unlimited cgroups, and
// overrides that are honoured or refused with a reason.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { kvBytesPerToken, pageTableBytes } from "../daemon/serving/memory.js";
import { allResident } from "../daemon/serving/residency.js";
import { formatPlan, parameterCount, planFromSystem, planMemory, PLAN_RULES, type PlanModel } from "../daemon/serving/plan.js";

const KiB = 2 ** 10, MiB = 2 ** 20, GiB = 2 ** 30;

// LLaMA-7B's shape with Q4_0 weights (4.5 bits each): 3.53 GiB, as the sparse 7B file.
const SHAPE_7B = { nLayer: 32, nHeadKv: 32, headDim: 128, nEmbd: 4096, nFf: 11008, nHead: 32, nVocab: 32000 };
const LLAMA_7B: PlanModel = { ...SHAPE_7B, nCtxTrain: 4096, weightBytes: Math.round((parameterCount(SHAPE_7B) * 4.5) / 8) };
// TinyLlama 1.1B (GQA: 4 KV heads) at Q4_0.
const SHAPE_TINY = { nLayer: 22, nHeadKv: 4, headDim: 64, nEmbd: 2048, nFf: 5632, nHead: 32, nVocab: 32000 };
const TINYLLAMA: PlanModel = { ...SHAPE_TINY, nCtxTrain: 2048, weightBytes: Math.round((parameterCount(SHAPE_TINY) * 4.5) / 8) };

const request = { threads: 4 };
const onMachine = (bytes: number) => ({ machine: bytes });

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
const meminfo = (availableBytes: number) =>
  `MemTotal: ${(8 * GiB) / 1024} kB\nMemFree: ${availableBytes / 2048} kB\nMemAvailable: ${availableBytes / 1024} kB\n`;

test("the 7B shape: 3.53 GiB of Q4_0 weights, 512 KiB of f16 KV per token, 272 KiB at q8_0", (t) => {
  t.is((LLAMA_7B.weightBytes / GiB).toFixed(2), "3.53");
  t.is(kvBytesPerToken(LLAMA_7B, "f16"), 512 * KiB);
  t.is(kvBytesPerToken(LLAMA_7B, "q8_0"), 272 * KiB);
});

test("budget = the smallest source less its reserve: max(64 MiB, 3 %) of MemAvailable, 16 MiB of a hard limit", (t) => {
  const p = planMemory({ model: TINYLLAMA, budget: { memAvailable: 6 * GiB, cgroupLimit: 5 * GiB, memoryLimit: 7 * GiB }, request });
  t.is(p.budget.boundBy, "cgroup limit");
  t.is(p.budget.limit, 5 * GiB);
  t.is(p.budget.reserve, 16 * MiB, "a cgroup limit is ours alone: only the kernel's own memory is kept back");
  t.is(p.budget.bytes, 5 * GiB - 16 * MiB);
  const available = planMemory({ model: TINYLLAMA, budget: { memAvailable: 5 * GiB }, request });
  t.is(available.budget.reserve, Math.ceil(0.03 * 5 * GiB), "other processes move MemAvailable");
  const small = planMemory({ model: TINYLLAMA, budget: { memAvailable: 1 * GiB }, request });
  t.is(small.budget.reserve, 64 * MiB, "3 % of 1 GiB is below the 64 MiB floor");
  // MemAvailable a little above the limit still bounds the plan once its larger reserve is taken
  const close = planMemory({ model: TINYLLAMA, budget: { memAvailable: 4 * GiB + 50 * MiB, memoryLimit: 4 * GiB }, request });
  t.like(close.budget, { boundBy: "MemAvailable", limit: 4 * GiB + 50 * MiB });
  t.true(close.budget.bytes < 4 * GiB - 16 * MiB);
});

test("plenty of memory: f16, the trained context capped at 2048, several sequences", (t) => {
  const p = planMemory({ model: LLAMA_7B, budget: onMachine(16 * GiB), request });
  t.true(p.fits);
  t.like(p, { kvType: "f16", nCtx: 2048, nSeq: PLAN_RULES.maxParallel, nBatch: 256, nOutputs: PLAN_RULES.maxParallel });
  t.is(p.costs.kv, 512 * KiB * 2048 * 4);
  t.is(p.costs.total, p.costs.weights + p.costs.kv + p.costs.scratch + p.costs.process);
  t.true(p.spare >= 0);
  t.is(p.problem, null);
});

test("tight (7B at 4 GiB): q8_0 KV and a shorter context, each said plainly", (t) => {
  const p = planMemory({ model: LLAMA_7B, budget: onMachine(4 * GiB), request });
  t.true(p.fits);
  t.like(p, { kvType: "q8_0", nCtx: 1024, nSeq: 1 });
  t.true(p.costs.total <= p.budget.bytes);
  t.true(p.decisions.some((d) => /context reduced from 2048 to 1024/.test(d)), p.decisions.join("\n"));
  t.true(p.decisions.some((d) => /KV cache q8_0 .*f16 at this context would need 512\.00 MiB/.test(d)), p.decisions.join("\n"));
  // the next step up really would not fit
  t.false(planMemory({ model: LLAMA_7B, budget: onMachine(4 * GiB), request: { ...request, ctx: 1280 } }).fits);
  t.false(planMemory({ model: LLAMA_7B, budget: onMachine(4 * GiB), request: { ...request, ctx: 1024, kvType: "f16" } }).fits);
});

test("f16 is kept whenever it fits at the chosen context", (t) => {
  const p = planMemory({ model: TINYLLAMA, budget: onMachine(2 * GiB), request });
  t.like(p, { fits: true, kvType: "f16", nCtx: 2048 });
});

test("7B at 3 GiB: fits by streaming the layers that do not fit, at the smallest shape", (t) => {
  const memlock = { soft: null, capIpcLock: false };
  const p = planMemory({ model: LLAMA_7B, budget: onMachine(3 * GiB), request, memlock });
  t.true(p.fits);
  t.like(p, { nCtx: 512, nSeq: 1, kvType: "q8_0", problem: null });
  const r = p.residency;
  t.like(r, { mode: "streaming", nLayer: 32, lock: true });
  t.is(r.keptLayers + r.streamLayers, 32);
  t.true(r.streamLayers >= 3 && r.streamLayers < 16, String(r.streamLayers));
  t.is(r.streamedBytes, r.streamLayers * r.layerBytes);
  t.is(r.windowBytes, 2 * r.layerBytes, "the layer computing and the one read ahead");
  // what the cgroup is charged: the kept part and the window, not the whole file
  t.is(p.costs.weights, r.residentBytes + r.windowBytes);
  t.true(p.costs.weights < LLAMA_7B.weightBytes);
  t.is(p.costs.total, p.costs.weights + p.costs.kv + p.costs.scratch + p.costs.process);
  t.true(p.spare >= 0 && p.spare < r.layerBytes, "one more kept layer would not fit");
  t.true(p.decisions.some((d) => new RegExp(`${r.keptLayers} of 32 layers stay in RAM; ${r.streamLayers} stream from storage`).test(d)), p.decisions.join("\n"));
});

test("too small even to stream (7B at 512 MiB): says so, and what would fit", (t) => {
  const p = planMemory({ model: LLAMA_7B, budget: onMachine(512 * MiB), request });
  t.false(p.fits);
  t.regex(p.problem!, /the weights \(3\.53 GiB\) cannot stay resident/);
  t.regex(p.problem!, /re-read the file from storage/);
  t.true(p.alternatives.some((a) => /runs with about 3\.\d\d GiB of available memory/.test(a)), p.alternatives.join("\n"));
  t.true(p.alternatives.some((a) => /streaming every layer from storage needs a budget of at least 501\.77 MiB/.test(a)), p.alternatives.join("\n"));
  t.true(p.spare < 0);
});

test("an 8-bit file that streams is told the largest file type of it that would stay resident", (t) => {
  const q8: PlanModel = { ...LLAMA_7B, weightBytes: Math.round((parameterCount(SHAPE_7B) * 8.5) / 8) };
  const p = planMemory({ model: q8, budget: onMachine(5 * GiB), request });
  t.true(p.fits);
  t.true(p.residency.streamLayers > 0);
  t.true(p.alternatives.some((a) => /^Q5_K_M of this model needs 4\.46 GiB and would fit/.test(a)), p.alternatives.join("\n"));
  // a 7B Q4_0 at 3.5 GiB is pointed to a 3-bit K-quant mix
  const q4 = planMemory({ model: LLAMA_7B, budget: onMachine(3.5 * GiB), request });
  t.true(q4.residency.streamLayers > 0);
  t.true(q4.alternatives.some((a) => /^Q3_K_M of this model needs 3\.08 GiB and would fit/.test(a)), q4.alternatives.join("\n"));
});

test("weights fit but not the smallest KV cache beside them: three layers stream, mlock not permitted", (t) => {
  // room for the charged weights and the process, and 50 MiB of the 136 MiB KV cache of 512 tokens
  const kv = kvBytesPerToken(LLAMA_7B, "q8_0") * 512;
  const budget = allResident(LLAMA_7B, 512, false).residentBytes + PLAN_RULES.processBytes + pageTableBytes(LLAMA_7B.weightBytes + kv) + 50 * MiB;
  const memlock = { soft: 8 * MiB, capIpcLock: false };
  const p = planMemory({ model: LLAMA_7B, budget: { memoryLimit: budget + PLAN_RULES.limitReserve }, request, memlock });
  t.true(p.fits);
  t.like(p.residency, { mode: "streaming", streamLayers: 3, keptLayers: 29, lock: false, lockedBytes: 0 });
  t.true(p.decisions.some((d) => /mlock not permitted .*same read-ahead and release order/.test(d)), p.decisions.join("\n"));
  // an explicit setting is never paid for with streaming
  const asked = planMemory({ model: LLAMA_7B, budget: onMachine(4 * GiB), request: { ...request, ctx: 2048 } });
  t.false(asked.fits);
});

test("a fixed context, sequence count or KV type is honoured when it fits", (t) => {
  const p = planMemory({ model: LLAMA_7B, budget: onMachine(16 * GiB), request: { ...request, ctx: 4096, parallel: 2, kvType: "q8_0" } });
  t.like(p, { fits: true, nCtx: 4096, nSeq: 2, kvType: "q8_0" });
  t.true(p.decisions.includes("2 parallel sequences, as asked"));
  const beyond = planMemory({ model: TINYLLAMA, budget: onMachine(16 * GiB), request: { ...request, ctx: 8192 } });
  t.true(beyond.decisions.some((d) => /beyond the 2048 the model was trained for/.test(d)));
});

test("a fixed setting that cannot fit is refused with the reason and what fits without it", (t) => {
  const ctx = planMemory({ model: LLAMA_7B, budget: onMachine(4 * GiB), request: { ...request, ctx: 2048 } });
  t.false(ctx.fits);
  t.regex(ctx.problem!, /^--ctx 2048 does not fit: .*the longest context that fits is 1024 \(KV q8_0\)/);
  const par = planMemory({ model: LLAMA_7B, budget: onMachine(4 * GiB), request: { ...request, parallel: 3 } });
  t.false(par.fits);
  t.regex(par.problem!, /^--parallel 3 does not fit: .*1 sequence of 1024 tokens fit/);
  const kv = planMemory({ model: LLAMA_7B, budget: onMachine(3.9 * GiB), request: { ...request, kvType: "f16" } });
  t.false(kv.fits);
  t.regex(kv.problem!, /^--kv-type f16 does not fit: .*KV q8_0 fits/);
});

test("a model trained on a short context gets that context", (t) => {
  const stories: PlanModel = { nLayer: 5, nHeadKv: 4, headDim: 8, nEmbd: 64, nFf: 172, nHead: 8, nVocab: 512, nCtxTrain: 128, weightBytes: 1e6 };
  const p = planMemory({ model: stories, budget: onMachine(1 * GiB), request });
  t.like(p, { fits: true, nCtx: 128, nBatch: 128, kvType: "f16", nSeq: PLAN_RULES.maxParallel });
});

test("contexts step down in multiples of 256 to the floor of 512", (t) => {
  const seen = new Set<number>();
  for (let g = 3.75; g <= 4.6; g += 0.01) {
    const p = planMemory({ model: LLAMA_7B, budget: onMachine(g * GiB), request });
    if (p.fits) seen.add(p.nCtx);
  }
  for (const c of seen) t.true(c % 256 === 0 && c >= 512 && c <= 2048, `context ${c}`);
  t.true(seen.size >= 3, [...seen].join(", "));
});

test("mlock: permitted by an unlimited or large RLIMIT_MEMLOCK or CAP_IPC_LOCK, not by 8 MiB", (t) => {
  const plan = (memlock: { soft: number | null; capIpcLock: boolean } | null) =>
    planMemory({ model: TINYLLAMA, budget: onMachine(4 * GiB), request, memlock }).mlock;
  t.like(plan({ soft: 8 * MiB, capIpcLock: false }), { permitted: false, limit: 8 * MiB });
  t.regex(plan({ soft: 8 * MiB, capIpcLock: false }).reason, /LimitMEMLOCK=infinity/);
  t.like(plan({ soft: null, capIpcLock: false }), { permitted: true });
  t.like(plan({ soft: 4 * GiB, capIpcLock: false }), { permitted: true });
  t.like(plan({ soft: 8 * MiB, capIpcLock: true }), { permitted: true });
  t.like(plan(null), { permitted: false });
});

test("from a machine's files: a cgroup v2 limit below MemAvailable bounds the budget", (t) => {
  const root = fakeRoot({
    "proc/meminfo": meminfo(7 * GiB),
    "proc/self/cgroup": "0::/system.slice/alpaca.service\n",
    "sys/fs/cgroup/system.slice/alpaca.service/memory.max": String(4 * GiB),
    "proc/self/limits": "Max locked memory         unlimited            unlimited            bytes\n",
  });
  const config = { memoryLimit: null, ctx: null, parallel: null, kvType: "auto" as const, threads: 4 };
  const p = planFromSystem(LLAMA_7B, config, { root });
  t.like(p.budget, { boundBy: "cgroup limit", limit: 4 * GiB, reserve: 16 * MiB });
  t.like(p, { fits: true, kvType: "q8_0", nCtx: 1536 });
  t.like(p.mlock, { permitted: true });
});

test("from a machine's files: cgroup v1 unlimited and v2 \"max\" leave MemAvailable", (t) => {
  const config = { memoryLimit: null, ctx: null, parallel: null, kvType: "auto" as const, threads: 4 };
  const v1 = fakeRoot({
    "proc/meminfo": meminfo(3 * GiB),
    "proc/self/cgroup": "4:memory:/x\n",
    "sys/fs/cgroup/memory/x/memory.limit_in_bytes": "9223372036854771712\n",
  });
  const p1 = planFromSystem(LLAMA_7B, config, { root: v1 });
  t.like(p1.budget, { boundBy: "MemAvailable", limit: 3 * GiB });
  t.like(p1.residency, { mode: "streaming" });
  const v2 = fakeRoot({ "proc/meminfo": meminfo(16 * GiB), "proc/self/cgroup": "0::/u\n", "sys/fs/cgroup/u/memory.max": "max\n" });
  const p2 = planFromSystem(LLAMA_7B, { ...config, memoryLimit: 5 * GiB }, { root: v2 });
  t.like(p2.budget, { boundBy: "--memory-limit", limit: 5 * GiB });
  t.like(p2, { fits: true, kvType: "f16", nCtx: 2048 });
});

test("--memory plans for another machine: this one's MemAvailable and cgroup are ignored", (t) => {
  const root = fakeRoot({ "proc/meminfo": meminfo(1 * GiB), "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": String(GiB) });
  const config = { memoryLimit: null, ctx: null, parallel: null, kvType: "auto" as const, threads: 4 };
  t.like(planFromSystem(LLAMA_7B, config, { root, machine: 16 * GiB }), { fits: true, nSeq: 4 });
});

test("the breakdown reads as lines for the log", (t) => {
  const fits = formatPlan(planMemory({ model: LLAMA_7B, budget: onMachine(4 * GiB), request }), { ...LLAMA_7B, path: "/m/7b.gguf" });
  t.regex(fits[0], /^model +\/m\/7b\.gguf/);
  // of the 3.53 GiB file, the embedding table is charged only for the rows in use
  t.true(fits.some((l) => /^costs +weights 3\.47 GiB \(mapped, resident\) \+ KV 272\.00 MiB \(1024 × 1 q8_0\)/.test(l)), fits.join("\n"));
  t.true(fits.some((l) => /^plan +fits/.test(l)));
  t.true(fits.some((l) => /^resident +3\.47 GiB: 32 of 32 layers, locked 0 B; streamed 0 B per token \(0 layers\)/.test(l)), fits.join("\n"));
  const streams = formatPlan(planMemory({ model: LLAMA_7B, budget: onMachine(3 * GiB), request, memlock: { soft: null, capIpcLock: true } }));
  t.true(streams.some((l) => /^costs +weights 2\.\d\d GiB \(mapped: 2\.\d\d GiB resident \+ 217\.\d\d MiB stream window\)/.test(l)), streams.join("\n"));
  t.true(streams.some((l) => /^plan +fits \(streaming \d+ layers\)/.test(l)), streams.join("\n"));
  t.true(streams.some((l) => /^resident +2\.\d\d GiB: \d+ of 32 layers, locked 2\.\d\d GiB; streamed [\d.]+ [MG]iB per token/.test(l)), streams.join("\n"));
  const not = formatPlan(planMemory({ model: LLAMA_7B, budget: onMachine(512 * MiB), request }));
  t.true(not.some((l) => /^plan +does not fit: the weights/.test(l)));
  t.true(not.some((l) => /^instead +streaming every layer/.test(l)));
});

test("no memory figure at all is an error, not a guess", (t) => {
  t.throws(() => planMemory({ model: LLAMA_7B, budget: {}, request }), { message: /no memory figure/ });
});
