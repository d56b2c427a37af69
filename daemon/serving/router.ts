// One request router for every transport (DESIGN §1, §5): a table from operation to handler, the
// same envelope and errors whether a request came over the Unix socket or MQTT. A transport only
// frames bytes and hands each request to a Session, which addresses the replies back to it.
import type { ModelInfo, NativeModel } from "../engine/engine.js";
import type { NativeGrammar } from "../engine/grammar.js";
import { compileGrammar, GrammarError } from "../engine/grammar.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import type {
  CancelRequest,
  ChunkMessage,
  ErrorCode,
  GenerateRequest,
  GenerateResult,
  InfoData,
  ModelsData,
  ModelSummary,
  Op,
  OutputConstraint,
  PlanFacts,
  ReplyMessage,
  Request,
  ResidencyFacts,
  SimpleRequest,
  StatusData,
  TransactionId,
} from "./protocol.js";
import {
  API_VERSION,
  DEFAULT_MAX_TOKENS,
  duplicateMessage,
  errorMessage,
  LIMITS,
  okMessage,
  OPS,
  parseRequestLine,
  ProtocolError,
  transactionOf,
  validateRequest,
} from "./protocol.js";
import type { GenerationHandle, GenerationJob, GenerationSink, Scheduler } from "./scheduler.js";
import { formatToGbnf, SchemaError } from "./json-schema-grammar.js";
import type { ChatTemplate } from "./templates.js";
import { alpacaPrompt } from "./templates.js";
import { withoutOldestTurn } from "./history.js";
import { promptOpensThinking, templateThinks, thinkingVariables } from "./thinking.js";
import type { ToolPlan } from "./tool-calls.js";
import { planToolCalls, toolCallSink, toolFormatFor } from "./tool-calls.js";

/** How a transport delivers replies to one client. */
export interface ReplyChannel {
  send(message: ReplyMessage): void;
  /** True while the client is not reading fast enough; stream deltas are then merged, not queued. */
  congested(): boolean;
  /** Calls back once when congested() turns false. */
  onceDrained(callback: () => void): void;
}

export interface RouterOptions {
  model: NativeModel;
  scheduler: Scheduler;
  chatTemplate?: ChatTemplate;
  version: string;
  /** Extra facts for status/info (the memory plan); read on every call. */
  describePlan?: () => Record<string, unknown>;
  log?: Logger;
}

type Handler<R extends Request> = (session: Session, request: R) => void;
type RequestOf<K extends Op> = K extends "generate" ? GenerateRequest : K extends "cancel" ? CancelRequest : SimpleRequest;

export class Router {
  /** The loaded model's facts, as the engine reported them at start. */
  readonly modelInfo: ModelInfo;
  /** The model's chat template, if it has one that parses. */
  readonly chatTemplate?: ChatTemplate;
  private readonly log: Logger;
  private accepting = true;
  private readonly sessions = new Set<Session>();
  private readonly started = Date.now();
  private nextAssigned = 0;
  // Compiled grammars by GBNF text, most recently used last: `format: "json"` and a client's
  // repeated schema compile once.
  private readonly grammars = new Map<string, NativeGrammar>();
  private specialTexts?: string[]; // the vocabulary's special-token texts, read on the first messages request

  // The table: every operation and who answers it.
  private readonly handlers: { [K in Op]: Handler<RequestOf<K>> } = {
    generate: (s, r) => this.generate(s, r),
    cancel: (s, r) => this.cancel(s, r),
    status: (s, r) => s.reply(okMessage(r.transaction, this.status())),
    info: (s, r) => s.reply(okMessage(r.transaction, this.info())),
    models: (s, r) => s.reply(okMessage(r.transaction, this.models())),
  };

  constructor(private readonly options: RouterOptions) {
    this.modelInfo = options.model.info();
    this.chatTemplate = options.chatTemplate;
    this.log = options.log ?? silentLogger;
  }

  openSession(channel: ReplyChannel, label = "client"): Session {
    const session = new Session(this, channel, label);
    this.sessions.add(session);
    return session;
  }

  /** From now on generate is answered shutting_down; status and the rest keep working. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Sessions with a generation still in flight. */
  busySessions(): number {
    let n = 0;
    for (const s of this.sessions) if (s.inFlight() > 0) n++;
    return n;
  }

  // ─── Dispatch ──────────────────────────────────────────────────────────────────────────────

  /** @internal Session entry point: any bad input becomes an error reply, never an exception. */
  dispatch(session: Session, raw: unknown): void {
    let request: Request;
    try {
      request = validateRequest(raw, { nCtx: this.modelInfo.nCtx }, () => `auto-${++this.nextAssigned}`);
    } catch (e) {
      session.replyError(transactionOf(raw), e);
      return;
    }
    this.execute(session, request);
  }

  /** @internal A request already validated (by the transport that translated it). */
  execute(session: Session, request: Request): void {
    try {
      (this.handlers[request.op] as Handler<Request>)(session, request);
    } catch (e) {
      session.replyError(request.transaction, e);
    }
  }

  /** @internal */
  closed(session: Session): void {
    this.sessions.delete(session);
  }

  /** @internal */
  logError(message: string): void {
    this.log.error(message);
  }

  /** @internal Counts and times only: prompts and answers never reach the log. */
  logDone(label: string, transaction: TransactionId, r: GenerateResult): void {
    this.log.debug(
      `${label} ${JSON.stringify(transaction)}: ${r.stop_reason}, ${r.usage.prompt_tokens} prompt tokens ` +
        `(${r.usage.cached_tokens} cached) + ${r.usage.completion_tokens} generated in ${r.timings.total_ms} ms`,
    );
  }

  // ─── Handlers ──────────────────────────────────────────────────────────────────────────────

  private generate(session: Session, r: GenerateRequest): void {
    if (!this.accepting) throw new ProtocolError("shutting_down", "the daemon is shutting down");
    if (session.has(r.transaction)) return session.reply(duplicateMessage(r.transaction));
    const tools = this.toolPlan(r);
    const { tokens: promptTokens, opensThinking } = this.fitted(r, tools, this.prompt(r, tools));
    const thinking = this.thinkingOf(r, opensThinking);
    const room = this.modelInfo.nCtx - promptTokens.length;
    const maxTokens = r.upToContext ? Math.min(r.maxTokens ?? room, room) : r.maxTokens;
    const constrained = this.constraintOf(r, tools);
    const parseJson = r.constraint?.kind === "format";
    session.startGeneration(r, (sink) =>
      this.options.scheduler.submit(
        {
          promptTokens,
          maxTokens,
          sampling: r.sampling,
          stop: r.stop,
          timeoutMs: r.timeoutMs,
          priority: r.priority,
          ...(r.speculate === false ? { speculate: false } : {}),
          ...constrained,
          ...(thinking ? { thinking } : {}),
        },
        parseJson ? withParsedJson(sink) : tools ? toolCallSink(sink, tools) : sink,
      ),
    );
  }

  /** How a request's tools are used, or null (no tools, or tool_choice "none"). */
  private toolPlan(r: GenerateRequest): ToolPlan | null {
    if (!r.tools || r.toolChoice?.kind === "none" || r.source.kind !== "messages" || !this.options.chatTemplate) return null;
    const format = toolFormatFor(this.options.chatTemplate.source);
    if (!format) throw new ProtocolError("bad_request", "this model's chat template does not take tools");
    return planToolCalls(format, r.tools, r.toolChoice ?? { kind: "auto" }, r.parallelToolCalls ?? true);
  }

  /**
   * What constrains the answer: the tools' call grammar (from the first token for tool_choice
   * "required" or a named tool, else from a call's trigger on), or the request's format or grammar.
   */
  private constraintOf(r: GenerateRequest, tools: ToolPlan | null): Pick<GenerationJob, "grammar" | "lazyGrammar"> {
    if (tools) {
      const grammar = this.compiled(tools.grammar, "tools (as a grammar)");
      if (tools.fromStart) return { grammar };
      const triggerTokens = tools.format.triggerTokens
        .map((text) => Array.from(this.options.model.tokenize(text, false, true)))
        .filter((ids) => ids.length === 1)
        .map((ids) => ids[0]);
      return { lazyGrammar: { grammar, triggers: [...tools.format.triggers], triggerTokens } };
    }
    if (!r.constraint) return {};
    return { grammar: this.grammarFor(r.constraint) };
  }

  /** The compiled grammar of a request's format or grammar; a bad one is a bad_request that says where. */
  private grammarFor(c: OutputConstraint): NativeGrammar {
    let gbnf: string;
    try {
      gbnf = c.kind === "grammar" ? c.grammar : formatToGbnf(c.format);
    } catch (e) {
      if (e instanceof SchemaError) throw new ProtocolError("bad_request", `format: ${e.message}`);
      throw e;
    }
    return this.compiled(gbnf, c.kind === "grammar" ? "grammar" : "format (as a grammar)");
  }

  /** GBNF compiled against the model's vocabulary, from the cache when it was seen lately. */
  private compiled(gbnf: string, what: string): NativeGrammar {
    const cached = this.grammars.get(gbnf);
    if (cached) {
      this.grammars.delete(gbnf);
      this.grammars.set(gbnf, cached);
      return cached;
    }
    let grammar: NativeGrammar;
    try {
      grammar = compileGrammar(this.options.model, gbnf);
    } catch (e) {
      if (e instanceof GrammarError)
        throw new ProtocolError("bad_request", `${what}: ${e.message}`);
      throw e;
    }
    this.grammars.set(gbnf, grammar);
    if (this.grammars.size > 16) this.grammars.delete(this.grammars.keys().next().value!);
    return grammar;
  }

  /** For trimHistory requests: the oldest turns left out until the answer has room (history.ts). */
  private fitted(r: GenerateRequest, tools: ToolPlan | null, prompt: Prompt): Prompt {
    const nCtx = this.modelInfo.nCtx;
    const room = Math.min(r.maxTokens ?? DEFAULT_MAX_TOKENS, Math.floor(nCtx / 4));
    let source = r.source;
    let dropped = 0;
    while (r.trimHistory && source.kind === "messages" && prompt.tokens.length + room > nCtx) {
      const fewer = withoutOldestTurn(source.messages);
      if (!fewer) break;
      dropped += source.messages.length - fewer.length;
      source = { kind: "messages", messages: fewer };
      prompt = this.prompt({ ...r, source }, tools);
    }
    if (dropped > 0) this.log.debug(`${JSON.stringify(r.transaction)}: the ${dropped} oldest messages were left out so that the answer has room`);
    return prompt;
  }

  /** How the scheduler splits a thinking model's reasoning from its answer (thinking.ts), or undefined. */
  private thinkingOf(r: GenerateRequest, opensThinking: boolean): GenerationJob["thinking"] {
    const template = this.options.chatTemplate;
    if (r.source.kind !== "messages" || !template || !templateThinks(template.source)) return undefined;
    return { startsInside: opensThinking, keep: r.think ?? false };
  }

  private prompt(r: GenerateRequest, tools: ToolPlan | null): Prompt {
    const { model } = this.options;
    const src = r.source;
    if (src.kind === "prompt") return { tokens: Array.from(model.tokenize(src.prompt)), opensThinking: false };
    if (src.kind === "instruction") return { tokens: Array.from(model.tokenize(alpacaPrompt(src.instruction, src.input))), opensThinking: false };
    const template = this.options.chatTemplate;
    if (!template)
      throw new ProtocolError("bad_request", "this model has no chat template (tokenizer.chat_template); send prompt or instruction");
    if (r.think && !templateThinks(template.source))
      throw new ProtocolError("bad_request", "this model does not think (its chat template has no <think> block); leave think off");
    this.specialTexts ??= model.specialTexts();
    const { text, textOnly } = template.renderPrompt(src.messages, {
      ...(tools ? { tools: tools.tools } : {}),
      variables: thinkingVariables(r.think ?? false),
      specialTexts: this.specialTexts,
    });
    // Templates write their own BOS and special tokens ("<|im_start|>"): parse them — but not in
    // what the client wrote — and do not add a second BOS.
    const bosText = this.modelInfo.bos >= 0 ? model.tokenBytes(this.modelInfo.bos, true).toString("utf8") : "";
    const addBos = this.modelInfo.addBos && !(bosText && text.startsWith(bosText));
    return { tokens: Array.from(model.tokenize(text, addBos, true, textOnly)), opensThinking: promptOpensThinking(text) };
  }

  private cancel(session: Session, r: CancelRequest): void {
    const cancelled = session.cancel(r.target);
    session.reply(okMessage(r.transaction, { cancelled }));
  }

  // ─── Answers (typed, for transports that describe the daemon themselves) ───────────────────

  /** What `models` answers. */
  models(): ModelsData {
    return { models: [this.modelSummary()] };
  }

  private modelSummary(): ModelSummary {
    const i = this.modelInfo;
    return { name: i.name, path: i.path, architecture: i.architecture, n_ctx_train: i.nCtxTrain, n_vocab: i.nVocab, loaded: true };
  }

  private plan(): PlanFacts {
    const i = this.modelInfo;
    return {
      n_ctx: i.nCtx,
      n_seq: i.nSeq,
      threads: i.threads,
      kv_type: i.kvType,
      kv_bytes: i.kvBytes,
      weight_bytes: i.weightBytes,
      residency: this.residency(),
      ...(this.options.describePlan?.() ?? {}),
    };
  }

  /** What the engine keeps in RAM and streams, as it is now (the pass count moves). */
  private residency(): ResidencyFacts {
    const r = this.options.model.info().residency;
    return {
      managed: r.managed,
      resident_bytes: r.residentBytes,
      locked_bytes: r.lockedBytes,
      streamed_bytes: r.streamedBytes,
      window_bytes: r.windowBytes,
      locked_layers: r.lockedLayers,
      streamed_layers: r.streamedLayers,
      locking_permitted: r.lockingPermitted,
      ...(r.lockError ? { lock_error: r.lockError } : {}),
      streamed_passes: r.passes,
    };
  }

  /** What `info` answers. */
  info(): InfoData {
    return {
      api_version: API_VERSION,
      version: this.options.version,
      model: this.modelSummary(),
      plan: this.plan(),
      chat_template: !!this.options.chatTemplate,
      ops: OPS,
      limits: {
        max_line_bytes: LIMITS.maxLineBytes,
        max_prompt_chars: LIMITS.maxPromptChars,
        max_messages: LIMITS.maxMessages,
        max_stop_strings: LIMITS.maxStopStrings,
        max_stop_chars: LIMITS.maxStopChars,
      },
    };
  }

  /** What `status` answers. */
  status(): StatusData {
    const s = this.options.scheduler.stats();
    const mem = process.memoryUsage();
    return {
      api_version: API_VERSION,
      version: this.options.version,
      uptime_s: Math.round((Date.now() - this.started) / 1000),
      model: this.modelSummary(),
      plan: this.plan(),
      queue: {
        queued: s.queued,
        running: s.running,
        max_queue: s.maxQueue,
        accepting: this.accepting && s.accepting,
        admitting: s.admitting,
        ...(s.admitting ? {} : { held_because: s.admissionNote }),
      },
      slots: s.slots.map((x) => ({ slot: x.slot, busy: x.busy, cached_tokens: x.cachedTokens })),
      tokens_per_second: Math.round(s.tokensPerSecond * 10) / 10,
      totals: {
        requests: s.totals.requests,
        completed: s.totals.completed,
        rejected_busy: s.totals.rejected,
        prompt_tokens: s.totals.promptTokens,
        cached_tokens: s.totals.cachedTokens,
        generated_tokens: s.totals.generatedTokens,
      },
      memory: {
        rss_bytes: mem.rss,
        heap_used_bytes: mem.heapUsed,
        kv_bytes: this.modelInfo.kvBytes,
        kv_used_cells: s.kvUsedCells,
        kv_total_cells: s.nCtx * s.nSeq,
      },
      ...(s.promptCache ? { prompt_cache: s.promptCache } : {}),
      clients: this.sessions.size,
    };
  }
}

/** The final of a `format` request carries the text parsed as `json` (absent when the text was cut short). */
/** A request's prompt as tokens, and whether it ends inside a <think> block the template opened. */
interface Prompt {
  tokens: number[];
  opensThinking: boolean;
}

function withParsedJson(sink: GenerationSink): GenerationSink {
  return {
    delta: (text) => sink.delta(text),
    thinking: sink.thinking && ((text) => sink.thinking!(text)),
    fail: (code, message) => sink.fail(code, message),
    done: (result) => {
      let json: unknown;
      try {
        json = JSON.parse(result.text);
      } catch {
        return sink.done(result);
      }
      sink.done({ ...result, json });
    },
  };
}

// ─── Sessions ────────────────────────────────────────────────────────────────────────────────

interface Stream {
  handle?: GenerationHandle;
  stream: boolean;
  seq: number;
  unsent: string; // deltas merged while the client is congested
  unsentThinking: string; // reasoning likewise
  waitingForDrain: boolean;
}

/** One client of a transport: its generations in flight, by transaction id. */
export class Session {
  private readonly streams = new Map<TransactionId, Stream>();
  private open = true;

  constructor(
    private readonly router: Router,
    private readonly channel: ReplyChannel,
    readonly label: string,
  ) {}

  /** A raw request line (bytes without the newline). */
  handleLine(line: Buffer): void {
    let raw: unknown;
    try {
      raw = parseRequestLine(line);
    } catch (e) {
      this.replyError(null, e);
      return;
    }
    this.router.dispatch(this, raw);
  }

  /** An already parsed request (a transport that frames JSON itself). */
  handle(raw: unknown): void {
    this.router.dispatch(this, raw);
  }

  /** A typed request a transport built from its own API's shape (and checked field by field). */
  submit(request: Request): void {
    this.router.execute(this, request);
  }

  /** The client is gone: its generations are cancelled and their slots freed. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    for (const s of this.streams.values()) s.handle?.cancel();
    this.streams.clear();
    this.router.closed(this);
  }

  inFlight(): number {
    return this.streams.size;
  }

  has(transaction: TransactionId): boolean {
    return this.streams.has(transaction);
  }

  reply(message: ReplyMessage): void {
    if (!this.open) return;
    try {
      this.channel.send(message);
    } catch (e) {
      this.router.logError(`${this.label}: cannot send a reply: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  replyError(transaction: TransactionId | null, e: unknown): void {
    if (e instanceof ProtocolError) return this.reply(errorMessage(transaction, e.code, e.message));
    const message = e instanceof Error ? e.message : String(e);
    this.router.logError(`${this.label}: internal error: ${message}`);
    this.reply(errorMessage(transaction, "internal", message));
  }

  /** Registers a generation and wires the scheduler's events to replies on this session. */
  startGeneration(r: GenerateRequest, submit: (sink: Parameters<Scheduler["submit"]>[1]) => GenerationHandle): void {
    const t = r.transaction;
    const st: Stream = { stream: r.stream, seq: 0, unsent: "", unsentThinking: "", waitingForDrain: false };
    this.streams.set(t, st);
    const ended = () => this.streams.get(t) === st && this.streams.delete(t);
    try {
      st.handle = submit({
        delta: (text) => this.delta(t, st, text),
        thinking: (text) => this.delta(t, st, text, true),
        done: (result: GenerateResult) => {
          if (!ended()) return;
          this.flush(t, st);
          this.reply(okMessage(t, result));
          this.router.logDone(this.label, t, result);
        },
        fail: (code: ErrorCode, message: string) => {
          if (!ended()) return;
          this.flush(t, st);
          this.reply(errorMessage(t, code, message));
        },
      });
    } catch (e) {
      ended();
      throw e;
    }
  }

  /** Cancels one generation (target) or all of this session's; returns the transactions cancelled. */
  cancel(target: TransactionId | undefined): TransactionId[] {
    const ids = target === undefined ? [...this.streams.keys()] : this.streams.has(target) ? [target] : [];
    for (const id of ids) this.streams.get(id)?.handle?.cancel();
    return ids;
  }

  private delta(t: TransactionId, st: Stream, text: string, thinking = false): void {
    if (!st.stream || !this.open) return;
    if (thinking) st.unsentThinking += text;
    else st.unsent += text;
    if (this.channel.congested()) {
      // A slow reader gets fewer, larger chunks instead of an ever-growing write buffer.
      if (!st.waitingForDrain) {
        st.waitingForDrain = true;
        this.channel.onceDrained(() => {
          st.waitingForDrain = false;
          if (this.streams.get(t) === st) this.flush(t, st);
        });
      }
      return;
    }
    this.flush(t, st);
  }

  private flush(t: TransactionId, st: Stream): void {
    if (!st.stream || (st.unsent === "" && st.unsentThinking === "")) return;
    const chunk: ChunkMessage = { transaction: t, seq: st.seq++, delta: st.unsent };
    if (st.unsentThinking) chunk.thinking = st.unsentThinking;
    st.unsent = "";
    st.unsentThinking = "";
    this.reply(chunk);
  }
}
