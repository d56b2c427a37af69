// The scheduler owns the one loaded model and its n_seq sequence slots (DESIGN §1).
//
// Each step builds ONE batch from every running sequence — a bounded chunk of each prompt still
// being read, and one token for each sequence that is generating — calls the engine once, samples
// every sequence's next token with its own sampler and streams the text. Requests join and leave
// between steps (continuous batching): decode is bound by memory bandwidth, so one pass over the
// weights serves several sequences for nearly the price of one.
//
// Each slot remembers the tokens its KV cache holds. A new request takes the slot sharing the
// longest prefix with its prompt (or copies that prefix from a busy slot) and reads only the rest.
//
// Under a grammar, the tokens the grammar alone decides (a fixed key, `":`, a closing bracket) are
// taken without sampling right after the token before them and fed in the same step: a sequence's
// `pending` is then several tokens with logits only for the last (fast-forward).
import type { NativeModel, NativeSampler, SamplerOptions } from "../engine/engine.js";
import { createSampler, Utf8Stream } from "../engine/engine.js";
import type { GenerateResult, StopReason } from "./protocol.js";
import { ProtocolError } from "./protocol.js";
import type { PromptCache, PromptCacheEntry } from "./prompt-cache.js";
import type { GenerationHandle, GenerationJob, GenerationSink, Part, Running, SchedulerOptions, SchedulerStats, Slot, Ticket } from "./scheduler-types.js";
import { Speculator } from "./speculation.js";
import { batchOf } from "./step-batch.js";
import { StopStringFilter } from "./stop-strings.js";
import { ThinkingSplitter } from "./thinking.js";

export type { GenerationHandle, GenerationJob, GenerationSink, LazyGrammar, SchedulerOptions, SchedulerStats } from "./scheduler-types.js";

const DEFAULT_MAX_TOKENS = 256;

// ─── Scheduler ─────────────────────────────────────────────────────────────────────────────────

export class Scheduler {
  readonly nSeq: number;
  readonly nCtx: number;
  private readonly nVocab: number;
  private readonly maxQueue: number;
  private readonly maxBatchTokens: number;
  private readonly minReuseTokens: number;
  private readonly newSampler: (options: SamplerOptions) => NativeSampler;
  private readonly fastForward: boolean;
  private readonly speculate: boolean;
  private readonly cache?: PromptCache;
  private readonly eog: Set<number>;
  private readonly slots: Slot[];
  private queue: Ticket[] = [];
  private nextOrder = 0;
  private accepting = true;
  private admitting = true; // false while memory pressure says to start no new work
  private admissionNote = "";
  private stepStarted: number | null = null;
  private stopping = false;
  private wake?: () => void;
  private loopDone?: Promise<void>;
  private recentSteps: { end: number; ms: number; tokens: number }[] = [];
  private totals = { requests: 0, completed: 0, rejected: 0, promptTokens: 0, cachedTokens: 0, generatedTokens: 0 };

  constructor(
    private readonly model: NativeModel,
    options: SchedulerOptions = {},
  ) {
    const info = model.info();
    this.nSeq = info.nSeq;
    this.nCtx = info.nCtx;
    this.nVocab = info.nVocab;
    this.eog = new Set(info.eog);
    this.maxQueue = options.maxQueue ?? 32;
    this.maxBatchTokens = options.maxBatchTokens ?? 128;
    this.minReuseTokens = options.minReuseTokens ?? 4;
    this.newSampler = options.createSampler ?? createSampler;
    this.fastForward = options.fastForward ?? true;
    this.speculate = options.speculate ?? true;
    this.cache = options.promptCache;
    this.slots = Array.from({ length: this.nSeq }, (_, i) => ({ cached: [], lastUsed: -1 - i, pinned: 0 }));
    for (let s = 0; s < this.nSeq; s++) model.kvTruncate(s, 0);
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** Queues a generation; throws ProtocolError busy / too_long / shutting_down / bad_request at once. */
  submit(job: GenerationJob, sink: GenerationSink): GenerationHandle {
    if (!this.accepting) throw new ProtocolError("shutting_down", "the daemon is shutting down");
    const n = job.promptTokens.length;
    if (n === 0) throw new ProtocolError("bad_request", "the prompt is empty and the model adds no BOS token");
    if (job.maxTokens !== undefined && n + job.maxTokens > this.nCtx)
      throw new ProtocolError(
        "too_long",
        `prompt (${n} tokens) + max_tokens (${job.maxTokens}) exceed the context of ${this.nCtx} tokens`,
      );
    const maxTokens = job.maxTokens ?? Math.min(DEFAULT_MAX_TOKENS, this.nCtx - n);
    if (maxTokens < 1)
      throw new ProtocolError("too_long", `the prompt (${n} tokens) leaves no room in the context of ${this.nCtx} tokens`);
    const freeSlots = this.slots.filter((s) => !s.running).length;
    if (this.queue.length >= this.maxQueue + freeSlots) {
      this.totals.rejected++;
      throw new ProtocolError("busy", `the queue is full (${this.maxQueue} waiting); try again later`);
    }
    const arrival = job.arrival ?? performance.now();
    const ticket: Ticket = {
      job,
      sink,
      arrival,
      deadline: job.timeoutMs === undefined ? Infinity : arrival + job.timeoutMs,
      order: this.nextOrder++,
      maxTokens,
      settled: false,
    };
    // Higher priority first, then first come first served.
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1].job.priority < job.priority) i--;
    this.queue.splice(i, 0, ticket);
    this.totals.requests++;
    if (ticket.deadline !== Infinity) setTimeout(() => this.expireQueued(ticket), job.timeoutMs! + 1).unref();
    this.wake?.();
    return { cancel: () => this.end(ticket, "cancelled") };
  }

  /**
   * Opens or closes admission into free slots (the memory-pressure watch): while closed, running
   * sequences go on and queued ones start only when no other is running (one at a time); new
   * ones queue as usual (busy when the queue is full).
   */
  setAdmitting(admitting: boolean, reason = ""): void {
    this.admitting = admitting;
    this.admissionNote = admitting ? "" : reason;
    if (admitting) this.wake?.();
  }

  /** False when one engine step has run for longer than maxStepMs (a hung engine): for the watchdog. */
  healthy(maxStepMs = 120_000): boolean {
    return this.stepStarted === null || performance.now() - this.stepStarted < maxStepMs;
  }

  stats(): SchedulerStats {
    const horizon = performance.now() - 10_000;
    this.recentSteps = this.recentSteps.filter((s) => s.end >= horizon);
    const busyMs = this.recentSteps.reduce((a, s) => a + s.ms, 0);
    const tokens = this.recentSteps.reduce((a, s) => a + s.tokens, 0);
    return {
      nSeq: this.nSeq,
      nCtx: this.nCtx,
      queued: this.queue.length,
      running: this.slots.filter((s) => s.running).length,
      maxQueue: this.maxQueue,
      accepting: this.accepting,
      admitting: this.admitting,
      admissionNote: this.admissionNote,
      slots: this.slots.map((s, slot) => ({ slot, busy: !!s.running, cachedTokens: s.cached.length })),
      // The mirror of the engine's lengths, kept in step with every kvTruncate/kvCopyPrefix/decode
      // (the engine cannot be asked while a decode runs).
      kvUsedCells: this.slots.reduce((a, s) => a + s.cached.length, 0),
      ...(this.cache ? { promptCache: this.cache.stats() } : {}),
      tokensPerSecond: busyMs > 0 ? (tokens * 1000) / busyMs : 0,
      totals: { ...this.totals },
    };
  }

  /**
   * Stops taking requests; queued ones are answered shutting_down at once, running ones may
   * finish within graceMs and are then ended with shutting_down. Resolves when the loop has stopped.
   */
  async stop(graceMs: number): Promise<void> {
    this.accepting = false;
    for (const t of [...this.queue]) this.end(t, "shutting_down");
    const timer = setTimeout(() => {
      for (const s of this.slots) if (s.running) this.end(s.running.ticket, "shutting_down");
    }, graceMs);
    await this.idle();
    clearTimeout(timer);
    this.stopping = true;
    this.wake?.();
    await this.loopDone;
    await this.cache?.flush();
  }

  /** Resolves once no request is queued or running. */
  private async idle(): Promise<void> {
    while (this.queue.length > 0 || this.slots.some((s) => s.running)) await new Promise((r) => setTimeout(r, 5));
  }

  // ─── Ending a request ──────────────────────────────────────────────────────────────────────

  /** Marks a request to end; a queued one ends now, a running one at the next step boundary. */
  private end(ticket: Ticket, reason: NonNullable<Ticket["endReason"]>): void {
    if (ticket.settled || ticket.endReason) return;
    ticket.endReason = reason;
    const i = this.queue.indexOf(ticket);
    if (i >= 0) {
      this.queue.splice(i, 1);
      this.settle(ticket, () =>
        ticket.sink.fail(
          reason,
          reason === "timeout"
            ? "the request timed out before a slot was free"
            : reason === "cancelled"
              ? "cancelled before it started"
              : "the daemon is shutting down",
        ),
      );
    }
    // running: finishEnded() picks it up between steps, when the KV cache may be touched
  }

  private expireQueued(ticket: Ticket): void {
    if (!ticket.running) this.end(ticket, "timeout");
  }

  private settle(ticket: Ticket, report: () => void): void {
    if (ticket.settled) return;
    ticket.settled = true;
    try {
      report();
    } catch {
      // a sink that throws (a client gone mid-write) must not stop the other sequences
    }
  }

  // ─── The loop ──────────────────────────────────────────────────────────────────────────────

  private async loop(): Promise<void> {
    while (!this.stopping) {
      this.finishEnded();
      this.admit();
      const active = this.slots.filter((s) => s.running && !s.running.restoring).map((s) => s.running!);
      if (active.length === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      await this.step(active);
    }
  }

  /** Ends running sequences that were cancelled, timed out or cut off by shutdown. */
  private finishEnded(): void {
    const now = performance.now();
    for (const slot of this.slots) {
      const r = slot.running;
      if (!r || r.restoring) continue; // its cells are being written; it ends once they are
      if (!r.ticket.endReason && now >= r.ticket.deadline) r.ticket.endReason = "timeout";
      const reason = r.ticket.endReason;
      if (!reason) continue;
      if (reason === "cancelled") {
        // Its cache would only hold what a client walked away from: free the cells.
        this.model.kvTruncate(r.slot, r.reusedTokens);
        slot.cached.length = r.reusedTokens;
      }
      if (reason === "shutting_down") {
        slot.running = undefined;
        this.settle(r.ticket, () => r.ticket.sink.fail("shutting_down", "the daemon is shutting down"));
      } else this.finish(r, reason);
    }
  }

  /** Moves queued requests into free slots, best prefix match first. */
  private admit(): void {
    // Under memory pressure one sequence still runs at a time: the cache it touches is small,
    // and a queue that never moves would only turn pressure into timeouts.
    while (this.queue.length > 0 && (this.admitting || !this.slots.some((s) => s.running))) {
      const prompt = this.queue[0].job.promptTokens;
      const usable = prompt.length - 1; // the last prompt token is always read, for its logits
      const common = (slot: Slot) => commonPrefix(slot.cached, prompt, usable);
      // A slot whose prefix is being written to the prompt cache serves only prompts that keep it.
      const free = this.slots.map((s, i) => ({ s, i })).filter(({ s }) => !s.running && (s.pinned === 0 || common(s) >= s.pinned));
      if (free.length === 0) return;

      // The free slot with the longest useful prefix, else an empty slot, else the least recently used.
      let best = free.reduce((a, b) => (common(b.s) > common(a.s) ? b : a));
      let reuse = common(best.s);
      if (reuse < this.minReuseTokens) {
        reuse = 0;
        const unpinned = free.filter(({ s }) => s.pinned === 0);
        if (unpinned.length === 0) return;
        best = unpinned.find(({ s }) => s.cached.length === 0) ?? unpinned.reduce((a, b) => (b.s.lastUsed < a.s.lastUsed ? b : a));
      }
      const ticket = this.queue.shift()!;
      const slot = best.s;

      // A busy (or other free) slot may hold a longer prefix of this prompt: copy its cells.
      let source = -1;
      let copied = reuse;
      for (let i = 0; i < this.slots.length; i++) {
        const n = common(this.slots[i]);
        if (i !== best.i && n >= this.minReuseTokens && n > copied) {
          copied = n;
          source = i;
        }
      }
      // A file of the prompt cache may hold a longer one still (after a restart, always).
      const stored = this.cache?.match(prompt, usable);
      const restore = stored && stored.n > copied && slot.pinned === 0 ? stored : null;
      if (!restore) {
        this.model.kvTruncate(best.i, reuse);
        slot.cached.length = reuse;
        if (source >= 0) {
          this.model.kvCopyPrefix(source, best.i, copied);
          slot.cached = this.slots[source].cached.slice(0, copied);
          reuse = copied;
        }
      } else {
        reuse = 0; // the restore empties the slot first
        slot.cached = [];
      }

      const job = ticket.job;
      const sampler = this.newSampler({
        temperature: job.sampling.temperature,
        topK: job.sampling.topK,
        topP: job.sampling.topP,
        minP: job.sampling.minP,
        repeatPenalty: job.sampling.repeatPenalty,
        seed: job.sampling.seed ?? Math.floor(Math.random() * 2 ** 32),
        maxTokens: ticket.maxTokens, // a grammar's answer is closed within them
        grammar: job.grammar,
      });
      for (const t of prompt) sampler.accept(t); // the repetition penalty sees the prompt too
      const running: Running = {
        ticket,
        slot: best.i,
        sampler,
        pending: prompt.slice(reuse),
        reusedTokens: reuse,
        promptLeft: prompt.length - reuse,
        generated: 0,
        forced: 0,
        lazy: job.lazyGrammar && { grammar: job.lazyGrammar, output: Buffer.alloc(0), searched: 0 },
        utf8: new Utf8Stream(),
        thinking: job.thinking && new ThinkingSplitter(job.thinking.startsInside),
        stops: new StopStringFilter(job.stop),
        text: "",
        reasoning: "",
        admitted: performance.now(),
        // reused from memory: asked for twice at least, so worth a file if none holds it yet
        persist: this.cache?.wants(prompt, reuse) ? reuse : undefined,
        spec: this.speculate && job.speculate !== false ? new Speculator() : undefined,
        passes: 0,
      };
      ticket.running = running;
      slot.running = running;
      slot.lastUsed = this.nextOrder++;
      this.totals.promptTokens += prompt.length;
      this.totals.cachedTokens += reuse;
      if (restore) this.restore(running, restore.entry, restore.n);
      // A grammar may decide the first tokens (or the whole answer) before the model says anything.
      else this.takeForced(running, performance.now());
    }
  }

  /** Fills a slot from a prompt-cache file; the sequence joins the batches once that is done. */
  private restore(r: Running, entry: PromptCacheEntry, n: number): void {
    r.restoring = true;
    r.pending = [];
    const prompt = r.ticket.job.promptTokens;
    const slot = this.slots[r.slot];
    void this.cache!.restore(r.slot, entry, n).then((ok) => {
      r.restoring = false;
      const kept = ok ? n : 0; // a failed restore left the sequence empty: read the whole prompt
      slot.cached = prompt.slice(0, kept);
      r.pending = prompt.slice(kept);
      r.reusedTokens = kept;
      r.promptLeft = prompt.length - kept;
      this.totals.cachedTokens += kept;
      this.takeForced(r, performance.now());
      this.wake?.();
    });
  }

  /** One engine call for every running sequence. */
  private async step(active: Running[]): Promise<void> {
    // Generating sequences first (their last token, any forced after it and the tokens proposed
    // after those; keeps their latency low), then prompt chunks in arrival order within what is
    // left of the token budget.
    const decoding = active.filter((r) => r.promptLeft === 0);
    const reading = active.filter((r) => r.promptLeft > 0).sort((a, b) => a.ticket.order - b.ticket.order);
    const parts: Part[] = decoding.map((r) => {
      const draft = this.draftFor(r);
      return { r, n: r.pending.length + draft.length, logits: true, draft };
    });
    // At least one prompt token per step, so that a prompt is never starved by many decoders.
    let budget = Math.max(this.maxBatchTokens - parts.reduce((a, p) => a + p.n, 0), 1);
    for (const r of reading) {
      const n = Math.min(r.pending.length, budget);
      if (n === 0) break;
      budget -= n;
      parts.push({ r, n, logits: n === r.pending.length, draft: [] });
    }

    const batch = batchOf(parts, this.slots);

    const t0 = performance.now();
    this.stepStarted = t0;
    let logits: Float32Array;
    try {
      logits = await this.model.decodeAsync(batch);
    } catch (e) {
      this.stepStarted = null;
      // The engine refused the batch: these sequences cannot go on; their cache is unknown.
      const message = `engine error: ${e instanceof Error ? e.message : String(e)}`;
      for (const p of parts) this.abort(p.r, message);
      return;
    }
    const t1 = performance.now();
    this.stepStarted = null;

    // logits: [nOut][nVocab], one row per token that asked, in batch order
    let row = 0;
    let produced = 0;
    for (const p of parts) {
      const slot = this.slots[p.r.slot];
      const firstDraft = slot.cached.length + p.r.pending.length; // the position of draft[0]
      for (let j = 0; j < p.n - p.draft.length; j++) slot.cached.push(p.r.pending[j]);
      for (const d of p.draft) slot.cached.push(d);
      p.r.pending.splice(0, p.n - p.draft.length);
      const decodePass = p.r.promptLeft === 0;
      if (p.r.promptLeft > 0) {
        p.r.promptLeft = Math.max(0, p.r.promptLeft - p.n);
        if (p.r.promptLeft === 0) p.r.promptDone ??= t1;
      }
      if (!p.logits) continue;
      const firstRow = row;
      row += 1 + p.draft.length;
      if (p.r.ticket.endReason) continue; // ended while the step ran; finishEnded() reports it
      if (decodePass) p.r.passes++;
      produced += this.check(p.r, logits, firstRow, p.draft, firstDraft, t1);
    }
    this.recentSteps.push({ end: t1, ms: t1 - t0, tokens: produced });
    if (this.recentSteps.length > 4096) this.recentSteps.splice(0, 2048);
  }

  /** Tokens to propose after a decoding sequence's pending ones, within its context and length. */
  private draftFor(r: Running): number[] {
    if (!r.spec) return [];
    const cached = this.slots[r.slot].cached;
    const room = Math.min(this.nCtx - cached.length - r.pending.length, r.ticket.maxTokens - r.generated - 1);
    if (room < 1) return [];
    return r.spec.propose(cached.concat(r.pending), room);
  }

  /**
   * Samples a sequence's rows of one step: the row after its pending tokens, then one after each
   * drafted token for as long as the sampler keeps the draft. Tokens it does not keep leave the
   * KV cache again. Returns the tokens produced.
   */
  private check(r: Running, logits: Float32Array, firstRow: number, draft: number[], firstDraft: number, now: number): number {
    const nVocab = this.nVocab;
    const slot = this.slots[r.slot];
    let kept = 0;
    let produced = 0;
    for (let i = 0; i <= draft.length; i++) {
      let token: number;
      try {
        token = r.sampler.sample(logits, (firstRow + i) * nVocab, nVocab, i < draft.length ? draft[i] : -1);
      } catch (e) {
        // only a grammar that admits no token of this vocabulary here gets this far
        this.abort(r, e instanceof Error ? e.message : String(e));
        return produced;
      }
      produced++;
      if (!this.take(r, token, now)) break; // the answer ended with this token
      if (i < draft.length && token === draft[i]) {
        // kept: its cells are already computed; the grammar may decide the tokens after it
        kept++;
        r.pending = [];
        this.takeForced(r, now);
        if (slot.running !== r || r.pending.length > 0) break;
        continue;
      }
      r.pending = [token];
      this.takeForced(r, now);
      break;
    }
    if (draft.length > 0) {
      r.spec!.record(draft.length, kept);
      const valid = firstDraft + kept;
      if (slot.cached.length > valid) {
        this.model.kvTruncate(r.slot, valid);
        slot.cached.length = valid;
      }
    }
    return produced;
  }

  /** Tokens the grammar decides from here join the pending ones (without fast-forward, sample() returns them one per step). */
  private takeForced(r: Running, now: number): void {
    if (!this.fastForward) return;
    const forced = r.sampler.takeForced();
    for (let i = 0; i < forced.length; i++) {
      r.forced++;
      // the sampler has read them all: whether the grammar is complete holds after the last one
      if (!this.take(r, forced[i], now, i === forced.length - 1)) return;
      r.pending.push(forced[i]);
    }
  }

  /** One generated token: count and stream it; false when it ended the sequence. */
  private take(r: Running, token: number, now: number, grammarKnown = true): boolean {
    r.firstToken ??= now;
    r.generated++;
    this.totals.generatedTokens++;
    if (this.eog.has(token)) {
      this.finish(r, "eos");
      return false;
    }
    const bytes = this.model.tokenBytes(token);
    if (r.lazy && !r.thinking?.inThinking) this.watchTrigger(r, token, bytes);
    const { emit, stopped } = r.stops.push(this.answerOf(r, r.utf8.push(bytes)));
    this.emit(r, emit);
    if (stopped) this.finish(r, "stop");
    // a grammar that admits nothing more ends the answer as the end-of-generation token it forces would
    else if (grammarKnown && r.sampler.grammarState() === "complete") this.finish(r, "eos");
    else if (r.generated >= r.ticket.maxTokens) this.finish(r, "length");
    else return true;
    return false;
  }

  /** Switches a lazy grammar on once its trigger token or text has been generated. */
  private watchTrigger(r: Running, token: number, bytes: Buffer): void {
    const lazy = r.lazy!;
    if (lazy.grammar.triggerTokens?.includes(token)) {
      r.lazy = undefined;
      r.sampler.setGrammar(lazy.grammar.grammar);
      return;
    }
    lazy.output = Buffer.concat([lazy.output, bytes]);
    let at = -1;
    for (const trigger of lazy.grammar.triggers) {
      const i = lazy.output.indexOf(trigger, Math.max(0, lazy.searched - Buffer.byteLength(trigger) + 1));
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    lazy.searched = lazy.output.length;
    if (at < 0) return;
    r.lazy = undefined;
    // A trigger the grammar does not go on from leaves the output free: the tool-call parser reports it.
    r.sampler.setGrammar(lazy.grammar.grammar, lazy.output.subarray(at));
  }

  /** The answer in a piece of output; reasoning goes to its own stream. */
  private answerOf(r: Running, text: string, last = false): string {
    if (!r.thinking) return text;
    const parts = r.thinking.push(text);
    if (last) {
      const rest = r.thinking.finish();
      parts.thinking += rest.thinking;
      parts.answer += rest.answer;
    }
    if (parts.thinking && r.ticket.job.thinking?.keep) {
      r.reasoning += parts.thinking;
      const { sink } = r.ticket;
      this.settleSafe(() => sink.thinking?.(parts.thinking));
    }
    return parts.answer;
  }

  private emit(r: Running, text: string): void {
    if (!text) return;
    r.text += text;
    const { sink } = r.ticket;
    this.settleSafe(() => sink.delta(text));
  }

  private settleSafe(f: () => void): void {
    try {
      f();
    } catch {
      // see settle()
    }
  }

  private finish(r: Running, reason: StopReason): void {
    const slot = this.slots[r.slot];
    slot.running = undefined;
    if (r.persist !== undefined && this.cache && slot.cached.length >= r.persist) {
      // Off the request path: the answer goes out now, the file is written behind it.
      slot.pinned = r.persist;
      void this.cache.save(r.slot, slot.cached.slice(0, r.persist)).finally(() => {
        slot.pinned = 0;
        this.wake?.();
      });
    }
    if (reason !== "stop") this.emit(r, r.stops.flush(this.answerOf(r, r.utf8.finish(), true)));
    const now = performance.now();
    const t = r.ticket;
    r.promptDone ??= r.firstToken;
    const promptDone = r.promptDone ?? now;
    const promptMs = promptDone - r.admitted;
    const decodeMs = now - promptDone;
    const promptRead = t.job.promptTokens.length - r.reusedTokens;
    this.totals.completed++;
    const result: GenerateResult = {
      text: r.text,
      stop_reason: reason,
      usage: { prompt_tokens: t.job.promptTokens.length, completion_tokens: r.generated, cached_tokens: r.reusedTokens },
      timings: {
        queue_ms: round(r.admitted - t.arrival),
        prompt_ms: round(promptMs),
        decode_ms: round(decodeMs),
        first_token_ms: round((r.firstToken ?? now) - t.arrival),
        total_ms: round(now - t.arrival),
        prompt_tokens_per_second: round(promptMs > 0 ? (promptRead * 1000) / promptMs : 0),
        decode_tokens_per_second: round(decodeMs > 0 && r.generated > 1 ? ((r.generated - 1) * 1000) / decodeMs : 0),
        forced_tokens: r.forced,
        decode_passes: r.passes,
        ...(r.spec ? { draft_tokens: r.spec.drafted, accepted_tokens: r.spec.accepted } : {}),
      },
      ...(t.job.thinking?.keep ? { thinking: r.reasoning } : {}),
      ...(r.sampler.closingTokens() > 0 ? { closed_by_budget: true } : {}),
    };
    this.settle(t, () => t.sink.done(result));
  }

  private abort(r: Running, message: string): void {
    const slot = this.slots[r.slot];
    slot.running = undefined;
    this.model.kvTruncate(r.slot, 0);
    slot.cached = [];
    this.settle(r.ticket, () => r.ticket.sink.fail("internal", message));
  }
}

function commonPrefix(a: number[], b: number[], limit: number): number {
  const n = Math.min(a.length, b.length, limit);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
