// alpaca quantize: F32/F16/BF16 GGUF → Q4_0 or Q8_0, following llama.cpp's `llama-quantize --pure`
// so that the result is the file llama.cpp would write (tensor data, metadata and layout).
//
// The rule (llama.cpp src/llama-quant.cpp, tensor_allows_quantization + tensor_type_fallback):
//   - only tensors with ≥ 2 dimensions (trailing 1s do not count) whose name ends in "weight"
//     and is not a norm ("_norm.weight"), an expert router ("ffn_gate_inp.weight"), a position or
//     token-type embedding, or one of the small special weights listed in NOT_QUANTIZED, are
//     quantized; everything else keeps its type and bytes;
//   - --pure: every quantized tensor gets the requested type, token_embd and output included;
//   - a row length (ne[0]) that is not a multiple of the 32-element block falls back to F16;
//   - a tensor already in its target type is copied as is;
//   - metadata is copied in order; general.quantization_version (2) and general.file_type are
//     removed and appended at the end (gguf_set_val_u32 does remove + append); split keys dropped;
//   - tensors are written in llama.cpp's weight order: tensors outside a layer first, by name,
//     then by layer number, by name within a layer;
//   - every tensor, the last one included, is followed by zero padding to the alignment.
//
// Streaming: the header is read and written whole (it is at most a few MB, the vocabulary); each
// tensor is read, converted and written in bounded slices of rows, so a 7B F16 file is never in
// memory.
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { UserError } from "../daemon/errors.js";
import { TensorType, tensorTypeName, tensorTypes, type TensorTypeInfo } from "../daemon/engine/tensor-types.js";

export type QuantizeTarget = "q4_0" | "q8_0";

const TARGETS: Record<QuantizeTarget, { type: number; fileType: number }> = {
  // general.file_type values are llama.h's llama_ftype: MOSTLY_Q4_0 = 2, MOSTLY_Q8_0 = 7
  q4_0: { type: TensorType.Q4_0, fileType: 2 },
  q8_0: { type: TensorType.Q8_0, fileType: 7 },
};
export const QUANTIZE_TARGETS = Object.keys(TARGETS) as QuantizeTarget[];

/**
 * Why `--type q4_K` and `q6_K` are not offered (docs/models.md): what this command writes must be
 * byte-identical to llama.cpp's file, checked against one. llama.cpp chooses a K-quant's scales by
 * an iterative float search (make_qkx2_quants for Q4_K, make_qx_quants for Q6_K) whose every
 * rounding a file would have to repeat, and rows not a multiple of 256 fall back to Q5_0 (Q4_K) and
 * Q8_0 (Q6_K); the only pure reference files at hand are stories260K's, whose rows (64 and 172
 * wide) all fall back, so no test could show a single K block to match.
 */
export const K_QUANT_NOT_OFFERED =
  "llama.cpp picks K-quant scales by an iterative float search (make_qkx2_quants, make_qx_quants) that a " +
  "byte-identical file must repeat rounding for rounding, and no pure llama.cpp q4_K/q6_K file with 256-wide " +
  "rows is at hand to test that against (docs/models.md); use llama-quantize for K-quants";

const GGML_QNT_VERSION = 2;
const BLOCK = 32; // elements per Q4_0 / Q8_0 block

// Name fragments llama.cpp never quantizes (small or precision-critical 2-D weights).
const NOT_QUANTIZED = [
  "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
  "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
  "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
  "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
  "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
  "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
  ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger",
  "a.rvq.codebook", "mm.a.code_embd",
];
const NOT_QUANTIZED_EXACT = ["position_embd.weight", "token_types.weight"];
const SPLIT_KEYS = ["split.no", "split.count", "split.tensors.count"];

// ── reading the header as raw byte ranges ──────────────────────────────────────────────────

/** Element sizes of the scalar GGUF value types (8 = string and 9 = array are variable). */
const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

interface RawKv { key: string; bytes: Buffer } // bytes: the whole entry (key, type, value) as in the file
export interface SourceTensor { name: string; dims: number[]; type: number; offset: number } // offset: in the data section
interface SourceHeader { version: number; kvs: RawKv[]; tensors: SourceTensor[]; alignment: number; dataOffset: number }

/** Reads a file's header through a growing window, so a huge vocabulary costs only its size. */
class HeaderReader {
  private buf = Buffer.alloc(0);
  pos = 0;
  constructor(private readonly fd: number, private readonly file: string, private readonly fileSize: number) {}

  private need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos + n > this.fileSize) throw new UserError(`${this.file}: not a GGUF file (the header runs past the end)`);
    const want = Math.min(this.fileSize, Math.max(this.pos + n, this.buf.length * 2, 1 << 20));
    const next = Buffer.alloc(want);
    this.buf.copy(next);
    fs.readSync(this.fd, next, this.buf.length, want - this.buf.length, this.buf.length);
    this.buf = next;
  }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${this.file}: not a GGUF file (a count of ${v})`);
    return Number(v);
  }
  skip(n: number): void { this.need(n); this.pos += n; }
  string(): string { const n = this.u64(); this.need(n); const s = this.buf.toString("utf8", this.pos, this.pos + n); this.pos += n; return s; }
  slice(from: number, to: number): Buffer { return Buffer.from(this.buf.subarray(from, to)); }
  u32At(at: number): number { return this.buf.readUInt32LE(at); }

  skipValue(type: number): void {
    if (type === 8) return void this.skip(this.u64());
    if (type === 9) {
      const of = this.u32();
      const count = this.u64();
      if (of === 8 || of === 9) for (let i = 0; i < count; i++) this.skipValue(of);
      else if (SCALAR_BYTES[of] !== undefined) this.skip(count * SCALAR_BYTES[of]!);
      else throw new UserError(`${this.file}: not a GGUF file (array of unknown type ${of})`);
      return;
    }
    const size = SCALAR_BYTES[type];
    if (size === undefined) throw new UserError(`${this.file}: not a GGUF file (unknown value type ${type})`);
    this.skip(size);
  }
}

export function readSourceHeader(file: string): SourceHeader {
  const fd = fs.openSync(file, "r");
  try {
    const r = new HeaderReader(fd, file, fs.fstatSync(fd).size);
    if (r.u32() !== 0x46554747) throw new UserError(`${file}: not a GGUF file`);
    const version = r.u32();
    if (version !== 2 && version !== 3) throw new UserError(`${file}: GGUF version ${version} is not supported`);
    const nTensors = r.u64();
    const nKv = r.u64();
    const kvs: RawKv[] = [];
    let alignment = 32;
    for (let i = 0; i < nKv; i++) {
      const start = r.pos;
      const key = r.string();
      const type = r.u32();
      const valueAt = r.pos;
      r.skipValue(type);
      if (key === "general.alignment" && type === 4) alignment = r.u32At(valueAt);
      kvs.push({ key, bytes: r.slice(start, r.pos) });
    }
    const tensors: SourceTensor[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = r.string();
      const nDims = r.u32();
      if (nDims < 1 || nDims > 4) throw new UserError(`${file}: not a GGUF file (${name} has ${nDims} dimensions)`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(r.u64());
      tensors.push({ name, dims, type: r.u32(), offset: r.u64() });
    }
    if (!(alignment > 0 && (alignment & (alignment - 1)) === 0)) throw new UserError(`${file}: general.alignment ${alignment} is not a power of two`);
    return { version, kvs, tensors, alignment, dataOffset: alignUp(r.pos, alignment) };
  } finally {
    fs.closeSync(fd);
  }
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

// ── the rule ───────────────────────────────────────────────────────────────────────────────

/** ggml_n_dims: trailing dimensions of 1 do not count. */
function nDims(dims: readonly number[]): number {
  let n = dims.length;
  while (n > 1 && dims[n - 1] === 1) n--;
  return n;
}

/** Whether llama.cpp quantizes a tensor of this name and shape at all. */
export function allowsQuantization(name: string, dims: readonly number[]): boolean {
  if (nDims(dims) < 2) return false;
  if (!name.endsWith("weight")) return false;
  if (NOT_QUANTIZED.some((s) => name.includes(s))) return false;
  return !NOT_QUANTIZED_EXACT.includes(name);
}

/** The type a tensor gets in the output under the --pure rule. */
export function targetTensorType(t: Pick<SourceTensor, "name" | "dims" | "type">, target: QuantizeTarget): number {
  if (!allowsQuantization(t.name, t.dims)) return t.type;
  return t.dims[0]! % BLOCK === 0 ? TARGETS[target].type : TensorType.F16;
}

/** llama_model_loader's weight order: layer (none = -1 first), then name (byte order). */
function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}
export function llamaWeightOrder(a: string, b: string): number {
  const la = layerOf(a), lb = layerOf(b);
  if (la !== lb) return la - lb;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

// ── writing ────────────────────────────────────────────────────────────────────────────────

/** Bytes of `rows` rows of `n` elements of a type, from the engine's table of GGUF types. */
let typeTable: Map<number, TensorTypeInfo> | undefined;
function bytesOf(type: number, n: number, rows = 1): number {
  typeTable ??= new Map(tensorTypes().types().map((t) => [t.id, t]));
  const info = typeTable.get(type);
  if (!info) throw new UserError(`tensor type ${type} is not a GGUF type this build knows`);
  if (n % info.blockSize !== 0) throw new UserError(`a row of ${n} elements is not a whole number of ${info.name} blocks`);
  return (n / info.blockSize) * info.blockBytes * rows;
}

function u64(n: number): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; }
function u32(n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; }
function ggufString(s: string): Buffer { const b = Buffer.from(s, "utf8"); return Buffer.concat([u64(b.length), b]); }
function u32Kv(key: string, value: number): RawKv { return { key, bytes: Buffer.concat([ggufString(key), u32(4), u32(value)]) }; }

export interface QuantizeProgress { tensor: string; index: number; count: number; from: number; to: number }
export interface QuantizeOptions {
  /** Bytes of source rows converted at a time (default 4 MiB). */
  sliceBytes?: number;
  onTensor?: (p: QuantizeProgress) => void;
}
export interface QuantizeResult { tensors: number; quantized: number; fallbackF16: number; bytesIn: number; bytesOut: number }

/**
 * Quantizes `input` into `output` (written as `output.tmp` first, renamed when complete).
 * Throws UserError for a file that cannot be quantized (already quantized tensors, unknown types).
 */
export async function quantizeGguf(input: string, output: string, target: QuantizeTarget, options: QuantizeOptions = {}): Promise<QuantizeResult> {
  const src = readSourceHeader(input);
  // Requantizing loses quality, even to the same type: only float files are inputs.
  const quantized = src.tensors.find((t) => t.type !== TensorType.F32 && t.type !== TensorType.F16 && t.type !== TensorType.BF16);
  if (quantized)
    throw new UserError(`${input} is already quantized (${quantized.name} is ${tensorTypeName(quantized.type)}); quantize from an F32, F16 or BF16 file`);
  const { type: targetType, fileType } = TARGETS[target];
  const tt = tensorTypes();

  const tensors = [...src.tensors].sort((a, b) => llamaWeightOrder(a.name, b.name));
  const rowsOf = (t: SourceTensor) => t.dims.slice(1).reduce((a, b) => a * b, 1);
  const plan = tensors.map((t) => {
    const to = targetTensorType(t, target);
    return { t, to, inBytes: bytesOf(t.type, t.dims[0]!, rowsOf(t)), outBytes: bytesOf(to, t.dims[0]!, rowsOf(t)) };
  });
  const dataEnd = fs.statSync(input).size;
  for (const p of plan)
    if (src.dataOffset + p.t.offset + p.inBytes > dataEnd) throw new UserError(`${input}: truncated (${p.t.name} runs past the end of the file)`);

  // Header: metadata in order, then the two keys llama.cpp sets; split keys removed.
  const kvs = src.kvs.filter((k) => k.key !== "general.quantization_version" && k.key !== "general.file_type" && !SPLIT_KEYS.includes(k.key));
  kvs.push(u32Kv("general.quantization_version", GGML_QNT_VERSION), u32Kv("general.file_type", fileType));
  const infoParts: Buffer[] = [];
  let offset = 0;
  plan.forEach((p) => {
    const dims = p.t.dims.slice(0, nDims(p.t.dims));
    infoParts.push(ggufString(p.t.name), u32(dims.length), ...dims.map(u64), u32(p.to), u64(offset));
    offset = alignUp(offset + p.outBytes, src.alignment);
  });
  const headerBody = Buffer.concat([u32(0x46554747), u32(3), u64(plan.length), u64(kvs.length), ...kvs.map((k) => k.bytes), ...infoParts]);
  const header = Buffer.concat([headerBody, Buffer.alloc(alignUp(headerBody.length, src.alignment) - headerBody.length)]);

  const tmp = `${output}.tmp`;
  const inFd = await fsp.open(input, "r");
  const outFd = await fsp.open(tmp, "w");
  const result: QuantizeResult = { tensors: plan.length, quantized: 0, fallbackF16: 0, bytesIn: 0, bytesOut: header.length };
  try {
    await outFd.write(header, 0, header.length, 0);
    let at = header.length;
    const sliceTarget = options.sliceBytes ?? 4 << 20; // small slices keep a Pi's peak memory low
    for (let i = 0; i < plan.length; i++) {
      const { t, to, inBytes, outBytes } = plan[i]!;
      options.onTensor?.({ tensor: t.name, index: i, count: plan.length, from: t.type, to });
      const srcAt = src.dataOffset + t.offset;
      if (to === t.type) {
        await copyRange(inFd, outFd, srcAt, inBytes, at, sliceTarget);
      } else {
        if (to === TensorType.F16) result.fallbackF16++;
        else result.quantized++;
        const ne0 = t.dims[0]!;
        const inRow = bytesOf(t.type, ne0);
        const outRow = bytesOf(to, ne0);
        const rows = inBytes / inRow;
        const rowsPerSlice = Math.max(1, Math.floor(sliceTarget / inRow));
        for (let r = 0; r < rows; r += rowsPerSlice) {
          const n = Math.min(rowsPerSlice, rows - r);
          const raw = Buffer.alloc(n * inRow);
          await readExactly(inFd, raw, srcAt + r * inRow, input);
          const floats = toFloat32(tt, t.type, raw, n * ne0);
          // Rows are independent blocks, so one call for n rows gives the bytes of n calls.
          const out = tt.quantize(to, floats);
          if (out.length !== n * outRow) throw new Error(`${t.name}: ${out.length} bytes quantized, expected ${n * outRow}`);
          await outFd.write(out, 0, out.length, at + r * outRow);
        }
      }
      const padded = alignUp(outBytes, src.alignment);
      if (padded > outBytes) await outFd.write(Buffer.alloc(padded - outBytes), 0, padded - outBytes, at + outBytes);
      at += padded;
      result.bytesIn += inBytes;
      result.bytesOut += padded;
    }
    await outFd.sync();
  } catch (e) {
    await outFd.close().catch(() => {});
    await inFd.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await outFd.close();
  await inFd.close();
  await fsp.rename(tmp, output);
  return result;
}

function toFloat32(tt: ReturnType<typeof tensorTypes>, type: number, raw: Buffer, n: number): Float32Array {
  if (type === TensorType.F32) {
    // a fresh copy: Buffer.alloc memory may sit at an offset that is not a multiple of 4
    const f = new Float32Array(n);
    new Uint8Array(f.buffer).set(raw);
    return f;
  }
  return tt.dequantize(type, raw, n); // F16/BF16 → F32 is exact
}

async function readExactly(fd: fsp.FileHandle, buf: Buffer, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fd.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new UserError(`${file}: truncated (tensor data ends at byte ${position + done})`);
    done += bytesRead;
  }
}

async function copyRange(from: fsp.FileHandle, to: fsp.FileHandle, srcAt: number, length: number, dstAt: number, chunk: number): Promise<void> {
  const buf = Buffer.alloc(Math.min(chunk, Math.max(1, length)));
  for (let done = 0; done < length; ) {
    const n = Math.min(buf.length, length - done);
    const { bytesRead } = await from.read(buf, 0, n, srcAt + done);
    if (bytesRead === 0) throw new UserError(`truncated input: tensor data ends at byte ${srcAt + done}`);
    await to.write(buf, 0, bytesRead, dstAt + done);
    done += bytesRead;
  }
}

export const defaultOutputName = (input: string, target: QuantizeTarget) =>
  path.join(path.dirname(input), path.basename(input, ".gguf").replace(/-(f32|f16|bf16)$/i, "") + `-${target}.gguf`);
