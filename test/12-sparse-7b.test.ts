// A 7B-shaped Q4_0 file written sparsely (3.5 GiB that cost no disk): the header is read in
// well under a second and without pulling weights into anonymous memory, because the file
// is mapped, never copied.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readGguf } from "../daemon/engine/gguf.js";
import { SHAPES, writeSyntheticModel } from "../models/synthetic.js";
import type { LoadMeasurement } from "./helpers/measure-load-child.js";
import { run } from "./helpers/process.js";

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "helpers", "measure-load-child.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-12-sparse-"));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** Bytes of all weights of a LLaMA shape with every matrix in Q4_0 and F32 norms. */
function q4_0WeightBytes(s: { dim: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number }, withOutput = true): number {
  const kvDim = (s.dim / s.heads) * s.kvHeads;
  const perLayer = 2 * s.dim * s.dim + 2 * s.dim * kvDim + 3 * s.dim * s.ffn;
  const matrices = s.layers * perLayer + (withOutput ? 2 : 1) * s.dim * s.vocab;
  const norms = (2 * s.layers + 1) * s.dim;
  return (matrices / 32) * 18 + norms * 4;
}

test("sparse 7B Q4_0: 3.53 GiB on paper, no disk, header read in under a second, RssAnon under 100 MB, engine too", async (t) => {
  const file = path.join(tmp, "7b-q4_0.gguf");
  const model = await writeSyntheticModel(file, { shape: "7b", type: "q4_0", fill: "sparse" });
  try {
    // llama.cpp's pure Q4_0 (--pure: token_embd and output in Q4_0 too)
    t.is(model.weightBytes, q4_0WeightBytes(SHAPES["7b"]));
    t.true(Math.abs(model.fileSize / GiB - 3.53) < 0.005, `${model.fileSize / GiB} GiB`);
    const st = fs.statSync(file);
    t.is(st.size, model.fileSize);
    t.true(st.blocks * 512 < 8 * MiB, `${st.blocks * 512} bytes on disk`); // header, vocabulary and norms only

    const gguf = await run(process.execPath, [child, "gguf", file]);
    t.is(gguf.code, 0, gguf.stderr);
    const m = JSON.parse(gguf.stdout) as LoadMeasurement;
    t.log(`readGguf: ${m.ms.toFixed(1)} ms, RssAnon ${(m.rssAnonBefore / MiB).toFixed(1)} → ${(m.rssAnonAfter / MiB).toFixed(1)} MiB, RssFile ${(m.rssFileAfter / MiB).toFixed(1)} MiB`);
    t.true(m.ms < 1000, `${m.ms} ms`);
    t.true(m.rssAnonAfter < 100 * 1000 * 1000, `RssAnon ${m.rssAnonAfter}`);
    t.is(m.tensors, 3 + 9 * 32);
    t.like(m.metadata, {
      "general.architecture": "llama", "llama.embedding_length": 4096, "llama.block_count": 32,
      "llama.feed_forward_length": 11008, "llama.attention.head_count": 32, "llama.attention.head_count_kv": 32,
      "llama.rope.dimension_count": 128, "general.file_type": 2,
    });

    // ── the engine ──────────────────────────────────────────────────────────────────────
    // The same file through the engine: the weights must come from the mapping, never a
    // copy, so anonymous memory is the KV cache (64 cells here) and little else. Decoding
    // is left out: one token would read all 3.5 GiB of holes into the page cache.
    const engine = await run(process.execPath, [child, "engine", file]);
    t.is(engine.code, 0, engine.stderr);
    const e = JSON.parse(engine.stdout) as LoadMeasurement;
    t.log(`engine: ${e.ms.toFixed(1)} ms, RssAnon ${(e.rssAnonAfter / MiB).toFixed(1)} MiB with a ${(e.kvBytes! / MiB).toFixed(1)} MiB KV cache`);
    t.is(e.weightBytes, model.weightBytes);
    t.true(e.rssAnonAfter - e.kvBytes! < 100 * 1000 * 1000, `RssAnon ${e.rssAnonAfter}, KV ${e.kvBytes}`);
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test("sparse TinyLlama 1.1B Q4_0: GQA shapes and size", async (t) => {
  const file = path.join(tmp, "tinyllama-q4_0.gguf");
  const model = await writeSyntheticModel(file, { shape: "tinyllama-1.1b", type: "q4_0", fill: "sparse" });
  try {
    t.is(model.weightBytes, q4_0WeightBytes(SHAPES["tinyllama-1.1b"]));
    const info = readGguf(file);
    const byName = new Map(info.tensors.map((x) => [x.name, x]));
    t.deepEqual(byName.get("blk.21.attn_q.weight")?.dims, [2048, 2048]);
    t.deepEqual(byName.get("blk.21.attn_k.weight")?.dims, [2048, 256]); // 4 KV heads × 64
    t.deepEqual(byName.get("blk.21.ffn_down.weight")?.dims, [5632, 2048]);
    t.is(info.metadata["llama.attention.head_count_kv"], 4);
    t.is(info.metadata["llama.rope.dimension_count"], 64);
    t.is(info.fileSize, model.fileSize);
  } finally {
    fs.rmSync(file, { force: true });
  }
});
