// Closing in budget: a grammar's answer that always ends well-formed within max_tokens. The grammar
// engine's shortest completion (the fewest bytes to a complete sentence, per state) against hand
// counts, a brute-force search and the test-only reader's own lengths; the narrowed mask against a
// brute-force check of every token; and a sampler on random logits: every answer ends complete within
// its budget, forced tokens taken together or one by one alike, and an answer that ends well before
// its budget is the one without a budget.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import type { ExecutionContext } from "ava";
import { seededRandom } from "../daemon/engine/bench.js";
import { createSampler } from "../daemon/engine/engine.js";
import type { NativeGrammar } from "../daemon/engine/grammar.js";
import { compileGrammar } from "../daemon/engine/grammar.js";
import type { NativeVocab } from "../daemon/engine/tokenizer.js";
import { openVocab } from "../daemon/engine/tokenizer.js";
import { schemaToGbnf } from "../daemon/serving/json-schema-grammar.js";
import { parseGbnf } from "./helpers/gbnf.js";
import { greedyTokens } from "./helpers/grammar-tokens.js";
import { needShared, ROOT, SHARED, sharedModel, testNeeding } from "./helpers/shared.js";

const fixtures = path.join(ROOT, "test", "fixtures");
const grammarFile = (name: string) => fs.readFileSync(path.join(fixtures, "grammars", `${name}.gbnf`), "utf8");
const schemas: { name: string; schema: unknown }[] = JSON.parse(fs.readFileSync(path.join(fixtures, "schemas", "schemas.json"), "utf8"));
const STORIES_VOCAB = () => sharedModel("stories260K-f32.gguf");
const SPM_VOCAB = () => path.join(SHARED, "vocab", "ggml-vocab-llama-spm.gguf");
const BPE_VOCAB = () => path.join(SHARED, "vocab", "ggml-vocab-llama-bpe.gguf");

/** The fewest characters of `alphabet` that make `prefix` a sentence, by breadth-first search (Infinity: none within `depth`). */
function searchShortest(g: NativeGrammar, prefix: string, alphabet: string, depth: number): number {
  let level = [prefix];
  for (let n = 0; n <= depth; n++) {
    if (level.some((s) => g.match(s).complete)) return n;
    const next = new Set<string>();
    for (const s of level) for (const c of alphabet) if (g.match(s + c).accepted) next.add(s + c);
    level = [...next];
  }
  return Infinity;
}

testNeeding(test, needShared, "shortest completion: the fewest bytes to a sentence, as counted by hand and found by search", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const json = compileGrammar(vocab, grammarFile("json"));
  const after = (text: string) => json.shortestCompletion(greedyTokens(vocab, text));
  t.is(json.shortestCompletion(), 2); // {}
  t.is(after("{"), 1); // }
  t.is(after('{"a'), 4); // ":0}
  t.is(after('{"a":'), 2); // 0}
  t.is(after('{"a": [[{"b": "'), 5); // "}]]}
  t.is(after('{"a": "\\u00'), 4); // 00"}
  t.is(after("{}"), 0);
  // (each searched over the characters that can matter after it, which keeps the search small)
  const structure = '{}[]":,0';
  for (const [prefix, alphabet] of [
    ["", structure], ["{", structure], ['{"', structure], ['{"a":', structure], ['{"a": [', structure], ['{"a": [1,', structure],
    ['{"a": {"', structure], ['{"a": tr', "truefals}"], ['{"a": -', "0.e-}"], ['{"a": 1.', "0.e-}"], ['{"a": 1e', "0.e-+}"],
  ])
    t.is(json.shortestCompletion(greedyTokens(vocab, prefix)), searchShortest(json, prefix, alphabet, 6), prefix);

  // Nested rules and repetitions: the stack's levels add up.
  const g = compileGrammar(vocab, 'root ::= "<" inner{2,3} ">"\ninner ::= "(" ("x" | inner) ")" | "ab"');
  t.is(g.shortestCompletion(), 6); // <abab>
  for (const prefix of ["<", "<(", "<((", "<ab", "<ab(", "<abab", "<((x)"])
    t.is(g.shortestCompletion(greedyTokens(vocab, prefix)), searchShortest(g, prefix, "<>()xab", 8), prefix);

  // Nothing completes: a rule that only recurses; a state that can still end is 0 away.
  const endless = compileGrammar(vocab, 'root ::= "a" | "b" more\nmore ::= "c" more');
  t.is(endless.shortestCompletion(), 1);
  t.is(endless.shortestCompletion(greedyTokens(vocab, "b")), Infinity);
  t.is(compileGrammar(vocab, 'root ::= "a"?').shortestCompletion(), 0);
});

testNeeding(test, needShared, "shortest completion from the start equals the test-only reader's shortest sentence, for every schema and grammar file", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const texts = [...schemas.map((c) => [c.name, schemaToGbnf(c.schema)]), ...["json", "list", "output"].map((n) => [`${n}.gbnf`, grammarFile(n)])];
  for (const [name, gbnf] of texts) {
    // The test-only reader counts code points; every shortest way here is ASCII, one byte each.
    t.is(compileGrammar(vocab, gbnf).shortestCompletion(), parseGbnf(gbnf).minLength.get("root")!, name);
  }
});

/** The closing mask by its definition: of the tokens the grammar admits, those after which a sentence is within reach. */
function bruteClosing(vocab: NativeVocab, g: NativeGrammar, prefix: number[], tokensLeft: number): number[] {
  const eog = new Set(vocab.info().eog);
  const all = Array.from(g.allowedTokens(prefix));
  const withText = all.filter((id) => !eog.has(id));
  const distance = new Map(withText.map((id) => [id, g.shortestCompletion([...prefix, id])]));
  const limit = tokensLeft - 2; // this token, then end-of-generation
  const nearest = Math.min(Infinity, ...distance.values());
  const mayEnd = all.some((id) => eog.has(id));
  // nothing within reach and no end here: the nearest the vocabulary gets
  const reach = nearest <= limit || mayEnd ? limit : nearest;
  const kept = withText.filter((id) => distance.get(id)! <= reach);
  return [...kept, ...all.filter((id) => eog.has(id))].sort((a, b) => a - b);
}

function checkClosing(t: ExecutionContext, vocab: NativeVocab, g: NativeGrammar, texts: string[], lefts: number[]): number {
  let narrowed = 0;
  for (const text of texts) {
    const ids = greedyTokens(vocab, text);
    for (let n = 0; n <= ids.length; n++) {
      const prefix = ids.slice(0, n);
      const free = Array.from(g.allowedTokens(prefix));
      for (const left of lefts) {
        const mask = Array.from(g.allowedTokens(prefix, left));
        t.deepEqual(mask, bruteClosing(vocab, g, prefix, left), `${left} tokens left after ${JSON.stringify(text.slice(0, n))}`);
        if (mask.length < free.length) narrowed++;
      }
      // a budget far beyond the farthest token changes nothing
      t.deepEqual(Array.from(g.allowedTokens(prefix, 1000)), free);
    }
  }
  return narrowed;
}

testNeeding(test, needShared, "the closing mask equals a brute-force check of every token (512-token SentencePiece vocabulary)", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const json = compileGrammar(vocab, grammarFile("json"));
  const narrowed = checkClosing(t, vocab, json, ['{"name": "Lily", "toys": [{"x": -1.5e2}, "ball"], "ok": true}'], [1, 2, 3, 5, 8, 13]);
  const list = compileGrammar(vocab, grammarFile("list"));
  const lists = checkClosing(t, vocab, list, ["- milk\n- eggs\n"], [1, 2, 3, 4]);
  t.true(narrowed > 20 && lists > 5, `${narrowed} + ${lists} narrowed masks`);
  // at the edge only tokens that shorten the way to a sentence; once complete, only the end
  const edge = greedyTokens(vocab, '{"a": [1');
  const d = json.shortestCompletion(edge);
  for (const id of json.allowedTokens(edge, d + 1)) t.true(json.shortestCompletion([...edge, id]) < d);
  t.deepEqual(Array.from(json.allowedTokens(greedyTokens(vocab, '{"a": [1]}'), 1)), vocab.info().eog);
});

testNeeding(test, needShared, "the closing mask equals a brute-force check on the 32k SentencePiece vocabulary", (t) => {
  const vocab = openVocab(SPM_VOCAB());
  const g = compileGrammar(vocab, schemaToGbnf(schemas.find((c) => c.name === "light-command")!.schema));
  t.true(checkClosing(t, vocab, g, ['{"action":"turn_on","entity":"light.kitchen_ceiling","brightness":42}'], [2, 6, 20]) > 0);
});

/** One answer to a grammar on random logits: the tokens, how it ended, how many tokens the budget chose. */
function answer(vocab: NativeVocab, g: NativeGrammar, seed: number, o: { maxTokens?: number; fastForward?: boolean; cap?: number }) {
  const n = vocab.info().size;
  const sampler = createSampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed, maxTokens: o.maxTokens, grammar: g });
  const tokens: number[] = [];
  const logits = new Float32Array(n);
  const limit = o.maxTokens ?? o.cap ?? 400;
  const ended = () => ({ tokens, closing: sampler.closingTokens() });
  const forced = () => {
    if (o.fastForward) for (const id of sampler.takeForced()) tokens.push(id);
  };
  forced();
  while (tokens.length < limit && sampler.grammarState() !== "complete") {
    // the logits of each position its own, whether or not forced tokens before it were sampled
    const random = seededRandom(seed * 7919 + tokens.length);
    for (let i = 0; i < n; i++) logits[i] = (random() - 0.5) * 8;
    const id = sampler.sample(logits);
    tokens.push(id);
    if (vocab.isEndOfGeneration(id)) return { ...ended(), end: "eos" };
    forced();
  }
  return { ...ended(), end: sampler.grammarState() === "complete" ? "complete" : "length" };
}

/** Answers under budgets `extra` tokens above the least that always suffices (the shortest sentence's bytes, then the end). */
function checkAnswers(t: ExecutionContext, vocab: NativeVocab, gbnf: string, seeds: number, extra: number[]) {
  const g = compileGrammar(vocab, gbnf);
  const budgets = extra.map((e) => g.shortestCompletion() + 1 + e);
  const text = (tokens: number[]) => Buffer.concat(tokens.filter((id) => !vocab.isEndOfGeneration(id)).map((id) => vocab.tokenBytes(id)));
  let unchanged = 0, closed = 0;
  for (let seed = 0; seed < seeds; seed++) {
    const free = answer(vocab, g, seed, { cap: 400 });
    if (free.end !== "length" && free.tokens.length <= 100) {
      // ended well before a budget of 400: the same answer, and nothing chosen by the budget
      const budgeted = answer(vocab, g, seed, { maxTokens: 400 });
      t.deepEqual(budgeted.tokens, free.tokens, `seed ${seed}`);
      t.is(budgeted.closing, 0);
      unchanged++;
    }
    for (const maxTokens of budgets) {
      const a = answer(vocab, g, seed, { maxTokens });
      t.not(a.end, "length", `seed ${seed}, ${maxTokens} tokens: ${JSON.stringify(text(a.tokens).toString())}`);
      t.true(a.tokens.length <= maxTokens);
      t.true(g.match(text(a.tokens)).complete, `seed ${seed}, ${maxTokens} tokens: ${JSON.stringify(text(a.tokens).toString())}`);
      // forced tokens taken ahead (fast-forward) or one by one: the same answer
      t.deepEqual(answer(vocab, g, seed, { maxTokens, fastForward: true }).tokens, a.tokens, `seed ${seed}, fast-forward`);
      if (a.closing > 0) closed++;
    }
  }
  return { unchanged, closed };
}

testNeeding(test, needShared, "a sampler with maxTokens: every answer ends complete within it; one that ends well before is unchanged", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  for (const name of ["json", "list", "output"]) {
    const { unchanged, closed } = checkAnswers(t, vocab, grammarFile(name), 40, [0, 5, 20]);
    t.true(closed > 20, `${name}: ${closed} answers closed by their budget`);
    t.log(`${name}.gbnf: ${unchanged} answers that ended on their own unchanged under a budget of 400; ${closed} of 120 closed by a tight budget`);
  }
  const schema = schemas.find((c) => c.name === "ha-ai-task-structure")!.schema;
  const { closed } = checkAnswers(t, vocab, schemaToGbnf(schema), 20, [0, 20]);
  t.true(closed > 0);
});

testNeeding(test, needShared, "a sampler with maxTokens on the 128k byte-level BPE vocabulary", (t) => {
  const vocab = openVocab(BPE_VOCAB());
  const { unchanged, closed } = checkAnswers(t, vocab, grammarFile("json"), 8, [0, 3]);
  t.true(closed > 4 && unchanged > 0, `${unchanged} unchanged, ${closed} closed`);
});

testNeeding(test, needShared, "a budget below the shortest sentence: the nearest tokens, cut off as close to a sentence as it gets", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const g = compileGrammar(vocab, 'root ::= "{" [a-z]{20} "}"');
  const a = answer(vocab, g, 1, { maxTokens: 5 });
  t.is(a.end, "length");
  t.is(a.tokens.length, 5);
  t.true(a.closing > 0);
  t.true(g.match(Buffer.concat(a.tokens.map((id) => vocab.tokenBytes(id)))).accepted);
});
