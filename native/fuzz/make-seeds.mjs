// Seed corpora for the fuzz harnesses, made from ../shared at build time:
//   gguf: each stories260K file cut after its tensor infos (header, vocabulary, tensor table),
//         the whole Q4_0 file, and a few cuts inside the header;
//   spm / bpe: every tokenizer test text for the real vocabulary, and small vocabularies in the
//         harness's line format (see fuzz_spm.cc / fuzz_bpe.cc);
//   gbnf: the published grammars of test/fixtures/grammars and small ones, each with a text it
//         admits after the NUL byte (see fuzz_gbnf.cc).
// Usage: node make-seeds.mjs SHARED_DIR OUT_DIR
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const [shared, out] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const { readGguf } = await import(path.join(root, "dist", "daemon", "engine", "gguf.js"));

function write(target, name, bytes) {
  const dir = path.join(out, target);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), bytes);
}

// ─── gguf ────────────────────────────────────────────────────────────────────────────────────
for (const name of ["stories260K-f32.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"]) {
  const file = path.join(shared, "models", name);
  const bytes = fs.readFileSync(file);
  const { dataOffset } = readGguf(file);
  write("gguf", `${name}.header`, bytes.subarray(0, dataOffset));
  for (const cut of [24, 64, 512, 4096]) write("gguf", `${name}.cut${cut}`, bytes.subarray(0, cut));
  if (name.includes("q4_0")) write("gguf", name, bytes);
}

// ─── tokenizer texts ─────────────────────────────────────────────────────────────────────────
const texts = (vocab) =>
  fs.readFileSync(path.join(shared, "vocab", `${vocab}.inp`), "utf8").split("\n__ggml_vocab_test__\n").filter(Boolean);
const line = (...parts) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : p)));

texts("ggml-vocab-llama-spm.gguf").forEach((t, i) => write("spm", `text${i}`, line(Buffer.of((i % 8) * 2), t)));
texts("ggml-vocab-llama-bpe.gguf").forEach((t, i) => write("bpe", `text${i}`, line(Buffer.of((i % 8) * 2), t)));

// Type bytes: '0' normal, '1' unknown, '2' control, '3' user-defined, '4' unused, '5' byte.
const spmPieces = ["1A<unk>", "2A<s>", "2A</s>", "5A<0x41>", "5A<0x0A>", "5A<0xE2>", "5A<0x96>", "5A<0x81>",
  "0B\u2581", "0Ca", "0Db", "0E\u2581a", "0Fab", "0G\u2581ab", "3H<|user|>"];
write("spm", "vocab-bytes", line(Buffer.of(1), spmPieces.join("\n"), "\n\n", Buffer.of(3), "ab a\nA <|user|> \u00e9"));
write("spm", "vocab-special", line(Buffer.of(7), spmPieces.join("\n"), "\n\n", Buffer.of(0), "<s>ab</s> <0x41>"));

const bpePieces = ["0a", "0b", "0\u0120", "0ab", "0\u0120a", "2<|begin_of_text|>", "3<|user|>", "0\u010a"];
const bpeMerges = ["a b", "\u0120 a"];
write("bpe", "vocab", line(Buffer.of(1), bpePieces.join("\n"), "\n\n", bpeMerges.join("\n"), "\n\n", Buffer.of(0, 1), " ab a\n<|user|>ab"));
write("bpe", "vocab-pre", line(Buffer.of(7), bpePieces.join("\n"), "\n\n", bpeMerges.join("\n"), "\n\n", Buffer.of(3, 3), "123 ab's"));
// ─── grammars ────────────────────────────────────────────────────────────────────────────────
const grammars = path.join(root, "test", "fixtures", "grammars");
const admitted = { "json.gbnf": '{"a": [1, -2.5e3, "x\\n\u00e9"], "b": {}}', "list.gbnf": "- milk\n- eggs\n", "output.gbnf": "turn on the light\n" };
for (const [name, text] of Object.entries(admitted)) write("gbnf", name, line(fs.readFileSync(path.join(grammars, name)), Buffer.of(0), text));
write("gbnf", "classes", line('root ::= [^"\\\x00-\x1F] [a-zA-Z\u00e9-\u00ff]{1,3} "\u2028"? . "\U0001F600"\n', Buffer.of(0), "q\u00e9ab\u2028x\u{1F600}"));
write("gbnf", "nested", line('root ::= ("(" root ")")* | [0-9]+\n', Buffer.of(0), "(((12)))"));
console.log(`seeds in ${out}`);
