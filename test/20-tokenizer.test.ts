// Tokenizers against llama.cpp: the vocabulary test vectors and golden prompts in ../shared,
// detokenize round trips, streaming decode that never splits a character, and argument checks.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../daemon/engine/native.js";
import { openVocab, tokenDecoder, type NativeVocab } from "../daemon/engine/tokenizer.js";

const shared = path.join(projectRoot(), "..", "shared");
const vocabDir = path.join(shared, "vocab");
const spmPath = path.join(vocabDir, "ggml-vocab-llama-spm.gguf");
const bpePath = path.join(vocabDir, "ggml-vocab-llama-bpe.gguf");
const missing = [spmPath, bpePath, path.join(shared, "golden"), path.join(shared, "models")].filter((p) => !fs.existsSync(p));

// ---------------------------------------------------------------------------------------------
// Fixtures

const MARKER = "\n__ggml_vocab_test__\n";

/** Texts and expected ids of one vocabulary, split exactly as ../shared/tools/golden-check.mjs does. */
function vectors(gguf: string): { text: string; ids: number[] }[] {
  const texts = fs.readFileSync(gguf + ".inp", "utf8").split(MARKER);
  const want = fs.readFileSync(gguf + ".out", "utf8").split("\n");
  return texts.map((t, i) => {
    if (i === texts.length - 1 && t.endsWith("\n__ggml_vocab_test__")) t = t.slice(0, -"\n__ggml_vocab_test__".length);
    const line = (want[i] ?? "").trim();
    return { text: t, ids: line === "" ? [] : line.split(/\s+/).map(Number) };
  });
}

interface GoldenCase {
  prompt: string;
  prompt_tokens: number[];
  greedy_tokens: number[];
  greedy_text_hex: string;
}
function goldenFiles(): { file: string; model: string; cases: GoldenCase[] }[] {
  const dir = path.join(shared, "golden");
  return fs
    .readdirSync(dir)
    .filter((f) => /^stories260K-.*\.json$/.test(f))
    .map((f) => {
      const g = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { model: string; cases: GoldenCase[] };
      return { file: f, model: path.join(shared, "models", g.model), cases: g.cases };
    });
}

const opened = new Map<string, NativeVocab>();
function vocab(p: string): NativeVocab {
  let v = opened.get(p);
  if (!v) opened.set(p, (v = openVocab(p)));
  return v;
}

const ids = (a: Int32Array | number[]) => Array.from(a);

// ---------------------------------------------------------------------------------------------

if (missing.length) {
  const reason = `tokenizer fixtures missing: ${missing.join(", ")} (../shared beside the project root holds them)`;
  if (process.env.CI === "true") {
    test("tokenizer fixtures are present (required under CI)", (t) => t.fail(reason));
  } else {
    console.warn(`\n!!! SKIPPING 20-tokenizer: ${reason}\n`);
    test.skip(`tokenizer tests (${reason})`, () => {});
  }
} else {
  for (const [name, gguf, count] of [["SentencePiece (llama-spm)", spmPath, 32000], ["byte-level BPE (llama-bpe)", bpePath, 128256]] as const) {
    test(`${name}: every llama.cpp test vector, exactly`, (t) => {
      const v = vocab(gguf);
      t.is(v.info().size, count);
      const cases = vectors(gguf);
      t.true(cases.length > 40, "the vector file holds the full set");
      const wrong = cases
        .map((c, i) => ({ i, text: c.text, want: c.ids, got: ids(v.tokenize(c.text, { addBos: false, parseSpecial: false })) }))
        .filter((r) => JSON.stringify(r.got) !== JSON.stringify(r.want));
      t.deepEqual(wrong, [], `${wrong.length} of ${cases.length} texts differ`);
    });

    test(`${name}: detokenize(tokenize(text)) gives the text back`, (t) => {
      const v = vocab(gguf);
      for (const { text } of vectors(gguf)) {
        t.is(v.detokenize(v.tokenize(text, { addBos: false })), text, JSON.stringify(text));
        t.is(v.detokenize(v.tokenize(text, { addBos: true })), text, `with BOS: ${JSON.stringify(text)}`);
      }
    });

    test(`${name}: the streaming decoder only ever returns whole characters`, (t) => {
      const v = vocab(gguf);
      let heldBack = 0;
      for (const { text } of vectors(gguf)) {
        if (!/[^\x00-\x7f]/.test(text)) continue;
        const tokens = ids(v.tokenize(text, { addBos: false }));
        const decoder = tokenDecoder(v);
        let joined = "";
        for (const id of tokens) {
          const chunk = decoder.push(id);
          if (chunk === "" && v.tokenBytes(id).length > 0) heldBack++;
          t.false(chunk.includes("\uFFFD"), `split character in ${JSON.stringify(chunk)} of ${JSON.stringify(text)}`);
          t.is(Buffer.from(chunk, "utf8").toString("utf8"), chunk);
          joined += chunk;
        }
        joined += decoder.finish();
        t.is(joined, Buffer.concat(tokens.map((id) => v.tokenBytes(id))).toString("utf8"));
        t.is(v.detokenize(tokens), text);
      }
      t.true(heldBack > 0, "some token ended inside a character and was held back");
    });
  }

  test("golden prompts of the stories260K models tokenize as in llama.cpp (BOS included)", (t) => {
    const files = goldenFiles();
    t.is(files.length, 3);
    for (const g of files) {
      const v = vocab(g.model);
      t.true(v.info().addBos);
      for (const c of g.cases) {
        t.deepEqual(ids(v.tokenize(c.prompt)), c.prompt_tokens, `${g.file}: ${JSON.stringify(c.prompt)}`);
        t.deepEqual(ids(v.tokenize(c.prompt, { addBos: true, parseSpecial: false })), c.prompt_tokens);
        t.is(v.detokenize(c.prompt_tokens), c.prompt, `${g.file}: round trip of ${JSON.stringify(c.prompt)}`);
        // Generated text: the bytes llama.cpp printed for the golden continuation.
        const bytes = Buffer.concat(c.greedy_tokens.map((id) => v.tokenBytes(id)));
        t.is(bytes.toString("hex"), c.greedy_text_hex, `${g.file}: greedy text of ${JSON.stringify(c.prompt)}`);
      }
    }
  });

  test("info() reports the model, special ids and end-of-generation tokens", (t) => {
    const spm = vocab(spmPath).info();
    t.like(spm, { model: "llama", pre: "default", size: 32000, bos: 1, eos: 2, unk: 0, addBos: true, addSpacePrefix: true });
    t.deepEqual(spm.eog, [2]);
    const bpe = vocab(bpePath).info();
    t.like(bpe, { model: "gpt2", pre: "llama-bpe", size: 128256, bos: 128000, eos: 128001, unk: null, addBos: true, addSpacePrefix: false });
    t.true(bpe.eog.includes(128001) && bpe.eog.includes(128009), "eos and <|eot_id|> end generation");
    t.true(vocab(bpePath).isEndOfGeneration(128009));
    t.false(vocab(bpePath).isEndOfGeneration(9906));
  });

  test("special tokens are parsed only when asked and rendered only when asked", (t) => {
    const bpe = vocab(bpePath);
    const text = "<|begin_of_text|>Hello<|eot_id|>";
    t.deepEqual(ids(bpe.tokenize(text, { addBos: false, parseSpecial: true })), [128000, 9906, 128009]);
    const plain = ids(bpe.tokenize(text, { addBos: false }));
    t.false(plain.includes(128000) || plain.includes(128009));
    t.is(bpe.detokenize(plain), text);
    t.is(bpe.detokenize([128000, 9906, 128009]), "Hello");
    t.is(bpe.detokenize([128000, 9906, 128009], { renderSpecial: true }), text);
    t.is(bpe.piece(9906), "Hello");

    const spm = vocab(spmPath);
    // After a special token SentencePiece starts a new text, with its space prefix.
    t.deepEqual(ids(spm.tokenize("<s>Hello</s>", { addBos: false, parseSpecial: true })), [1, 15043, 2]);
    t.false(ids(spm.tokenize("<s>Hello</s>", { addBos: false })).includes(1));
    t.is(spm.tokenBytes(1).length, 0);
    t.is(spm.tokenBytes(1, { renderSpecial: true }).toString(), "<s>");
    t.is(spm.tokenBytes(15043).toString(), " Hello");
    t.deepEqual([...spm.tokenBytes(3 + 0x0a)], [0x0a], "<0x0A> is the newline byte");
    t.deepEqual(ids(spm.tokenize("", { addBos: true })), [1]);
    t.deepEqual(ids(spm.tokenize("", { addBos: false })), []);
  });

  test("the streaming decoder holds back a partial character and replaces what can never complete", (t) => {
    const spm = vocab(spmPath);
    const byte = (b: number) => 3 + b; // <0x00> is token 3
    const d = tokenDecoder(spm);
    t.is(d.push(byte(0xe2)), "");
    t.is(d.push(byte(0x82)), "");
    t.is(d.push(byte(0xac)), "€");
    t.is(d.push(byte(0xf0)), "");
    t.is(d.finish(), "\uFFFD", "an unfinished character is flushed as U+FFFD");
    const e = tokenDecoder(spm);
    t.is(e.push(byte(0xff)), "\uFFFD", "a byte that starts no character is replaced at once");
    t.is(e.push(byte(0x41)), "A");
    t.is(e.finish(), "");
    t.is(spm.detokenize([byte(0xe2), byte(0x82)]), "\uFFFD");
    const r = tokenDecoder(spm, { renderSpecial: true });
    t.is(r.push(1), "<s>");
  });

  test("bad arguments throw instead of crashing", (t) => {
    const v = vocab(spmPath);
    for (const bad of [-1, 32000, 1.5, Number.NaN, Infinity]) {
      t.throws(() => v.tokenBytes(bad), { instanceOf: RangeError }, `tokenBytes(${bad})`);
      t.throws(() => v.detokenize([1, bad]), { instanceOf: RangeError }, `detokenize([1, ${bad}])`);
    }
    t.throws(() => v.detokenize(Int32Array.of(5, 40000)), { instanceOf: RangeError });
    t.throws(() => v.detokenize("1 2" as never), { instanceOf: TypeError });
    t.throws(() => v.detokenize(["1"] as never), { instanceOf: TypeError });
    t.throws(() => v.tokenBytes("1" as never), { instanceOf: TypeError });
    t.throws(() => v.tokenize(42 as never), { instanceOf: TypeError });
    t.throws(() => v.tokenize("x", { addBos: "yes" } as never), { instanceOf: TypeError });
    t.throws(() => v.tokenize("x", 1 as never), { instanceOf: TypeError });
    t.throws(() => tokenDecoder({} as never), { instanceOf: TypeError });
    t.throws(() => tokenDecoder(v).push(99999), { instanceOf: RangeError });
    t.throws(() => openVocab(path.join(shared, "no-such-file.gguf")), { message: /no-such-file\.gguf/ });
    t.throws(() => openVocab(spmPath + ".inp"), { instanceOf: Error });
  });
}

// ---------------------------------------------------------------------------------------------
// Small vocabularies written here, for what the shared files cannot show.

type Kv = [key: string, value: string | number | string[] | { f32: number[] } | { i32: number[] }];

const scratchDirs: string[] = [];
test.after.always(() => scratchDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A tensor-less GGUF v3 file with the given metadata. */
function writeGguf(kvs: Kv[]): string {
  const parts: Buffer[] = [];
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); parts.push(b); };
  const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); parts.push(b); };
  const str = (s: string) => { const b = Buffer.from(s, "utf8"); u64(b.length); parts.push(b); };
  parts.push(Buffer.from("GGUF", "latin1"));
  u32(3);
  u64(0);
  u64(kvs.length);
  for (const [key, value] of kvs) {
    str(key);
    if (typeof value === "string") u32(8), str(value);
    else if (typeof value === "number") u32(4), u32(value);
    else if (Array.isArray(value)) u32(9), u32(8), u64(value.length), value.forEach(str);
    else if ("f32" in value) { u32(9); u32(6); u64(value.f32.length); const b = Buffer.alloc(4 * value.f32.length); value.f32.forEach((x, i) => b.writeFloatLE(x, 4 * i)); parts.push(b); }
    else { u32(9); u32(5); u64(value.i32.length); const b = Buffer.alloc(4 * value.i32.length); value.i32.forEach((x, i) => b.writeInt32LE(x, 4 * i)); parts.push(b); }
  }
  let file = Buffer.concat(parts);
  file = Buffer.concat([file, Buffer.alloc((32 - (file.length % 32)) % 32)]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-vocab-"));
  scratchDirs.push(dir);
  const p = path.join(dir, "vocab.gguf");
  fs.writeFileSync(p, file);
  return p;
}

test("a GGUF file without a usable tokenizer is an error naming the key", (t) => {
  const noTokenizer = writeGguf([["general.architecture", "llama"]]);
  t.throws(() => openVocab(noTokenizer), { message: /tokenizer\.ggml\.model is required/ });
  const bert = writeGguf([["tokenizer.ggml.model", "bert"], ["tokenizer.ggml.tokens", ["a"]]]);
  t.throws(() => openVocab(bert), { message: /"bert" is not supported/ });
  const scalarTokens = writeGguf([["tokenizer.ggml.model", "llama"], ["tokenizer.ggml.tokens", 7]]);
  t.throws(() => openVocab(scalarTokens), { message: /tokenizer\.ggml\.tokens must be an array of string/ });
  const shortScores = writeGguf([["tokenizer.ggml.model", "llama"], ["tokenizer.ggml.tokens", ["a", "b"]], ["tokenizer.ggml.scores", { f32: [0] }]]);
  t.throws(() => openVocab(shortScores), { message: /tokenizer\.ggml\.scores has 1 entries/ });
  const noMerges = writeGguf([["tokenizer.ggml.model", "gpt2"], ["tokenizer.ggml.tokens", ["a"]]]);
  t.throws(() => openVocab(noMerges), { message: /tokenizer\.ggml\.merges is required/ });
});

test("SentencePiece without byte tokens falls back to <unk>; the best-scoring merge wins", (t) => {
  const p = writeGguf([
    ["tokenizer.ggml.model", "llama"],
    ["tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", "\u2581a", "b", "ab", "\u2581ab", "\u2581"]],
    ["tokenizer.ggml.scores", { f32: [0, 0, 0, -1, -1, -0.5, -3, -2] }],
    ["tokenizer.ggml.token_type", { i32: [2, 3, 3, 1, 1, 1, 1, 1] }],
  ]);
  const v = openVocab(p);
  t.like(v.info(), { model: "llama", bos: 1, eos: 2, unk: 0, size: 8 });
  // "▁ab": "ab" (-0.5) beats "▁a" (-1), then "▁"+"ab" -> "▁ab". "c" has no token and no bytes.
  t.deepEqual(ids(v.tokenize("ab c", { addBos: false })), [6, 7, 0]);
  t.is(v.detokenize([6, 7]), "ab ");
});
