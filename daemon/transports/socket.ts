// The Unix socket transport: newline-delimited JSON, many requests in flight per connection
// (docs/protocol.md). It only frames bytes; every request goes to the shared Router.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import type { ReplyMessage, TransactionId } from "../serving/protocol.js";
import { errorMessage, LIMITS } from "../serving/protocol.js";
import type { Router, Session } from "../serving/router.js";

export interface SocketTransportOptions {
  path: string;
  maxLineBytes?: number;
  /** Bytes queued to a client beyond which its stream chunks are merged and its input paused. */
  highWaterBytes?: number;
  /** Permission bits of the socket (default 0660: the daemon's user and group). */
  mode?: number;
  /** Group given the socket (and a directory start() creates), by gid; default: the daemon's own. */
  gid?: number;
  log?: Logger;
}

/** A group name or numeric gid → gid, from /etc/group; null when there is no such group. */
export function groupId(group: string, etcGroup = "/etc/group"): number | null {
  if (/^\d+$/.test(group)) return Number(group);
  let text = "";
  try {
    text = fs.readFileSync(etcGroup, "utf8");
  } catch {
    return null;
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && /^\d+$/.test(gid ?? "")) return Number(gid);
  }
  return null;
}

// ─── Where the socket lives ──────────────────────────────────────────────────────────────────

/** Candidates in order: the systemd runtime directory, the user's runtime directory, the state directory. */
export function socketPathCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = ["/run/alpaca/alpaca.sock"];
  if (env.XDG_RUNTIME_DIR) list.push(path.join(env.XDG_RUNTIME_DIR, "alpaca.sock"));
  list.push(path.join(stateDirectory(env), "alpaca.sock"));
  return list;
}

export function stateDirectory(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STATE_DIRECTORY) return env.STATE_DIRECTORY.split(":")[0]; // set by systemd's StateDirectory=
  const base = env.XDG_STATE_HOME || path.join(env.HOME || os.homedir(), ".local", "state");
  return path.join(base, "alpaca");
}

/** Where the daemon listens: the first candidate whose directory exists and is writable. */
export function serverSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = socketPathCandidates(env);
  for (const p of candidates.slice(0, -1)) {
    try {
      fs.accessSync(path.dirname(p), fs.constants.W_OK);
      return p;
    } catch {
      // not this one
    }
  }
  return candidates[candidates.length - 1];
}

/** Where a client looks: the first candidate that exists (else the first, for the error message). */
export function clientSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = socketPathCandidates(env);
  return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

// ─── Transport ───────────────────────────────────────────────────────────────────────────────

export class SocketTransport {
  private server?: net.Server;
  /** Every accepted connection and the session answering it. */
  private readonly connections = new Map<net.Socket, Session>();
  private closing = false;
  private readonly maxLineBytes: number;
  private readonly highWaterBytes: number;
  private readonly log: Logger;
  private nextId = 0;
  private unlinked = false;

  constructor(
    private readonly router: Router,
    private readonly options: SocketTransportOptions,
  ) {
    this.maxLineBytes = options.maxLineBytes ?? LIMITS.maxLineBytes;
    this.highWaterBytes = options.highWaterBytes ?? 256 * 1024;
    this.log = options.log ?? silentLogger;
  }

  get path(): string {
    return this.options.path;
  }

  async start(): Promise<void> {
    const p = this.options.path;
    const mode = (this.options.mode ?? 0o660) & 0o777;
    const gid = this.options.gid;
    // Whoever may connect must be able to reach the socket: the directory opens to others only if the socket does.
    const dirMode = 0o750 | (mode & 0o006 ? 0o005 : 0);
    // Explicit chmod: mkdir's mode passes through the umask, which start() itself narrows for a moment.
    const created = fs.mkdirSync(path.dirname(p), { recursive: true, mode: dirMode });
    if (created) {
      for (let d = path.dirname(p); d.startsWith(created); d = path.dirname(d)) {
        fs.chmodSync(d, dirMode);
        if (gid !== undefined) fs.chownSync(d, -1, gid);
      }
    }
    await removeStaleSocket(p);
    // The write high-water mark is the congestion threshold: 'drain' fires exactly when a
    // congested client has read its backlog.
    const server = net.createServer({ highWaterMark: this.highWaterBytes }, (socket) => this.accept(socket));
    // The final mode from the first moment (no window in which another user could connect),
    // at most that mode until the group is changed.
    const oldMask = process.umask(~mode & 0o777);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(p, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    try {
      if (gid !== undefined) fs.chownSync(p, -1, gid);
      fs.chmodSync(p, mode);
    } catch (e) {
      server.close();
      throw e;
    }
    server.on("error", (e) => this.log.error(`socket ${p}: ${e.message}`));
    this.server = server;
    this.log.info(`listening on ${p}`);
  }

  /**
   * No new connections: the path is removed, so no client can find the socket any more. The
   * listener itself stays open until close(): a client that connected a moment ago is still in
   * the kernel's accept queue, and closing the listener would reset it without a word; accepted,
   * it gets its shutting_down answer like everyone else.
   */
  async stopListening(): Promise<void> {
    if (!this.server || this.unlinked) return;
    this.unlinked = true;
    try {
      fs.unlinkSync(this.options.path);
    } catch {
      // already gone
    }
  }

  /**
   * Ends every connection: an idle one (no request in flight) at once, a busy one right after its
   * last final message; each is destroyed once its queued replies are written, so a client that
   * keeps its end open cannot hold the daemon up. A client that stops reading is destroyed after
   * waitMs.
   */
  async close(waitMs = 2000): Promise<void> {
    await this.stopListening();
    const server = this.server;
    this.server = undefined;
    // One more turn of the event loop: connections and lines already received are answered.
    await new Promise((r) => setImmediate(r));
    this.closing = true;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await Promise.all(
      [...this.connections].map(
        ([socket, session]) =>
          new Promise<void>((resolve) => {
            if (socket.destroyed) return resolve();
            const timer = setTimeout(() => socket.destroy(), waitMs);
            timer.unref();
            socket.once("close", () => {
              clearTimeout(timer);
              resolve();
            });
            if (session.inFlight() === 0) this.finish(socket);
          }),
      ),
    );
    await closed; // calls back once the last connection is gone
  }

  /** Writes what is queued, then closes whatever the client does with its end. */
  private finish(socket: net.Socket): void {
    if (socket.destroyed || socket.writableEnded) return;
    socket.end(() => socket.destroy());
  }

  private accept(socket: net.Socket): void {
    const label = `socket#${++this.nextId}`;
    const drainWaiters: (() => void)[] = [];
    const congested = () => socket.writableNeedDrain;
    const session: Session = this.router.openSession(
      {
        send: (message: ReplyMessage) => {
          if (socket.destroyed || !socket.writable) return;
          socket.write(JSON.stringify(message) + "\n");
          // Closing: a busy connection ends with its last final message.
          if (this.closing && "status" in message && session.inFlight() === 0) return this.finish(socket);
          // A client that does not read gets no more of its requests read either.
          if (congested() && !socket.isPaused()) socket.pause();
        },
        congested,
        onceDrained: (callback) => drainWaiters.push(callback),
      },
      label,
    );
    this.connections.set(socket, session);
    // Accepted while closing (it was in the accept queue): answered like the rest, then ended.
    if (this.closing) setImmediate(() => session.inFlight() === 0 && this.finish(socket));
    socket.on("drain", () => {
      for (const cb of drainWaiters.splice(0)) cb();
      if (socket.isPaused() && !socket.destroyed) socket.resume();
    });
    const reader = new LineReader(this.maxLineBytes, {
      line: (line) => session.handleLine(line),
      tooLong: () =>
        session.reply(
          errorMessage(null, "bad_request", `the request line is longer than ${this.maxLineBytes} bytes; it was discarded`),
        ),
    });
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
    socket.on("error", (e) => this.log.debug(`${label}: ${e.message}`));
    socket.on("close", () => {
      this.connections.delete(socket);
      if (session.inFlight() > 0) this.log.debug(`${label}: gone with ${session.inFlight()} requests in flight; cancelling them`);
      session.close();
    });
  }
}

/**
 * Splits a byte stream into lines of at most maxBytes. A longer line is reported once and skipped
 * up to its newline, so the connection keeps working.
 */
export class LineReader {
  private parts: Buffer[] = [];
  private size = 0;
  private discarding = false;

  constructor(
    private readonly maxBytes: number,
    private readonly on: { line: (line: Buffer) => void; tooLong: () => void },
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start <= chunk.length) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (!this.discarding) {
        if (this.size + piece.length > this.maxBytes) {
          this.discarding = true;
          this.parts = [];
          this.size = 0;
          this.on.tooLong();
        } else if (piece.length > 0) {
          this.parts.push(Buffer.from(piece)); // a copy: the socket reuses its chunk
          this.size += piece.length;
        }
      }
      if (nl < 0) return;
      if (!this.discarding) this.emit();
      this.discarding = false;
      this.parts = [];
      this.size = 0;
      start = nl + 1;
    }
  }

  private emit(): void {
    let line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1); // CRLF
    if (line.every((c) => c === 32 || c === 9 || c === 13)) return; // blank lines are keep-alives, not requests
    this.on.line(line);
  }
}

/**
 * Whether the socket can be made at `p`: its folder (or the nearest existing parent) is writable,
 * and nothing but a stale socket is there; a live daemon or another file is an error. Cheap, so
 * that serve can tell before it spends minutes loading a model.
 */
export async function checkSocketPath(p: string): Promise<"free" | "stale"> {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(p);
  } catch {
    let dir = path.dirname(p);
    while (!fs.existsSync(dir)) dir = path.dirname(dir);
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      throw new UserError(`cannot make the socket ${p}: ${dir} is not writable (--socket says where)`);
    }
    return "free";
  }
  if (!st.isSocket()) throw new UserError(`${p} exists and is not a socket; not removing it`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(p);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) throw new UserError(`another daemon is listening on ${p}`);
  return "stale";
}

/** A socket file left by a daemon that died is removed; a live daemon or a non-socket file is an error. */
async function removeStaleSocket(p: string): Promise<void> {
  if ((await checkSocketPath(p)) === "stale") fs.unlinkSync(p);
}

// ─── Client (alpaca ask / status, tests, benchmarks) ─────────────────────────────────────────

export type FinalMessage = Extract<ReplyMessage, { status: string }>;
export type Chunk = Extract<ReplyMessage, { delta: string }>;

/** A connection to the daemon with any number of requests in flight, matched by transaction. */
export class SocketClient {
  private readonly pending = new Map<TransactionId, { onChunk?: (c: Chunk) => void; resolve: (m: FinalMessage) => void }>();
  private readonly unmatched: FinalMessage[] = [];
  private next = 0;
  private closedError?: Error;

  private constructor(readonly socket: net.Socket) {
    const reader = new LineReader(64 * 1024 * 1024, {
      line: (line) => this.receive(JSON.parse(line.toString("utf8")) as ReplyMessage),
      tooLong: () => socket.destroy(new Error("reply line too long")),
    });
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
    socket.on("error", (e) => (this.closedError = e));
    socket.on("close", () => {
      const e = this.closedError ?? new Error("the daemon closed the connection");
      for (const [t, p] of this.pending) p.resolve(errorMessage(t, "internal", e.message));
      this.pending.clear();
    });
  }

  static connect(socketPath: string): Promise<SocketClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new SocketClient(socket));
      });
      socket.once("error", reject);
    });
  }

  /** Sends one request; resolves with its final message (ok or error). Chunks go to onChunk. */
  request(body: Record<string, unknown>, onChunk?: (c: Chunk) => void): Promise<FinalMessage> {
    const given = body.transaction;
    const transaction = typeof given === "string" || typeof given === "number" ? given : `c${++this.next}`;
    return new Promise((resolve) => {
      this.pending.set(transaction, { onChunk, resolve });
      this.socket.write(JSON.stringify({ ...body, transaction }) + "\n");
    });
  }

  /** Sends raw bytes (tests of framing); replies without a known transaction land in unmatched. */
  writeRaw(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits for the next reply that matched no request in flight (transaction null or unknown). */
  async nextUnmatched(timeoutMs = 5000): Promise<FinalMessage> {
    const until = Date.now() + timeoutMs;
    while (this.unmatched.length === 0) {
      if (Date.now() > until || this.socket.destroyed) throw new Error("no unmatched reply arrived");
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.unmatched.shift()!;
  }

  close(): void {
    this.socket.end();
  }

  private receive(m: ReplyMessage): void {
    const p = m.transaction === null ? undefined : this.pending.get(m.transaction);
    if ("delta" in m) {
      p?.onChunk?.(m);
      return;
    }
    if (!p) {
      this.unmatched.push(m);
      return;
    }
    this.pending.delete(m.transaction!);
    p.resolve(m);
  }
}
