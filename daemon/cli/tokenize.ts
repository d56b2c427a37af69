// alpaca tokenize: text on stdin -> token ids (works on vocabulary-only GGUF files too).
import fs from "node:fs";
import type { CommandModule } from "yargs";
import { checkModelPath } from "../engine/engine.js";
import { openVocab } from "../engine/tokenizer.js";

interface TokenizeArgs {
  model: string;
  bos: boolean;
  special: boolean;
  json: boolean;
  text?: string;
}

export const tokenizeCommand: CommandModule<object, TokenizeArgs> = {
  command: "tokenize",
  describe: "Print the token ids of text read from stdin (or --text)",
  builder: (y) =>
    y
      .option("model", { alias: "m", type: "string", demandOption: true, describe: "GGUF model or vocabulary file" })
      .option("bos", { type: "boolean", default: true, describe: "add BOS when the vocabulary asks for it (--no-bos: never)" })
      .option("special", { type: "boolean", default: false, describe: "parse special tokens such as <s> in the text" })
      .option("text", { type: "string", describe: "text to tokenize instead of stdin" })
      .option("json", { type: "boolean", default: false, describe: "print a JSON array" }),
  handler: (a) => {
    checkModelPath(a.model);
    const text = a.text ?? fs.readFileSync(0, "utf8");
    const vocab = openVocab(a.model);
    const ids = Array.from(vocab.tokenize(text, { addBos: a.bos ? undefined : false, parseSpecial: a.special }));
    if (a.json) process.stdout.write(JSON.stringify(ids) + "\n");
    else for (const id of ids) process.stdout.write(`${id}\t${JSON.stringify(vocab.tokenBytes(id).toString("latin1"))}\n`);
  },
};
