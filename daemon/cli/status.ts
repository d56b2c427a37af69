// alpaca status: what the running daemon serves, its plan, queue, speed and memory.
import type { CommandModule } from "yargs";
import { formatBytes } from "../serving/memory.js";
import type { PromptCacheStats } from "../serving/protocol.js";
import { connectToDaemon, socketOption } from "./client-options.js";

interface StatusArgs {
  json: boolean;
  socket?: string;
}

// The fields of the status reply this command prints (docs/protocol.md has them all).
interface StatusData {
  version: string;
  api_version: number;
  uptime_s: number;
  model: { name: string; path: string; architecture: string };
  plan: {
    n_ctx: number; n_seq: number; threads: number; kv_type: string; kv_bytes: number; weight_bytes: number;
    residency?: {
      managed: boolean; resident_bytes: number; locked_bytes: number; streamed_bytes: number; locked_layers: number;
      streamed_layers: number[]; locking_permitted: boolean; lock_error?: string;
    };
  };
  queue: { queued: number; running: number; max_queue: number; accepting: boolean };
  tokens_per_second: number;
  totals: { requests: number; completed: number; rejected_busy: number; generated_tokens: number; cached_tokens: number };
  memory: { rss_bytes: number; kv_used_cells: number; kv_total_cells: number };
  prompt_cache?: PromptCacheStats;
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: "status",
  describe: "Show the running daemon's model, plan, queue, speed and memory",
  builder: (y) =>
    y.option("json", { type: "boolean", default: false, describe: "print the status reply as JSON" }).option("socket", socketOption),
  handler: async (a) => {
    const client = await connectToDaemon(a.socket);
    const reply = await client.request({ op: "status" });
    client.close();
    if (reply.status === "error") {
      process.stderr.write(`alpaca: ${reply.error.code}: ${reply.error.message}\n`);
      process.exitCode = 1;
      return;
    }
    const d = reply.data as StatusData;
    if (a.json) {
      process.stdout.write(JSON.stringify(d) + "\n");
      return;
    }
    const p = d.plan;
    const lines = [
      `alpaca ${d.version} (api ${d.api_version}), up ${d.uptime_s} s`,
      `model   ${d.model.name || d.model.path} (${d.model.architecture}) ${d.model.path}`,
      `plan    context ${p.n_ctx} × ${p.n_seq} sequences, KV ${p.kv_type} ${formatBytes(p.kv_bytes)}, weights ${formatBytes(p.weight_bytes)}, ${p.threads} threads`,
      residencyLine(p.residency, p.weight_bytes),
      `queue   ${d.queue.running} running, ${d.queue.queued} queued (max ${d.queue.max_queue})${d.queue.accepting ? "" : ", shutting down"}`,
      `speed   ${d.tokens_per_second} tokens/s (last 10 s)`,
      `totals  ${d.totals.requests} requests, ${d.totals.completed} completed, ${d.totals.rejected_busy} busy, ${d.totals.generated_tokens} tokens generated, ${d.totals.cached_tokens} prompt tokens reused`,
      `memory  RSS ${formatBytes(d.memory.rss_bytes)}, KV cells ${d.memory.kv_used_cells}/${d.memory.kv_total_cells}`,
      promptCacheLine(d.prompt_cache),
    ];
    process.stdout.write(lines.join("\n") + "\n");
  },
};

function residencyLine(r: StatusData["plan"]["residency"], weightBytes: number): string {
  if (!r || !r.managed) return `weights ${formatBytes(weightBytes)} mapped, left to the kernel (not managed)`;
  const streamed = r.streamed_layers.length;
  const lock = r.locking_permitted
    ? `locked ${formatBytes(r.locked_bytes)} (${r.locked_layers} layers)`
    : `not locked${r.lock_error ? ` (${r.lock_error})` : ""}`;
  return `weights resident ${formatBytes(r.resident_bytes)}, ${lock}, ` +
    `streamed ${formatBytes(r.streamed_bytes)} per token (${streamed} layer${streamed === 1 ? "" : "s"})`;
}

function promptCacheLine(c: PromptCacheStats | undefined): string {
  if (!c) return "cache   prompt cache off";
  return `cache   ${c.files}/${c.max_files} stored prefixes, ${formatBytes(c.bytes)} of ${formatBytes(c.max_bytes)} in ${c.dir}; ` +
    `${c.restored} restored (${c.restored_tokens} tokens), ${c.saved} stored, ${c.skipped} skipped`;
}
