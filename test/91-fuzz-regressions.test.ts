// Inputs the fuzzers found crashing, fed through the real addon: each must give its clear answer.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openModel } from "../daemon/engine/engine.js";
import { openVocab } from "../daemon/engine/tokenizer.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";

/** stories260K with one byte token's text replaced by another of the same length. */
function withBytePiece(spelling: string): { file: string; id: number } {
  const original = sharedModel("stories260K-f32.gguf");
  const id = [...Array(openVocab(original).info().size).keys()].find((i) => openVocab(original).piece(i) === "<0x41>");
  if (id === undefined) throw new Error("stories260K has no <0x41> token");
  const bytes = fs.readFileSync(original);
  const at = bytes.indexOf("<0x41>");
  bytes.write(spelling, at, "latin1");
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-fuzz-")), "bad-byte-token.gguf");
  fs.writeFileSync(file, bytes);
  return { file, id };
}

// fuzz_spm: a byte-fallback token spelled <0xG1> made std::stoi throw inside tokenBytes; through
// Model.tokenBytes (unguarded) that exception ended the process.
for (const spelling of ["<0xG1>", "<0x-1>", "<0x\x196>", "<0x 1>"]) {
  testNeeding(test, needShared, `a byte token spelled ${JSON.stringify(spelling)} renders as written`, (t) => {
    const { file, id } = withBytePiece(spelling);
    const vocab = openVocab(file);
    t.is(vocab.tokenBytes(id).toString("latin1"), spelling);
    t.is(vocab.detokenize([id]), spelling);
    const model = openModel(file, { nCtx: 16 });
    try {
      t.is(model.tokenBytes(id, true).toString("latin1"), spelling);
      t.deepEqual(Array.from(model.tokenize("Once upon a time")).length > 0, true);
    } finally {
      model.close();
    }
  });
}

testNeeding(test, needShared, "a well-formed byte token still renders as its byte", (t) => {
  const vocab = openVocab(sharedModel("stories260K-f32.gguf"));
  const id = [...Array(vocab.info().size).keys()].find((i) => vocab.piece(i) === "<0x0A>")!;
  t.deepEqual([...vocab.tokenBytes(id)], [10]);
});
