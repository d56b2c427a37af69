// alpaca serve: plan memory, load the model and answer requests on the Unix socket until
// SIGTERM/SIGINT. Settings come from flags, ALPACA_* and the config file (docs/configuration.md).
import type { CommandModule } from "yargs";
import { defaultModelsDir, ensureDefaultModel } from "../../models/pull.js";
import { loadConfig, withConfigOptions } from "../config.js";
import { checkModelPath, openModel } from "../engine/engine.js";
import type { Logger } from "../log.js";
import { createLogger } from "../log.js";
import { formatPlan, planFromSystem, planModelOf, residencyOptions } from "../serving/plan.js";
import { PressureWatcher } from "../system/pressure.js";
import { LIMITS } from "../serving/protocol.js";
import { parseSeconds, parseSize } from "../config.js";
import { notifyReady, notifyStatus, notifyStopping, startWatchdog } from "../system/sd-notify.js";
import { mqttSettingsFromConfig } from "../transports/mqtt/settings.js";
import { pullService } from "../transports/http/pull.js";
import { HTTP_DEFAULTS, httpSettingsFromConfig } from "../transports/http/settings.js";
import { checkListenAddresses, Server } from "../serving/server.js";
import { groupId, serverSocketPath } from "../transports/socket.js";
import { promptCacheDir } from "./cache.js";
import { UserError } from "../errors.js";
import { describeProgress } from "./pull.js";

interface ServeArgs {
  "batch-tokens"?: number;
  "pressure-watch": boolean;
  "max-line-bytes": number;
  "http-max-body"?: string;
  "http-header-timeout"?: string;
  [key: string]: unknown;
}

const DEFAULT_SOCKET = "/run/alpaca/alpaca.sock";

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: "serve",
  describe: "Run the daemon: plan memory, load the model, answer requests on the Unix socket",
  builder: (y) =>
    withConfigOptions(y)
      .option("batch-tokens", { type: "number", describe: "tokens per engine step (default: the plan's prompt batch)" })
      .option("pressure-watch", {
        type: "boolean",
        default: true,
        describe: "under memory pressure run one request at a time (--no-pressure-watch: never hold back)",
      })
      .option("max-line-bytes", { type: "number", default: LIMITS.maxLineBytes, describe: "longest request line on the socket" })
      .option("http-max-body", { type: "string", requiresArg: true, describe: `largest HTTP request body (default ${HTTP_DEFAULTS.maxBodyBytes / 2 ** 20}M)` })
      .option("http-header-timeout", {
        type: "string",
        requiresArg: true,
        describe: `seconds an HTTP client has to send its request headers (default ${HTTP_DEFAULTS.headerTimeoutMs / 1000})`,
      })
      .check((a) => {
        const body = a["http-max-body"];
        if (body !== undefined && !((parseSize(body) ?? 0) >= 1024)) throw new Error("--http-max-body must be a size of at least 1K");
        const header = a["http-header-timeout"];
        if (header !== undefined && !((parseSeconds(header) ?? 0) >= 0.01)) throw new Error("--http-header-timeout must be a duration of at least 10ms");
        const b = a["batch-tokens"];
        if (b !== undefined && !(Number.isInteger(b) && b >= 1)) throw new Error("--batch-tokens must be an integer ≥ 1");
        if (!(Number.isInteger(a["max-line-bytes"]) && a["max-line-bytes"] >= 1024)) throw new Error("--max-line-bytes must be an integer ≥ 1024");
        return true;
      }) as never,
  handler: async (a) => {
    const config = loadConfig(a);
    const log = createLogger(config.logLevel);
    const shutdown = shutdownOnSignals(log, config.grace);
    const mqtt = mqttSettingsFromConfig(config, log);
    const httpHeaderTimeout = a["http-header-timeout"];
    const http = await httpSettingsFromConfig(
      config,
      {
        maxBodyBytes: a["http-max-body"] === undefined ? undefined : parseSize(a["http-max-body"])!,
        headerTimeoutMs: httpHeaderTimeout === undefined ? undefined : parseSeconds(httpHeaderTimeout)! * 1000,
      },
      log,
    );
    const socketGid = config.socketGroup === null ? undefined : groupId(config.socketGroup);
    if (socketGid === null) throw new UserError(`--socket-group / ALPACA_SOCKET_GROUP: no group named ${JSON.stringify(config.socketGroup)} in /etc/group`);
    // The default path falls back to $XDG_RUNTIME_DIR or the state directory outside systemd.
    const socketPath = config.socket === DEFAULT_SOCKET ? serverSocketPath() : config.socket;
    await checkListenAddresses({ socketPath, http });
    const modelPath = config.model ?? (await downloadDefaultModel(log));
    checkModelPath(modelPath);

    // The plan needs only the shapes: open with a 1-token context, plan, then open for real.
    const probe = openModel(modelPath, { nCtx: 1, threads: 1 });
    const planModel = planModelOf(probe.info());
    probe.close();
    const plan = planFromSystem(planModel, config);
    for (const line of formatPlan(plan, planModel)) (plan.fits ? log.info : log.warn)(`plan: ${line}`);
    if (!plan.fits) log.warn("serving anyway: expect every token to re-read weights from storage (seconds per token)");
    // A plan that does not fit leaves residency to the kernel: there is no split that would hold.
    const residency = plan.fits ? residencyOptions(plan) : undefined;

    shutdown.starting();
    const server = await Server.start({
      modelPath,
      socketPath,
      socketMode: parseInt(config.socketMode, 8),
      socketGid,
      threads: config.threads,
      nCtx: plan.nCtx,
      nSeq: plan.nSeq,
      kvType: plan.kvType,
      residency,
      maxQueue: config.queueSize,
      maxBatchTokens: a["batch-tokens"] ?? plan.nBatch,
      maxLineBytes: a["max-line-bytes"],
      speculation: config.speculation,
      promptCache:
        config.promptCacheSize === 0
          ? null
          : { dir: promptCacheDir(config.promptCacheDir), maxBytes: config.promptCacheSize, maxFiles: config.promptCacheFiles },
      mqtt,
      http: http && { settings: http, pull: pullService() },
      describePlan: () => ({
        fits: plan.fits,
        budget_bytes: plan.budget.bytes,
        bound_by: plan.budget.boundBy,
        batch_tokens: a["batch-tokens"] ?? plan.nBatch,
        total_bytes: plan.costs.total,
        planned_stream_layers: plan.residency.streamLayers,
      }),
      log,
    });
    shutdown.serving(server, superviseServer(server, a["pressure-watch"] ? plan.costs.weights : null, log));
    await new Promise(() => {}); // serve until a signal ends the process
  },
};

/**
 * SIGTERM and SIGINT are handled from the first moment, not once the server is up: a signal that
 * arrived while the model loaded or the socket opened (a supervisor stopping a slow start, npm
 * passing on its own SIGTERM) would otherwise kill the process outright and leave its socket
 * behind. Before the server starts nothing needs closing, so the daemon exits at once; while it
 * starts, it stops as soon as it is up; a second signal exits without waiting.
 */
function shutdownOnSignals(log: Logger, graceSeconds: number): { starting(): void; serving(server: Server, stopHelpers: () => void): void } {
  let phase: "preparing" | "starting" | "serving" = "preparing";
  let requested: string | undefined;
  let stop = (): void => {};
  const onSignal = (name: string) => {
    if (requested !== undefined) {
      log.warn(`${name} again: exiting without waiting`);
      process.exit(1);
    }
    requested = name;
    log.info(`${name}: shutting down`);
    if (phase === "preparing") process.exit(0);
    if (phase === "serving") stop();
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  return {
    starting: () => {
      phase = "starting";
    },
    serving: (server, stopHelpers) => {
      phase = "serving";
      stop = () => {
        notifyStopping(`stopping, ${graceSeconds} s grace for running requests`);
        stopHelpers();
        server.stop(graceSeconds * 1000).then(
          () => process.exit(0),
          (e: unknown) => {
            log.error(`shutdown failed: ${e instanceof Error ? e.message : String(e)}`);
            process.exit(1);
          },
        );
      };
      if (requested !== undefined) stop();
    },
  };
}

/** No model configured: the catalog's default, downloaded on first start. */
async function downloadDefaultModel(log: Logger): Promise<string> {
  const dir = defaultModelsDir();
  log.info(`no model configured: using the catalog's default model in ${dir}`);
  return ensureDefaultModel(dir, {
    onProgress: (p) => log.info(`download: ${describeProgress(p)}`),
    onWarning: (w: string) => log.warn(w),
  });
}

/** systemd readiness, status and watchdog, and the memory-pressure watch; returns their stop. */
function superviseServer(server: Server, pressureResidentBytes: number | null, log: Logger): () => void {
  const info = server.router.modelInfo;
  notifyReady(`serving ${info.name || info.path} on ${server.socket.path}${server.http ? ` and ${server.http.url}` : ""}`);
  const watchdog = startWatchdog(() => server.scheduler.healthy());
  const pressure = pressureResidentBytes === null ? null : new PressureWatcher({ residentBytes: pressureResidentBytes });
  pressure?.on("change", (c) => {
    (c.admitting ? log.info : log.warn)(`memory: ${c.admitting ? "all slots again" : "one request at a time"}: ${c.reason}`);
    server.scheduler.setAdmitting(c.admitting, c.reason);
  });
  pressure?.start();
  let lastStatus = "";
  const statusTimer = setInterval(() => {
    const s = server.scheduler.stats();
    const text = `${s.running} running, ${s.queued} queued, ${s.tokensPerSecond.toFixed(1)} tokens/s`;
    if (text !== lastStatus) notifyStatus(text);
    lastStatus = text;
  }, 5000);
  statusTimer.unref();
  return () => {
    watchdog.stop();
    pressure?.stop();
    clearInterval(statusTimer);
  };
}
