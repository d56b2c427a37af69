// A bad GGUF file must be a JavaScript Error naming the file, never a crash: we take a small
// valid file and break it in every way we can think of (truncation, absurd counts and lengths,
// unknown types, bad alignment, overflowing dims, duplicates, offsets past the end), then load
// each in a child process so that a crash fails one batch, with the file that did it.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  GgmlType, KV_COUNT_AT, Rng, TENSOR_COUNT_AT, encodeGguf, encodeGgufHeader, meta,
  type GgufMetaValue, type GgufSpec,
} from "../models/gguf-writer.js";
import { loadInChild } from "./helpers/gguf-batch.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-11-corrupt-"));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BATCH = 100;
const U64_MAX = 2n ** 64n - 1n;

// ── the valid file everything starts from ──────────────────────────────────────────────────

type Metadata = Array<[string, GgufMetaValue]>;
const baseMetadata = (): Metadata => [
  ["general.architecture", meta.string("llama")],
  ["general.name", meta.string("corrupt-base")],
  ["llama.block_count", meta.u32(1)],
  ["t.f32", meta.f32(0.5)],
  ["t.arr.i32", meta.array("i32", [1, 2, 3, 4])],
  ["tokenizer.ggml.tokens", meta.array("string", ["<unk>", "<s>", "</s>", "a"])],
  ["t.u64", meta.u64(7)],
  ["t.bool", meta.bool(true)], // last: read as a tensor info, its type (7) is an absurd n_dims
];
// Offsets 0, 32, 96, 192: the second is not a multiple of 64 (for the alignment cases).
const baseSpec = (metadata: Metadata = baseMetadata()): GgufSpec => ({
  metadata,
  tensors: [
    { name: "a", type: GgmlType.F32, dims: [8], data: "random" },
    { name: "b", type: GgmlType.Q4_0, dims: [32, 3], data: "random" },
    { name: "c", type: GgmlType.Q8_0, dims: [64, 1], data: "random" },
    { name: "d", type: GgmlType.F16, dims: [16, 2], data: "random" }, // ends exactly at the end of the file
  ],
});

interface Case { name: string; bytes: Buffer }

function patched(base: Buffer, at: number, write: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(base);
  write(copy.subarray(at));
  return copy;
}
const u32At = (base: Buffer, at: number, v: number) => patched(base, at, (b) => b.writeUInt32LE(v >>> 0, 0));
const u64At = (base: Buffer, at: number, v: bigint) => patched(base, at, (b) => b.writeBigUInt64LE(BigInt.asUintN(64, v), 0));

// ── files that must be rejected ────────────────────────────────────────────────────────────

async function invalidCases(): Promise<Case[]> {
  const { bytes: base, layout } = await encodeGguf(baseSpec(), { seed: 11 });
  const size = BigInt(base.length);
  const rng = new Rng(1234);
  const cases: Case[] = [];
  const add = (name: string, bytes: Buffer) => cases.push({ name, bytes });

  // truncated at every byte of the header, and at random points in the data
  for (let n = 0; n <= layout.dataOffset; n++) add(`truncated-at-${n}`, base.subarray(0, n));
  for (let i = 0; i < 40; i++) {
    const n = layout.dataOffset + 1 + (rng.nextU32() % (base.length - layout.dataOffset - 1));
    add(`truncated-in-data-at-${n}`, base.subarray(0, n));
  }

  for (const m of [0, 0x4c4d4747 /* GGML */, 0x66757567 /* gguf */, 0x47475546, rng.nextU32() | 1])
    add(`magic-${m.toString(16)}`, u32At(base, 0, m));
  for (const v of [0, 1, 4, 5, 256, 0x03000000, 0xffffffff]) add(`version-${v}`, u32At(base, 4, v));

  const absurd = [2n ** 63n, U64_MAX, 2n ** 40n, 2n ** 32n, size];
  for (const n of [...absurd, 5n, 6n, 1004n]) add(`tensor-count-${n}`, u64At(base, TENSOR_COUNT_AT, n));
  for (const n of [...absurd, 7n /* one less */, 9n, 13n]) add(`kv-count-${n}`, u64At(base, KV_COUNT_AT, n));

  for (const kv of layout.metadata) {
    for (const n of [0n, 2n ** 30n + 1n, ...absurd]) add(`key-length-${n}-${kv.key}`, u64At(base, kv.at, n));
    for (const t of [13, 14, 100, 0x80000000, 0xffffffff]) add(`value-type-${t}-${kv.key}`, u32At(base, kv.typeAt, t));
  }
  for (const kv of layout.metadata.filter((k) => k.key.startsWith("general."))) // string values
    for (const n of [2n ** 40n, 2n ** 63n, U64_MAX, size]) add(`string-length-${n}-${kv.key}`, u64At(base, kv.valueAt, n));
  for (const kv of layout.metadata.filter((k) => k.key.includes(".arr.") || k.key === "tokenizer.ggml.tokens")) {
    for (const t of [9 /* nested */, 13, 255, 0xffffffff]) add(`array-type-${t}-${kv.key}`, u32At(base, kv.valueAt, t));
    for (const n of [2n ** 61n, 2n ** 62n, ...absurd]) add(`array-count-${n}-${kv.key}`, u64At(base, kv.valueAt + 4, n));
  }

  for (const ti of layout.tensors) {
    for (const n of [0n, ...absurd]) add(`name-length-${n}-${ti.name}`, u64At(base, ti.at, n));
    for (const n of [0, 5, 8, 0x80000000, 0xffffffff]) add(`n-dims-${n}-${ti.name}`, u32At(base, ti.nDimsAt, n));
    for (const n of [0n, 2n ** 41n, 2n ** 63n, U64_MAX]) add(`dim0-${n}-${ti.name}`, u64At(base, ti.dimsAt, n));
    if (ti.dims.length > 1) {
      for (const n of [0n, 2n ** 41n, U64_MAX]) add(`dim1-${n}-${ti.name}`, u64At(base, ti.dimsAt + 8, n));
      // each dimension plausible, the product not: 2^32·2^32 overflows u64, 2^40·2^20 is over 2^48
      add(`dims-product-overflows-${ti.name}`, u64At(u64At(base, ti.dimsAt, 2n ** 32n), ti.dimsAt + 8, 2n ** 32n));
      add(`dims-product-huge-${ti.name}`, u64At(u64At(base, ti.dimsAt, 2n ** 40n), ti.dimsAt + 8, 2n ** 20n));
    }
    if (ti.type === GgmlType.Q4_0 || ti.type === GgmlType.Q8_0)
      for (const n of [16n, 33n, 48n]) add(`row-not-whole-blocks-${n}-${ti.name}`, u64At(base, ti.dimsAt, n));
    for (const t of [4, 5, 40, 64, 1000, 0xffff, 0xffffffff]) add(`tensor-type-${t}-${ti.name}`, u32At(base, ti.typeAt, t));
    const dataBytes = base.length - layout.dataOffset;
    const pastEnd = BigInt(Math.ceil(dataBytes / 32) * 32);
    for (const o of [pastEnd, pastEnd + 32n * 1000n, 2n ** 63n, U64_MAX - 31n /* aligned, overflows */, U64_MAX, BigInt(ti.offset + 1), BigInt(ti.offset + 16)])
      add(`offset-${o}-${ti.name}`, u64At(base, ti.offsetAt, o));
  }
  // the last tensor grown or moved so that it overlaps the end of the file
  const last = layout.tensors[layout.tensors.length - 1]!;
  add(`last-tensor-one-row-more`, u64At(base, last.dimsAt + 8, BigInt(last.dims[1]! + 1)));
  add(`last-tensor-moved-one-alignment`, u64At(base, last.offsetAt, BigInt(last.offset + 32)));
  add(`trailing-byte-missing`, base.subarray(0, base.length - 1));

  // whole-spec variants, re-encoded so that everything else stays consistent
  const encoded = async (name: string, spec: GgufSpec) => add(name, (await encodeGguf(spec, { seed: 11 })).bytes);
  const alignments: Array<[string, GgufMetaValue]> = [
    ["u32-0", meta.u32(0)], ["u32-3", meta.u32(3)], ["u32-7", meta.u32(7)], ["u32-48", meta.u32(48)],
    ["u32-100", meta.u32(100)], ["u32-2^21", meta.u32(2 ** 21)], ["u32-2^31", meta.u32(2 ** 31)],
    ["i32-minus-32", meta.i32(-32)], ["u64-2^63", meta.u64(2n ** 63n)], ["u64-2^32+32", meta.u64(2n ** 32n + 32n)],
    ["u32-64-misaligned-offsets", meta.u32(64)], ["u32-128-misaligned-offsets", meta.u32(128)],
    ["string", meta.string("32")], ["f32", meta.f32(32)], ["f64", meta.f64(32)], ["bool", meta.bool(true)],
    ["array", meta.array("u32", [32])],
  ];
  for (const [what, value] of alignments)
    await encoded(`alignment-${what}`, { ...baseSpec([...baseMetadata(), ["general.alignment", value]]), alignment: 32 });
  for (const dup of ["general.name", "t.bool"])
    await encoded(`duplicate-key-${dup}`, baseSpec([...baseMetadata(), [dup, meta.string("again")]]));
  await encoded("empty-key", baseSpec([...baseMetadata(), ["", meta.u32(1)]]));
  for (const dup of ["a", "d"]) {
    const spec = baseSpec();
    await encoded(`duplicate-tensor-${dup}`, { ...spec, tensors: [...spec.tensors, { ...spec.tensors[0]!, name: dup }] });
  }
  const spec = baseSpec();
  await encoded("empty-tensor-name", { ...spec, tensors: [...spec.tensors, { name: "", type: GgmlType.F32, dims: [4], data: "random" }] });
  await encoded("version-1", { ...baseSpec(), version: 1 });
  return cases;
}

// ── running batches ────────────────────────────────────────────────────────────────────────

async function writeCases(dir: string, cases: Case[]): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  return cases.map((c, i) => {
    const file = path.join(dir, `${String(i).padStart(4, "0")}-${c.name}.gguf`);
    fs.writeFileSync(file, c.bytes);
    return file;
  });
}

/** Loads every file in child-process batches, two at a time; returns the problems found. */
async function loadAll(dir: string, files: string[], check: (r: import("./helpers/gguf-batch-child.js").BatchResult) => string | undefined) {
  const problems: string[] = [];
  const batches: string[][] = [];
  for (let i = 0; i < files.length; i += BATCH) batches.push(files.slice(i, i + BATCH));
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const index = next++;
      const outcome = await loadInChild(batches[index]!, path.join(dir, `batch-${index}.json`));
      for (const r of outcome.results) {
        const problem = check(r);
        if (problem) problems.push(`${path.basename(r.file)}: ${problem}`);
      }
      if (outcome.crash) {
        const c = outcome.crash;
        problems.push(`CRASH on ${c.file ? path.basename(c.file) : "?"} (exit ${c.code}, signal ${c.signal}): ${c.stderr.trim().slice(-500)}`);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  return problems;
}

const namesTheFile = (r: { file: string; message?: string }) => !!r.message && r.message.includes(r.file);

test("500+ corrupted files: each one a JavaScript Error naming the file, never a crash", async (t) => {
  const cases = await invalidCases();
  t.true(cases.length >= 500, `${cases.length} cases`);
  const dir = path.join(tmp, "invalid");
  const files = await writeCases(dir, cases);
  const problems = await loadAll(dir, files, (r) => {
    if (r.ok) return "loaded without an error";
    if (r.errorName !== "Error") return `threw ${r.errorName}, not Error: ${r.message}`;
    if (!namesTheFile(r)) return `message does not name the file: ${r.message}`;
    return undefined;
  });
  t.log(`${cases.length} corrupted files checked`);
  t.deepEqual(problems, []);
});

test("random header bytes: never a crash; an Error names the file, a file that loads keeps its tensors inside it", async (t) => {
  const { bytes: base, layout } = await encodeGguf(baseSpec(), { seed: 11 });
  const rng = new Rng(99);
  const cases: Case[] = [];
  for (let i = 0; i < 400; i++) {
    const copy = Buffer.from(base);
    const flips = 1 + (rng.nextU32() % 6);
    for (let f = 0; f < flips; f++) copy[rng.nextU32() % layout.dataOffset] = rng.nextU32() & 0xff;
    cases.push({ name: `random-${i}`, bytes: copy });
  }
  const dir = path.join(tmp, "random");
  const files = await writeCases(dir, cases);
  let loaded = 0;
  const problems = await loadAll(dir, files, (r) => {
    if (!r.ok) return r.errorName === "Error" && namesTheFile(r) ? undefined : `${r.errorName}: ${r.message}`;
    loaded++;
    return r.tensorEnds!.every((end) => end <= r.fileSize!) ? undefined : `tensor past the end: ${r.tensorEnds}`;
  });
  t.log(`${cases.length} mutated files, ${loaded} still valid`);
  t.deepEqual(problems, []);
});

// ── huge claims: a few header bytes must not buy gigabytes of memory ───────────────────────

/** A sparse file: the given header, then zeros (a hole) up to `size` bytes. */
function sparseFile(file: string, header: Buffer, size: number): string {
  const fd = fs.openSync(file, "w");
  try {
    fs.writeSync(fd, header, 0, header.length, 0);
    fs.ftruncateSync(fd, size);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

function headerWithCounts(tensorCount: bigint, kvCount: bigint, metadata: Metadata = []): Buffer {
  const { header } = encodeGgufHeader({ metadata, tensors: [] });
  header.writeBigUInt64LE(tensorCount, TENSOR_COUNT_AT);
  header.writeBigUInt64LE(kvCount, KV_COUNT_AT);
  return header;
}

test("huge claims in huge sparse files fail fast, naming the file, in bounded memory", async (t) => {
  const dir = path.join(tmp, "huge");
  fs.mkdirSync(dir);
  const GiB = 2 ** 30;
  // A string array claims 2^28 elements; the zeros after it read as 2^28 empty strings.
  const tokens: Metadata = [["tokenizer.ggml.tokens", meta.array("string", [])]];
  const { header: tokHeader, layout: tokLayout } = encodeGgufHeader({ metadata: tokens, tensors: [] });
  const countAt = tokLayout.metadata[0]!.valueAt + 4;
  tokHeader.writeBigUInt64LE(2n ** 28n, countAt);
  // A string value of 768 MiB: valid for the reader (a view), but over what V8 can hold.
  const { header: nameHeader, layout: nameLayout } = encodeGgufHeader({ metadata: [["general.name", meta.string("")]], tensors: [] });
  const lengthAt = nameLayout.metadata[0]!.valueAt;
  nameHeader.writeBigUInt64LE(768n * 2n ** 20n, lengthAt);
  const files = [
    sparseFile(path.join(dir, "768MiB-string-in-1GiB.gguf"), nameHeader.subarray(0, lengthAt + 8), GiB),
    sparseFile(path.join(dir, "kv-count-2^32-in-64GiB.gguf"), headerWithCounts(0n, 2n ** 32n), 64 * GiB),
    sparseFile(path.join(dir, "tensor-count-2^30-in-64GiB.gguf"), headerWithCounts(2n ** 30n, 0n), 64 * GiB),
    sparseFile(path.join(dir, "2^28-empty-strings-in-2GiB.gguf"), tokHeader.subarray(0, countAt + 8), 2 * GiB),
  ];
  const started = Date.now();
  const outcome = await loadInChild(files, path.join(dir, "batch.json"));
  t.log(`${Date.now() - started} ms, peak RSS of the child ${((outcome.peakRss ?? 0) / 2 ** 20).toFixed(0)} MiB`);
  t.is(outcome.crash, undefined, JSON.stringify(outcome.crash));
  for (const r of outcome.results) {
    t.false(r.ok, `${r.file} loaded`);
    t.true(namesTheFile(r), `${path.basename(r.file)}: ${r.message}`);
  }
  t.true((outcome.peakRss ?? Infinity) < 256 * 2 ** 20, `peak RSS ${outcome.peakRss}`);
});
