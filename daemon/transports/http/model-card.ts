// The loaded model as the Ollama and OpenAI APIs describe a model: its name, digest, size, family,
// parameter count, quantization and GGUF metadata. Read once at start from the file's header.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { loadCatalog } from "../../../models/catalog.js";
import type { GgufMetadataValue } from "../../engine/gguf.js";
import { isArraySummary, readGguf } from "../../engine/gguf.js";

/** Ollama's ModelDetails. */
export interface ModelDetails {
  parent_model: string;
  format: "gguf";
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
}

export interface ModelCard {
  /** "<catalog id or file stem>:latest", as Ollama names models. */
  name: string;
  /** Names a request may use for this model (lower case): with and without ":latest". */
  aliases: Set<string>;
  /** Identifies the file (path, size, mtime), not its content: hashing 4 GB on a Pi takes minutes. */
  digest: string;
  sizeBytes: number;
  modifiedAt: Date;
  details: ModelDetails;
  parameterCount: number;
  license: string;
  /** The GGUF metadata, arrays left empty as Ollama shows them without verbose. */
  modelInfo: Record<string, unknown>;
}

// llama.h's llama_ftype, as general.file_type stores it.
const FILE_TYPES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
  13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 21: "Q2_K_S", 32: "BF16",
};

/** Ollama's way of writing a parameter count: "7.2B", "494.03M", "260K". */
export function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${Number((n / 1e6).toFixed(2))}M`;
  if (n >= 1e3) return `${Math.round(n / 1e3)}K`;
  return String(n);
}

function plain(v: GgufMetadataValue): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v) || isArraySummary(v)) return [];
  return v;
}

export function readModelCard(modelPath: string): ModelCard {
  const gguf = readGguf(modelPath);
  const meta = gguf.metadata;
  const stat = fs.statSync(modelPath);
  const file = path.basename(modelPath);
  let catalogId: string | undefined;
  try {
    catalogId = loadCatalog().models.find((m) => m.file === file)?.id;
  } catch {
    // a broken catalog does not stop serving: the file name will do
  }
  const stem = catalogId ?? file.replace(/\.gguf$/i, "");
  const architecture = typeof meta["general.architecture"] === "string" ? meta["general.architecture"] : "unknown";

  let parameterCount = 0;
  const bytesByType = new Map<string, number>();
  for (const t of gguf.tensors) {
    parameterCount += t.dims.reduce((a, d) => a * d, 1);
    if (t.dims.length >= 2) bytesByType.set(t.typeName, (bytesByType.get(t.typeName) ?? 0) + t.nbytes);
  }
  const fileType = Number(meta["general.file_type"] ?? -1);
  // Without general.file_type, the type holding most of the matrices' bytes names the file.
  const dominant = [...bytesByType].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "unknown";
  const quantization = FILE_TYPES[fileType] ?? dominant.toUpperCase();

  const modelInfo: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key === "tokenizer.chat_template") continue; // /api/show gives it as template
    modelInfo[key] = plain(value);
  }
  modelInfo["general.parameter_count"] ??= parameterCount;

  const identity = `${fs.realpathSync(modelPath)}\0${stat.size}\0${stat.mtimeMs}`;
  const name = `${stem}:latest`;
  return {
    name,
    aliases: new Set([name.toLowerCase(), stem.toLowerCase()]),
    digest: createHash("sha256").update(identity).digest("hex"),
    sizeBytes: stat.size,
    modifiedAt: stat.mtime,
    details: {
      parent_model: "",
      format: "gguf",
      family: architecture,
      families: [architecture],
      parameter_size: humanCount(parameterCount),
      quantization_level: quantization,
    },
    parameterCount,
    license: typeof meta["general.license"] === "string" ? meta["general.license"] : "",
    modelInfo,
  };
}
