// Typed view of the native grammar engine (native/sampler/grammar*.cc): GBNF text, exactly as
// llama.cpp defines it, compiled against a model's vocabulary. A compiled grammar is immutable and
// may be shared by any number of samplers (each keeps its own place in it).
//
//   const g = compileGrammar(model, gbnf, "root");     // or throws GrammarError {line, column}
//   const sampler = createSampler({ temperature, …, grammar: g });
//   sampler.sample(logits)        // only tokens the grammar admits; end-of-generation only where it may end
//   sampler.takeForced()          // tokens the grammar decides from here (fast-forward), taken as sampled
//   sampler.grammarState()        // "none" | "open" | "complete" (nothing more may follow: stop)
//   sampler.setGrammar(g, text)   // switch a grammar on mid-generation (a tool call's trigger), or off (null)
//
// Closing in budget: with `maxTokens`, the sampler knows how many tokens are left. The grammar knows,
// for each of its states, the fewest bytes to a complete sentence (a shortest completion per grammar
// position, computed once when it is compiled). Once a token it admits would leave the sentence
// farther from complete than the tokens after it can reach (one byte each, then end-of-generation),
// only the tokens that keep it within reach are admitted; at the very edge those are the tokens that
// shorten it, and end-of-generation once it is complete. The model still chooses among them, and an
// answer that ends well before the budget is the same as without one. sampler.closingTokens() counts
// the tokens chosen so.
//
// JSON Schema / `format` → GBNF lives in daemon/serving/json-schema-grammar.ts.

/** A grammar that cannot be compiled: what is wrong and where (1-based, columns in characters). */
export class GrammarError extends Error {
  override name = "GrammarError";
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

export interface GrammarMatch {
  /** The bytes are a prefix of some sentence of the grammar. */
  accepted: boolean;
  /** The bytes are a whole sentence (the grammar may end here). */
  complete: boolean;
}

export interface NativeGrammar {
  /** The start rule. */
  readonly root: string;
  /**
   * The tokens the grammar admits after `tokens` (generated from its start), ascending; end-of-generation
   * ids where it may end. With `tokensLeft` (this one included): those a sampler with that many
   * tokens left admits, closing the answer within them.
   */
  allowedTokens(tokens?: ArrayLike<number>, tokensLeft?: number): Int32Array;
  /** The fewest bytes that complete a sentence after `tokens` (0: it may end there; Infinity: nothing completes it). */
  shortestCompletion(tokens?: ArrayLike<number>): number;
  /** The tokens the grammar decides after `tokens`: the tokenizer's tokens for the one text it admits, the last left to the model when a longer token could run on past that text. */
  forcedTokens(tokens?: ArrayLike<number>): Int32Array;
  /** How the grammar reads a whole text (from its start). */
  match(text: string | Uint8Array): GrammarMatch;
}

/** What compiles GBNF: a loaded model (its vocabulary), or a vocabulary-only file's Vocab. */
export interface GrammarCompiler {
  compileGrammar(gbnf: string, root?: string): NativeGrammar;
}

interface NativeGrammarFailure {
  name?: string;
  message?: string;
  line?: number;
  column?: number;
}

/** Compiles GBNF against the vocabulary of `compiler`; a bad grammar throws GrammarError with its position. */
export function compileGrammar(compiler: GrammarCompiler, gbnf: string, root = "root"): NativeGrammar {
  if (typeof gbnf !== "string") throw new TypeError("grammar must be a string");
  try {
    return compiler.compileGrammar(gbnf, root);
  } catch (e) {
    const f = e as NativeGrammarFailure;
    if (f?.name === "GrammarError" && typeof f.line === "number" && typeof f.column === "number")
      throw new GrammarError(f.message ?? "bad grammar", f.line, f.column);
    throw e;
  }
}
