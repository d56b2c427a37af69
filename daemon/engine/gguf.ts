// Typed view of the addon's GGUF reader (native/napi/napi_gguf.cc).
import { addon } from "./native.js";

/** A scalar metadata value. 64-bit integers beyond 2^53 come back as bigint. */
export type GgufScalar = number | bigint | boolean | string;

/** An array longer than 1024 elements, when not read with {full: true}. */
export interface GgufArraySummary {
  array: string; // element type: "u8" … "f64", "bool", "string"
  count: number;
}

export type GgufMetadataValue = GgufScalar | GgufScalar[] | GgufArraySummary;

export interface GgufTensorInfo {
  name: string;
  type: number;      // ggml type id (0 f32, 1 f16, 2 q4_0, 8 q8_0, …)
  typeName: string;  // "q4_0"
  dims: number[];    // ne[0] (the row length) first
  offset: number;    // relative to the data section
  nbytes: number;
}

export interface GgufInfo {
  version: number;
  alignment: number;
  dataOffset: number; // where the data section starts in the file
  fileSize: number;
  metadata: Record<string, GgufMetadataValue>;
  tensors: GgufTensorInfo[];
}

export interface ReadGgufOptions {
  /** List arrays of any length instead of summarizing those over 1024 elements. */
  full?: boolean;
}

interface GgufBinding {
  readGguf(path: string, options?: ReadGgufOptions): GgufInfo;
}

/**
 * Reads the header of a GGUF file (no tensor data is touched). A bad file throws an Error
 * whose message starts with the path and names the field; bad arguments throw TypeError.
 */
export function readGguf(path: string, options?: ReadGgufOptions): GgufInfo {
  return addon<GgufBinding>().readGguf(path, options);
}

export function isArraySummary(v: GgufMetadataValue): v is GgufArraySummary {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
