// The daemon: one model, one scheduler, one router, its transports. start() brings them up in
// that order and stop() takes them down in reverse, each part finishing cleanly.
import fs from "node:fs";
import path from "node:path";
import type { KvType, NativeModel, ResidencyOptions } from "../engine/engine.js";
import { openModel } from "../engine/engine.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { readGguf } from "../engine/gguf.js";
import { projectRoot } from "../engine/native.js";
import { PromptCache } from "./prompt-cache.js";
import { Router } from "./router.js";
import { Scheduler } from "./scheduler.js";
import { ChatTemplate } from "./templates.js";
import { readModelCard } from "../transports/http/model-card.js";
import type { PullService } from "../transports/http/pull.js";
import type { HttpSettings } from "../transports/http/settings.js";
import { checkHttpAddress, HttpTransport } from "../transports/http/transport.js";
import type { MqttSettings } from "../transports/mqtt/transport.js";
import { MqttTransport } from "../transports/mqtt/transport.js";
import { checkSocketPath, SocketTransport } from "../transports/socket.js";

export interface ServerOptions {
  modelPath: string;
  socketPath: string;
  /** Permission bits and group of the socket (default 0660, the daemon's group). */
  socketMode?: number;
  socketGid?: number;
  threads: number;
  nCtx?: number;
  nSeq: number;
  kvType?: KvType;
  /** The plan's layers to stream and whether to mlock the rest (absent: the kernel decides). */
  residency?: ResidencyOptions;
  maxQueue?: number;
  maxBatchTokens?: number;
  maxLineBytes?: number;
  /** Bytes queued to a slow client before its chunks are merged (the socket's default if unset). */
  highWaterBytes?: number;
  /** Facts from the memory plan, shown by status and info. */
  describePlan?: () => Record<string, unknown>;
  /** Speculative decoding by prompt lookup (default true). */
  speculation?: boolean;
  /** Shared prompt prefixes kept on disk across restarts; absent or null: none. */
  promptCache?: { dir: string; maxBytes: number; maxFiles: number; minTokens?: number } | null;
  /** The broker to serve through as well; absent: the socket only. */
  mqtt?: MqttSettings | null;
  /** The Ollama and OpenAI HTTP APIs as well; absent: no HTTP. */
  http?: { settings: HttpSettings; pull?: PullService } | null;
  log?: Logger;
}

export function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(projectRoot(), "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/** tokenizer.chat_template from the GGUF header, if the file has one. */
export function readChatTemplate(modelPath: string): string | undefined {
  const t = readGguf(modelPath).metadata["tokenizer.chat_template"];
  return typeof t === "string" && t.trim() !== "" ? t : undefined;
}

/** The prompt cache, or none (one warning) when its directory cannot be used. */
function openPromptCache(model: NativeModel, o: NonNullable<ServerOptions["promptCache"]>, log: Logger): PromptCache | undefined {
  try {
    return new PromptCache(model, { dir: o.dir, maxBytes: o.maxBytes, maxEntries: o.maxFiles, minTokens: o.minTokens, version: packageVersion(), log });
  } catch (e) {
    log.warn(`prompt cache off: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

/**
 * What serve checks before it loads the model (minutes from an SD card): that every address it
 * will listen on is free. Each transport that listens adds its check here.
 */
export async function checkListenAddresses(o: { socketPath: string; http?: HttpSettings | null }): Promise<void> {
  await checkSocketPath(o.socketPath);
  if (o.http) await checkHttpAddress(o.http);
}

export class Server {
  private stopping?: Promise<void>;

  private constructor(
    readonly model: NativeModel,
    readonly scheduler: Scheduler,
    readonly router: Router,
    readonly socket: SocketTransport,
    readonly mqtt: MqttTransport | null,
    readonly http: HttpTransport | null,
    private readonly log: Logger,
  ) {}

  static async start(o: ServerOptions): Promise<Server> {
    const log = o.log ?? silentLogger;
    const t0 = performance.now();
    // Under a memory plan the KV cache is taken at start, as the plan counted it.
    const model = openModel(o.modelPath, {
      threads: o.threads, nCtx: o.nCtx, nSeq: o.nSeq, kvType: o.kvType, residency: o.residency, commitKv: o.residency !== undefined,
    });
    try {
      const info = model.info();
      log.info(
        `model ${info.name || path.basename(info.path)} (${info.architecture}, ${info.nLayer} layers, vocab ${info.nVocab}) ` +
          `loaded in ${Math.round(performance.now() - t0)} ms; context ${info.nCtx} × ${info.nSeq} sequences, ` +
          `KV ${info.kvType} ${(info.kvBytes / 2 ** 20).toFixed(1)} MiB, ${info.threads} threads`,
      );
      let chatTemplate: ChatTemplate | undefined;
      const source = readChatTemplate(o.modelPath);
      if (source) {
        try {
          const text = (id: number) => (id >= 0 ? model.tokenBytes(id, true).toString("utf8") : "");
          chatTemplate = new ChatTemplate(source, { bos: text(info.bos), eos: text(info.eos) });
        } catch (e) {
          log.warn(`the model's chat template does not parse (${e instanceof Error ? e.message : e}); messages are refused`);
        }
      }
      const promptCache = o.promptCache ? openPromptCache(model, o.promptCache, log) : undefined;
      const scheduler = new Scheduler(model, { maxQueue: o.maxQueue, maxBatchTokens: o.maxBatchTokens, promptCache, speculate: o.speculation });
      const router = new Router({ model, scheduler, chatTemplate, version: packageVersion(), describePlan: o.describePlan, log });
      const socket = new SocketTransport(router, {
        path: o.socketPath,
        mode: o.socketMode,
        gid: o.socketGid,
        maxLineBytes: o.maxLineBytes,
        highWaterBytes: o.highWaterBytes,
        log,
      });
      const http = o.http
        ? new HttpTransport(router, o.http.settings, { card: readModelCard(o.modelPath), version: packageVersion(), pull: o.http.pull, log })
        : null;
      scheduler.start();
      await socket.start();
      try {
        await http?.start();
      } catch (e) {
        await socket.close();
        await scheduler.stop(0);
        throw e;
      }
      // The broker may be away: the transport connects (and reconnects) on its own.
      const mqtt = o.mqtt ? new MqttTransport(router, o.mqtt, { version: packageVersion(), log }) : null;
      mqtt?.start();
      return new Server(model, scheduler, router, socket, mqtt, http, log);
    } catch (e) {
      model.close();
      throw e;
    }
  }

  /**
   * Stops accepting; queued requests are answered shutting_down, running ones get graceMs to
   * finish (then shutting_down); every reply is flushed before the connections close.
   */
  stop(graceMs: number): Promise<void> {
    this.stopping ??= (async () => {
      const s = this.scheduler.stats();
      this.log.info(`stopping: ${s.running} running, ${s.queued} queued, grace ${graceMs} ms`);
      this.router.stopAccepting();
      // MQTT requests arriving from now on stay unacknowledged: the broker keeps them for the next start.
      this.mqtt?.stopListening();
      await this.socket.stopListening();
      this.http?.stopListening();
      await this.scheduler.stop(graceMs);
      await this.socket.close();
      await this.http?.close();
      await this.mqtt?.close();
      this.model.close();
      this.log.info("stopped");
    })();
    return this.stopping;
  }
}
