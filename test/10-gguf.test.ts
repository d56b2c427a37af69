// GGUF reading: the real stories260K files, and files written by our own writer read back
// through the native reader, value type by value type.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { readGguf, isArraySummary, type GgufInfo } from "../daemon/engine/gguf.js";
import {
  GgmlType, encodeGguf, fp32ToFp16, meta, tensorBytes, writeGguf, type GgufSpec,
} from "../models/gguf-writer.js";
import { SHAPES, syntheticGgufSpec, syntheticVocab, writeSyntheticModel } from "../models/synthetic.js";
import { openModel, sequenceBatch } from "../daemon/engine/engine.js";
import { openVocab } from "../daemon/engine/tokenizer.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-10-gguf-"));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

// ── stories260K ────────────────────────────────────────────────────────────────────────────

const STORIES = [
  { file: "stories260K-f32.gguf", matrix: GgmlType.F32, ffnDown: GgmlType.F32 },
  { file: "stories260K-q8_0.gguf", matrix: GgmlType.Q8_0, ffnDown: GgmlType.F16 },
  { file: "stories260K-q4_0.gguf", matrix: GgmlType.Q4_0, ffnDown: GgmlType.F16 },
];

/** Every tensor is aligned, sized by its type and shape, inside the file, and apart from the others. */
function assertSaneLayout(t: import("ava").ExecutionContext, info: GgufInfo): void {
  const sorted = [...info.tensors].sort((a, b) => a.offset - b.offset);
  let end = 0;
  for (const tensor of sorted) {
    t.is(tensor.offset % info.alignment, 0, `${tensor.name} aligned`);
    t.is(tensor.nbytes, tensorBytes(tensor.type, tensor.dims), `${tensor.name} size`);
    t.true(tensor.offset >= end, `${tensor.name} does not overlap the previous tensor`);
    end = tensor.offset + tensor.nbytes;
  }
  t.true(info.dataOffset + end <= info.fileSize);
  t.is(info.dataOffset % info.alignment, 0);
}

for (const s of STORIES) {
  testNeeding(test, needShared, `stories260K: ${s.file} has the llama architecture, shapes and tensor types`, (t) => {
    const file = sharedModel(s.file);
    const info = readGguf(file);
    t.is(info.version, 3);
    t.is(info.fileSize, fs.statSync(file).size);
    const m = info.metadata;
    t.is(m["general.architecture"], "llama");
    t.is(m["llama.embedding_length"], 64);
    t.is(m["llama.block_count"], 5);
    t.is(m["llama.attention.head_count"], 8);
    t.is(m["llama.attention.head_count_kv"], 4);
    t.is(m["llama.feed_forward_length"], 172);
    t.is(m["llama.context_length"], 128);
    t.is(m["llama.rope.dimension_count"], 8);
    t.true(Math.abs((m["llama.attention.layer_norm_rms_epsilon"] as number) - 1e-5) < 1e-9);
    t.is(m["tokenizer.ggml.model"], "llama");
    t.is(m["tokenizer.ggml.bos_token_id"], 1);
    t.is(m["tokenizer.ggml.eos_token_id"], 2);
    const tokens = m["tokenizer.ggml.tokens"] as string[];
    t.is(tokens.length, 512); // under the summary threshold: listed in full
    t.deepEqual(tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
    t.deepEqual((m["tokenizer.ggml.token_type"] as number[]).slice(0, 4), [2, 3, 3, 6]);

    t.is(info.tensors.length, 3 + 5 * 9);
    const byName = new Map(info.tensors.map((x) => [x.name, x]));
    t.deepEqual(byName.get("token_embd.weight")?.dims, [64, 512]);
    t.deepEqual(byName.get("output.weight")?.dims, [64, 512]);
    t.deepEqual(byName.get("output_norm.weight")?.dims, [64]);
    for (let l = 0; l < 5; l++) {
      const b = (n: string) => byName.get(`blk.${l}.${n}.weight`)!;
      t.deepEqual(b("attn_q").dims, [64, 64]);
      t.deepEqual(b("attn_k").dims, [64, 32]); // 4 KV heads × head_dim 8
      t.deepEqual(b("attn_v").dims, [64, 32]);
      t.deepEqual(b("ffn_gate").dims, [64, 172]);
      t.deepEqual(b("ffn_down").dims, [172, 64]);
      t.is(b("attn_norm").type, GgmlType.F32);
      t.is(b("ffn_norm").type, GgmlType.F32);
      t.is(b("attn_q").type, s.matrix);
      t.is(b("ffn_up").type, s.matrix);
      // 172 is not a multiple of 32: quantized files keep ffn_down in F16
      t.is(b("ffn_down").type, s.ffnDown);
      t.is(b("ffn_down").typeName, s.ffnDown === GgmlType.F16 ? "f16" : "f32");
    }
    assertSaneLayout(t, info);
  });
}

// ── round trip through the writer ──────────────────────────────────────────────────────────

const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);

/** One key per value type and edge value, and one array per element type. */
function everyValueSpec(version: number, alignment: number): GgufSpec {
  const longArray = Array.from({ length: 2000 }, (_, i) => i * 3 - 1000);
  return {
    version,
    alignment,
    metadata: [
      ["t.u8", meta.u8(255)], ["t.i8", meta.i8(-128)],
      ["t.u16", meta.u16(65535)], ["t.i16", meta.i16(-32768)],
      ["t.u32", meta.u32(4294967295)], ["t.i32", meta.i32(-2147483648)],
      ["t.f32", meta.f32(-1.5)], ["t.f64", meta.f64(Math.PI)],
      ["t.bool.true", meta.bool(true)], ["t.bool.false", meta.bool(false)],
      ["t.string", meta.string("héllo ▁wörld 🦙")], ["t.string.empty", meta.string("")],
      ["t.u64.small", meta.u64(12345)], ["t.u64.max", meta.u64(U64_MAX)],
      ["t.i64.small", meta.i64(-5)], ["t.i64.min", meta.i64(I64_MIN)],
      ["t.arr.u8", meta.array("u8", [0, 1, 255])], ["t.arr.i8", meta.array("i8", [-128, 0, 127])],
      ["t.arr.u16", meta.array("u16", [0, 65535])], ["t.arr.i16", meta.array("i16", [-32768, 32767])],
      ["t.arr.u32", meta.array("u32", [0, 4294967295])], ["t.arr.i32", meta.array("i32", [-2147483648, 2147483647])],
      ["t.arr.f32", meta.array("f32", [0.25, -2, 1e-5])], ["t.arr.f64", meta.array("f64", [Math.E, -0.1])],
      ["t.arr.bool", meta.array("bool", [true, false, true])],
      ["t.arr.string", meta.array("string", ["<s>", "", "▁the", "🦙"])],
      ["t.arr.u64", meta.array("u64", [0, 2 ** 53 - 1, U64_MAX])], ["t.arr.i64", meta.array("i64", [-1, I64_MIN])],
      ["t.arr.empty", meta.array("u32", [])],
      ["t.arr.long", meta.array("i32", longArray)],
      ["__proto__", meta.string("a key, not a prototype")],
    ],
    tensors: [
      { name: "f32.1d", type: GgmlType.F32, dims: [7], data: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6, 7]).buffer) },
      { name: "f16.2d", type: GgmlType.F16, dims: [3, 2], data: new Uint8Array(new Uint16Array([1, 2, 3, 4, 5, 6].map(fp32ToFp16)).buffer) },
      { name: "q4_0.3d", type: GgmlType.Q4_0, dims: [64, 2, 3], data: "random" },
      { name: "q8_0.4d", type: GgmlType.Q8_0, dims: [32, 1, 2, 2], data: "random" },
      { name: "hole", type: GgmlType.F32, dims: [5] },
    ],
  };
}

for (const [version, alignment] of [[3, 32], [2, 32], [3, 64], [3, 1]] as const) {
  test(`round trip: every value type, v${version}, alignment ${alignment}`, async (t) => {
    const file = path.join(tmp, `every-value-v${version}-a${alignment}.gguf`);
    const spec = everyValueSpec(version, alignment);
    const layout = await writeGguf(file, spec);
    const info = readGguf(file);
    t.is(info.version, version);
    t.is(info.alignment, alignment);
    t.is(info.dataOffset, layout.dataOffset);
    t.is(info.fileSize, layout.fileSize);
    const m = info.metadata;
    t.is(m["t.u8"], 255); t.is(m["t.i8"], -128);
    t.is(m["t.u16"], 65535); t.is(m["t.i16"], -32768);
    t.is(m["t.u32"], 4294967295); t.is(m["t.i32"], -2147483648);
    t.is(m["t.f32"], -1.5); t.is(m["t.f64"], Math.PI);
    t.is(m["t.bool.true"], true); t.is(m["t.bool.false"], false);
    t.is(m["t.string"], "héllo ▁wörld 🦙"); t.is(m["t.string.empty"], "");
    t.is(m["t.u64.small"], 12345); t.is(m["t.u64.max"], U64_MAX);
    t.is(m["t.i64.small"], -5); t.is(m["t.i64.min"], I64_MIN);
    t.deepEqual(m["t.arr.u8"], [0, 1, 255]); t.deepEqual(m["t.arr.i8"], [-128, 0, 127]);
    t.deepEqual(m["t.arr.u16"], [0, 65535]); t.deepEqual(m["t.arr.i16"], [-32768, 32767]);
    t.deepEqual(m["t.arr.u32"], [0, 4294967295]); t.deepEqual(m["t.arr.i32"], [-2147483648, 2147483647]);
    t.deepEqual(m["t.arr.f32"], [0.25, -2, Math.fround(1e-5)]); t.deepEqual(m["t.arr.f64"], [Math.E, -0.1]);
    t.deepEqual(m["t.arr.bool"], [true, false, true]);
    t.deepEqual(m["t.arr.string"], ["<s>", "", "▁the", "🦙"]);
    t.deepEqual(m["t.arr.u64"], [0, 2 ** 53 - 1, U64_MAX]); t.deepEqual(m["t.arr.i64"], [-1, I64_MIN]);
    t.deepEqual(m["t.arr.empty"], []);
    t.deepEqual(m["t.arr.long"], { array: "i32", count: 2000 });
    t.true(isArraySummary(m["t.arr.long"]!));
    t.deepEqual(readGguf(file, { full: true }).metadata["t.arr.long"], Array.from({ length: 2000 }, (_, i) => i * 3 - 1000));
    t.true(Object.hasOwn(m, "__proto__"));
    t.is(Object.getPrototypeOf(m), Object.prototype);
    t.is(Object.getOwnPropertyDescriptor(m, "__proto__")?.value, "a key, not a prototype");
    if (alignment !== 32) t.is(m["general.alignment"], alignment);
    else t.false("general.alignment" in m);
    t.is(Object.keys(m).length, layout.metadata.length);

    const bytes = fs.readFileSync(file);
    t.deepEqual(info.tensors.map((x) => [x.name, x.type, x.dims, x.offset, x.nbytes]),
      layout.tensors.map((x) => [x.name, x.type, x.dims, x.offset, x.nbytes]));
    t.deepEqual(info.tensors.map((x) => x.typeName), ["f32", "f16", "q4_0", "q8_0", "f32"]);
    for (const [i, s] of spec.tensors.entries()) {
      const at = info.dataOffset + info.tensors[i]!.offset;
      const stored = bytes.subarray(at, at + info.tensors[i]!.nbytes);
      if (s.data instanceof Uint8Array) t.deepEqual(new Uint8Array(stored), s.data, s.name);
      if (s.data === undefined) t.true(stored.every((b) => b === 0), `${s.name} is zeros`);
    }
    assertSaneLayout(t, info);
  });
}

test("round trip: the in-memory encoder writes the same bytes as the streaming writer", async (t) => {
  const file = path.join(tmp, "same-bytes.gguf");
  const spec = everyValueSpec(3, 32);
  await writeGguf(file, spec, { seed: 7, chunkBytes: 100 }); // tiny chunks: chunk seams must not show
  const { bytes } = await encodeGguf(spec, { seed: 7 });
  t.true(fs.readFileSync(file).equals(bytes));
});

// ── synthetic models ───────────────────────────────────────────────────────────────────────

test("synthetic tiny model: llama.cpp's names, keys and vocabulary", async (t) => {
  const file = path.join(tmp, "tiny-q8_0.gguf");
  const model = await writeSyntheticModel(file, { shape: "tiny", type: "q8_0", fill: "random" });
  const info = readGguf(file, { full: true });
  const s = SHAPES.tiny;
  const m = info.metadata;
  t.is(m["general.architecture"], "llama");
  t.is(m["llama.embedding_length"], s.dim);
  t.is(m["llama.block_count"], s.layers);
  t.is(m["llama.feed_forward_length"], s.ffn);
  t.is(m["llama.attention.head_count"], s.heads);
  t.is(m["llama.attention.head_count_kv"], s.kvHeads);
  t.is(m["llama.rope.dimension_count"], s.dim / s.heads);
  t.is(m["llama.context_length"], s.contextLength);
  t.is(m["llama.attention.layer_norm_rms_epsilon"], Math.fround(1e-5));
  t.is(m["general.file_type"], 7); // LLAMA_FTYPE_MOSTLY_Q8_0
  t.is(m["tokenizer.ggml.model"], "llama");
  const tokens = m["tokenizer.ggml.tokens"] as string[];
  t.is(tokens.length, s.vocab);
  t.deepEqual(tokens.slice(0, 3), ["<unk>", "<s>", "</s>"]);
  t.is(tokens[3 + 0x41], "<0x41>");
  t.is(new Set(tokens).size, tokens.length, "pieces are unique");
  t.is((m["tokenizer.ggml.scores"] as number[]).length, s.vocab);
  t.is((m["tokenizer.ggml.token_type"] as number[]).filter((x) => x === 6).length, 256);

  const kvDim = (s.dim / s.heads) * s.kvHeads;
  const byName = new Map(info.tensors.map((x) => [x.name, x]));
  t.is(info.tensors.length, 3 + 9 * s.layers);
  t.deepEqual(byName.get("token_embd.weight")?.dims, [s.dim, s.vocab]);
  t.deepEqual(byName.get("output.weight")?.dims, [s.dim, s.vocab]);
  t.deepEqual(byName.get("blk.1.attn_k.weight")?.dims, [s.dim, kvDim]);
  t.deepEqual(byName.get("blk.1.ffn_down.weight")?.dims, [s.ffn, s.dim]);
  t.is(byName.get("blk.1.ffn_down.weight")?.typeName, "q8_0");
  t.is(byName.get("output_norm.weight")?.typeName, "f32");
  t.is(model.fileSize, info.fileSize);
  assertSaneLayout(t, info);
});

test("synthetic random weights: every block scale a small finite normal fp16, norms 1.0", async (t) => {
  const file = path.join(tmp, "tiny-q4_0-random.gguf");
  await writeSyntheticModel(file, { shape: "tiny", type: "q4_0", fill: "random", seed: 3 });
  const info = readGguf(file);
  const bytes = fs.readFileSync(file);
  for (const x of info.tensors) {
    const at = info.dataOffset + x.offset;
    if (x.type === GgmlType.F32) {
      const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + x.nbytes));
      t.true(f.every((v) => v === 1), `${x.name} is all ones`);
      continue;
    }
    t.is(x.type, GgmlType.Q4_0);
    let zeroQuants = 0;
    for (let b = at; b < at + x.nbytes; b += 18) {
      const d = bytes.readUInt16LE(b);
      const exponent = (d >> 10) & 0x1f;
      if (exponent === 0 || exponent === 0x1f) return t.fail(`${x.name}: scale 0x${d.toString(16)} is zero, subnormal, inf or NaN`);
      const magnitude = Math.abs(halfToNumber(d));
      if (magnitude > 0.05) return t.fail(`${x.name}: scale ${magnitude} is not small`);
      if (bytes.subarray(b + 2, b + 18).every((q) => q === 0)) zeroQuants++;
    }
    t.is(zeroQuants, 0, `${x.name}: no all-zero blocks`);
  }
});

// The point of the synthetic files: the engine takes them for real models.
for (const type of ["q4_0", "q8_0", "f16", "f32", "q4_k", "q6_k"]) {
  test(`synthetic tiny ${type} model: the engine loads it, tokenizes with its vocabulary, gives finite logits`, async (t) => {
    const file = path.join(tmp, `tiny-${type}-engine.gguf`);
    await writeSyntheticModel(file, { shape: "tiny", type, fill: "random", seed: 5 });
    const text = "Hello world, the cat sat on 123 mats!";
    const vocab = openVocab(file);
    const ids = vocab.tokenize(text);
    t.is(ids[0], 1, "BOS first");
    t.true(ids.length < text.length, "pieces longer than one character are used");
    t.is(vocab.detokenize(ids), text);
    t.deepEqual([...vocab.tokenize("é")], [1, 259 /* ▁ */, 3 + 0xc3, 3 + 0xa9], "byte fallback");
    const model = openModel(file, { nCtx: 64, threads: 1 });
    try {
      t.is(model.info().nHeadKv, SHAPES.tiny.kvHeads);
      const logits = model.decode(sequenceBatch(ids, 0, 0));
      t.is(logits.length, SHAPES.tiny.vocab);
      t.true(logits.every(Number.isFinite));
      t.true(new Set(logits).size > 1, "weights are not all zero");
    } finally {
      model.close();
    }
  });
}

test("synthetic vocabulary: byte tokens, then pieces each reachable from a shorter one", (t) => {
  const v = syntheticVocab(32000);
  t.is(v.tokens.length, 32000);
  t.is(v.tokens[3], "<0x00>");
  t.is(v.tokens[258], "<0xFF>");
  t.is(v.tokens[259], "▁");
  const known = new Set(v.tokens);
  for (const p of v.tokens.slice(260)) if ([...p].length > 1) t.true(known.has([...p].slice(0, -1).join("")), p);
  t.true(v.scores.slice(260).every((s, i, all) => i === 0 || s < all[i - 1]!), "scores fall");
});

test("synthetic specs: llama-quantize falls back to F16 where a row is not a whole block", (t) => {
  const spec = syntheticGgufSpec({ shape: { ...SHAPES.tiny, name: "odd", ffn: 172 }, type: "q4_0", fill: "sparse" });
  t.is(spec.tensors.find((x) => x.name === "blk.0.ffn_down.weight")?.type, GgmlType.F16);
  t.is(spec.tensors.find((x) => x.name === "blk.0.ffn_up.weight")?.type, GgmlType.Q4_0);
});

// ── argument checks ────────────────────────────────────────────────────────────────────────

test("readGguf: bad arguments are TypeErrors, a missing file an Error naming it", (t) => {
  const call = readGguf as unknown as (...a: unknown[]) => unknown;
  t.throws(() => call(), { instanceOf: TypeError, message: /path must be a string/ });
  t.throws(() => call(42), { instanceOf: TypeError, message: /path must be a string/ });
  t.throws(() => call(""), { instanceOf: TypeError });
  t.throws(() => call("/tmp/a\0b"), { instanceOf: TypeError, message: /NUL/ });
  t.throws(() => call(sharedModel("x"), "full"), { instanceOf: TypeError, message: /options/ });
  t.throws(() => call(sharedModel("x"), { full: "yes" }), { instanceOf: TypeError, message: /options.full/ });
  const missing = path.join(tmp, "no-such-file.gguf");
  const err = t.throws(() => readGguf(missing));
  t.true(err?.message.includes(missing));
  t.false(err instanceof TypeError);
  t.throws(() => readGguf(tmp), { message: new RegExp(escapeRegExp(tmp)) }); // a directory
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function halfToNumber(h: number): number {
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 0x1f) return f ? NaN : sign * Infinity;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}
