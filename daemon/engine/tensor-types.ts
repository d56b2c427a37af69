// Typed view of exports.tensorTypes (native/napi/napi_tensor_types.cc): the GGUF tensor formats, their
// conversions and the scalar/best dot products, for tests and tools.
import { addon } from "./native.js";

/** GGUF tensor type ids (ggml_type), as stored in a file's tensor infos. */
export const TensorType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  BF16: 30,
} as const;
export type TensorTypeId = (typeof TensorType)[keyof typeof TensorType];

export interface TensorTypeInfo {
  id: number;
  /** ggml's name: "q4_0", "q4_K", "f16" */
  name: string;
  /** elements per block */
  blockSize: number;
  /** bytes per block */
  blockBytes: number;
  /** the engine has a dot product for weights of this type */
  computable: boolean;
  /** the type the activations are converted to for that dot product */
  dotWith: number;
}

export type DotVariant = "scalar" | "best";

export interface TensorTypesBinding {
  /** Every type the engine knows, in id order. */
  types(): TensorTypeInfo[];
  /** One row of n elements (a multiple of the block size) to floats; the buffer must be exactly one row. */
  dequantize(typeId: number, row: Uint8Array, n: number): Float32Array;
  /** Floats to one row of F32, F16, Q4_0, Q4_1, Q8_0, Q8_1 or Q8_K (ggml's reference numerics). */
  quantize(typeId: number, values: Float32Array): Buffer;
  /**
   * Dot product of one weight row with one activation row already in the weight type's dotWith
   * format. 'scalar' is the reference, 'best' the variant the engine uses on this CPU.
   */
  dot(weightTypeId: number, weights: Uint8Array, activations: Uint8Array, n: number, variant?: DotVariant): number;
  /** The dot product the engine runs for weights of this type here: "avx2", "neon-dotprod", "neon" or "scalar" (null: none). */
  kernelFor(weightTypeId: number): string | null;
  /** IEEE half bits to a number (exact). */
  fp16ToFp32(bits: number): number;
  /** A number (rounded to float32 first) to IEEE half bits, round to nearest even. */
  fp32ToFp16(value: number): number;
}

export function tensorTypes(): TensorTypesBinding {
  return addon<{ tensorTypes: TensorTypesBinding }>().tensorTypes;
}

let names: Map<number, string> | undefined;
/** ggml's name of a type id ("q4_0"), for messages; "type N" for an id this build does not know. */
export function tensorTypeName(id: number): string {
  names ??= new Map(tensorTypes().types().map((t) => [t.id, t.name]));
  return names.get(id) ?? `type ${id}`;
}

/** The dot product the engine runs on this CPU for each of these types (by name) it multiplies. */
export function kernelsFor(typeNames: string[]): Record<string, string> {
  const tt = tensorTypes();
  const out: Record<string, string> = {};
  for (const t of tt.types()) {
    if (!typeNames.includes(t.name)) continue;
    const k = tt.kernelFor(t.id);
    if (k) out[t.name] = k;
  }
  return out;
}

/** Bytes of a row of n elements of a type (n a multiple of its block size). */
export function rowBytes(info: TensorTypeInfo, n: number): number {
  return (n / info.blockSize) * info.blockBytes;
}
