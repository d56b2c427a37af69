#!/usr/bin/env node
// The alpaca command line: one table of commands; user mistakes are one line and exit code 2.
import yargs, { type Arguments, type CommandModule } from "yargs";
import { hideBin } from "yargs/helpers";
import { askCommand } from "./cli/ask.js";
import { benchCommand } from "./cli/bench.js";
import { cacheCommand } from "./cli/cache.js";
import { doctorCommand } from "./cli/doctor.js";
import { evalCommand } from "./cli/eval.js";
import { infoCommand } from "./cli/info.js";
import { modelsCommand } from "./cli/models.js";
import { pullCommand } from "./cli/pull.js";
import { quantizeCommand } from "./cli/quantize.js";
import { planCommand } from "./cli/plan.js";
import { runCommand } from "./cli/run.js";
import { serveCommand } from "./cli/serve.js";
import { statusCommand } from "./cli/status.js";
import { tokenizeCommand } from "./cli/tokenize.js";
import { isUserFacing, UserError } from "./errors.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const commands: CommandModule<object, any>[] = [
  runCommand,
  tokenizeCommand,
  evalCommand,
  infoCommand,
  planCommand,
  pullCommand,
  modelsCommand,
  quantizeCommand,
  benchCommand,
  serveCommand,
  askCommand,
  statusCommand,
  cacheCommand,
  doctorCommand,
];

function fail(message: string, code: number): never {
  process.stderr.write(`alpaca: ${message}\n`);
  process.exit(code);
}

// `alpaca models | head` closes the pipe before everything is written: stop quietly, as ls or
// cat do (the rest of the output was not wanted), instead of an EPIPE stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  fail(`cannot write the output: ${e.message}`, 1);
});

const rawArgs = hideBin(process.argv);
type DeclaredOptions = { number: string[]; alias: Record<string, string[]> };
const flag = (name: string) => (name.length === 1 ? `-${name}` : `--${name}`);

/** What the user typed for an option: the flag as written and its value (null when absent). */
function typed(names: string[]): { flag: string; value: string | null } | null {
  for (let i = 0; i < rawArgs.length; i++) {
    const m = /^--?([^=]+)(?:=(.*))?$/.exec(rawArgs[i]);
    if (m && names.includes(m[1])) return { flag: `${rawArgs[i].startsWith("--") ? "--" : "-"}${m[1]}`, value: m[2] ?? rawArgs[i + 1] ?? null };
  }
  return null;
}

/** yargs turns the text of a number option that is not a number into NaN: name the option and the text instead. */
function rejectNonNumbers(argv: Arguments, options: DeclaredOptions): void {
  for (const key of options.number) {
    const values = ([] as unknown[]).concat(argv[key]);
    if (!values.some((v) => typeof v === "number" && Number.isNaN(v))) continue;
    const given = typed([key, ...(options.alias[key] ?? [])]) ?? { flag: flag(key), value: null };
    throw new UserError(`${given.flag}: ${JSON.stringify(given.value ?? "")} is not a number`);
  }
}

/** yargs names an unknown --some-flag twice (also as someFlag); name each once, as it was typed. */
function unknownArguments(message: string): string {
  const m = /^Unknown arguments?: (.*)$/.exec(message);
  if (!m) return message;
  const names = m[1].split(", ");
  const kebab = (n: string) => n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const once = names.filter((n) => kebab(n) === n || !names.includes(kebab(n)));
  const shown = once.map((n) => typed([n])?.flag ?? JSON.stringify(n));
  return `unknown ${shown.length > 1 ? "arguments" : "argument"} ${shown.join(", ")} (alpaca <command> --help lists the options)`;
}

async function main(): Promise<void> {
  const cli = yargs(hideBin(process.argv))
    .scriptName("alpaca")
    .strict()
    .demandCommand(1, "say which command to run (alpaca --help lists them)")
    .recommendCommands()
    .help()
    .version()
    .fail((msg, err) => {
      if (err && !isUserFacing(err)) throw err;
      fail(unknownArguments(msg || err?.message || "invalid arguments"), 2);
    });
  // getOptions() is yargs' own (not in its typings): the options of the command being parsed.
  const declared = () => (cli as unknown as { getOptions(): DeclaredOptions }).getOptions();
  cli.middleware((argv: Arguments) => rejectNonNumbers(argv, declared()), true);
  for (const c of commands) cli.command(c);
  try {
    await cli.parseAsync();
  } catch (e) {
    if (isUserFacing(e)) fail(e.message, 2);
    fail(`internal error: ${e instanceof Error ? e.message : String(e)}`, 1);
  }
}

void main();
