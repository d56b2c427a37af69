// alpaca doctor: whether this machine can serve the configured model well, one verdict per line.
import type { CommandModule } from "yargs";
import { formatDoctor, runDoctor } from "../system/doctor.js";
import { defaultThreads } from "./options.js";

interface DoctorArgs {
  model?: string;
  config?: string;
  json: boolean;
  "read-test": boolean;
  root: string;
  threads?: number;
}

export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: "doctor",
  describe: "Check memory, swap, CPU, cooling, power and storage for the configured model (exit 1 on a failure)",
  builder: (y) =>
    y
      .option("model", { alias: "m", type: "string", describe: "GGUF model (default: the one serve would take: $ALPACA_MODEL, then the config file's)" })
      .option("config", { type: "string", requiresArg: true, describe: "serve's config file (env ALPACA_CONFIG; default /etc/alpaca/config.json)" })
      .option("json", { type: "boolean", default: false, describe: "print JSON" })
      .option("read-test", { type: "boolean", default: true, describe: "time a 32 MiB read of the model (--no-read-test skips it)" })
      .option("threads", { alias: "t", type: "number", describe: "threads the estimate assumes (default: one per core)" })
      // For support and tests: judge a copy of another machine's /proc, /sys and /etc.
      .option("root", { type: "string", default: "/", hidden: true }),
  handler: (a) => {
    const report = runDoctor({
      root: a.root,
      model: a.model,
      configFile: a.config,
      readTest: a["read-test"],
      threads: a.threads === undefined ? undefined : defaultThreads(a.threads),
    });
    process.stdout.write(a.json ? JSON.stringify(report) + "\n" : formatDoctor(report));
    if (report.verdict === "fail") process.exitCode = 1;
  },
};
