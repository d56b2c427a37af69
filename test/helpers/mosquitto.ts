// A real Mosquitto for the 7x tests: started on a free loopback port with a generated config
// (optionally a password file, an ACL and persistence), stopped gracefully or killed, restarted on
// the same port. Tests that need it skip loudly when the machine has no mosquitto (fail in CI).
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { run, scaled, spawnTracked } from "./process.js";

const CANDIDATES = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/local/bin/mosquitto"];

export function mosquittoBinary(): string | null {
  const fromPath = (process.env.PATH ?? "").split(":").map((d) => path.join(d, "mosquitto"));
  return [...fromPath, ...CANDIDATES].find((p) => fs.existsSync(p)) ?? null;
}

/** For testNeeding: null when Mosquitto can be started, else why not. */
export const needMosquitto = () =>
  mosquittoBinary() ? null : "mosquitto is not installed (apt-get install -y mosquitto)";

/** For testNeeding: null when mosquitto_rr, mosquitto_pub and mosquitto_sub are on the PATH. */
export const needMosquittoClients = () => {
  const dirs = (process.env.PATH ?? "").split(":");
  const missing = ["mosquitto_rr", "mosquitto_pub", "mosquitto_sub"].filter((c) => !dirs.some((d) => fs.existsSync(path.join(d, c))));
  return missing.length ? `${missing.join(", ")} not installed (apt-get install -y mosquitto-clients)` : null;
};

export interface MosquittoOptions {
  /** user → password; the broker then refuses anonymous clients. */
  users?: Record<string, string>;
  /** ACL file text (Mosquitto's acl_file syntax). */
  acl?: string;
  /** Keep sessions and retained messages across stop()/start() (written on a graceful stop). */
  persistence?: boolean;
  /** A fixed port (default: a free one). */
  port?: number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host: "127.0.0.1", port });
    c.once("connect", () => (c.destroy(), resolve(true)));
    c.once("error", () => resolve(false));
  });
}

export class Mosquitto {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly binary: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get logFile(): string {
    return path.join(this.dir, "mosquitto.log");
  }

  /** What the broker logged so far (connections, refusals). */
  log(): string {
    try {
      return fs.readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  static async start(o: MosquittoOptions = {}): Promise<Mosquitto> {
    const binary = mosquittoBinary();
    if (!binary) throw new Error(needMosquitto()!);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-mosquitto-"));
    const port = o.port ?? (await freePort());
    const lines = [
      `listener ${port} 127.0.0.1`,
      "set_tcp_nodelay true",
      `allow_anonymous ${o.users ? "false" : "true"}`,
      `log_dest file ${path.join(dir, "mosquitto.log")}`,
      "log_type error",
      "log_type warning",
      "log_type notice",
      "log_type information",
      "connection_messages true",
      "max_queued_messages 10000",
      `persistence ${o.persistence ? "true" : "false"}`,
      `persistence_location ${dir}/`,
    ];
    // Started as root, Mosquitto would switch to the mosquitto user and lose access to our files.
    if (process.getuid?.() === 0) lines.push("user root");
    if (o.users) {
      const file = path.join(dir, "passwd");
      fs.writeFileSync(file, "", { mode: 0o600 });
      for (const [user, password] of Object.entries(o.users)) {
        const r = await run("mosquitto_passwd", ["-b", file, user, password]);
        if (r.code !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr}`);
      }
      fs.chmodSync(file, 0o600);
      lines.push(`password_file ${file}`);
    }
    if (o.acl !== undefined) {
      const file = path.join(dir, "acl");
      fs.writeFileSync(file, o.acl, { mode: 0o600 });
      lines.push(`acl_file ${file}`);
    }
    fs.writeFileSync(path.join(dir, "mosquitto.conf"), lines.join("\n") + "\n");
    const broker = new Mosquitto(dir, port, binary);
    await broker.launch();
    return broker;
  }

  private async launch(): Promise<void> {
    const child = spawnTracked(this.binary, ["-c", path.join(this.dir, "mosquitto.conf")]);
    child.stdout?.resume(); // it logs to its file
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const until = Date.now() + scaled(10_000);
    while (!(await canConnect(this.port))) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${stderr}${this.log()}`);
      if (Date.now() > until) {
        child.kill("SIGKILL");
        throw new Error(`mosquitto did not listen on ${this.port}: ${stderr}${this.log()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM: clients are disconnected, sessions written to disk when persistence is on. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child!.kill("SIGTERM");
    await this.exited;
  }

  /** SIGKILL: the broker vanishes without a word, as on a power cut. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill("SIGKILL");
    await this.exited;
  }

  /** Starts again on the same port with the same config. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async start(): Promise<void> {
    if (!this.running) await this.launch();
  }

  /** Stops and removes the broker's directory. */
  async dispose(): Promise<void> {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
