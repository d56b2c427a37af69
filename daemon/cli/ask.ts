// alpaca ask "…": send one prompt to the running daemon and stream the answer to stdout.
import fs from "node:fs";
import type { CommandModule } from "yargs";
import { UserError } from "../errors.js";
import { connectToDaemon, socketOption } from "./client-options.js";
import type { ConstraintArgs } from "./constraint-options.js";
import { constraintFields, constraintOptions } from "./constraint-options.js";

interface AskArgs extends ConstraintArgs {
  prompt?: string;
  instruction: boolean;
  input?: string;
  chat: boolean;
  system?: string;
  n?: number;
  temp?: number;
  "top-k"?: number;
  "top-p"?: number;
  "min-p"?: number;
  "repeat-penalty"?: number;
  seed?: number;
  stop?: string[];
  timeout?: number;
  json: boolean;
  socket?: string;
}

export const askCommand: CommandModule<object, AskArgs> = {
  command: "ask [prompt]",
  describe: "Ask the running daemon; the answer streams to stdout",
  builder: (y) =>
    constraintOptions(y)
      .positional("prompt", { type: "string", describe: 'the prompt ("-" or none: read from stdin)' })
      .option("instruction", { type: "boolean", default: false, describe: "wrap the prompt in the Alpaca instruction template" })
      .option("input", { type: "string", describe: "the Alpaca template's input (with --instruction)" })
      .option("chat", { type: "boolean", default: false, describe: "send the prompt as a user message through the model's chat template" })
      .option("system", { type: "string", describe: "a system message (with --chat)" })
      .option("n", { alias: ["max-tokens"], type: "number", describe: "tokens to generate (default: the daemon's)" })
      .option("temp", { type: "number", describe: "temperature (0 = greedy)" })
      .option("top-k", { type: "number" })
      .option("top-p", { type: "number" })
      .option("min-p", { type: "number" })
      .option("repeat-penalty", { type: "number" })
      .option("seed", { type: "number" })
      .option("stop", { type: "string", array: true, describe: "stop strings" })
      .option("timeout", { type: "number", describe: "seconds before the daemon gives up" })
      .option("json", { type: "boolean", default: false, describe: "print the final reply as JSON instead of streaming" })
      .option("socket", socketOption)
      .check((a) => {
        if (a.input !== undefined && !a.instruction) throw new Error("--input goes with --instruction");
        if (a.system !== undefined && !a.chat) throw new Error("--system goes with --chat");
        if (a.instruction && a.chat) throw new Error("choose --instruction or --chat");
        return true;
      }),
  handler: async (a) => {
    const prompt = readPrompt(a.prompt);
    const body: Record<string, unknown> = { op: "generate", stream: !a.json };
    if (a.instruction) Object.assign(body, { instruction: prompt, input: a.input });
    else if (a.chat)
      body.messages = [...(a.system !== undefined ? [{ role: "system", content: a.system }] : []), { role: "user", content: prompt }];
    else body.prompt = prompt;
    const optional: [string, unknown][] = [
      ["max_tokens", a.n],
      ["temperature", a.temp],
      ["top_k", a["top-k"]],
      ["top_p", a["top-p"]],
      ["min_p", a["min-p"]],
      ["repeat_penalty", a["repeat-penalty"]],
      ["seed", a.seed],
      ["stop", a.stop],
      ["timeout", a.timeout],
    ];
    for (const [k, v] of optional) if (v !== undefined) body[k] = v;
    Object.assign(body, constraintFields(a));

    const client = await connectToDaemon(a.socket);
    // Ctrl-C while streaming: ask the daemon to stop this generation, then show what came.
    const onInt = () => void client.request({ op: "cancel", target: "ask" });
    process.on("SIGINT", onInt);
    const final = await client.request({ ...body, transaction: "ask" }, (c) => process.stdout.write(c.delta));
    process.off("SIGINT", onInt);
    client.close();
    if (a.json) process.stdout.write(JSON.stringify(final) + "\n");
    else if (final.status === "ok") process.stdout.write("\n");
    if (final.status === "error") {
      if (!a.json) process.stderr.write(`alpaca: ${final.error.code}: ${final.error.message}\n`);
      process.exitCode = final.error.code === "bad_request" || final.error.code === "too_long" ? 2 : 1;
    }
  },
};

/** The prompt argument, or stdin for "-" (which yargs passes on as "") and for none at all. */
function readPrompt(arg: string | undefined): string {
  const fromStdin = arg === undefined || arg === "-" || (arg === "" && process.argv.slice(2).includes("-"));
  let prompt = arg ?? "";
  if (fromStdin) {
    if (process.stdin.isTTY) process.stderr.write("alpaca: reading the prompt from the terminal; end it with Ctrl-D\n");
    prompt = fs.readFileSync(0, "utf8").replace(/\r?\n$/, ""); // the newline echo and editors add
  }
  if (prompt.trim() === "") throw new UserError(fromStdin ? "the prompt read from stdin is empty" : "the prompt is empty");
  return prompt;
}
