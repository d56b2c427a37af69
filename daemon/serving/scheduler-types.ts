// What the scheduler is given and what it keeps per request: the job a transport submits, the
// sink it reports to, the scheduler's options and statistics (public), and the records of one
// request's life in the loop (Ticket → Running, Slot, Part), used by scheduler.ts alone.
import type { NativeSampler, SamplerOptions, Utf8Stream } from "../engine/engine.js";
import type { NativeGrammar } from "../engine/grammar.js";
import type { ErrorCode, GenerateResult, PromptCacheStats, SamplingParams } from "./protocol.js";
import type { PromptCache } from "./prompt-cache.js";
import type { Speculator } from "./speculation.js";
import type { StopStringFilter } from "./stop-strings.js";
import type { ThinkingSplitter } from "./thinking.js";

export interface SchedulerOptions {
  maxQueue?: number; // requests waiting for a slot before new ones are answered busy
  maxBatchTokens?: number; // tokens per step; prompt chunks fill what decode tokens leave
  minReuseTokens?: number; // a shorter common prefix is not worth keeping a slot's cache for
  createSampler?: (options: SamplerOptions) => NativeSampler; // tests may count or fake sampling
  promptCache?: PromptCache; // shared prefixes kept on disk across restarts
  /** Feed the tokens a grammar decides in one step (default true); false: one step each, same output. */
  fastForward?: boolean;
  /** Check tokens proposed by prompt lookup in the same step (default true); false: never, same output. */
  speculate?: boolean;
}

/** A grammar that constrains from the first trigger on (a tool call): see json-schema-grammar.ts. */
export interface LazyGrammar {
  grammar: NativeGrammar;
  /** Texts that switch it on; the grammar reads the output from the trigger's first byte. */
  triggers: string[];
  /** Tokens that switch it on (special tokens without text); the grammar starts after them. */
  triggerTokens?: number[];
}

export interface GenerationJob {
  promptTokens: number[];
  maxTokens?: number; // undefined: up to DEFAULT_MAX_TOKENS, as many as fit
  sampling: SamplingParams;
  stop: string[];
  timeoutMs?: number;
  priority: number;
  arrival?: number; // performance.now() when the request arrived (defaults to submit time)
  /** Constrains the output from the first token (compiled by the router before queueing). */
  grammar?: NativeGrammar;
  lazyGrammar?: LazyGrammar;
  /** false: no speculation for this request. */
  speculate?: boolean;
  /**
   * The model may reason in a <think> block first (thinking.ts): it is kept out of the answer, so
   * stop strings and tool-call triggers see the answer only. startsInside: the prompt opened the
   * block; keep: stream it to sink.thinking and return it as `thinking`.
   */
  thinking?: { startsInside: boolean; keep: boolean };
}

/** Where a generation reports; exactly one of done / fail is called, once. */
export interface GenerationSink {
  delta(text: string): void;
  /** Reasoning, before the answer's deltas (only for a job with thinking.keep). */
  thinking?(text: string): void;
  done(result: GenerateResult): void;
  fail(code: ErrorCode, message: string): void;
}

export interface GenerationHandle {
  cancel(): void;
}

export interface SchedulerStats {
  nSeq: number;
  nCtx: number;
  queued: number;
  running: number;
  maxQueue: number;
  accepting: boolean;
  admitting: boolean; // false while memory pressure holds queued requests back
  admissionNote: string;
  slots: { slot: number; busy: boolean; cachedTokens: number }[];
  kvUsedCells: number;
  promptCache?: PromptCacheStats;
  tokensPerSecond: number; // generated tokens per second of busy time over the last ~10 s
  totals: { requests: number; completed: number; rejected: number; promptTokens: number; cachedTokens: number; generatedTokens: number };
}

// ─── One request's life ────────────────────────────────────────────────────────────────────────

export interface Ticket {
  job: GenerationJob;
  sink: GenerationSink;
  arrival: number;
  deadline: number; // Infinity without a timeout
  order: number; // FIFO within a priority
  maxTokens: number;
  endReason?: "cancelled" | "timeout" | "shutting_down";
  running?: Running;
  settled: boolean;
}

export interface Running {
  ticket: Ticket;
  slot: number;
  sampler: NativeSampler;
  pending: number[]; // tokens still to feed: the rest of the prompt, then the last sampled token and those forced after it
  reusedTokens: number; // prompt tokens found in the cache
  promptLeft: number; // prompt tokens not yet read
  generated: number;
  forced: number; // generated tokens the grammar decided, fed without a step of their own
  lazy?: { grammar: LazyGrammar; output: Buffer; searched: number }; // until its trigger appears
  utf8: Utf8Stream;
  thinking?: ThinkingSplitter;
  stops: StopStringFilter;
  text: string;
  reasoning: string;
  admitted: number;
  promptDone?: number;
  firstToken?: number;
  restoring?: boolean; // its prefix is being read from the prompt cache: kept out of every batch
  spec?: Speculator; // proposes tokens by prompt lookup; absent: speculation off for it
  passes: number; // engine calls that produced its generated tokens after the first
  persist?: number; // the reused prefix that deserves a prompt-cache file once the request ends
}

export interface Slot {
  cached: number[]; // exactly the tokens the KV cache holds for this sequence, positions 0…
  running?: Running;
  lastUsed: number;
  pinned: number; // leading positions a prompt-cache write is reading: kept as they are until it ends
}

/** One sequence's share of a step: n tokens (its pending ones, then its draft). */
export interface Part {
  r: Running;
  n: number;
  logits: boolean;
  draft: number[];
}
