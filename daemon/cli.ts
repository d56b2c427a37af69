#!/usr/bin/env node
// The alpaca command line: one table of commands; user mistakes are one line and exit code 2.
import yargs, { type CommandModule } from "yargs";
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
import { isUserFacing } from "./errors.js";

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
      fail(msg || err?.message || "invalid arguments", 2);
    });
  for (const c of commands) cli.command(c);
  try {
    await cli.parseAsync();
  } catch (e) {
    if (isUserFacing(e)) fail(e.message, 2);
    fail(`internal error: ${e instanceof Error ? e.message : String(e)}`, 1);
  }
}

void main();
