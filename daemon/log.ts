// The daemon's log: one line per event on stderr (journald adds the time). Prompts and answers
// are never logged at the default level.
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export function createLogger(level: LogLevel = "info", write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const at = (l: LogLevel) => (message: string) => {
    if (RANK[l] < RANK[level]) return;
    // One event, one line: a newline inside a message would split it in the journal.
    write(`${l}: ${message.replace(/[\r\n]+/g, " ")}\n`);
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export function isLogLevel(s: string): s is LogLevel {
  return s in RANK;
}
