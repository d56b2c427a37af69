// From the daemon's configuration to the HTTP transport's settings: null when no HTTP is
// configured. Everything is checked here, before the model loads, so that a mistake is one line
// and exit code 2: the address resolves, the token file reads, and an address other machines can
// reach has a token unless --http-insecure says otherwise.
import dns from "node:dns/promises";
import fs from "node:fs";
import net from "node:net";
import type { Config } from "../../config.js";
import { optionNames, splitHostPort } from "../../config.js";
import { UserError } from "../../errors.js";
import type { Logger } from "../../log.js";

export interface HttpSettings {
  /** HOST:PORT as configured, for messages. */
  given: string;
  /** The address bound (the host resolved). */
  address: string;
  port: number;
  /** Only this machine can connect. */
  loopback: boolean;
  /** The bearer token clients must send; null: none is asked for. */
  token: string | null;
  maxBodyBytes: number;
  /** Time a client has to send its request headers (slow clients are closed, 408). */
  headerTimeoutMs: number;
  /** Time a client has to send its whole request, body included. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  idleTimeoutMs: number;
}

export const HTTP_DEFAULTS = {
  maxBodyBytes: 1 << 20,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 5_000,
} as const;

/** A token shorter than this is refused: it would be guessed. */
export const MIN_TOKEN_CHARS = 16;

export function isLoopback(address: string): boolean {
  if (net.isIPv4(address)) return address.startsWith("127.");
  const a = address.toLowerCase();
  return a === "::1" || /^::ffff:127\./.test(a);
}

function readToken(file: string, log?: Logger): string {
  const { flag, env } = optionNames("httpTokenFile");
  let text: string;
  try {
    if (!fs.statSync(file).isFile()) throw Object.assign(new Error("not a file"), { code: "not a file" });
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError(`${flag} / ${env}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const token = text.replace(/\r?\n$/, "");
  if (token.length < MIN_TOKEN_CHARS || /\s/.test(token))
    throw new UserError(
      `${flag} / ${env}: ${file} must hold one token of at least ${MIN_TOKEN_CHARS} characters without spaces (e.g. openssl rand -hex 32 > ${file})`,
    );
  if (fs.statSync(file).mode & 0o077) log?.warn(`http: ${file} can be read by other users; chmod 600 it`);
  return token;
}

export async function httpSettingsFromConfig(
  config: Config,
  limits: Partial<Pick<HttpSettings, "maxBodyBytes" | "headerTimeoutMs" | "requestTimeoutMs" | "idleTimeoutMs">> = {},
  log?: Logger,
): Promise<HttpSettings | null> {
  if (config.http === null) {
    if (config.httpTokenFile !== null) log?.warn("http: a token file is configured but no --http address; HTTP stays off");
    return null;
  }
  const { host, port } = splitHostPort(config.http)!; // checked when the configuration was read
  let address: string;
  try {
    address = net.isIP(host) ? host : (await dns.lookup(host)).address;
  } catch (e) {
    throw new UserError(`--http ${config.http}: cannot resolve ${host} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const loopback = isLoopback(address);
  const token = config.httpTokenFile === null ? null : readToken(config.httpTokenFile, log);
  if (!loopback && token === null) {
    if (!config.httpInsecure)
      throw new UserError(
        `--http ${config.http} can be reached from other machines: give a token with --http-token-file (or ALPACA_HTTP_TOKEN_FILE), or allow it without one with --http-insecure`,
      );
    log?.warn(`http: ${config.http} serves anyone who can reach it, without a token (--http-insecure)`);
  }
  return {
    given: config.http,
    address,
    port,
    loopback,
    token,
    maxBodyBytes: limits.maxBodyBytes ?? HTTP_DEFAULTS.maxBodyBytes,
    headerTimeoutMs: limits.headerTimeoutMs ?? HTTP_DEFAULTS.headerTimeoutMs,
    requestTimeoutMs: Math.max(limits.requestTimeoutMs ?? HTTP_DEFAULTS.requestTimeoutMs, limits.headerTimeoutMs ?? 0),
    idleTimeoutMs: limits.idleTimeoutMs ?? HTTP_DEFAULTS.idleTimeoutMs,
  };
}
