// The memory plan: how much memory there is, what the model costs, and the KV type, context
// length, parallel sequences and prompt batch that fit. planMemory is pure (numbers in, plan
// out) so that every case can be tested without a machine of that size; planFromSystem feeds
// it this machine's /proc and cgroup files.
//
// Why the weights must stay resident: a decode step reads every weight once, in the same
// order. If the mapped file does not fit, the kernel's LRU evicts exactly the pages needed
// next and every token re-reads the whole file from storage (10 s/token on a 4 GB Pi).
// So the plan never trades residency for context: it refuses instead, and says what would fit.
// Only when not even the shortest context fits beside the whole file does it stream: it keeps
// (mlocks) as many layers as fit and streams the rest from storage every token, read ahead and
// released in a fixed order (daemon/serving/residency.ts, native/model/residency.cc), so that only the
// shortfall is re-read, never the whole file.
import type { KvType, ModelInfo, ResidencyOptions } from "../engine/engine.js";
import type { Config, KvTypeChoice } from "../config.js";
import { FILE_TYPE_BITS, formatBytes, kvBytesPerToken, pageTableBytes, scratchBytes, type ModelShape } from "./memory.js";
import { allResident, splitLayers, weightLayout, type ResidencyModel, type ResidencySplit } from "./residency.js";
import { readSystemMemory, type MemlockLimit } from "../system/system-memory.js";

export { formatBytes } from "./memory.js";

const MiB = 2 ** 20;

/** The rules of the plan; tests and `alpaca plan` may override them. */
export const PLAN_RULES = {
  /** Preferred context: the model's trained context, capped here (a Pi's prompts are short). */
  defaultCtx: 2048,
  /** Shortest context chosen automatically; below this a chat is hardly usable. */
  minCtx: 512,
  /** Contexts between default and floor are tried in these steps. */
  ctxStep: 256,
  /** Most sequences chosen automatically: decode is bandwidth-bound, and a Pi 4 has 4 cores. */
  maxParallel: 4,
  /** Prompt tokens per engine step, largest first: smaller batches cost prompt speed only. */
  batchSizes: [256, 128, 64, 32],
  /**
   * Node (V8's heap and code, the pages of its binary and libraries in use), the addon, its
   * tokenizer and thread stacks: what a serving daemon's cgroup is charged beyond weights, KV
   * cache and scratch, measured (memory.stat and smaps of `alpaca serve` on a 7B file with a full
   * context, a private copy of the node binary so that its pages are charged to that cgroup, the
   * limit lowered until pages were re-read from storage). Page tables are counted apart.
   */
  processBytes: 64 * MiB,
  /**
   * Reserve under MemAvailable (or a machine of `--memory`'s size) = max(reserveMin, reserveShare ×
   * it): the other processes of the machine move it after we start.
   */
  reserveMin: 64 * MiB,
  reserveShare: 0.03,
  /**
   * Reserve under a hard limit (the cgroup's, --memory-limit), which nothing else shares: the
   * kernel's own memory charged to the cgroup (slab, socket buffers) and the heap's growth.
   */
  limitReserve: 16 * MiB,
};
export type PlanRules = typeof PLAN_RULES;

export interface PlanModel extends ModelShape, ResidencyModel {
  weightBytes: number;
  nCtxTrain: number;
  name?: string;
  path?: string;
}

/** Where the budget comes from; each is bytes or null (unknown / no limit). */
export interface BudgetSources {
  /** MemAvailable when the daemon starts. */
  memAvailable?: number | null;
  /** The cgroup's memory.max / memory.high (v2) or memory.limit_in_bytes (v1). */
  cgroupLimit?: number | null;
  /** --memory-limit. */
  memoryLimit?: number | null;
  /** `alpaca plan --memory`: plan for a machine of this size instead of this one. */
  machine?: number | null;
}

export interface PlanRequest {
  ctx?: number | null;
  parallel?: number | null;
  kvType?: KvTypeChoice;
  threads: number;
}

export interface PlanInput {
  model: PlanModel;
  budget: BudgetSources;
  request: PlanRequest;
  memlock?: MemlockLimit | null;
  rules?: Partial<PlanRules>;
}

export interface MemoryPlan {
  fits: boolean;
  budget: {
    /** What the plan may spend: limit − reserve. */
    bytes: number;
    limit: number;
    reserve: number;
    /** The source that set the limit: "MemAvailable", "cgroup limit", "--memory-limit" or "--memory". */
    boundBy: string;
    sources: { name: string; bytes: number }[];
  };
  nCtx: number;
  nSeq: number;
  kvType: Exclude<KvType, "f32">;
  /** Most tokens per engine step (prompt chunks); the scratch buffers are sized for it. */
  nBatch: number;
  /** Logits rows per step the plan allows for: one per sequence. */
  nOutputs: number;
  threads: number;
  /** weights: what the cgroup is charged for them (page cache): all of them, or when streaming the kept part and the stream window. */
  costs: { weights: number; kv: number; scratch: number; process: number; total: number };
  /** Which layers stay in RAM and which stream from storage; the engine is opened with residencyOptions(plan). */
  residency: ResidencySplit;
  /** budget.bytes − costs.total (negative when it does not fit). */
  spare: number;
  mlock: { permitted: boolean; limit: number | null; reason: string };
  /** One plain sentence per choice the plan made. */
  decisions: string[];
  /** Why it does not fit, or null. */
  problem: string | null;
  /** What would fit instead (when it does not). */
  alternatives: string[];
}

interface Shape {
  nCtx: number;
  nSeq: number;
  kvType: Exclude<KvType, "f32">;
  nBatch: number;
}

// ── costs ────────────────────────────────────────────────────────────────────────────────────

// What the cgroup is charged with every layer resident: the pages the kernel holds for us.
function costsOf(m: PlanModel, s: Shape, threads: number, rules: PlanRules): MemoryPlan["costs"] {
  const weights = allResident(m, s.nCtx * s.nSeq, false).residentBytes;
  const kv = kvBytesPerToken(m, s.kvType) * s.nCtx * s.nSeq;
  const scratch = scratchBytes(m, s.nCtx, s.nBatch, threads, s.nSeq);
  const process = rules.processBytes + pageTableBytes(m.weightBytes + kv);
  return { weights, kv, scratch, process, total: weights + kv + scratch + process };
}

/** Parameters of a LLaMA shape (untied output), to say what other quantizations would weigh. */
export function parameterCount(m: ModelShape): number {
  const q = m.nHead * m.headDim, kv = m.nHeadKv * m.headDim;
  const perLayer = 2 * m.nEmbd * q + 2 * m.nEmbd * kv + 3 * m.nEmbd * m.nFf + 2 * m.nEmbd;
  return 2 * m.nVocab * m.nEmbd + m.nLayer * perLayer + m.nEmbd;
}

/** Contexts to try, longest first: the target, multiples of the step below it, the floor. */
function contextCandidates(m: PlanModel, rules: PlanRules): number[] {
  const target = Math.min(m.nCtxTrain > 0 ? m.nCtxTrain : rules.defaultCtx, rules.defaultCtx);
  const floor = Math.min(rules.minCtx, target);
  const out = [target];
  for (let c = Math.floor((target - 1) / rules.ctxStep) * rules.ctxStep; c > floor; c -= rules.ctxStep) out.push(c);
  if (floor < target) out.push(floor);
  return out;
}

function batchCandidates(nCtx: number, rules: PlanRules): number[] {
  const out = rules.batchSizes.filter((b) => b <= nCtx);
  return out.length ? out : [nCtx];
}

// ── budget ───────────────────────────────────────────────────────────────────────────────────

/** Each source less its own reserve; the smallest of them bounds the plan. */
function budgetOf(sources: BudgetSources, rules: PlanRules): MemoryPlan["budget"] {
  const named: { name: string; bytes: number; reserve: number }[] = [];
  const shared = (v: number) => Math.max(rules.reserveMin, Math.ceil(rules.reserveShare * v));
  const add = (name: string, v: number | null | undefined, reserve: (v: number) => number) => {
    if (v !== null && v !== undefined && Number.isFinite(v) && v > 0) named.push({ name, bytes: v, reserve: reserve(v) });
  };
  if (sources.machine) add("--memory", sources.machine, shared);
  else {
    add("MemAvailable", sources.memAvailable, shared);
    add("cgroup limit", sources.cgroupLimit, () => rules.limitReserve);
  }
  add("--memory-limit", sources.memoryLimit, () => rules.limitReserve);
  if (named.length === 0) throw new Error("no memory figure to plan with (no /proc/meminfo, no limit given)");
  const bound = named.reduce((a, b) => (b.bytes - b.reserve < a.bytes - a.reserve ? b : a));
  return {
    bytes: Math.max(0, bound.bytes - bound.reserve), limit: bound.bytes, reserve: bound.reserve, boundBy: bound.name,
    sources: named.map(({ name, bytes }) => ({ name, bytes })),
  };
}

function mlockOf(memlock: MemlockLimit | null | undefined, weights: number): MemoryPlan["mlock"] {
  if (!memlock) return { permitted: false, limit: null, reason: "RLIMIT_MEMLOCK unknown (no /proc/self/limits)" };
  if (memlock.capIpcLock) return { permitted: true, limit: memlock.soft, reason: "CAP_IPC_LOCK" };
  if (memlock.soft === null) return { permitted: true, limit: null, reason: "RLIMIT_MEMLOCK unlimited" };
  if (memlock.soft >= weights) return { permitted: true, limit: memlock.soft, reason: `RLIMIT_MEMLOCK ${formatBytes(memlock.soft)}` };
  return {
    permitted: false, limit: memlock.soft,
    reason: `RLIMIT_MEMLOCK ${formatBytes(memlock.soft)} is below the weights (LimitMEMLOCK=infinity in the unit allows it)`,
  };
}

// ── the plan ─────────────────────────────────────────────────────────────────────────────────

export function planMemory(input: PlanInput, allowStreaming = true): MemoryPlan {
  const rules: PlanRules = { ...PLAN_RULES, ...input.rules };
  const { model: m, request } = input;
  const threads = request.threads;
  const budget = budgetOf(input.budget, rules);
  const fitsIn = (s: Shape) => costsOf(m, s, threads, rules).total <= budget.bytes;

  const ctxs = request.ctx ? [request.ctx] : contextCandidates(m, rules);
  const kvChoice = request.kvType ?? "auto";
  const kvTypes: Shape["kvType"][] = kvChoice === "auto" ? ["f16", "q8_0"] : [kvChoice];
  const seq0 = request.parallel ?? 1;

  let chosen: Shape | null = null;
  search: for (const nCtx of ctxs) {
    for (const kvType of kvTypes) {
      for (const nBatch of batchCandidates(nCtx, rules)) {
        const s = { nCtx, nSeq: seq0, kvType, nBatch };
        if (fitsIn(s)) {
          chosen = s;
          break search;
        }
      }
    }
  }
  if (chosen && !request.parallel) {
    while (chosen.nSeq < rules.maxParallel && fitsIn({ ...chosen, nSeq: chosen.nSeq + 1 })) chosen.nSeq++;
  }

  // The smallest thing we would run: what the "does not fit" numbers are about.
  const floorCtx = ctxs[ctxs.length - 1];
  const smallest: Shape = chosen ?? {
    nCtx: floorCtx, nSeq: seq0, kvType: kvTypes[kvTypes.length - 1],
    nBatch: Math.min(...batchCandidates(floorCtx, rules)),
  };
  const costs = costsOf(m, smallest, threads, rules);
  const mlock = mlockOf(input.memlock, m.weightBytes);
  const plan: MemoryPlan = {
    fits: chosen !== null,
    budget, ...smallest, nOutputs: smallest.nSeq, threads, costs,
    spare: budget.bytes - costs.total,
    residency: allResident(m, smallest.nCtx * smallest.nSeq, mlock.permitted),
    mlock,
    decisions: [], problem: null, alternatives: [],
  };
  if (chosen) {
    plan.decisions = explainChoices(input, rules, budget.bytes, chosen, ctxs);
    return plan;
  }
  // Nothing fits with the whole file resident. Stream the layers that do not fit, at the
  // smallest shape (every byte of KV is a byte of weights re-read per token), unless it is an
  // override that does not fit: that is refused, as without streaming.
  const blocking = overrideInTheWay(input);
  const split = allowStreaming && !blocking
    ? splitLayers(m, budget.bytes - costs.kv - costs.scratch - costs.process, smallest.nCtx * smallest.nSeq, mlock.permitted)
    : null;
  if (!split) {
    explainMisfit(input, rules, plan, blocking);
    return plan;
  }
  plan.fits = true;
  plan.residency = split;
  plan.costs = { ...costs, weights: split.residentBytes + split.windowBytes };
  plan.costs.total = plan.costs.weights + costs.kv + costs.scratch + costs.process;
  plan.spare = budget.bytes - plan.costs.total;
  plan.decisions = explainStreaming(plan, m);
  if (split.streamLayers > 0) residentAlternatives(m, rules, plan, costs.kv + costs.scratch);
  return plan;
}

const OVERRIDES: [keyof PlanRequest, string][] = [["ctx", "--ctx"], ["parallel", "--parallel"], ["kvType", "--kv-type"]];

/** The first override (--ctx, --parallel, --kv-type) without which the whole file would stay resident, and that plan. */
function overrideInTheWay(input: PlanInput): { key: keyof PlanRequest; flag: string; without: MemoryPlan } | null {
  for (const [key, flag] of OVERRIDES) {
    const value = input.request[key];
    if (value === undefined || value === null || value === "auto") continue;
    const without = planMemory({ ...input, request: { ...input.request, [key]: key === "kvType" ? "auto" : null } }, false);
    if (without.fits) return { key, flag, without };
  }
  return null;
}

function explainStreaming(p: MemoryPlan, m: PlanModel): string[] {
  const r = p.residency, gb = formatBytes;
  const out = [`context ${p.nCtx} × ${p.nSeq}, KV ${p.kvType}, prompt batch ${p.nBatch}: the smallest shape, so that the most layers stay`];
  if (r.streamLayers === 0) {
    out.push(`every layer stays: of the ${gb(m.weightBytes)} only the embedding rows in use are charged, ` +
      `not the whole ${gb(m.weightBytes - r.residentBytes)} more the file holds`);
  } else {
    out.push(`the weights (${gb(m.weightBytes)}) cannot all stay resident in ${gb(p.budget.bytes)} beside the KV cache and the process`);
    out.push(`${r.keptLayers} of ${r.nLayer} layers stay in RAM; ${r.streamLayers} stream from storage every token ` +
      `(${gb(r.streamedBytes)} read per token), each read ahead while earlier layers compute and released after use ` +
      `(window ${gb(r.windowBytes)})`);
  }
  if (!r.lock) out.push(`mlock not permitted (${p.mlock.reason}): kept layers stay in the page cache unpinned, same read-ahead and release order`);
  return out;
}

/** One sentence per choice: what was picked and what the next larger step would have cost. */
function explainChoices(input: PlanInput, rules: PlanRules, budget: number, s: Shape, ctxs: number[]): string[] {
  const { model: m, request } = input;
  const need = (t: Shape) => costsOf(m, t, request.threads, rules).total - budget;
  const out: string[] = [];
  if (request.ctx) {
    out.push(`context ${s.nCtx} tokens per sequence, as asked` +
      (m.nCtxTrain > 0 && s.nCtx > m.nCtxTrain ? ` (beyond the ${m.nCtxTrain} the model was trained for: quality may suffer)` : ""));
  } else if (s.nCtx < ctxs[0]) {
    const longer = ctxs[ctxs.indexOf(s.nCtx) - 1];
    out.push(`context reduced from ${ctxs[0]} to ${s.nCtx} tokens to fit ` +
      `(${longer} would need ${formatBytes(need({ ...s, nCtx: longer, nBatch: Math.min(...batchCandidates(longer, rules)) }))} more)`);
  } else {
    out.push(`context ${s.nCtx} tokens per sequence (${m.nCtxTrain > s.nCtx ? `trained ${m.nCtxTrain}, capped at ${rules.defaultCtx}` : "the model's trained context"})`);
  }
  if (s.kvType === "q8_0" && (request.kvType ?? "auto") === "auto") {
    const f16 = costsOf(m, { ...s, kvType: "f16" }, request.threads, rules);
    out.push(`KV cache q8_0 (${formatBytes(costsOf(m, s, request.threads, rules).kv)}): ` +
      `f16 at this context would need ${formatBytes(f16.kv)}, ${formatBytes(f16.total - budget)} more than the budget`);
  } else {
    out.push(`KV cache ${s.kvType}${request.kvType && request.kvType !== "auto" ? ", as asked" : ""}`);
  }
  if (request.parallel) out.push(`${s.nSeq} parallel sequence${s.nSeq > 1 ? "s" : ""}, as asked`);
  else if (s.nSeq >= rules.maxParallel) out.push(`${s.nSeq} parallel sequences (the automatic cap; --parallel asks for more)`);
  else {
    out.push(`${s.nSeq} parallel sequence${s.nSeq > 1 ? "s" : ""} ` +
      `(one more would need ${formatBytes(need({ ...s, nSeq: s.nSeq + 1 }))} more)`);
  }
  const batches = batchCandidates(s.nCtx, rules);
  if (s.nBatch < batches[0]) {
    out.push(`prompt batch ${s.nBatch} tokens per step (${batches[0]} would need ${formatBytes(need({ ...s, nBatch: batches[0] }))} more)`);
  }
  return out;
}

/** Says plainly why nothing fits and what would. */
function explainMisfit(
  input: PlanInput, rules: PlanRules, plan: MemoryPlan, override: ReturnType<typeof overrideInTheWay>,
): void {
  const { model: m, request } = input;
  const budget = plan.budget.bytes;
  const gb = formatBytes;
  const weightsAndProcess = plan.costs.weights + plan.costs.process;
  const smallestRest = plan.costs.kv + plan.costs.scratch;
  const budgetText = `the budget is ${gb(budget)} (${gb(plan.budget.limit)} from ${plan.budget.boundBy}, less a ${gb(plan.budget.reserve)} reserve)`;

  // An override that cannot be honoured: say what the automatic plan would do without it.
  if (override) {
    const { key, flag, without } = override;
    const value = request[key];
    const alt = key === "ctx" ? `the longest context that fits is ${without.nCtx} (KV ${without.kvType})`
      : key === "parallel" ? `${without.nSeq} sequence${without.nSeq > 1 ? "s" : ""} of ${without.nCtx} tokens fit`
      : `KV ${without.kvType} fits ${without.nCtx} tokens`;
    plan.problem = `${flag} ${value} does not fit: it needs ${gb(plan.costs.total)} ` +
      `(KV ${gb(plan.costs.kv)}) and ${budgetText}; ${alt}`;
    plan.alternatives.push(`without ${flag}: ${describeShape(without)}`);
    return;
  }

  const short = plan.costs.total - budget;
  if (weightsAndProcess > budget) {
    plan.problem = `the weights (${gb(m.weightBytes)}) cannot stay resident: ${budgetText}, and the weights with ` +
      `the process need ${gb(weightsAndProcess)} plus at least ${gb(smallestRest)} for a ${plan.nCtx}-token KV cache ` +
      `and scratch: ${gb(short)} short. Served anyway, every token would re-read the file from storage.`;
  } else {
    plan.problem = `the weights (${gb(m.weightBytes)}) fit, but not a ${plan.nCtx}-token ${plan.kvType} KV cache and ` +
      `scratch beside them (${gb(smallestRest)}): ${budgetText}, ${gb(short)} short`;
  }
  const needLimit = Math.ceil(plan.costs.total / (1 - rules.reserveShare));
  plan.alternatives.push(`this model as it is runs with about ${gb(Math.max(needLimit, plan.costs.total + rules.reserveMin))} ` +
    `of available memory (a budget of ${gb(plan.costs.total)})`);
  if (weightsAndProcess > budget) {
    const w = weightLayout(m);
    const streamAll = smallestRest + plan.costs.process + w.output + w.other + (w.tied ? w.embedding : 0) + 2 * (w.layers / m.nLayer);
    plan.alternatives.push(`streaming every layer from storage needs a budget of at least ${gb(streamAll)} ` +
      `(two layers at a time beside the KV cache, scratch, process and output matrix)`);
  }

  residentAlternatives(m, rules, plan, smallestRest);
}

/** What would stay resident instead: this model in the largest file type that fits, or a smaller 4-bit model. */
function residentAlternatives(m: PlanModel, rules: PlanRules, plan: MemoryPlan, kvAndScratch: number): void {
  const gb = formatBytes;
  const budget = plan.budget.bytes;
  const room = budget - rules.processBytes - kvAndScratch;
  const params = parameterCount(m);
  const bitsPerWeight = (m.weightBytes * 8) / params;
  for (const [name, bits] of FILE_TYPE_BITS) {
    const bytes = (params * bits) / 8;
    if (bitsPerWeight > bits + 0.1 && bytes <= room) {
      plan.alternatives.push(`${name} of this model needs ${gb(bytes)} and would fit`);
      return;
    }
  }
  const maxParams = (room * 8) / 4.5;
  const examples = [70, 34, 13, 8, 7, 3, 1.1].filter((b) => b * 1e9 <= maxParams);
  if (examples.length === 0) {
    plan.alternatives.push(`not even a 4-bit 1B model fits in ${gb(budget)}`);
    return;
  }
  plan.alternatives.push(`a 4-bit (Q4_0) model of up to ${(maxParams / 1e9).toFixed(1)} billion parameters would fit, ` +
    `e.g. a 4-bit ${examples[0]}B model (≈ ${gb((examples[0] * 1e9 * 4.5) / 8)} of weights)`);
}

function describeShape(p: MemoryPlan): string {
  return `${p.nCtx} tokens × ${p.nSeq} sequence${p.nSeq > 1 ? "s" : ""}, KV ${p.kvType}, prompt batch ${p.nBatch}`;
}

// ── this machine ─────────────────────────────────────────────────────────────────────────────

export function planModelOf(info: ModelInfo): PlanModel {
  const { nLayer, nHeadKv, headDim, nEmbd, nFf, nHead, nVocab, weightBytes, nCtxTrain, name, path } = info;
  const { layerBytes, embeddingBytes, outputBytes } = info;
  return { nLayer, nHeadKv, headDim, nEmbd, nFf, nHead, nVocab, weightBytes, nCtxTrain, name, path, layerBytes, embeddingBytes, outputBytes };
}

/** What the engine is opened with: the layers to stream and whether to mlock the rest. */
export function residencyOptions(plan: MemoryPlan): ResidencyOptions {
  return { streamLayers: plan.residency.streamLayers, lock: plan.residency.lock };
}

/**
 * The plan for a model on this machine (or, with `machine`, on one of that size), from the
 * config's memoryLimit/ctx/parallel/kvType/threads. `root` lets tests supply /proc and /sys.
 */
export function planFromSystem(
  model: PlanModel, config: Pick<Config, "memoryLimit" | "ctx" | "parallel" | "kvType" | "threads">,
  options: { root?: string; machine?: number | null; rules?: Partial<PlanRules> } = {},
): MemoryPlan {
  const sys = readSystemMemory(options.root ?? "/");
  return planMemory({
    model,
    budget: {
      memAvailable: sys.meminfo?.memAvailable ?? null,
      cgroupLimit: sys.cgroup?.bytes ?? null,
      memoryLimit: config.memoryLimit,
      machine: options.machine ?? null,
    },
    request: { ctx: config.ctx, parallel: config.parallel, kvType: config.kvType, threads: config.threads },
    memlock: sys.memlock,
    rules: options.rules,
  });
}

// ── the log ──────────────────────────────────────────────────────────────────────────────────

/** The plan as lines for a log or a terminal. */
export function formatPlan(p: MemoryPlan, model?: PlanModel): string[] {
  const gb = formatBytes;
  const c = p.costs;
  const lines: string[] = [];
  if (model?.path) lines.push(`model    ${model.path}${model.name ? ` (${model.name})` : ""}`);
  const others = p.budget.sources.filter((s) => s.name !== p.budget.boundBy).map((s) => `${s.name} ${gb(s.bytes)}`);
  lines.push(`budget   ${gb(p.budget.bytes)} = ${gb(p.budget.limit)} (${p.budget.boundBy}) − ${gb(p.budget.reserve)} reserve` +
    (others.length ? `; also ${others.join(", ")}` : ""));
  const kvWhat = `KV ${gb(c.kv)} (${p.nCtx} × ${p.nSeq} ${p.kvType})`;
  const r = p.residency;
  const weightsWhat = r.windowBytes === 0 ? "(mapped, resident)" : `(mapped: ${gb(r.residentBytes)} resident + ${gb(r.windowBytes)} stream window)`;
  lines.push(`costs    weights ${gb(c.weights)} ${weightsWhat} + ${kvWhat} + scratch ${gb(c.scratch)} ` +
    `+ process ${gb(c.process)} = ${gb(c.total)}`);
  if (p.fits) {
    const streaming = r.streamLayers > 0 ? ` (streaming ${r.streamLayers} layer${r.streamLayers > 1 ? "s" : ""})` : "";
    lines.push(`plan     fits${streaming}, ${gb(p.spare)} to spare: context ${p.nCtx} × ${p.nSeq} sequence${p.nSeq > 1 ? "s" : ""}, ` +
      `KV ${p.kvType}, prompt batch ${p.nBatch}, ${p.threads} thread${p.threads > 1 ? "s" : ""}`);
    for (const d of p.decisions) lines.push(`         - ${d}`);
  } else {
    lines.push(`plan     does not fit: ${p.problem}`);
    for (const a of p.alternatives) lines.push(`instead  ${a}`);
  }
  if (p.fits) {
    lines.push(`resident ${gb(r.residentBytes)}: ${r.keptLayers} of ${r.nLayer} layers, locked ${gb(r.lockedBytes)}; ` +
      `streamed ${gb(r.streamedBytes)} per token (${r.streamLayers} layer${r.streamLayers === 1 ? "" : "s"})`);
  }
  lines.push(`mlock    ${p.mlock.permitted ? "permitted" : "not permitted"}: ${p.mlock.reason}` +
    (p.mlock.permitted ? "" : "; the same read-ahead and release order, layers unpinned"));
  return lines;
}

// ── one-off commands (run, bench) ─────────────────────────────────────────────────────────────

/**
 * The residency a one-off command (run, bench) opens its model with: the plan of this machine
 * (or of `memoryLimit`) for exactly its context and KV type, one sequence. A plan that does not
 * fit leaves residency to the kernel (undefined) and says why in `note`.
 */
export function commandResidency(
  model: PlanModel, o: { ctx: number; kvType: Exclude<KvType, "f32">; threads: number; memoryLimit: number | null },
): { plan: MemoryPlan; residency: ResidencyOptions | undefined; note: string | null } {
  const plan = planFromSystem(model, { memoryLimit: o.memoryLimit, ctx: o.ctx, parallel: 1, kvType: o.kvType, threads: o.threads });
  if (!plan.fits) return { plan, residency: undefined, note: `memory plan: does not fit: ${plan.problem}` };
  const r = plan.residency;
  const note = r.streamLayers > 0
    ? `memory plan: streaming ${r.streamLayers} of ${r.nLayer} layers (${formatBytes(r.streamedBytes)} read per token), ` +
      `${r.keptLayers} kept${r.lock ? " and locked" : " (mlock not permitted)"}; budget ${formatBytes(plan.budget.bytes)} from ${plan.budget.boundBy}`
    : null;
  return { plan, residency: residencyOptions(plan), note };
}
