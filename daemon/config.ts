// The daemon's configuration: one table of options, each settable in the config file, by an
// ALPACA_* environment variable and by a flag. Precedence: flag > environment > file > default,
// so a systemd drop-in (Environment=) or a one-off flag overrides the file without editing it.
// Every mistake is one line naming where it came from, thrown as a UserError (exit code 2).
import fs from "node:fs";
import os from "node:os";
import type { Argv, Options } from "yargs";
import { UserError } from "./errors.js";

export const DEFAULT_CONFIG_FILE = "/etc/alpaca/config.json";

export type KvTypeChoice = "auto" | "f16" | "q8_0";
export type LogLevel = "error" | "warn" | "info" | "debug";

export interface Config {
  /** The file that was read, or null when none was (the default file may be absent). */
  configFile: string | null;
  model: string | null;
  socket: string;
  /** Permission bits of the socket, as octal text ("0660"). */
  socketMode: string;
  /** Group name or gid given the socket; null = the daemon's own group. */
  socketGroup: string | null;
  /** Bytes; null = no limit beyond what the machine and cgroup allow. */
  memoryLimit: number | null;
  threads: number;
  /** Context length per sequence; null = the memory plan chooses. */
  ctx: number | null;
  /** Parallel sequences; null = the memory plan chooses. */
  parallel: number | null;
  kvType: KvTypeChoice;
  queueSize: number;
  /** Seconds a stopping daemon waits for running requests before cancelling them. */
  grace: number;
  logLevel: LogLevel;
  /** Where shared prompt prefixes are kept across restarts; null = <state directory>/prompt-cache. */
  promptCacheDir: string | null;
  /** Bytes of prompt-cache files at most; 0 turns the cache off. */
  promptCacheSize: number;
  /** Prompt-cache files at most (the longest recently used prefixes). */
  promptCacheFiles: number;
  /** Speculative decoding by prompt lookup (a request may still say speculate: false). */
  speculation: boolean;
  mqttUrl: string | null;
  mqttBaseTopic: string;
  mqttUsername: string | null;
  /** A file holding the broker password (never the password itself: config files get shared). */
  mqttPasswordFile: string | null;
  /** null = <base topic>_<hostname>, stable so the broker keeps the session across restarts. */
  mqttClientId: string | null;
  mqttProtocol: "5" | "3.1.1";
  mqttKeepalive: number;
  /** Seconds the broker keeps queued requests while the daemon is away; 0 = a clean session. */
  mqttSessionExpiry: number;
  /** MQTT 5 shared-subscription group for generate requests, so several daemons share the load. */
  mqttShareGroup: string | null;
  /** Topic filters a request's MQTT 5 response topic must match; null = <base topic>/reply/#. */
  mqttResponseTopics: string[] | null;
  mqttCa: string | null;
  mqttCert: string | null;
  mqttKey: string | null;
  mqttHomeAssistant: boolean;
  mqttDiscoveryPrefix: string;
  /** The device's name in Home Assistant; null = the base topic. */
  mqttDeviceName: string | null;
  /** Seconds between bridge/stats messages; 0 = only when busy/idle changes. */
  mqttStatsInterval: number;
  /** HOST:PORT of the Ollama- and OpenAI-compatible HTTP API; null = no HTTP. */
  http: string | null;
  /** A file holding the bearer token HTTP clients must send (never the token itself). */
  httpTokenFile: string | null;
  /** Serve HTTP beyond loopback without a token (a trusted network only). */
  httpInsecure: boolean;
}

type ConfigKey = Exclude<keyof Config, "configFile">;

type Kind =
  | { type: "string"; check?: (v: string) => string | null }
  | { type: "size"; zeroMeansOff?: boolean }
  | { type: "int"; min: number; max: number }
  | { type: "seconds" }
  | { type: "bool" }
  | { type: "file" }
  | { type: "list" }
  | { type: "enum"; choices: readonly string[] };

interface OptionSpec {
  flag: string;
  env: string;
  alias?: string;
  kind: Kind;
  default: Config[ConfigKey];
  describe: string;
}

// ── the options ──────────────────────────────────────────────────────────────────────────────

const OPTIONS: Record<ConfigKey, OptionSpec> = {
  model: {
    flag: "model", env: "ALPACA_MODEL", alias: "m", kind: { type: "string" }, default: null,
    describe: "GGUF model file",
  },
  socket: {
    flag: "socket", env: "ALPACA_SOCKET", kind: { type: "string" }, default: "/run/alpaca/alpaca.sock",
    describe: "Unix socket path",
  },
  socketMode: {
    flag: "socket-mode", env: "ALPACA_SOCKET_MODE", kind: { type: "string", check: checkFileMode }, default: "0660",
    describe: "permission bits of the socket, in octal (0660: the daemon's user and group may connect)",
  },
  socketGroup: {
    flag: "socket-group", env: "ALPACA_SOCKET_GROUP", kind: { type: "string", check: checkGroupName }, default: null,
    describe: "group given the socket, by name or gid: its members may connect (default: the daemon's own group)",
  },
  memoryLimit: {
    flag: "memory-limit", env: "ALPACA_MEMORY_LIMIT", kind: { type: "size" }, default: null,
    describe: "most memory to plan for, e.g. 3.5G (K/M/G/T are powers of 1024; default: what the machine and cgroup allow)",
  },
  threads: {
    flag: "threads", env: "ALPACA_THREADS", alias: "t", kind: { type: "int", min: 1, max: 256 },
    default: os.availableParallelism(), describe: "worker threads (default: one per core)",
  },
  ctx: {
    flag: "ctx", env: "ALPACA_CTX", alias: "c", kind: { type: "int", min: 1, max: 1 << 20 }, default: null,
    describe: "context length per sequence (default: the memory plan chooses, up to 2048)",
  },
  parallel: {
    flag: "parallel", env: "ALPACA_PARALLEL", kind: { type: "int", min: 1, max: 256 }, default: null,
    describe: "sequences served at once (default: the memory plan chooses, up to 4)",
  },
  kvType: {
    flag: "kv-type", env: "ALPACA_KV_TYPE", kind: { type: "enum", choices: ["auto", "f16", "q8_0"] }, default: "auto",
    describe: "KV cache type: auto (f16, q8_0 when that is what fits), f16 or q8_0",
  },
  queueSize: {
    flag: "queue-size", env: "ALPACA_QUEUE_SIZE", kind: { type: "int", min: 1, max: 1_000_000 }, default: 32,
    describe: "requests waiting beyond the running ones; more are refused as busy",
  },
  grace: {
    flag: "grace", env: "ALPACA_GRACE", kind: { type: "seconds" }, default: 10,
    describe: "seconds a stopping daemon lets running requests finish (e.g. 10, 10s, 500ms, 1m)",
  },
  logLevel: {
    flag: "log-level", env: "ALPACA_LOG_LEVEL", kind: { type: "enum", choices: ["error", "warn", "info", "debug"] },
    default: "info", describe: "log level: error, warn, info or debug",
  },
  promptCacheDir: {
    flag: "prompt-cache-dir", env: "ALPACA_PROMPT_CACHE_DIR", kind: { type: "string" }, default: null,
    describe: "directory of the prompt cache (default: prompt-cache in the state directory)",
  },
  promptCacheSize: {
    flag: "prompt-cache-size", env: "ALPACA_PROMPT_CACHE_SIZE", kind: { type: "size", zeroMeansOff: true }, default: 2 ** 30,
    describe: "disk space for cached prompt prefixes, e.g. 1G (0: no prompt cache)",
  },
  promptCacheFiles: {
    flag: "prompt-cache-files", env: "ALPACA_PROMPT_CACHE_FILES", kind: { type: "int", min: 1, max: 1000 }, default: 8,
    describe: "cached prompt prefixes kept at most",
  },
  speculation: {
    flag: "speculation", env: "ALPACA_SPECULATION", kind: { type: "bool" }, default: true,
    describe: "check tokens proposed from the prompt and the answer so far in the same engine call (true or false; the answers are the same)",
  },
  mqttUrl: {
    flag: "mqtt-url", env: "ALPACA_MQTT_URL", kind: { type: "string", check: checkMqttUrl }, default: null,
    describe: "MQTT broker, e.g. mqtt://localhost:1883 (default: no MQTT)",
  },
  mqttBaseTopic: {
    flag: "mqtt-base-topic", env: "ALPACA_MQTT_BASE_TOPIC", kind: { type: "string", check: checkTopic },
    default: "alpaca", describe: "first level of every MQTT topic",
  },
  mqttUsername: {
    flag: "mqtt-username", env: "ALPACA_MQTT_USERNAME", kind: { type: "string" }, default: null,
    describe: "MQTT user name",
  },
  mqttPasswordFile: {
    flag: "mqtt-password-file", env: "ALPACA_MQTT_PASSWORD_FILE", kind: { type: "file" }, default: null,
    describe: "file holding the MQTT password (read at start; a trailing newline is ignored)",
  },
  mqttClientId: {
    flag: "mqtt-client-id", env: "ALPACA_MQTT_CLIENT_ID", kind: { type: "string", check: checkClientId }, default: null,
    describe: "MQTT client id (default: <base topic>_<hostname>, stable across restarts so queued prompts survive)",
  },
  mqttProtocol: {
    flag: "mqtt-protocol", env: "ALPACA_MQTT_PROTOCOL", kind: { type: "enum", choices: ["5", "3.1.1"] }, default: "5",
    describe: "MQTT protocol version: 5 or 3.1.1",
  },
  mqttKeepalive: {
    flag: "mqtt-keepalive", env: "ALPACA_MQTT_KEEPALIVE", kind: { type: "int", min: 0, max: 65535 }, default: 30,
    describe: "seconds between MQTT keepalive pings",
  },
  mqttSessionExpiry: {
    flag: "mqtt-session-expiry", env: "ALPACA_MQTT_SESSION_EXPIRY", kind: { type: "int", min: 0, max: 0xffffffff }, default: 86400,
    describe: "seconds the broker keeps prompts for a stopped daemon (0: a clean session)",
  },
  mqttShareGroup: {
    flag: "mqtt-share-group", env: "ALPACA_MQTT_SHARE_GROUP", kind: { type: "string", check: checkTopicLevel }, default: null,
    describe: "MQTT 5 shared-subscription group: daemons in one group share generate requests (default: not shared)",
  },
  mqttResponseTopics: {
    flag: "mqtt-response-topics", env: "ALPACA_MQTT_RESPONSE_TOPICS", kind: { type: "list" }, default: null,
    describe: "MQTT 5 response topics a request may name, as topic filters separated by commas (default: <base topic>/reply/#)",
  },
  mqttCa: {
    flag: "mqtt-ca", env: "ALPACA_MQTT_CA", kind: { type: "file" }, default: null,
    describe: "PEM file of the CA that signed the broker's certificate (mqtts://)",
  },
  mqttCert: {
    flag: "mqtt-cert", env: "ALPACA_MQTT_CERT", kind: { type: "file" }, default: null,
    describe: "PEM client certificate (mqtts://)",
  },
  mqttKey: {
    flag: "mqtt-key", env: "ALPACA_MQTT_KEY", kind: { type: "file" }, default: null,
    describe: "PEM client key (mqtts://)",
  },
  mqttHomeAssistant: {
    flag: "mqtt-home-assistant", env: "ALPACA_MQTT_HOME_ASSISTANT", kind: { type: "bool" }, default: true,
    describe: "publish Home Assistant discovery (true or false)",
  },
  mqttDiscoveryPrefix: {
    flag: "mqtt-discovery-prefix", env: "ALPACA_MQTT_DISCOVERY_PREFIX", kind: { type: "string", check: checkTopic },
    default: "homeassistant", describe: "Home Assistant discovery prefix",
  },
  mqttDeviceName: {
    flag: "mqtt-device-name", env: "ALPACA_MQTT_DEVICE_NAME", kind: { type: "string" }, default: null,
    describe: "the device's name in Home Assistant (default: the base topic)",
  },
  mqttStatsInterval: {
    flag: "mqtt-stats-interval", env: "ALPACA_MQTT_STATS_INTERVAL", kind: { type: "int", min: 0, max: 86400 }, default: 30,
    describe: "seconds between bridge/stats messages (0: only when busy/idle changes)",
  },
  http: {
    flag: "http", env: "ALPACA_HTTP", kind: { type: "string", check: checkHostPort }, default: null,
    describe: "serve the Ollama and OpenAI HTTP APIs on HOST:PORT, e.g. 127.0.0.1:11434 (default: no HTTP)",
  },
  httpTokenFile: {
    flag: "http-token-file", env: "ALPACA_HTTP_TOKEN_FILE", kind: { type: "file" }, default: null,
    describe: "file holding the bearer token HTTP clients must send; required to listen beyond loopback",
  },
  httpInsecure: {
    flag: "http-insecure", env: "ALPACA_HTTP_INSECURE", kind: { type: "bool" }, default: false,
    describe: "listen beyond loopback without a token (anyone who reaches the port may use the model)",
  },
};

export const CONFIG_KEYS = Object.keys(OPTIONS) as ConfigKey[];

function checkMqttUrl(v: string): string | null {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return "is not a URL (e.g. mqtt://localhost:1883)";
  }
  return ["mqtt:", "mqtts:"].includes(url.protocol) ? null : "must use mqtt: or mqtts:";
}

/** "HOST:PORT", "[IPv6]:PORT"; port 0 picks a free one (tests). */
export function splitHostPort(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(v);
  if (!m) return null;
  const port = Number(m[3]);
  return port <= 65535 ? { host: m[1] ?? m[2], port } : null;
}

function checkHostPort(v: string): string | null {
  return splitHostPort(v) ? null : "must be HOST:PORT, e.g. 127.0.0.1:11434, 0.0.0.0:11434 or [::1]:11434";
}

function checkFileMode(v: string): string | null {
  return /^0?[0-7]{3}$/.test(v) ? null : "must be octal permission bits such as 0660";
}

function checkGroupName(v: string): string | null {
  return /^(\d+|[a-z_][a-z0-9_.-]*\$?)$/i.test(v) ? null : "must be a group name or a numeric gid";
}

function checkTopicLevel(v: string): string | null {
  return v === "" || /[/+#\0]/.test(v) ? "must be one topic level, without /, + or #" : null;
}

function checkClientId(v: string): string | null {
  return v === "" || Buffer.byteLength(v) > 256 ? "must be 1 to 256 bytes" : null;
}

function checkTopic(v: string): string | null {
  if (v === "" || v.startsWith("/") || v.endsWith("/")) return "must be non-empty without a leading or trailing /";
  if (/[+#\0]/.test(v)) return "must not contain the wildcards + or #";
  return null;
}

// ── values ───────────────────────────────────────────────────────────────────────────────────

const SIZE_UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** "3.5G" → bytes. K/M/G/T are powers of 1024 (as in systemd's MemoryMax=); "B"/"iB" may follow. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) return null;
  const unit = m[2].toUpperCase();
  if (unit === "" && /[.]/.test(m[1])) return null; // a fraction of a byte is a typo
  return Math.floor(Number(m[1]) * SIZE_UNITS[unit]);
}

/** "10", "10s", "500ms", "1m" → seconds. */
export function parseSeconds(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  if (!m) return null;
  const scale = m[2] === "ms" ? 0.001 : m[2] === "m" ? 60 : 1;
  return Number(m[1]) * scale;
}

/**
 * Turns one raw value into the option's type. Flags and the environment give strings; the
 * file gives JSON values, which must already have the right type (a number where a number is
 * meant), except that sizes and durations may be written either way.
 */
function convert(spec: OptionSpec, raw: unknown, fromFile: boolean): { value: Config[ConfigKey] } | { error: string } {
  const kind = spec.kind;
  const shown = JSON.stringify(raw);
  switch (kind.type) {
    case "string": {
      if (typeof raw !== "string") return { error: `must be a string, got ${shown}` };
      const problem = kind.check?.(raw);
      return problem ? { error: `${problem}, got ${shown}` } : { value: raw };
    }
    case "bool": {
      if (typeof raw === "boolean") return { value: raw };
      if (fromFile || typeof raw !== "string") return { error: `must be true or false, got ${shown}` };
      const t = raw.trim().toLowerCase();
      if (["true", "yes", "on", "1"].includes(t)) return { value: true };
      if (["false", "no", "off", "0"].includes(t)) return { value: false };
      return { error: `must be true or false, got ${shown}` };
    }
    case "file": {
      // Only the path here: the file is read by the command that needs it (serve), which may
      // run as another user than `alpaca plan` does.
      if (typeof raw !== "string" || raw.trim() === "") return { error: `must be a file path, got ${shown}` };
      return { value: raw };
    }
    case "list": {
      // A flag or variable separates entries with commas; the file may give an array (and [] for none).
      if (Array.isArray(raw) && raw.every((x) => typeof x === "string" && x.trim() !== "")) return { value: raw.map((x: string) => x.trim()) };
      if (typeof raw !== "string") return { error: `must be a list of strings, got ${shown}` };
      const list = raw.split(",").map((x) => x.trim()).filter((x) => x !== "");
      return list.length ? { value: list } : { error: `must name at least one entry, got ${shown}` };
    }
    case "enum": {
      if (typeof raw !== "string" || !kind.choices.includes(raw))
        return { error: `must be one of ${kind.choices.join(", ")}, got ${shown}` };
      return { value: raw };
    }
    case "size": {
      const bytes = typeof raw === "number" && Number.isInteger(raw) && raw >= 0 ? raw
        : typeof raw === "string" ? parseSize(raw) : null;
      if (bytes === null || (bytes === 0 && !kind.zeroMeansOff) || bytes < 0)
        return { error: `${shown} is not a size (bytes, or a number with K, M, G or T, e.g. 3.5G)` };
      return { value: bytes };
    }
    case "seconds": {
      const s = typeof raw === "number" && raw >= 0 ? raw : typeof raw === "string" ? parseSeconds(raw) : null;
      if (s === null || !Number.isFinite(s)) return { error: `${shown} is not a duration (seconds, or e.g. 10s, 500ms, 1m)` };
      return { value: s };
    }
    case "int": {
      if (fromFile && typeof raw !== "number") return { error: `must be a number, got ${shown}` };
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n) || n < kind.min || n > kind.max)
        return { error: `must be an integer from ${kind.min} to ${kind.max}, got ${shown}` };
      return { value: n };
    }
  }
}

// ── sources ──────────────────────────────────────────────────────────────────────────────────

/** Keys beginning with "//" are comments, so that a JSON config file can explain itself. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError(`config ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UserError(`config ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new UserError(`config ${file}: must be a JSON object of options`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (key.startsWith("//")) continue;
    if (!(key in OPTIONS)) {
      throw new UserError(`config ${file}: unknown key "${key}" (known: ${CONFIG_KEYS.join(", ")})`);
    }
    out[key] = value;
  }
  return out;
}

/**
 * The configuration from parsed flags (a yargs argv carrying the options of `configOptions`),
 * the environment and the config file (--config, ALPACA_CONFIG, else /etc/alpaca/config.json
 * when it exists). An empty environment variable counts as unset.
 */
export function loadConfig(
  argv: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  defaultFile: string = DEFAULT_CONFIG_FILE,
): Config {
  const given = (v: unknown): v is string | number => v !== undefined && v !== null && v !== "";
  const explicitFile = given(argv.config) ? String(argv.config) : given(env.ALPACA_CONFIG) ? env.ALPACA_CONFIG : null;
  const file = explicitFile ?? (fs.existsSync(defaultFile) ? defaultFile : null);
  const fromFile = file ? readConfigFile(file) : {};

  const config = { configFile: file } as Config;
  for (const key of CONFIG_KEYS) {
    const spec = OPTIONS[key];
    const flagValue = argv[spec.flag];
    let raw: unknown, where: string, isFile = false;
    // A bare boolean flag (--http-insecure) says "true".
    if (spec.kind.type === "bool" && flagValue === "") [raw, where] = ["true", `--${spec.flag}`];
    else if (given(flagValue)) [raw, where] = [flagValue, `--${spec.flag}`];
    else if (given(env[spec.env])) [raw, where] = [env[spec.env], spec.env];
    else if (key in fromFile && fromFile[key] !== null) [raw, where, isFile] = [fromFile[key], `config ${file}: "${key}"`, true];
    else {
      (config as unknown as Record<string, unknown>)[key] = spec.default;
      continue;
    }
    const result = convert(spec, raw, isFile);
    if ("error" in result) throw new UserError(`${where} ${result.error}`);
    (config as unknown as Record<string, unknown>)[key] = result.value;
  }
  return config;
}

// ── yargs ────────────────────────────────────────────────────────────────────────────────────

/**
 * yargs definitions of every option, by flag name. They carry no yargs defaults (those would
 * hide the environment and the file) and are strings, so that loadConfig sees what was typed.
 */
export const configOptions: Record<string, Options> = {
  config: {
    type: "string", requiresArg: true,
    describe: `config file (env ALPACA_CONFIG; default ${DEFAULT_CONFIG_FILE} when it exists)`,
  },
};
for (const key of CONFIG_KEYS) {
  const spec = OPTIONS[key];
  const shownDefault = spec.default === null ? "" : `; default ${String(spec.default)}`;
  configOptions[spec.flag] = {
    type: "string",
    requiresArg: spec.kind.type !== "bool",
    ...(spec.alias ? { alias: spec.alias } : {}),
    describe: `${spec.describe} (env ${spec.env}${spec.describe.includes("default") ? "" : shownDefault})`,
  };
}

/** Attaches the config options (all, or the given config keys plus --config) to a command. */
export function withConfigOptions<T>(y: Argv<T>, keys: readonly ConfigKey[] = CONFIG_KEYS): Argv<T> {
  let out = y.option("config", configOptions.config);
  for (const key of keys) out = out.option(OPTIONS[key].flag, configOptions[OPTIONS[key].flag]);
  return out;
}

/** The flag and environment variable of a key, for messages and the documentation. */
export function optionNames(key: ConfigKey): { flag: string; env: string } {
  return { flag: `--${OPTIONS[key].flag}`, env: OPTIONS[key].env };
}
