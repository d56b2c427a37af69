// The architecture table (native/model/architecture.h): each family's files open with the parts
// it has, a file that lacks one or carries one its family does not have is refused naming the
// tensor, and the head size comes from attention.key_length where the file sets it. Numerics are
// the golden check's business (test 25); here the shapes and the refusals.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openModel, sequenceBatch } from "../daemon/engine/engine.js";
import { meta, writeGguf, type GgufMetaValue, type GgufSpec } from "../models/gguf-writer.js";
import { SHAPES, syntheticGgufSpec, writeSyntheticModel, type ShapeName } from "../models/synthetic.js";
import { alpaca } from "./helpers/process.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-15-arch-"));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
async function written(spec: GgufSpec): Promise<string> {
  const file = path.join(tmp, `m${n++}.gguf`);
  await writeGguf(file, spec, { seed: 3 });
  return file;
}

const spec = (shape: ShapeName) => syntheticGgufSpec({ shape, type: "q8_0", fill: "random" });
const withoutTensor = (s: GgufSpec, name: string): GgufSpec => ({ ...s, tensors: s.tensors.filter((x) => x.name !== name) });
const withMeta = (s: GgufSpec, key: string, value: GgufMetaValue): GgufSpec => ({
  ...s,
  metadata: [...s.metadata.filter(([k]) => k !== key), [key, value]],
});

for (const [shape, arch, headDim] of [["tiny", "llama", 32], ["tiny-qwen2", "qwen2", 32], ["tiny-qwen3", "qwen3", 64]] as const) {
  test(`${arch}: a ${shape} file opens, head size ${headDim}, finite logits, the same in one batch as token by token`, async (t) => {
    const file = path.join(tmp, `${shape}.gguf`);
    await writeSyntheticModel(file, { shape, type: "q8_0", fill: "random", seed: 11 });
    const ids = [1, 300, 301, 302, 303, 304];
    const batched = openModel(file, { nCtx: 32, threads: 2 });
    const stepwise = openModel(file, { nCtx: 32, threads: 1 });
    t.teardown(() => (batched.close(), stepwise.close()));
    const info = batched.info();
    t.is(info.architecture, arch);
    t.is(info.headDim, headDim);
    t.is(info.nEmbd, SHAPES[shape].dim);
    t.is(info.outputBytes > 0, arch === "llama", "Qwen's small models tie the output to the embedding");
    const all = batched.decode(sequenceBatch(ids, 0, 0, true));
    const V = info.nVocab;
    t.is(all.length, ids.length * V);
    t.true(all.every(Number.isFinite));
    for (let i = 0; i < ids.length; i++) {
      const one = stepwise.decode(sequenceBatch([ids[i]!], i, 0));
      let worst = 0;
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(one[v]! - all[i * V + v]!));
      t.true(worst < 1e-3, `position ${i}: batched and single-token logits differ by ${worst}`);
    }
  });
}

// A verification pass (speculative decoding) or concurrent decoding puts several rows of one
// sequence, and rows of several sequences, in one batch; attention then takes all query heads of a
// kv head and all rows of a sequence in one pass over the cache. Each row's logits must be those
// of decoding its token alone, bit for bit, or speculation would change answers. Q8_0 weights:
// their batch and one-row products agree exactly, so any difference is attention's.
for (const [shape, kvType] of [["tiny", "f16"], ["tiny-qwen3", "f16"], ["tiny-qwen2", "f32"]] as const) {
  test(`${shape}, ${kvType} cache: rows of two sequences in one batch give exactly the logits of one token at a time`, async (t) => {
    const file = path.join(tmp, `rows-${shape}.gguf`);
    await writeSyntheticModel(file, { shape, type: "q8_0", fill: "random", seed: 5 });
    const batched = openModel(file, { nCtx: 64, nSeq: 2, threads: 2, kvType });
    const stepwise = openModel(file, { nCtx: 64, nSeq: 2, threads: 1, kvType });
    t.teardown(() => (batched.close(), stepwise.close()));
    const prompts = [[1, 30, 31, 32, 33, 34, 35, 36, 37, 38], [1, 40, 41, 42, 43, 44, 45]];
    prompts.forEach((ids, seq) => {
      batched.decode(sequenceBatch(ids, 0, seq));
      ids.forEach((id, pos) => stepwise.decode(sequenceBatch([id], pos, seq)));
    });
    // [seq, token, pos]: five rows of sequence 0 and three of sequence 1, interleaved
    const rows = [[0, 50, 10], [1, 60, 7], [0, 51, 11], [0, 52, 12], [1, 61, 8], [0, 53, 13], [1, 62, 9], [0, 54, 14]];
    const all = batched.decode({
      tokens: Int32Array.from(rows.map((r) => r[1]!)),
      positions: Int32Array.from(rows.map((r) => r[2]!)),
      seqs: Int32Array.from(rows.map((r) => r[0]!)),
      logits: new Uint8Array(rows.length).fill(1),
    });
    const V = batched.info().nVocab;
    for (const seq of [0, 1]) {
      rows.forEach(([s, id, pos], i) => {
        if (s !== seq) return;
        const one = stepwise.decode(sequenceBatch([id!], pos!, seq));
        let differing = 0;
        for (let v = 0; v < V; v++) differing += one[v] === all[i * V + v] ? 0 : 1;
        t.is(differing, 0, `sequence ${seq} position ${pos}: ${differing} of ${V} logits differ`);
      });
    }
  });
}

test("a family's required parts: qwen2 without a bias, qwen3 without a per-head norm are refused by name", async (t) => {
  const noBias = await written(withoutTensor(spec("tiny-qwen2"), "blk.1.attn_k.bias"));
  t.throws(() => openModel(noBias), { message: /: tensor blk\.1\.attn_k\.bias is missing$/ });
  const noNorm = await written(withoutTensor(spec("tiny-qwen3"), "blk.0.attn_q_norm.weight"));
  t.throws(() => openModel(noNorm), { message: /: tensor blk\.0\.attn_q_norm\.weight is missing$/ });
});

test("a part the family does not have is refused, not silently left out", async (t) => {
  // A qwen2 file relabelled qwen3: its biases would be ignored by a qwen3 forward pass.
  const qwen2 = spec("tiny-qwen2");
  const relabelled = qwen2.metadata.map(([k, v]) => [k.replace(/^qwen2\./, "qwen3."), k === "general.architecture" ? meta.string("qwen3") : v] as const);
  const file = await written({ ...qwen2, metadata: relabelled });
  t.throws(() => openModel(file), { message: /: tensor blk\.0\.attn_q\.bias is not part of a qwen3 model$/ });
  // A llama file with per-head norms (a qwen3 file relabelled llama) likewise.
  const qwen3 = spec("tiny-qwen3");
  const asLlama = qwen3.metadata.map(([k, v]) => [k.replace(/^qwen3\./, "llama."), k === "general.architecture" ? meta.string("llama") : v] as const);
  const llama = await written({ ...qwen3, metadata: asLlama });
  t.throws(() => openModel(llama), { message: /: tensor blk\.0\.attn_q_norm\.weight is not part of a llama model$/ });
});

test("an architecture outside the table is refused with the list of those supported", async (t) => {
  const s = spec("tiny");
  const file = await written(withMeta(s, "general.architecture", meta.string("gemma3")));
  t.throws(() => openModel(file), { message: /: unsupported architecture 'gemma3' \(supported: llama, qwen2, qwen3\)$/ });
});

test("head size: key_length sets it apart from the width; a value size that differs, or no way to tell, is refused", async (t) => {
  const q3 = spec("tiny-qwen3");
  const valueDiffers = await written(withMeta(q3, "qwen3.attention.value_length", meta.u32(32)));
  t.throws(() => openModel(valueDiffers), { message: /attention\.value_length 32 differs from key_length 64/ });
  // 256 wide, 12 heads and no key_length: no head size to read.
  const odd = await written(withMeta(spec("tiny"), "llama.attention.head_count", meta.u32(12)));
  t.throws(() => openModel(odd), { message: /12 heads do not divide the embedding length 256 and llama\.attention\.key_length is missing/ });
});

test("rope scaling a family's files do not use (YaRN on qwen2) is refused rather than run wrong", async (t) => {
  const file = await written(withMeta(spec("tiny-qwen2"), "qwen2.rope.scaling.type", meta.string("yarn")));
  t.throws(() => openModel(file), { message: /rope scaling 'yarn' is not supported for qwen2/ });
});

test("alpaca info names the family, the RoPE pairing and the kernel set a Qwen file runs on", async (t) => {
  const file = path.join(tmp, "info-qwen3.gguf");
  await writeSyntheticModel(file, { shape: "tiny-qwen3", type: "q4_0", fill: "random", seed: 2 });
  const r = await alpaca(["info", "--model", file, "--json"]);
  t.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  t.like(info, { architecture: "qwen3", family: "Qwen3", ropeStyle: "neox", headDim: 64, outputBytes: 0 });
  t.regex(info.kernels.q4_0 ?? "", /^[a-z0-9-]+$/, JSON.stringify(info.kernels));
  const text = await alpaca(["info", "--model", file]);
  t.regex(text.stdout, /^architecture qwen3 \(Qwen3\): 2 layers, dim 256, ffn 768, 8 heads \(4 KV heads, head dim 64\)/m);
  t.regex(text.stdout, /^context +trained 256; rope neox, theta 1000000/m);
  t.regex(text.stdout, /^kernels +.*q4_0 \S+/m);
});
