// The catalog of known models (models/catalog.json): what `alpaca pull ID` downloads, what
// `alpaca models` lists, and which model `serve` fetches when none is configured.
import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../daemon/engine/native.js";

export type PromptTemplate = "alpaca" | "chat" | "raw";

export interface CatalogEntry {
  id: string;
  name: string;
  /** File name in the models directory. */
  file: string;
  url: string;
  /** Hex digest as published; null when the publisher gives none (pull then checks the size only). */
  sha256: string | null;
  /** Bytes. */
  size: number;
  /** false: the publisher gave a rounded size only; the digest is what decides. */
  sizeExact: boolean;
  architecture: string;
  parameters: string;
  quantization: string;
  license: string;
  template: PromptTemplate;
  contextLength: number;
  /** Bytes for weights + a 2048-token f16 KV cache + 50 MiB. */
  memory: number;
  default?: boolean;
  source: string;
  notes?: string;
}

export interface Catalog {
  version: number;
  note?: string;
  models: CatalogEntry[];
}

export const CATALOG_PATH = () => path.join(projectRoot(), "models", "catalog.json");

const TEMPLATES: readonly string[] = ["alpaca", "chat", "raw"];

/** Every problem with a catalog, one line each; empty when it is valid. */
export function catalogProblems(catalog: unknown): string[] {
  const problems: string[] = [];
  if (typeof catalog !== "object" || catalog === null) return ["the catalog is not a JSON object"];
  const c = catalog as Partial<Catalog>;
  if (c.version !== 1) problems.push(`version must be 1, not ${JSON.stringify(c.version)}`);
  if (!Array.isArray(c.models) || c.models.length === 0) return [...problems, "models must be a non-empty array"];
  const ids = new Set<string>();
  let defaults = 0;
  c.models.forEach((m: Partial<CatalogEntry>, i) => {
    const where = `models[${i}]${typeof m.id === "string" ? ` (${m.id})` : ""}`;
    const str = (k: keyof CatalogEntry) => {
      if (typeof m[k] !== "string" || (m[k] as string).length === 0) problems.push(`${where}: ${k} must be a non-empty string`);
    };
    (["id", "name", "file", "url", "architecture", "parameters", "quantization", "license", "source"] as const).forEach(str);
    if (typeof m.id === "string") {
      if (!/^[a-z0-9][a-z0-9._-]*$/.test(m.id)) problems.push(`${where}: id must be lower-case letters, digits, '.', '_' or '-'`);
      if (ids.has(m.id)) problems.push(`${where}: id is not unique`);
      ids.add(m.id);
    }
    if (typeof m.url === "string" && !m.url.startsWith("https://")) problems.push(`${where}: url must be https`);
    if (typeof m.file === "string" && (m.file.includes("/") || !m.file.endsWith(".gguf"))) problems.push(`${where}: file must be a plain *.gguf name`);
    if (m.sha256 !== null && (typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(m.sha256)))
      problems.push(`${where}: sha256 must be 64 lower-case hex digits or null`);
    if (m.sha256 === null && !(typeof m.notes === "string" && /sha256|digest/i.test(m.notes)))
      problems.push(`${where}: an entry without sha256 must say why in notes`);
    if (m.sha256 === null && m.sizeExact !== true) problems.push(`${where}: without sha256 the size must be exact`);
    for (const k of ["size", "memory", "contextLength"] as const)
      if (!(Number.isSafeInteger(m[k]) && (m[k] as number) > 0)) problems.push(`${where}: ${k} must be a positive integer`);
    if (typeof m.size === "number" && typeof m.memory === "number" && m.memory < m.size) problems.push(`${where}: memory is less than the file size`);
    if (typeof m.sizeExact !== "boolean") problems.push(`${where}: sizeExact must be true or false`);
    if (!TEMPLATES.includes(m.template as string)) problems.push(`${where}: template must be one of ${TEMPLATES.join(", ")}`);
    if (m.default !== undefined && typeof m.default !== "boolean") problems.push(`${where}: default must be a boolean`);
    if (m.default) defaults++;
  });
  if (defaults !== 1) problems.push(`exactly one entry must be the default (found ${defaults})`);
  return problems;
}

let cached: Catalog | undefined;

/** The catalog shipped with the package, checked once. */
export function loadCatalog(file = CATALOG_PATH()): Catalog {
  if (cached && file === CATALOG_PATH()) return cached;
  const parsed: unknown = JSON.parse(fs.readFileSync(file, "utf8"));
  const problems = catalogProblems(parsed);
  if (problems.length) throw new Error(`${file}: ${problems.join("; ")}`);
  if (file === CATALOG_PATH()) cached = parsed as Catalog;
  return parsed as Catalog;
}

export function findCatalogEntry(id: string, catalog = loadCatalog()): CatalogEntry | undefined {
  return catalog.models.find((m) => m.id === id.toLowerCase());
}

export function defaultCatalogEntry(catalog = loadCatalog()): CatalogEntry {
  return catalog.models.find((m) => m.default)!;
}
