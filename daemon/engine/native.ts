// Thin loader for the native addon. Each concern types the part of the binding it uses
// (gguf.ts, tokenizer.ts, engine.ts); this file only finds and loads the compiled module.
import { createRequire } from "node:module";
import path from "node:path";
import fs from "node:fs";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

/** The project root: the folder holding package.json, found from this compiled file. */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error("alpaca: cannot find the package root");
}

let cached: Record<string, unknown> | undefined;

/** The raw binding; typed views live beside the code that uses them. */
export function addon<T = Record<string, unknown>>(): T {
  if (!cached) {
    const root = projectRoot();
    const candidates = [
      process.env.ALPACA_ADDON,
      path.join(root, "build", "Release", "alpaca.node"),
      path.join(root, "prebuilds", `${process.platform}-${process.arch}`, "alpaca.node"),
    ].filter((p): p is string => !!p);
    const found = candidates.find((p) => fs.existsSync(p));
    if (!found) throw new Error(`alpaca: native addon not built (looked in ${candidates.join(", ")}); run npm ci`);
    cached = require(found) as Record<string, unknown>;
  }
  return cached as T;
}
