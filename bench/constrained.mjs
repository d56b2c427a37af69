#!/usr/bin/env node
// Constrained decoding against free decoding, in one process on one model (bench/README.md):
//  (a) the token mask's cost per token: native/tools/grammar_bench on the 32k and 128k vocabularies
//      of ../shared, natively in CPU time and, with --qemu, under qemu-aarch64 -cpu cortex-a72 in
//      instructions (see bench/count-mask-instructions.sh);
//  (b) decode tokens/s under `format: "json"` (one step per token, so only the mask is extra)
//      against free decoding;
//  (c) a fixed-key schema's answer with fast-forward: tokens produced against decode steps taken,
//      and the wall time against free generation of as many tokens.
// Runs alternate (free, constrained, constrained, free, …) so that a neighbour's load falls on both.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { median, ROOT, syntheticModel } from "./peer.mjs";

const dist = (p) => pathToFileURL(path.join(ROOT, "dist", p)).href;
const log = (s) => process.stderr.write(s + "\n");
const { values: o } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string", default: String(Math.min(os.availableParallelism(), 4)) },
    n: { type: "string", short: "n", default: "32" },
    reps: { type: "string", default: "3" },
    parts: { type: "string", default: "a,b,c" },
    qemu: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const threads = Number(o.threads), n = Number(o.n), reps = Number(o.reps);
const parts = new Set(o.parts.split(","));
const SHARED = path.resolve(ROOT, "..", "shared");
const report = { threads, n, reps, loadAverage: { start: os.loadavg() } };

// A Home Assistant style command: every key fixed, values from short lists and small ranges.
const FIXED_KEYS = {
  type: "object",
  properties: {
    entity_id: { enum: ["light.kitchen", "light.living_room", "light.bedroom", "switch.coffee_machine"] },
    action: { enum: ["turn_on", "turn_off", "toggle"] },
    brightness_pct: { type: "integer", minimum: 0, maximum: 100 },
    color_name: { enum: ["warm_white", "cool_white", "red", "green", "blue"] },
    transition_s: { type: "integer", minimum: 0, maximum: 10 },
  },
  required: ["entity_id", "action", "brightness_pct", "color_name", "transition_s"],
  additionalProperties: false,
};

// ── (a) the mask ─────────────────────────────────────────────────────────────────────────────
const DOCUMENT = JSON.stringify({
  name: "Living room lamp", state: "on", brightness: 182, color: [255, 180, 120], tags: ["light", "living room", "évening"],
  attributes: { friendly_name: 'Lamp "big"', supported: true, power_w: 7.5, last_changed: null },
  note: "Dimmed at sunset; the kitchen stays off.",
});

function maskCost() {
  const out = {};
  const text = path.join(ROOT, ".bench", "mask-document.json");
  fs.mkdirSync(path.dirname(text), { recursive: true });
  fs.writeFileSync(text, DOCUMENT);
  const grammar = path.join(ROOT, "test", "fixtures", "grammars", "json.gbnf");
  const vocabs = { "32k": "ggml-vocab-llama-spm.gguf", "128k": "ggml-vocab-llama-bpe.gguf" };
  const build = (target) => {
    const r = spawnSync(path.join(ROOT, "bench", "build-grammar-bench.sh"), [target], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`building grammar_bench for ${target}: ${r.stderr}`);
    return r.stdout.trim().split("\n").pop();
  };
  const native = build("native");
  for (const [name, file] of Object.entries(vocabs)) {
    const r = spawnSync(native, [path.join(SHARED, "vocab", file), grammar, text, "5"], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`grammar_bench: ${r.stderr}`);
    out[name] = JSON.parse(r.stdout);
    log(`(a) ${name}: full mask ${out[name].full.medianUs.toFixed(1)} µs median, ${out[name].full.p90Us.toFixed(1)} µs p90 ` +
        `(cold ${out[name].cold.medianUs.toFixed(1)}, served ${out[name].served.meanUs.toFixed(1)} µs mean) over ${out[name].tokens} tokens, CPU time`);
  }
  if (o.qemu) {
    const arm = build("aarch64");
    for (const [name, file] of Object.entries(vocabs)) {
      const r = spawnSync(path.join(ROOT, "bench", "count-mask-instructions.sh"), [arm, path.join(SHARED, "vocab", file), grammar, text], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`count-mask-instructions: ${r.stderr}`);
      out[`${name}-a72`] = JSON.parse(r.stdout);
      log(`(a) ${name} under qemu cortex-a72: ${Math.round(out[`${name}-a72`].instructionsPerMask).toLocaleString("en")} instructions per full mask`);
    }
  }
  return out;
}

// ── (b), (c) decoding ────────────────────────────────────────────────────────────────────────
async function decoding() {
  const { openModel, createSampler } = await import(dist("daemon/engine/engine.js"));
  const { compileGrammar } = await import(dist("daemon/engine/grammar.js"));
  const { generate } = await import(dist("daemon/engine/generate.js"));
  const { formatToGbnf } = await import(dist("daemon/serving/json-schema-grammar.js"));
  const file = o.model ?? (await syntheticModel("7b", "random"));
  log(`model ${path.relative(ROOT, file)}, ${threads} threads`);
  const model = openModel(file, { threads, nCtx: 512 });
  const prompt = Array.from(model.tokenize("Answer with JSON: turn the kitchen light on at half brightness."));
  const json = compileGrammar(model, formatToGbnf("json"));
  const fixed = compileGrammar(model, formatToGbnf(FIXED_KEYS));
  const run = (grammar, maxTokens, fastForward) =>
    generate(model, createSampler({ temperature: 0, grammar }), prompt, { maxTokens, stopAtEos: false, fastForward });
  run(undefined, 2, true); // fault the weights in
  const out = { model: path.relative(ROOT, file) };

  if (parts.has("b")) {
    const free = [], constrained = [];
    for (let r = 0; r < reps; r++) {
      const order = r % 2 ? ["c", "f"] : ["f", "c"];
      for (const which of order) {
        const g = run(which === "c" ? json : undefined, n, false);
        (which === "c" ? constrained : free).push(g.timings.decodeTokensPerSecond);
        log(`(b) rep ${r + 1} ${which === "c" ? "format json" : "free       "}: ${g.timings.decodeTokensPerSecond.toFixed(2)} tok/s (${g.tokens.length} tokens)`);
      }
    }
    out.b = { free: median(free), constrained: median(constrained), ratio: median(constrained) / median(free), runs: { free, constrained } };
    log(`(b) format json decodes at ${(100 * out.b.ratio).toFixed(1)} % of free decoding (target ≥ 95 %)`);
  }

  if (parts.has("c")) {
    const rows = [];
    for (let r = 0; r < reps; r++) {
      const c = run(fixed, 256, true);
      const total = (g) => g.timings.promptMs + g.timings.decodeMs;
      const free = run(undefined, c.tokens.length, true);
      const stepped = run(fixed, 256, false);
      const row = {
        tokens: c.tokens.length, forced: c.timings.forcedTokens, steps: c.timings.decodeSteps,
        ms: total(c), freeMs: total(free), freeSteps: free.timings.decodeSteps, steppedMs: total(stepped),
        identical: JSON.stringify(stepped.tokens) === JSON.stringify(c.tokens), text: c.text,
      };
      rows.push(row);
      log(`(c) rep ${r + 1}: ${row.tokens} tokens (${row.forced} forced) in ${row.steps} decode steps, ${row.ms.toFixed(0)} ms; ` +
          `free: ${row.freeSteps} steps, ${row.freeMs.toFixed(0)} ms; one step per token: ${row.steppedMs.toFixed(0)} ms, same tokens: ${row.identical}`);
    }
    const m = (k) => median(rows.map((x) => x[k]));
    out.c = {
      tokens: rows[0].tokens, steps: rows[0].steps, fewerSteps: rows[0].tokens / Math.max(rows[0].steps, 1),
      ms: m("ms"), freeMs: m("freeMs"), steppedMs: m("steppedMs"), speedup: m("freeMs") / m("ms"),
      identical: rows.every((x) => x.identical), text: rows[0].text, runs: rows,
    };
    log(`(c) ${out.c.fewerSteps.toFixed(2)}× fewer decode steps than tokens (target ≥ 1.5×); ` +
        `${out.c.ms.toFixed(0)} ms against ${out.c.freeMs.toFixed(0)} ms free (${out.c.speedup.toFixed(2)}× faster)`);
  }
  model.close();
  return out;
}

if (parts.has("a")) report.a = maskCost();
if (parts.has("b") || parts.has("c")) Object.assign(report, await decoding());
report.loadAverage.end = os.loadavg();
log(`load average ${report.loadAverage.start.map((x) => x.toFixed(2)).join(" ")} at the start, ${report.loadAverage.end.map((x) => x.toFixed(2)).join(" ")} at the end`);
if (o.json) console.log(JSON.stringify(report, null, 1));
