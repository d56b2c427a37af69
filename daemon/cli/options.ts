// Options and checks shared by several commands.
import os from "node:os";

export const threadsOption = {
  type: "number" as const,
  alias: "t",
  describe: `worker threads (default: ${os.availableParallelism()}, one per core)`,
};

export function nonNegativeInt(name: string, v: number, min = 0): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${v}`);
}

export function defaultThreads(t: number | undefined): number {
  if (t === undefined) return os.availableParallelism();
  nonNegativeInt("--threads", t, 1);
  return t;
}
