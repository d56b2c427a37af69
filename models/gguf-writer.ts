// GGUF v3 (and v2) writer, little-endian. Used for synthetic models (tests, benchmarks) and
// for corrupted files that prove the reader never crashes.
//
// File layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
//   "GGUF" u32 version | u64 tensor_count | u64 kv_count
//   kv_count × (string key, u32 value_type, value)
//   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
//   zero padding to `alignment`, then the data section; every tensor offset (relative to the
//   data section) is a multiple of `alignment`.
// Strings are u64 length + UTF-8 bytes (no terminator); arrays are u32 element type, u64
// count, elements.
//
// The header is built in memory (a 32000-token vocabulary is well under a megabyte); tensor
// data is streamed in chunks or left as a hole, so a 7B file never exists as a buffer.
import fs from "node:fs/promises";

// ── value types ────────────────────────────────────────────────────────────────────────────

/** GGUF metadata value type ids, as stored in the file. */
export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

export type GgufScalarTypeName =
  | "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "bool" | "string" | "u64" | "i64" | "f64";

const SCALAR_IDS: Record<GgufScalarTypeName, GgufValueType> = {
  u8: GgufValueType.UINT8, i8: GgufValueType.INT8, u16: GgufValueType.UINT16,
  i16: GgufValueType.INT16, u32: GgufValueType.UINT32, i32: GgufValueType.INT32,
  f32: GgufValueType.FLOAT32, bool: GgufValueType.BOOL, string: GgufValueType.STRING,
  u64: GgufValueType.UINT64, i64: GgufValueType.INT64, f64: GgufValueType.FLOAT64,
};

type ScalarJs = number | bigint | boolean | string;

/** One metadata value: a typed scalar or a typed array (arrays of arrays are not used by llama). */
export type GgufMetaValue =
  | { type: GgufScalarTypeName; value: ScalarJs }
  | { type: "array"; of: GgufScalarTypeName; values: readonly ScalarJs[] };

/** Constructors that keep the value type explicit (a JS number says nothing about u32 vs f32). */
export const meta = {
  u8: (value: number): GgufMetaValue => ({ type: "u8", value }),
  i8: (value: number): GgufMetaValue => ({ type: "i8", value }),
  u16: (value: number): GgufMetaValue => ({ type: "u16", value }),
  i16: (value: number): GgufMetaValue => ({ type: "i16", value }),
  u32: (value: number): GgufMetaValue => ({ type: "u32", value }),
  i32: (value: number): GgufMetaValue => ({ type: "i32", value }),
  u64: (value: number | bigint): GgufMetaValue => ({ type: "u64", value }),
  i64: (value: number | bigint): GgufMetaValue => ({ type: "i64", value }),
  f32: (value: number): GgufMetaValue => ({ type: "f32", value }),
  f64: (value: number): GgufMetaValue => ({ type: "f64", value }),
  bool: (value: boolean): GgufMetaValue => ({ type: "bool", value }),
  string: (value: string): GgufMetaValue => ({ type: "string", value }),
  array: (of: GgufScalarTypeName, values: readonly ScalarJs[]): GgufMetaValue => ({ type: "array", of, values }),
};

// ── tensor types ───────────────────────────────────────────────────────────────────────────

/** ggml tensor type ids (ggml.h), as stored in the file. */
export enum GgmlType {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
}

interface GgmlTypeInfo {
  name: string;        // lower-case, as on the command line: "q4_0"
  blockSize: number;   // elements per block
  blockBytes: number;  // bytes per block
  // Random fill: fp16 scale fields inside a block (byte offset) and what to divide a
  // N(0, 0.02) weight by to get a scale of realistic size (≈ 1 / the largest quant level).
  scales?: { offsets: number[]; divisor: number };
}

// Block layouts are ggml-common.h's.
const TYPES = new Map<number, GgmlTypeInfo>([
  [GgmlType.F32, { name: "f32", blockSize: 1, blockBytes: 4 }],
  [GgmlType.F16, { name: "f16", blockSize: 1, blockBytes: 2 }],
  [GgmlType.BF16, { name: "bf16", blockSize: 1, blockBytes: 2 }],
  [GgmlType.Q4_0, { name: "q4_0", blockSize: 32, blockBytes: 18, scales: { offsets: [0], divisor: 8 } }],
  [GgmlType.Q4_1, { name: "q4_1", blockSize: 32, blockBytes: 20, scales: { offsets: [0, 2], divisor: 16 } }],
  [GgmlType.Q5_0, { name: "q5_0", blockSize: 32, blockBytes: 22, scales: { offsets: [0], divisor: 16 } }],
  [GgmlType.Q5_1, { name: "q5_1", blockSize: 32, blockBytes: 24, scales: { offsets: [0, 2], divisor: 32 } }],
  [GgmlType.Q8_0, { name: "q8_0", blockSize: 32, blockBytes: 34, scales: { offsets: [0], divisor: 127 } }],
  [GgmlType.Q8_1, { name: "q8_1", blockSize: 32, blockBytes: 36 }],
  [GgmlType.Q2_K, { name: "q2_k", blockSize: 256, blockBytes: 84, scales: { offsets: [80, 82], divisor: 3 * 8 } }],
  [GgmlType.Q3_K, { name: "q3_k", blockSize: 256, blockBytes: 110, scales: { offsets: [108], divisor: 4 * 16 } }],
  [GgmlType.Q4_K, { name: "q4_k", blockSize: 256, blockBytes: 144, scales: { offsets: [0, 2], divisor: 15 * 32 } }],
  [GgmlType.Q5_K, { name: "q5_k", blockSize: 256, blockBytes: 176, scales: { offsets: [0, 2], divisor: 31 * 32 } }],
  [GgmlType.Q6_K, { name: "q6_k", blockSize: 256, blockBytes: 210, scales: { offsets: [208], divisor: 32 * 64 } }],
  [GgmlType.Q8_K, { name: "q8_k", blockSize: 256, blockBytes: 292 }],
  [GgmlType.I8, { name: "i8", blockSize: 1, blockBytes: 1 }],
  [GgmlType.I16, { name: "i16", blockSize: 1, blockBytes: 2 }],
  [GgmlType.I32, { name: "i32", blockSize: 1, blockBytes: 4 }],
  [GgmlType.I64, { name: "i64", blockSize: 1, blockBytes: 8 }],
  [GgmlType.F64, { name: "f64", blockSize: 1, blockBytes: 8 }],
]);

export function ggmlTypeInfo(type: number): GgmlTypeInfo {
  const info = TYPES.get(type);
  if (!info) throw new Error(`unknown ggml type ${type}`);
  return info;
}

/** "q4_0" → GgmlType.Q4_0 (case-insensitive). */
export function ggmlTypeFromName(name: string): GgmlType {
  for (const [id, info] of TYPES) if (info.name === name.toLowerCase()) return id as GgmlType;
  throw new Error(`unknown tensor type "${name}" (known: ${[...TYPES.values()].map((t) => t.name).join(", ")})`);
}

/** Bytes of a tensor of `type` with dimensions `dims` (ne[0] first, a multiple of the block size). */
export function tensorBytes(type: number, dims: readonly number[]): number {
  const info = ggmlTypeInfo(type);
  const ne0 = dims[0] ?? 1;
  if (ne0 % info.blockSize !== 0)
    throw new Error(`row length ${ne0} is not a multiple of the ${info.name} block size ${info.blockSize}`);
  let rows = 1;
  for (const d of dims.slice(1)) rows *= d;
  return (ne0 / info.blockSize) * info.blockBytes * rows;
}

// ── file description ───────────────────────────────────────────────────────────────────────

/**
 * How a tensor's bytes are produced:
 * - a buffer: written as is (its length must be the tensor size);
 * - "zero": left as a hole (sparse, no disk);
 * - "ones": 1.0 in every element (F32/F16/BF16 only; norms);
 * - "random": random bytes with valid, small block scales (see fillRandom).
 */
export type TensorFill = Uint8Array | "zero" | "ones" | "random";

export interface GgufTensorSpec {
  name: string;
  type: GgmlType | number;
  dims: readonly number[]; // ne[0] (the row length) first
  data?: TensorFill; // default "zero"
}

export interface GgufSpec {
  version?: number; // 3 unless told (2 has the same layout)
  /** Alignment used for the layout; defaults to metadata general.alignment, else 32. */
  alignment?: number;
  /** Ordered key/value pairs. general.alignment is added when the alignment is not 32. */
  metadata: ReadonlyArray<readonly [string, GgufMetaValue]>;
  tensors: readonly GgufTensorSpec[];
}

/** Where each field sits in the file: lets tests corrupt exactly one field. */
export interface GgufLayout {
  version: number;
  alignment: number;
  headerBytes: number; // end of the tensor infos (before padding)
  dataOffset: number;  // start of the data section
  fileSize: number;
  metadata: Array<{ key: string; at: number; typeAt: number; valueAt: number; end: number }>;
  tensors: Array<{
    name: string; type: number; dims: number[]; offset: number; nbytes: number;
    at: number; nDimsAt: number; dimsAt: number; typeAt: number; offsetAt: number;
  }>;
}

export const TENSOR_COUNT_AT = 8;
export const KV_COUNT_AT = 16;

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

// ── header encoding ────────────────────────────────────────────────────────────────────────

/** Growable little-endian byte sink. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number) { this.reserve(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number) { this.reserve(1); this.buf.writeInt8(v, this.length); this.length += 1; }
  u16(v: number) { this.reserve(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number) { this.reserve(2); this.buf.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number) { this.reserve(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number) { this.reserve(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  u64(v: number | bigint) { this.reserve(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint) { this.reserve(8); this.buf.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  f32(v: number) { this.reserve(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number) { this.reserve(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  bytes(b: Uint8Array) { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  string(s: string) { const b = Buffer.from(s, "utf8"); this.u64(b.length); this.bytes(b); }
  zeros(n: number) { this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  take(): Buffer { return this.buf.subarray(0, this.length); }
}

function writeScalar(out: ByteSink, type: GgufScalarTypeName, v: ScalarJs, key: string): void {
  const num = () => {
    if (typeof v !== "number") throw new TypeError(`${key}: ${type} value must be a number`);
    return v;
  };
  switch (type) {
    case "u8": return out.u8(num());
    case "i8": return out.i8(num());
    case "u16": return out.u16(num());
    case "i16": return out.i16(num());
    case "u32": return out.u32(num());
    case "i32": return out.i32(num());
    case "f32": return out.f32(num());
    case "f64": return out.f64(num());
    case "u64":
    case "i64":
      if (typeof v !== "number" && typeof v !== "bigint") throw new TypeError(`${key}: ${type} value must be a number or bigint`);
      return type === "u64" ? out.u64(v) : out.i64(v);
    case "bool":
      if (typeof v !== "boolean") throw new TypeError(`${key}: bool value must be a boolean`);
      return out.u8(v ? 1 : 0);
    case "string":
      if (typeof v !== "string") throw new TypeError(`${key}: string value must be a string`);
      return out.string(v);
  }
}

function resolveAlignment(spec: GgufSpec): number {
  if (spec.alignment !== undefined) return spec.alignment;
  const entry = spec.metadata.find(([k]) => k === "general.alignment");
  if (entry && entry[1].type !== "array" && typeof entry[1].value === "number") return entry[1].value;
  return 32;
}

/** The header (metadata + tensor infos + padding) and where everything sits. */
export function encodeGgufHeader(spec: GgufSpec): { header: Buffer; layout: GgufLayout } {
  const version = spec.version ?? 3;
  const alignment = resolveAlignment(spec);
  if (!Number.isInteger(alignment) || alignment <= 0) throw new Error(`alignment ${alignment} must be a positive integer`);
  const metadata = [...spec.metadata];
  if (alignment !== 32 && !metadata.some(([k]) => k === "general.alignment"))
    metadata.push(["general.alignment", meta.u32(alignment)]);

  const out = new ByteSink();
  out.u32(0x46554747); // "GGUF"
  out.u32(version);
  out.u64(spec.tensors.length);
  out.u64(metadata.length);

  const layout: GgufLayout = { version, alignment, headerBytes: 0, dataOffset: 0, fileSize: 0, metadata: [], tensors: [] };
  for (const [key, value] of metadata) {
    const at = out.length;
    out.string(key);
    const typeAt = out.length;
    if (value.type === "array") {
      out.u32(GgufValueType.ARRAY);
      const valueAt = out.length;
      out.u32(SCALAR_IDS[value.of]);
      out.u64(value.values.length);
      for (const v of value.values) writeScalar(out, value.of, v, key);
      layout.metadata.push({ key, at, typeAt, valueAt, end: out.length });
    } else {
      out.u32(SCALAR_IDS[value.type]);
      const valueAt = out.length;
      writeScalar(out, value.type, value.value, key);
      layout.metadata.push({ key, at, typeAt, valueAt, end: out.length });
    }
  }

  let offset = 0;
  for (const t of spec.tensors) {
    const nbytes = tensorBytes(t.type, t.dims);
    const at = out.length;
    out.string(t.name);
    const nDimsAt = out.length;
    out.u32(t.dims.length);
    const dimsAt = out.length;
    for (const d of t.dims) out.u64(d);
    const typeAt = out.length;
    out.u32(t.type);
    const offsetAt = out.length;
    out.u64(offset);
    layout.tensors.push({ name: t.name, type: t.type, dims: [...t.dims], offset, nbytes, at, nDimsAt, dimsAt, typeAt, offsetAt });
    offset = alignUp(offset + nbytes, alignment);
  }
  layout.headerBytes = out.length;
  layout.dataOffset = alignUp(out.length, alignment);
  out.zeros(layout.dataOffset - out.length);
  const last = layout.tensors[layout.tensors.length - 1];
  // No padding after the last tensor: llama.cpp does not write any either.
  layout.fileSize = layout.dataOffset + (last ? last.offset + last.nbytes : 0);
  return { header: out.take(), layout };
}

// ── random fill ────────────────────────────────────────────────────────────────────────────

/** xoshiro128**: seeded, so a benchmark file is the same bytes every time. */
export class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    // splitmix32 expands the seed so that seeds 0, 1, 2 … give unrelated streams
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }
  /** Uniform in (0, 1). */
  nextFloat(): number { return (this.nextU32() + 0.5) / 4294967296; }
  /** Standard normal (Box–Muller). */
  nextNormal(): number { return Math.sqrt(-2 * Math.log(this.nextFloat())) * Math.cos(2 * Math.PI * this.nextFloat()); }
  fill(words: Uint32Array): void { for (let i = 0; i < words.length; i++) words[i] = this.nextU32(); }
}
const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** fp32 → IEEE half, round to nearest even (what F16C does). */
export function fp32ToFp16(f: number): number {
  f32Scratch[0] = f;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) { // subnormal half (or zero)
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // may carry into the exponent: correct
  return sign | half;
}

const SMALLEST_NORMAL_F16 = 2 ** -14;
const WEIGHT_STD = 0.02; // the initialisation scale of LLaMA weights

/**
 * 4096 samples of a block scale for one type: ±|N(0, 0.02)| / divisor as fp16, never zero,
 * subnormal, inf or NaN. Indexing a table with random bits is far cheaper than a Box–Muller
 * per block, and the blocks stay just as varied.
 */
function scaleTable(rng: Rng, divisor: number): Uint16Array {
  const table = new Uint16Array(4096);
  for (let i = 0; i < table.length; i++) {
    let s = (WEIGHT_STD * rng.nextNormal()) / divisor;
    if (Math.abs(s) < SMALLEST_NORMAL_F16) s = s < 0 ? -SMALLEST_NORMAL_F16 : SMALLEST_NORMAL_F16;
    table[i] = fp32ToFp16(s);
  }
  return table;
}

/** Fills `out` (a whole number of blocks of `type`) with random weights of realistic size. */
function makeRandomFiller(type: number, rng: Rng): (out: Uint8Array) => void {
  const info = ggmlTypeInfo(type);
  if (type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16) {
    const normals = new Float32Array(4096);
    for (let i = 0; i < normals.length; i++) normals[i] = WEIGHT_STD * rng.nextNormal();
    const halves = Uint16Array.from(normals, fp32ToFp16);
    const bf16s = Uint16Array.from(normals, (v) => { f32Scratch[0] = v; return u32Scratch[0]! >>> 16; });
    return (out) => {
      const words = new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2);
      rng.fill(words);
      if (type === GgmlType.F32) {
        const f = new Float32Array(out.buffer, out.byteOffset, out.byteLength >>> 2);
        for (let i = 0; i < f.length; i++) f[i] = normals[words[i]! & 4095]!;
      } else {
        const h = new Uint16Array(out.buffer, out.byteOffset, out.byteLength >>> 1);
        const table = type === GgmlType.F16 ? halves : bf16s;
        for (let i = 0; i < h.length; i++) h[i] = table[h[i]! & 4095]!;
      }
    };
  }
  if (type === GgmlType.I8 || type === GgmlType.I16 || type === GgmlType.I32 || type === GgmlType.I64) {
    return (out) => rng.fill(new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2));
  }
  if (!info.scales) throw new Error(`random fill is not supported for ${info.name}`);
  const { offsets, divisor } = info.scales;
  const table = scaleTable(rng, divisor);
  const step = info.blockBytes;
  return (out) => {
    // out comes from an ArrayBuffer of its own, so its words are aligned
    rng.fill(new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2));
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let b = 0; b + step <= out.byteLength; b += step)
      for (const o of offsets) view.setUint16(b + o, table[view.getUint16(b + o, true) & 4095]!, true);
  };
}

function fillOnes(type: number, out: Uint8Array): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (type === GgmlType.F32) for (let i = 0; i < out.byteLength; i += 4) view.setFloat32(i, 1, true);
  else if (type === GgmlType.F16) for (let i = 0; i < out.byteLength; i += 2) view.setUint16(i, 0x3c00, true);
  else if (type === GgmlType.BF16) for (let i = 0; i < out.byteLength; i += 2) view.setUint16(i, 0x3f80, true);
  else throw new Error(`"ones" fill needs f32, f16 or bf16, not ${ggmlTypeInfo(type).name}`);
}

// ── writing ────────────────────────────────────────────────────────────────────────────────

export interface WriteOptions {
  seed?: number;        // random fill seed (default 1)
  chunkBytes?: number;  // streaming chunk size (default 4 MiB)
}

/**
 * Calls `sink(position, bytes)` for every byte range that is not a hole, in file order.
 * Shared by the streaming writer and the in-memory encoder.
 */
async function produceData(
  spec: GgufSpec, layout: GgufLayout, options: WriteOptions,
  sink: (position: number, bytes: Uint8Array) => Promise<void> | void,
): Promise<void> {
  const rng = new Rng(options.seed ?? 1);
  const chunkTarget = options.chunkBytes ?? 4 << 20;
  for (let i = 0; i < spec.tensors.length; i++) {
    const t = spec.tensors[i]!;
    const where = layout.tensors[i]!;
    const start = layout.dataOffset + where.offset;
    const data = t.data ?? "zero";
    if (data === "zero") continue;
    if (data instanceof Uint8Array) {
      if (data.length !== where.nbytes) throw new Error(`${t.name}: data is ${data.length} bytes, the tensor ${where.nbytes}`);
      await sink(start, data);
      continue;
    }
    const info = ggmlTypeInfo(t.type);
    // A whole number of blocks (and of 4-byte words, for the word-wise fill) per chunk.
    const unit = info.blockBytes % 4 === 0 ? info.blockBytes : info.blockBytes * (info.blockBytes % 2 === 0 ? 2 : 4);
    const chunkBytes = Math.max(unit, Math.floor(chunkTarget / unit) * unit);
    const fill = data === "random" ? makeRandomFiller(t.type, rng) : (out: Uint8Array) => fillOnes(t.type, out);
    const chunk = new Uint8Array(new ArrayBuffer(Math.min(chunkBytes, alignUp(where.nbytes, unit))));
    for (let done = 0; done < where.nbytes; done += chunk.length) {
      fill(chunk);
      await sink(start + done, chunk.subarray(0, Math.min(chunk.length, where.nbytes - done)));
    }
  }
}

/**
 * Writes a GGUF file, streaming tensor data; "zero" tensors (and all padding) stay holes,
 * so a 7B-shaped file of zeros takes no disk. Returns the layout.
 */
export async function writeGguf(path: string, spec: GgufSpec, options: WriteOptions = {}): Promise<GgufLayout> {
  const { header, layout } = encodeGgufHeader(spec);
  const file = await fs.open(path, "w");
  try {
    await file.write(header, 0, header.length, 0);
    await produceData(spec, layout, options, async (position, bytes) => {
      await file.write(bytes, 0, bytes.length, position);
    });
    await file.truncate(layout.fileSize);
  } finally {
    await file.close();
  }
  return layout;
}

/** The whole file in memory: for small files that tests then cut up and corrupt. */
export async function encodeGguf(spec: GgufSpec, options: WriteOptions = {}): Promise<{ bytes: Buffer; layout: GgufLayout }> {
  const { header, layout } = encodeGgufHeader(spec);
  if (layout.fileSize > 256 << 20) throw new Error(`encodeGguf is for small files; this one is ${layout.fileSize} bytes: use writeGguf`);
  const bytes = Buffer.alloc(layout.fileSize);
  header.copy(bytes, 0);
  await produceData(spec, layout, options, (position, chunk) => { bytes.set(chunk, position); });
  return { bytes, layout };
}
