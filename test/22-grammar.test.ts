// The native GBNF engine: what it parses and refuses (with positions), the token mask against a
// brute-force check of every token, end-of-generation, characters split across tokens, and
// hostile grammars that must fail quickly with a clear error.
import path from "node:path";
import test from "ava";
import type { NativeGrammar } from "../daemon/engine/grammar.js";
import { compileGrammar, GrammarError } from "../daemon/engine/grammar.js";
import type { NativeVocab } from "../daemon/engine/tokenizer.js";
import { openVocab } from "../daemon/engine/tokenizer.js";
import { greedyTokens } from "./helpers/grammar-tokens.js";
import { needShared, SHARED, sharedModel, testNeeding } from "./helpers/shared.js";

// llama.cpp's grammars/json.gbnf, as that file reads (the fixtures' copies are in test/fixtures/).
export const JSON_GBNF = String.raw`root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
`;

const STORIES_VOCAB = () => sharedModel("stories260K-f32.gguf");
const SPM_VOCAB = () => path.join(SHARED, "vocab", "ggml-vocab-llama-spm.gguf");
const BPE_VOCAB = () => path.join(SHARED, "vocab", "ggml-vocab-llama-bpe.gguf");

function grammarError(t: { throws: (fn: () => unknown, e?: object) => unknown }, vocab: NativeVocab, gbnf: string) {
  return t.throws(() => compileGrammar(vocab, gbnf), { instanceOf: GrammarError }) as GrammarError;
}

testNeeding(test, needShared, "GBNF as llama.cpp writes it: rules, groups, repetitions, classes, escapes, comments, UTF-8", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const json = compileGrammar(vocab, JSON_GBNF);
  t.is(json.root, "root");
  for (const ok of ['{"a": 1}', '{"a":[1, -2.5e3, "x\\n\\u00e9", true, null, {}]}', '{ "é": "日本" }\n', "{}"])
    t.deepEqual(json.match(ok), { accepted: true, complete: true }, ok);
  t.deepEqual(json.match('{"a": '), { accepted: true, complete: false });
  for (const bad of ["[1]", '{"a" 1}', '{"\u0001": 1}', "{'a': 1}", '{"a": 01}']) t.false(json.match(bad).accepted, bad);

  const g = compileGrammar(
    vocab,
    String.raw`# a comment line
root ::= greeting (", " name){1,2} "!"? [\n]   # trailing comment
greeting ::= "h" [aeiou] "llo" | "\x48i" | "\u00A1hola"
name ::= [A-Z] [a-z-]{2,} | [^\x00-\x7F]+
`,
  );
  for (const ok of ["hello, Ann\n", "Hi, Bob, Eve!\n", "¡hola, Zed-ab\n", "hallo, 日本\n", "hillo, Al-x, Ann\n"])
    t.true(g.match(ok).complete, ok);
  for (const bad of ["hello\n", "hello, An\n", "hello, Ann, Bob, Eve\n", "hyllo, Ann\n", "hello, Ann!!\n"]) t.false(g.match(bad).complete, bad);
  // a rule over several lines inside parentheses, alternatives after | on the next line
  const multi = compileGrammar(vocab, 'root ::= (\n  "a"\n  | "b"\n) "c"*\n\nother ::= "x"', "root");
  t.true(multi.match("bccc").complete);
  t.true(compileGrammar(vocab, 'root ::= other\nother ::= "x"', "other").match("x").complete);
  // an empty literal repeated is still empty (fuzz_gbnf found `""*` reading past its item)
  t.true(compileGrammar(vocab, 'root ::= "a" ""* ""+ ""{2,3} "b"').match("ab").complete);
  // negated classes never match half a character or a surrogate; `.` matches any one character
  const dot = compileGrammar(vocab, 'root ::= "<" . ">"');
  t.true(dot.match("<€>").complete);
  t.false(dot.match(Buffer.from([0x3c, 0xed, 0xa0, 0x80, 0x3e])).accepted); // UTF-8 of a surrogate
  t.false(dot.match("<ab>").accepted);
});

testNeeding(test, needShared, "bad grammars: a GrammarError with the line and column of the problem", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const cases: [string, number, number, RegExp][] = [
    ['root ::= "a" foo', 1, 14, /rule "foo" is used but never defined/],
    ['root ::= "a"\nroot ::= "b"', 2, 1, /defined twice/],
    ['root ::= "abc', 1, 10, /no closing "/],
    ["root ::= [a-z", 1, 10, /no closing \]/],
    ['root ::= ("a" | "b"', 1, 10, /no closing \)/],
    ['root ::= *"a"', 1, 10, /nothing before \* to repeat/],
    ['root = "a"', 1, 6, /expected ::=/],
    ['root ::= "\\q"', 1, 11, /unknown escape/],
    ['root ::= "a"{3,1}', 1, 13, /n smaller than m/],
    ['root ::= "a"{x}', 1, 14, /expected a number/],
    ['root ::= [z-a]', 1, 10, /ends before it starts/],
    ["root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]", 2, 1, /left recursion: rule "expr"/],
    ['root ::= a\na ::= b? a "x"\nb ::= "y"', 2, 1, /left recursion/],
    ['root ::= ("a"?)*', 1, 16, /left recursion: a repetition/],
    ['start ::= "a"', 1, 1, /no rule named "root"/],
    ["", 1, 1, /empty/],
    ['root ::= "a" "\\x4"', 1, 18, /hex digits/],
  ];
  for (const [gbnf, line, column, message] of cases) {
    const e = grammarError(t, vocab, gbnf);
    if (!e) continue;
    t.regex(e.message, message, gbnf);
    t.is(e.line, line, `${gbnf}: ${e.message}`);
    t.is(e.column, column, `${gbnf}: ${e.message}`);
  }
});

testNeeding(test, needShared, "hostile grammars fail fast with a clear error, never a crash or a hang", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const started = performance.now();
  t.regex(grammarError(t, vocab, "root ::= " + "(".repeat(100_000) + '"a"' + ")".repeat(100_000)).message, /nested deeper/);
  t.regex(grammarError(t, vocab, 'root ::= "a"{99999999999}').message, /repetition count above/);
  t.regex(grammarError(t, vocab, "root ::= " + '"a"{0,10000} '.repeat(40)).message, /grows beyond 1048576 symbols/);
  t.regex(grammarError(t, vocab, 'root ::= (((("a"{0,9000}){0,9000}){0,9000}){0,9000})').message, /too ambiguous/);
  // a chain of 50 000 rules, each starting with the next: a stack 50 000 deep before the first
  // byte, legal, and no native recursion overflows
  const chain = Array.from({ length: 50_000 }, (_, i) => `r${i} ::= r${i + 1} "x"`).join("\n") + '\nr50000 ::= "y"';
  const deep = compileGrammar(vocab, chain + "\nroot ::= r0");
  t.deepEqual(deep.match("y"), { accepted: true, complete: false });
  t.true(deep.match("y" + "x".repeat(50_000)).complete);
  // 50 000 ways to start at once: refused as too ambiguous to follow, at compile time
  const wide = Array.from({ length: 50_000 }, (_, i) => `r${i} ::= r${i + 1} | "x"`).join("\n") + '\nr50000 ::= "y"';
  t.regex(grammarError(t, vocab, wide + "\nroot ::= r0").message, /too ambiguous/);
  const cycle = Array.from({ length: 50_000 }, (_, i) => `r${i} ::= r${(i + 1) % 50_000} "x"`).join("\n");
  t.regex(grammarError(t, vocab, cycle + "\nroot ::= r0").message, /left recursion/);
  // nesting without bound (a[a[a[…]]]) deepens the stack one level per bracket: fine, and masks stay correct
  const nest = compileGrammar(vocab, 'root ::= "[" root? "]"');
  t.true(nest.match("[".repeat(2000) + "]".repeat(2000)).complete);
  // ambiguity: many ways to read the same text are one state
  const ambiguous = compileGrammar(vocab, 'root ::= ("a" | "a" | "aa" | "a" "a")*');
  t.true(ambiguous.match("a".repeat(5000)).complete);
  t.throws(() => vocab.compileGrammar(42 as unknown as string), { instanceOf: TypeError });
  t.throws(() => vocab.compileGrammar('root ::= "a"', "bad name!"), { instanceOf: TypeError });
  t.true(performance.now() - started < 60_000);
});

/** The mask by brute force: every token whose text the grammar reads on from `prefix`, and end-of-generation where it may end. */
function bruteForce(vocab: NativeVocab, g: NativeGrammar, prefix: Buffer): number[] {
  const { size, eog } = vocab.info();
  const allowed: number[] = [];
  const complete = g.match(prefix).complete;
  for (let id = 0; id < size; id++) {
    if (eog.includes(id)) {
      if (complete) allowed.push(id);
      continue;
    }
    const bytes = vocab.tokenBytes(id);
    if (bytes.length === 0) continue;
    if (g.match(Buffer.concat([prefix, bytes])).accepted) allowed.push(id);
  }
  return allowed;
}

function checkMasks(t: import("ava").ExecutionContext, vocab: NativeVocab, g: NativeGrammar, texts: string[]) {
  let checked = 0;
  for (const text of texts) {
    // walk the text token by token, comparing the mask at every step
    const ids = greedyTokens(vocab, text);
    for (let n = 0; n <= ids.length; n++) {
      const prefix = Buffer.concat(ids.slice(0, n).map((id) => vocab.tokenBytes(id)));
      if (!g.match(prefix).accepted) break;
      const mask = Array.from(g.allowedTokens(ids.slice(0, n)));
      t.deepEqual(mask, bruteForce(vocab, g, prefix), `after ${JSON.stringify(prefix.toString())}`);
      checked++;
    }
  }
  return checked;
}

testNeeding(test, needShared, "the mask equals a brute-force check of every token (512-token SentencePiece vocabulary)", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const json = compileGrammar(vocab, JSON_GBNF);
  const n = checkMasks(t, vocab, json, ['{"name": "Lily", "age": 3, "toys": ["ball", {"x": -1.5e2}], "ok": true}\n', '{ "é\\u00e9": "日本 ok" }']);
  const list = compileGrammar(vocab, 'root ::= item+\nitem ::= "- " [^\\n]+ "\\n"');
  const m = checkMasks(t, vocab, list, ["- milk\n- eggs and bread\n- 日本\n"]);
  t.true(n + m > 40);
});

testNeeding(test, needShared, "the mask equals a brute-force check on the 32k SentencePiece vocabulary", (t) => {
  const vocab = openVocab(SPM_VOCAB());
  const g = compileGrammar(vocab, 'root ::= "{\\"state\\": \\"" ("on" | "off" | "dim") "\\", \\"level\\": " [0-9]{1,3} "}"');
  t.true(checkMasks(t, vocab, g, ['{"state": "dim", "level": 42}']) > 5);
  // the JSON grammar where most of the vocabulary is admitted (inside a string, whole subtrees of
  // the token trie at once) and where little is (after a key)
  const json = compileGrammar(vocab, JSON_GBNF);
  for (const prefix of ['{"', '{"na', '{"name": "Li', '{"name": "x\\', '{"name": "日', '{"a": 1', '{"a": [tr'])
    t.deepEqual(Array.from(json.allowedTokens(greedyTokens(vocab, prefix))), bruteForce(vocab, json, Buffer.from(prefix)), prefix);
});

testNeeding(test, needShared, "the mask equals a brute-force check on the 128k byte-level BPE vocabulary", (t) => {
  const vocab = openVocab(BPE_VOCAB());
  const json = compileGrammar(vocab, JSON_GBNF);
  for (const prefix of ['{"name": "Li', '{"a": -1'])
    t.deepEqual(Array.from(json.allowedTokens(greedyTokens(vocab, prefix))), bruteForce(vocab, json, Buffer.from(prefix)), prefix);
});

testNeeding(test, needShared, "end-of-generation only where the grammar may end; nothing after a complete grammar", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const { eog } = vocab.info();
  const g = compileGrammar(vocab, 'root ::= "yes" "!"?');
  const at = (text: string) => Array.from(g.allowedTokens(greedyTokens(vocab, text)));
  for (const id of eog) {
    t.false(at("").includes(id));
    t.false(at("ye").includes(id));
    t.true(at("yes").includes(id));
    t.true(at("yes!").includes(id));
  }
  t.deepEqual(at("yes!"), eog); // complete: only the end
  t.true(at("yes").length > eog.length); // "!" still possible
});

testNeeding(test, needShared, "characters split across byte tokens: the mask follows UTF-8 byte by byte", (t) => {
  const vocab = openVocab(STORIES_VOCAB());
  const byteToken = (b: number) => {
    for (let id = 0; id < vocab.info().size; id++) if (vocab.piece(id) === `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`) return id;
    throw new Error(`no byte token ${b}`);
  };
  const g = compileGrammar(vocab, 'root ::= [é-ü] "!"'); // U+00E9..U+00FC: C3 A9 .. C3 BC
  const first = Array.from(g.allowedTokens());
  t.true(first.includes(byteToken(0xc3)));
  t.false(first.includes(byteToken(0xc2)));
  const second = Array.from(g.allowedTokens([byteToken(0xc3)]));
  t.true(second.includes(byteToken(0xa9)) && second.includes(byteToken(0xbc)));
  t.false(second.includes(byteToken(0xa8)) || second.includes(byteToken(0xbd)));
  t.throws(() => g.allowedTokens([byteToken(0xc3), byteToken(0xbd)]), { instanceOf: RangeError });
});

testNeeding(test, needShared, "forced tokens: the tokenizer's own tokens for the text the grammar decides, the last left open", (t) => {
  const vocab = openVocab(BPE_VOCAB());
  const ids = (text: string) => Array.from(vocab.tokenize(text, { addBos: false }));
  const g = compileGrammar(vocab, 'root ::= "{\\"temperature\\": " [0-9]{2} ", \\"unit\\": \\"celsius\\"}"');
  const forced = Array.from(g.forcedTokens());
  const text = (tokens: number[]) => Buffer.concat(tokens.map((id) => vocab.tokenBytes(id))).toString();
  // '{"temperature": ' is decided; its tokenization minus the last token, which a longer token could extend
  t.true(forced.length >= 2);
  t.deepEqual(forced, ids('{"temperature": ').slice(0, forced.length));
  t.true('{"temperature": '.startsWith(text(forced)));
  // after the number: ', "unit": "celsius"}' is decided to the end (nothing may follow), so all of it is forced
  const after = ids('{"temperature": 21');
  const rest = Array.from(g.forcedTokens(after));
  t.is(text(rest), ', "unit": "celsius"}');
  t.deepEqual(rest, ids(', "unit": "celsius"}'));
});
