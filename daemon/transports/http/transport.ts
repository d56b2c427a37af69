// The HTTP transport (docs/http.md): the Ollama and OpenAI APIs over Node's own http server, on
// the same router and scheduler as the socket and MQTT. It only frames requests and answers; its
// own concerns are at the door: who may ask (a bearer token, the Host and Origin a browser sends),
// how much they may send (body size, header and request time, idle connections), and a route
// table from path to handler.
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import os from "node:os";
import { UserError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { silentLogger } from "../../log.js";
import type { Router } from "../../serving/router.js";
import type { Transport } from "../transport.js";
import type { Exchange, HttpServices } from "./exchange.js";
import { decoded } from "./exchange.js";
import type { ModelCard } from "./model-card.js";
import { OLLAMA_ROUTES, ollamaError } from "./ollama.js";
import { OPENAI_ROUTES, openaiError } from "./openai.js";
import type { PullService } from "./pull.js";
import type { HttpSettings } from "./settings.js";
import { isLoopback } from "./settings.js";

interface Route {
  method: "GET" | "POST";
  handler: (x: Exchange) => void;
}

// The table: every path and who answers it. "/v1/models/*" takes the rest of the path as an id.
const ROUTES: Record<string, Route> = {
  "/": { method: "GET", handler: (x) => text(x.res, 200, "alpaca is running (Ollama- and OpenAI-compatible API)\n") },
  ...OLLAMA_ROUTES,
  ...OPENAI_ROUTES,
};

const API_ROOTS = new Set(["", "api", "v1"]);

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

function routeOf(path: string): Route | undefined {
  return ROUTES[path] ?? (path.startsWith("/v1/models/") ? ROUTES["/v1/models/*"] : undefined);
}

/** An error in the dialect of the API the path belongs to. */
function refuse(res: ServerResponse, path: string, status: number, message: string, code?: string, headers?: Record<string, string>): void {
  if (res.headersSent) return void res.destroy();
  if (path.startsWith("/v1/")) return openaiError(res, status, message, { code, headers });
  if (headers) for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  ollamaError(res, status, message);
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Listens on the configured address; a refusal is the user's to fix, said in one line. */
function listenOn(server: http.Server | net.Server, s: HttpSettings): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      const why = e.code === "EADDRINUSE" ? "the port is taken (another alpaca or Ollama?)" : e.code === "EACCES" ? "permission denied" : e.message;
      reject(new UserError(`--http ${s.given}: cannot listen: ${why}`));
    });
    server.listen(s.port, s.address, () => resolve());
  });
}

/** Whether the configured address can be listened on now (serve asks before it loads the model). */
export async function checkHttpAddress(s: HttpSettings): Promise<void> {
  if (s.port === 0) return; // any free port will do
  const probe = net.createServer();
  await listenOn(probe, s);
  await new Promise((resolve) => probe.close(resolve));
}

export interface HttpTransportOptions {
  card: ModelCard;
  version: string;
  pull?: PullService;
  log?: Logger;
}

export class HttpTransport implements Transport {
  private server?: http.Server;
  private readonly log: Logger;
  private readonly services: HttpServices;
  private readonly tokenDigest: Buffer | null;
  private readonly open = new Set<ServerResponse>();
  private nextId = 0;
  private stopping = false;
  private clampNoted = false;
  /** The port bound (the configured one, or the one the system picked for port 0). */
  port = 0;

  constructor(
    router: Router,
    private readonly settings: HttpSettings,
    options: HttpTransportOptions,
  ) {
    this.log = options.log ?? silentLogger;
    this.tokenDigest = settings.token === null ? null : digest(settings.token);
    this.services = {
      router,
      card: options.card,
      version: options.version,
      log: this.log,
      pull: options.pull,
      noteContextClamp: (asked) => {
        if (this.clampNoted) return;
        this.clampNoted = true;
        this.log.info(
          `http: a client asked for num_ctx ${asked}; the memory plan gives ${router.modelInfo.nCtx} tokens per sequence, ` +
            "which is what every request gets (said once)",
        );
      },
    };
  }

  get url(): string {
    const host = this.settings.address.includes(":") ? `[${this.settings.address}]` : this.settings.address;
    return `http://${host}:${this.port}`;
  }

  async start(): Promise<void> {
    const s = this.settings;
    const server = http.createServer(
      {
        headersTimeout: s.headerTimeoutMs,
        requestTimeout: s.requestTimeoutMs,
        keepAliveTimeout: s.idleTimeoutMs,
        // How often the timeouts above are checked: a slow client is closed within this of its limit.
        connectionsCheckingInterval: Math.min(1000, s.headerTimeoutMs),
        maxHeaderSize: 16 * 1024,
      },
      (req, res) => this.handle(req, res),
    );
    server.maxConnections = 512;
    await listenOn(server, s);
    server.on("error", (e) => this.log.error(`http: ${e.message}`));
    server.on("clientError", (e: NodeJS.ErrnoException, socket) => {
      this.log.debug(`http: a client's request was refused: ${e.code ?? e.message}`);
      // As Node answers when nobody listens: 408 for a client too slow with its request.
      const status =
        e.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : e.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
      if (socket.writable && e.code !== "ECONNRESET") socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      else socket.destroy();
    });
    this.server = server;
    const address = server.address();
    this.port = typeof address === "object" && address ? address.port : s.port;
    const door = s.token ? "a bearer token required" : s.loopback ? "this machine only" : "no token (--http-insecure)";
    this.log.info(`http: listening on ${this.url} (Ollama /api, OpenAI /v1; ${door})`);
  }

  /** No new connections; requests already in flight (or arriving on kept-alive connections) are answered. */
  stopListening(): void {
    if (!this.server || this.stopping) return;
    this.stopping = true;
    this.server.close();
    this.server.closeIdleConnections();
  }

  /** Waits for the answers in flight (at most waitMs), then closes every connection. */
  async close(waitMs = 2000): Promise<void> {
    this.stopListening();
    const server = this.server;
    if (!server) return;
    const until = Date.now() + waitMs;
    while (this.open.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    server.closeAllConnections();
    this.server = undefined;
  }

  // ─── One request ───────────────────────────────────────────────────────────────────────────

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const label = `http#${++this.nextId}`;
    const started = performance.now();
    let path = "?";
    this.open.add(res);
    res.once("close", () => {
      this.open.delete(res);
      this.log.debug(`${label} ${req.method} ${path} → ${res.statusCode} in ${Math.round(performance.now() - started)} ms`);
    });
    res.on("error", (e) => this.log.debug(`${label}: ${e.message}`));
    if (this.stopping) res.setHeader("Connection", "close");
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      const door = this.door(req, url.pathname, req.method === "OPTIONS");
      path = door.path; // never the token
      if (door.refused) return refuse(res, path, door.refused.status, door.refused.message, door.refused.code, door.refused.headers);

      const route = routeOf(path);
      if (!route) {
        if (path.startsWith("/v1/")) return openaiError(res, 404, `Invalid URL (${req.method} ${path})`);
        return text(res, 404, "404 page not found\n");
      }
      const method = req.method === "HEAD" ? "GET" : req.method;
      if (method === "OPTIONS") return this.preflight(req, res);
      if (method !== route.method)
        return refuse(res, path, 405, `${req.method} is not allowed here; use ${route.method}`, undefined, { Allow: route.method === "GET" ? "GET, HEAD" : "POST" });
      this.allowOrigin(req, res);

      const exchange: Exchange = { req, res, path, query: url.searchParams, body: undefined, label, services: this.services };
      if (method === "GET") return this.run(route, exchange);
      this.readBody(req, res, path, (body) => {
        exchange.body = body;
        this.run(route, exchange);
      });
    } catch (e) {
      // A request this code did not foresee is answered, not allowed to take the daemon down.
      this.log.error(`${label}: ${e instanceof Error ? e.message : String(e)}`);
      refuse(res, path, 400, "the request cannot be read");
    }
  }

  private run(route: Route, x: Exchange): void {
    try {
      route.handler(x);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.log.error(`${x.label}: ${message}`);
      refuse(x.res, x.path, 500, message);
    }
  }

  /**
   * Who may come in, before a byte of the body is read: a browser page from elsewhere (its Origin)
   * may not, a name that is not this machine's may not reach a loopback port (DNS rebinding), and
   * with a token, only who sends it: as a bearer token, or as the first segment of the path for
   * clients that can only be given a URL (Home Assistant's Ollama integration).
   */
  private door(req: IncomingMessage, path: string, preflight: boolean): { path: string; refused?: { status: number; message: string; code?: string; headers?: Record<string, string> } } {
    const origin = req.headers.origin;
    if (origin !== undefined && !loopbackOrigin(origin)) return { path, refused: { status: 403, message: `requests from ${origin.slice(0, 100)} are not allowed` } };
    if (this.settings.loopback && !this.localHost(req.headers.host)) return { path, refused: { status: 403, message: "this name does not reach this server: use localhost" } };

    const segments = path.split("/");
    const prefixed = segments.length >= 2 && !API_ROOTS.has(segments[1]);
    const rest = prefixed ? `/${segments.slice(2).join("/")}` : path;
    if (this.tokenDigest === null) return { path }; // without a token a prefix is just a path nobody serves
    // A browser's preflight carries no credentials; the request that follows it must.
    if (preflight) return { path: rest };
    const given = prefixed ? decoded(segments[1]) : /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
    if (given !== undefined && timingSafeEqual(digest(given), this.tokenDigest)) return { path: rest };
    const message = rest.startsWith("/v1/")
      ? "Incorrect API key provided: send the token from alpaca's httpTokenFile as the API key."
      : "unauthorized: send the token from alpaca's httpTokenFile (Authorization: Bearer <token>, or http://host:port/<token> as the URL)";
    return { path: rest, refused: { status: 401, message, code: "invalid_api_key", headers: { "WWW-Authenticate": 'Bearer realm="alpaca"' } } };
  }

  /** The Host header of a request to a loopback port: this machine's names only. */
  private localHost(host: string | undefined): boolean {
    if (!host) return false;
    const name = host.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1").toLowerCase();
    const me = os.hostname().toLowerCase();
    return name === "localhost" || name.endsWith(".localhost") || isLoopback(name) || name === me || name === `${me}.local`;
  }

  private allowOrigin(req: IncomingMessage, res: ServerResponse): void {
    if (req.headers.origin) res.setHeader("Access-Control-Allow-Origin", req.headers.origin);
  }

  private preflight(req: IncomingMessage, res: ServerResponse): void {
    this.allowOrigin(req, res);
    res.writeHead(204, {
      "Access-Control-Allow-Methods": "GET, HEAD, POST",
      "Access-Control-Allow-Headers": "Authorization, Content-Type",
      "Access-Control-Max-Age": "600",
    });
    res.end();
  }

  /** The JSON body, at most maxBodyBytes (413 beyond, and the connection closed: the rest is not read). */
  private readBody(req: IncomingMessage, res: ServerResponse, path: string, then: (body: unknown) => void): void {
    const max = this.settings.maxBodyBytes;
    const tooLarge = () => {
      res.setHeader("Connection", "close");
      refuse(res, path, 413, `the request body is larger than ${max} bytes`);
      req.destroy(); // do not read the rest
    };
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > max) return tooLarge();
    const parts: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        return tooLarge();
      }
      parts.push(chunk);
    });
    req.on("error", () => res.destroy());
    req.on("end", () => {
      if (over || res.destroyed) return;
      const bytes = Buffer.concat(parts, size);
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
      } catch (e) {
        const why = bytes.length === 0 ? "the request body is empty; send a JSON object" : `the request body is not JSON: ${e instanceof Error ? e.message : String(e)}`;
        return refuse(res, path, 400, why);
      }
      then(body);
    });
  }
}

/** Pages served from this machine may call the API from a browser; other sites may not. */
function loopbackOrigin(origin: string): boolean {
  try {
    const u = new URL(origin);
    const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    return (u.protocol === "http:" || u.protocol === "https:") && (host === "localhost" || isLoopback(host));
  } catch {
    return false;
  }
}
