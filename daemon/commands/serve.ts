// alpaca serve: load the model and answer requests on the Unix socket until SIGTERM/SIGINT.
import type { CommandModule } from "yargs";
import type { KvType } from "../engine.js";
import { checkModelPath } from "../engine.js";
import { UserError } from "../errors.js";
import type { LogLevel } from "../log.js";
import { createLogger } from "../log.js";
import { LIMITS } from "../protocol.js";
import { Server } from "../server.js";
import { serverSocketPath } from "../transports/socket.js";
import { defaultThreads, nonNegativeInt, threadsOption } from "./options.js";

interface ServeArgs {
  model?: string;
  socket?: string;
  threads?: number;
  ctx?: number;
  parallel: number;
  "kv-type": KvType;
  queue: number;
  "batch-tokens": number;
  "max-line-bytes": number;
  grace: number;
  "log-level": LogLevel;
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: "serve",
  describe: "Run the daemon: load the model, answer requests on the Unix socket",
  builder: (y) =>
    y
      .option("model", { alias: "m", type: "string", describe: "GGUF model file (default: $ALPACA_MODEL)" })
      .option("socket", { type: "string", describe: "Unix socket path (default: /run/alpaca, $XDG_RUNTIME_DIR or the state directory)" })
      .option("threads", threadsOption)
      .option("ctx", { alias: "c", type: "number", describe: "context size per sequence (default: the model's, at most 4096)" })
      .option("parallel", { alias: "np", type: "number", default: 4, describe: "sequences decoded together (slots)" })
      .option("kv-type", { choices: ["f16", "q8_0", "f32"] as const, default: "f16" as KvType, describe: "KV cache type" })
      .option("queue", { type: "number", default: 32, describe: "requests that may wait for a slot before busy" })
      .option("batch-tokens", { type: "number", default: 128, describe: "tokens per engine step (prompt chunks + decode)" })
      .option("max-line-bytes", { type: "number", default: LIMITS.maxLineBytes, describe: "longest request line" })
      .option("grace", { type: "number", default: 10, describe: "seconds running requests get to finish on shutdown" })
      .option("log-level", { choices: ["debug", "info", "warn", "error"] as const, default: "info" as LogLevel })
      .check((a) => {
        if (a.ctx !== undefined) nonNegativeInt("--ctx", a.ctx, 1);
        nonNegativeInt("--parallel", a.parallel, 1);
        nonNegativeInt("--queue", a.queue, 0);
        nonNegativeInt("--batch-tokens", a["batch-tokens"], 1);
        nonNegativeInt("--max-line-bytes", a["max-line-bytes"], 1024);
        if (!(a.grace >= 0)) throw new Error("--grace must be 0 or more seconds");
        defaultThreads(a.threads);
        return true;
      }),
  handler: async (a) => {
    const modelPath = a.model ?? process.env.ALPACA_MODEL;
    if (!modelPath) throw new UserError("say which model to serve: --model path/to/model.gguf (or ALPACA_MODEL)");
    checkModelPath(modelPath);
    const log = createLogger(a["log-level"]);
    const server = await Server.start({
      modelPath,
      socketPath: a.socket ?? serverSocketPath(),
      threads: defaultThreads(a.threads),
      nCtx: a.ctx,
      nSeq: a.parallel,
      kvType: a["kv-type"],
      maxQueue: a.queue,
      maxBatchTokens: a["batch-tokens"],
      maxLineBytes: a["max-line-bytes"],
      log,
    });
    let signals = 0;
    const onSignal = (name: string) => {
      if (++signals > 1) {
        log.warn(`${name} again: exiting without waiting`);
        process.exit(1);
      }
      log.info(`${name}: shutting down`);
      server.stop(a.grace * 1000).then(
        () => process.exit(0),
        (e: unknown) => {
          log.error(`shutdown failed: ${e instanceof Error ? e.message : String(e)}`);
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    process.on("SIGINT", () => onSignal("SIGINT"));
    await new Promise(() => {}); // serve until a signal ends the process
  },
};
