// alpaca plan: the memory plan `serve` would make for a model, printed without serving.
// `--memory 4G` plans for a machine of that size (a Pi) from any machine; without it the plan
// uses this machine's MemAvailable and cgroup limit, as `serve` will.
import type { CommandModule } from "yargs";
import { loadConfig, parseSize, withConfigOptions } from "../config.js";
import { openModel } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { formatPlan, planFromSystem, planModelOf } from "../serving/plan.js";

/** Exit code when the model does not fit, so that scripts (ExecStartPre=) can tell. */
export const EXIT_DOES_NOT_FIT = 3;

interface PlanArgs {
  memory?: string;
  json: boolean;
  [key: string]: unknown;
}

export const planCommand: CommandModule<object, PlanArgs> = {
  command: "plan",
  describe: "Show the memory plan for a model (KV type, context, parallel sequences) without serving",
  builder: (y) =>
    withConfigOptions(y, ["model", "memoryLimit", "threads", "ctx", "parallel", "kvType"])
      .option("memory", {
        type: "string", requiresArg: true,
        describe: "plan for a machine with this much available memory (e.g. 4G) instead of this one",
      })
      .option("json", { type: "boolean", default: false, describe: "print the plan as JSON" }) as never,
  handler: (a) => {
    const config = loadConfig(a);
    if (!config.model) throw new UserError("say which model: --model PATH (or \"model\" in the config file, or ALPACA_MODEL)");
    let machine: number | null = null;
    if (a.memory !== undefined) {
      machine = parseSize(a.memory);
      if (!machine) throw new UserError(`--memory ${JSON.stringify(a.memory)} is not a size (bytes, or a number with K, M, G or T, e.g. 4G)`);
    }
    // nCtx 1: the header and shapes are all the plan needs; the weights are only mapped.
    const model = openModel(config.model, { nCtx: 1, threads: 1 });
    const info = model.info();
    model.close();
    const planModel = planModelOf(info);
    const plan = planFromSystem(planModel, config, { machine });
    if (a.json) process.stdout.write(JSON.stringify({ model: planModel, ...plan }) + "\n");
    else process.stdout.write(formatPlan(plan, planModel).join("\n") + "\n");
    if (!plan.fits) process.exitCode = EXIT_DOES_NOT_FIT;
  },
};
