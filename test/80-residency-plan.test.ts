// The plan's layer split on made-up budgets (pure functions): how many layers stay and how many
// stream, what the cgroup is charged for them, and when nothing can be done.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { readGguf } from "../daemon/engine/gguf.js";
import { writeSyntheticModel } from "../models/synthetic.js";
import { parameterCount, planMemory, residencyOptions, type PlanModel } from "../daemon/serving/plan.js";
import { splitLayers, weightLayout, type ResidencyModel } from "../daemon/serving/residency.js";

const MiB = 2 ** 20, GiB = 2 ** 30;

// A made-up model whose bytes are known exactly: 10 layers of 100 MiB, a 50 MiB embedding
// table, a 40 MiB output matrix and 1 MiB of norms.
const SHAPE = { nLayer: 10, nHeadKv: 8, headDim: 128, nEmbd: 1024, nFf: 4096, nHead: 8, nVocab: 32000 };
const EXACT: ResidencyModel = { ...SHAPE, weightBytes: 1091 * MiB, layerBytes: 1000 * MiB, embeddingBytes: 50 * MiB, outputBytes: 40 * MiB };
// A row of 1.6 KB read through the page cache touches its own page and at most the next.
const rowPages = 2 * 4096;

test("the weight layout: given bytes are used as they are, unknown ones spread over the parameters", (t) => {
  const w = weightLayout(EXACT);
  t.like(w, { layers: 1000 * MiB, embedding: 50 * MiB, output: 40 * MiB, other: 1 * MiB, tied: false });
  const SHAPE_7B = { nLayer: 32, nHeadKv: 32, headDim: 128, nEmbd: 4096, nFf: 11008, nHead: 32, nVocab: 32000 };
  const est = weightLayout({ ...SHAPE_7B, weightBytes: (parameterCount(SHAPE_7B) * 4.5) / 8 });
  t.is(Math.round(est.layers / 32), Math.round((202383360 * 4.5) / 8), "one 7B layer: 202 M parameters at 4.5 bits");
  t.is(Math.round(est.output), (32000 * 4096 * 4.5) / 8);
});

test("room for everything: no layer streams, and every kept byte is charged", (t) => {
  const s = splitLayers(EXACT, 2 * GiB, 512, true)!;
  t.like(s, { mode: "resident", keptLayers: 10, streamLayers: 0, streamedBytes: 0, windowBytes: 0, lock: true });
  // kept layers + output + norms + the pages of the embedding rows of 512 tokens, not the whole table
  t.is(s.residentBytes, 1000 * MiB + 40 * MiB + 1 * MiB + 512 * rowPages);
  t.is(s.lockedBytes, 1000 * MiB + 41 * MiB, "the embedding table is left to the page cache");
});

test("each layer less of room streams one more, from the third on: the window costs two layers", (t) => {
  const fixed = 41 * MiB + 512 * rowPages;
  const at = (layersOfRoom: number) => splitLayers(EXACT, fixed + layersOfRoom * 100 * MiB, 512, true);
  t.is(at(10)!.streamLayers, 0);
  // 9.99 layers of room: streaming 1 or 2 saves nothing (the window holds them), so 3 stream
  t.like(splitLayers(EXACT, fixed + 999 * MiB, 512, true), { streamLayers: 3, keptLayers: 7, windowBytes: 200 * MiB });
  t.like(at(9), { streamLayers: 3, keptLayers: 7 });
  t.like(at(8), { streamLayers: 4, keptLayers: 6 });
  t.like(at(3), { streamLayers: 9, keptLayers: 1 });
  t.like(at(2), { mode: "streaming", streamLayers: 10, keptLayers: 0, streamedBytes: 1000 * MiB, windowBytes: 200 * MiB });
  t.is(splitLayers(EXACT, fixed + 199 * MiB, 512, true), null, "not even the two-layer window fits");
  for (let room = 2; room <= 12; room += 0.25) {
    const s = at(room)!;
    t.true(s.residentBytes + s.windowBytes <= fixed + room * 100 * MiB, `room ${room}`);
    t.is(s.keptLayers + s.streamLayers, 10);
  }
});

test("mlock not permitted: the same split, nothing counted as locked", (t) => {
  const s = splitLayers(EXACT, 41 * MiB + 16 * rowPages + 800 * MiB, 16, false)!;
  t.like(s, { streamLayers: 4, keptLayers: 6, lock: false, lockedBytes: 0 });
});

test("tied embeddings: the table is the output and stays whole", (t) => {
  const tied: ResidencyModel = { ...EXACT, weightBytes: 1051 * MiB, outputBytes: 0 };
  const s = splitLayers(tied, 2 * GiB, 512, true)!;
  t.is(s.residentBytes, 1000 * MiB + 50 * MiB + 1 * MiB);
  t.is(s.lockedBytes, s.residentBytes);
});

test("the plan: budgets from ample to too small, and the options the engine is opened with", (t) => {
  const m: PlanModel = { ...EXACT, nCtxTrain: 2048 };
  const plan = (gib: number) => planMemory({ model: m, budget: { machine: gib * GiB }, request: { threads: 2 }, memlock: { soft: null, capIpcLock: false } });
  const ample = plan(4);
  t.like(ample, { fits: true, residency: { mode: "resident", streamLayers: 0, keptLayers: 10 } });
  // every layer, the output and norms charged, and of the embedding table the pages of the rows in
  // use: 4 sequences × 2048 tokens cover the whole table
  t.like(ample, { nCtx: 2048, nSeq: 4 });
  t.is(ample.costs.weights, 1041 * MiB + Math.min(50 * MiB, 2048 * 4 * rowPages));
  t.deepEqual(residencyOptions(ample), { streamLayers: 0, lock: true });
  let last = 0;
  for (const gib of [1.2, 1.1, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5]) {
    const p = plan(gib);
    t.true(p.fits, `${gib} GiB`);
    t.true(p.residency.streamLayers >= last, `${gib} GiB streams no fewer than a larger budget`);
    t.true(p.costs.total <= p.budget.bytes, `${gib} GiB`);
    t.deepEqual(residencyOptions(p), { streamLayers: p.residency.streamLayers, lock: true });
    last = p.residency.streamLayers;
  }
  t.true(last >= 9, "half a GiB streams nearly all");
  const none = plan(0.3);
  t.false(none.fits);
  t.regex(none.problem!, /cannot stay resident/);
});

// The 3-bit K-quant mix of a 7B (Q3_K matrices, Q6_K output; 2.95 GB as published) is the 7B file
// that stays whole on a 4 GB Pi: planned from the tensor bytes of a synthetic file of that mix.
test("7B Q3_K_S on a 3500 MiB machine: every layer resident, with a 2048-token context", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-q3ks-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "7b-q3_k_s.gguf");
  const written = await writeSyntheticModel(file, { shape: "7b", type: "q3_k", outputType: "q6_k", fill: "sparse" });
  t.is((written.fileSize / 1e9).toFixed(2), "2.95", "the size of the published 7B Q3_K_S files");
  const tensors = readGguf(file).tensors;
  const bytes = (keep: (name: string) => boolean) => tensors.filter((x) => keep(x.name)).reduce((s, x) => s + x.nbytes, 0);
  const m: PlanModel = {
    nLayer: 32, nHeadKv: 32, headDim: 128, nEmbd: 4096, nFf: 11008, nHead: 32, nVocab: 32000, nCtxTrain: 4096,
    weightBytes: bytes(() => true), layerBytes: bytes((n) => n.startsWith("blk.")),
    embeddingBytes: bytes((n) => n === "token_embd.weight"), outputBytes: bytes((n) => n === "output.weight"),
  };
  const p = planMemory({ model: m, budget: { machine: 3500 * MiB }, request: { threads: 4 }, memlock: { soft: null, capIpcLock: true } });
  t.like(p, { fits: true, nCtx: 2048, kvType: "q8_0", residency: { mode: "resident", keptLayers: 32, streamLayers: 0 } });
  t.true(p.costs.total <= p.budget.bytes);
});
