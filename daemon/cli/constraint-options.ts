// --schema FILE | --grammar FILE | --json-output: what `alpaca ask` sends as `format` / `grammar`
// and what `alpaca run` compiles itself.
import fs from "node:fs";
import type { Argv } from "yargs";
import type { GrammarCompiler, NativeGrammar } from "../engine/grammar.js";
import { compileGrammar, GrammarError } from "../engine/grammar.js";
import { UserError } from "../errors.js";
import { formatToGbnf, SchemaError } from "../serving/json-schema-grammar.js";

export interface ConstraintArgs {
  schema?: string;
  grammar?: string;
  "json-output"?: boolean;
}

export function constraintOptions<T>(y: Argv<T>): Argv<T & ConstraintArgs> {
  return y
    .option("schema", { type: "string", requiresArg: true, describe: "answer with JSON that fits this JSON Schema file" })
    .option("grammar", { type: "string", requiresArg: true, describe: "answer in the language of this GBNF grammar file" })
    .option("json-output", { type: "boolean", describe: "answer with a JSON object" })
    .check((a) => {
      if ([a.schema !== undefined, a.grammar !== undefined, !!a["json-output"]].filter(Boolean).length > 1)
        throw new Error("choose one of --schema, --grammar and --json-output");
      return true;
    }) as Argv<T & ConstraintArgs>;
}

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError(`cannot read the ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** The request fields for the flags: {format} or {grammar}, or {} without any. */
export function constraintFields(a: ConstraintArgs): { format?: "json" | object; grammar?: string } {
  if (a["json-output"]) return { format: "json" };
  if (a.grammar !== undefined) return { grammar: readText(a.grammar, "grammar") };
  if (a.schema === undefined) return {};
  const text = readText(a.schema, "schema");
  try {
    return { format: JSON.parse(text) as object };
  } catch (e) {
    throw new UserError(`the schema ${a.schema} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The flags' grammar compiled against a model (for `alpaca run`), or undefined without any. */
export function compileConstraint(compiler: GrammarCompiler, a: ConstraintArgs): NativeGrammar | undefined {
  const fields = constraintFields(a);
  const source = a.grammar ?? a.schema ?? "--json-output";
  let gbnf: string;
  if (fields.grammar !== undefined) gbnf = fields.grammar;
  else if (fields.format !== undefined) {
    try {
      gbnf = formatToGbnf(fields.format);
    } catch (e) {
      if (e instanceof SchemaError) throw new UserError(`${source}: ${e.message}`);
      throw e;
    }
  } else return undefined;
  try {
    return compileGrammar(compiler, gbnf);
  } catch (e) {
    if (e instanceof GrammarError) throw new UserError(`${source}: ${e.message}`);
    throw e;
  }
}
