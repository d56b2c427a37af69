// npm's install step for the addon: a prebuilt binary for this platform (prebuilds/<platform>-<arch>/,
// as the arm64 release tarball carries) is used when it loads here; otherwise node-gyp compiles
// native/ (on a Pi that takes minutes and a compiler). ALPACA_BUILD_FROM_SOURCE=1 always compiles.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const prebuilt = path.join(root, "prebuilds", `${process.platform}-${process.arch}`, "alpaca.node");

function prebuiltLoads() {
  if (process.env.ALPACA_BUILD_FROM_SOURCE === "1" || !fs.existsSync(prebuilt)) return false;
  try {
    createRequire(import.meta.url)(prebuilt);
    return true;
  } catch (e) {
    process.stderr.write(`alpaca: the prebuilt addon ${prebuilt} does not load here (${e.message.split("\n")[0]}); compiling instead\n`);
    return false;
  }
}

if (prebuiltLoads()) {
  process.stderr.write(`alpaca: using the prebuilt addon ${path.relative(root, prebuilt)}\n`);
} else {
  // npm puts node-gyp on the PATH of install scripts (the project's, or npm's own without dev dependencies).
  let gyp = spawnSync("node-gyp", ["rebuild"], { cwd: root, stdio: "inherit" });
  if (gyp.error) gyp = spawnSync("npx", ["--no-install", "node-gyp", "rebuild"], { cwd: root, stdio: "inherit" });
  if (gyp.error) process.stderr.write(`alpaca: cannot run node-gyp (${gyp.error.message})\n`);
  process.exit(gyp.status ?? 1);
}
