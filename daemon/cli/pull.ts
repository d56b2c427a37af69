// alpaca pull ID|URL: download a catalog model or a GGUF URL into the models directory, with
// progress, resume and checksum verification (models/pull.ts).
import type { CommandModule } from "yargs";
import { formatBytes } from "../serving/memory.js";
import { defaultModelsDir, pullModel, type PullProgress } from "../../models/pull.js";

interface PullArgs {
  model: string;
  dir?: string;
  sha256?: string;
  size?: number;
  quiet: boolean;
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

/** One progress line: "412.00 MiB / 3.83 GiB  10.7%  2.10 MiB/s  ETA 27m53s". */
export function describeProgress(p: PullProgress): string {
  if (p.phase === "hashing") return `checking the ${formatBytes(p.total ?? 0)} already downloaded: ${formatBytes(p.bytes)}`;
  if (p.phase === "verifying") return `verifying ${p.file}`;
  const of = p.total !== null ? ` / ${formatBytes(p.total)}  ${((100 * p.bytes) / Math.max(1, p.total)).toFixed(1)}%` : "";
  const eta = p.etaSeconds !== null ? `  ETA ${formatDuration(p.etaSeconds)}` : "";
  return `${formatBytes(p.bytes)}${of}  ${formatBytes(p.bytesPerSecond)}/s${eta}`;
}

/**
 * A bar redrawn in place on a terminal; plain lines every `everyMs` otherwise (a journal or a
 * pipe would fill with carriage returns).
 */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr, everyMs = 5000) {
  let lastLine = 0;
  let drawn = false;
  const tty = stream.isTTY === true;
  return {
    update(p: PullProgress) {
      const text = describeProgress(p);
      if (tty && p.phase === "downloading" && p.total) {
        const width = 24;
        const filled = Math.min(width, Math.round((width * p.bytes) / p.total));
        stream.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}\x1b[K`);
        drawn = true;
        return;
      }
      const now = Date.now();
      if (tty || p.phase !== "downloading" || now - lastLine >= everyMs) {
        if (drawn) stream.write("\n");
        drawn = false;
        stream.write(`${p.file}: ${text}\n`);
        lastLine = now;
      }
    },
    done() {
      if (drawn) stream.write("\n");
      drawn = false;
    },
  };
}

export const pullCommand: CommandModule<object, PullArgs> = {
  command: "pull <model>",
  describe: "Download a model from the catalog (by id) or a GGUF file (by https URL)",
  builder: (y) =>
    y
      .positional("model", { type: "string", demandOption: true, describe: "catalog id (alpaca models lists them) or URL" })
      .option("dir", { type: "string", describe: "models directory (default: $ALPACA_MODELS, /var/lib/alpaca/models or ~/.local/share/alpaca/models)" })
      .option("sha256", { type: "string", describe: "for a URL: the sha256 the file must have" })
      .option("size", { type: "number", describe: "for a URL: the byte count the file must have" })
      .option("quiet", { alias: "q", type: "boolean", default: false, describe: "no progress" }),
  handler: async (a) => {
    const dir = a.dir ?? defaultModelsDir();
    const printer = progressPrinter();
    const abort = new AbortController();
    const onSigint = () => abort.abort(new Error("interrupted"));
    process.once("SIGINT", onSigint);
    try {
      const result = await pullModel(a.model, {
        dir,
        sha256: a.sha256,
        size: a.size,
        signal: abort.signal,
        onProgress: a.quiet ? undefined : (p) => printer.update(p),
        onWarning: (m) => { printer.done(); process.stderr.write(`alpaca: warning: ${m}\n`); },
      });
      printer.done();
      const how = result.alreadyPresent ? "already present" : result.verified ? "sha256 verified" : "length checked, no published sha256";
      process.stderr.write(`${result.path} (${formatBytes(result.bytes)}, ${how})\n`);
      process.stdout.write(`${result.path}\n`);
    } catch (e) {
      printer.done();
      if (abort.signal.aborted) {
        process.stderr.write("alpaca: interrupted; run the same command to resume\n");
        process.exit(130);
      }
      throw e;
    } finally {
      process.off("SIGINT", onSigint);
    }
  },
};
