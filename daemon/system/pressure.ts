// Memory-pressure watch: while serving, polls MemAvailable and /proc/pressure/memory and says
// whether the scheduler should admit new work. The plan sized everything at start; this is
// for what the plan cannot see: another process (Home Assistant, a backup) taking memory later.
//
// Thresholds (defaults; all options):
//   stop admitting when headroom < minHeadroom (64 MiB) or PSI "some avg10" > maxSomeAvg10 (10 %)
//   admit again when headroom ≥ 2 × minHeadroom and "some avg10" ≤ maxSomeAvg10 / 2
// The gap between the two (hysteresis) keeps admission from flapping at the edge.
// headroom = MemAvailable − residentBytes: MemAvailable counts page cache as reclaimable, and
// the model's mapped weights are page cache, so without the subtraction it would count our
// own weights as free memory, and taking it would evict them.
// PSI stalls are the direct sign of the failure we fear (weights evicted and re-read); kernels
// without PSI (Raspberry Pi OS unless psi=1) leave MemAvailable as the only signal.
import { EventEmitter } from "node:events";
import { readMeminfo, readMemoryPressure } from "./system-memory.js";

const MiB = 2 ** 20;

export interface PressureOptions {
  /** File-system root holding proc/ (tests pass a temp dir). */
  root?: string;
  intervalMs?: number;
  /** Bytes of MemAvailable that are our own mapped weights (the plan's weight bytes). */
  residentBytes?: number;
  minHeadroom?: number;
  maxSomeAvg10?: number;
}

export interface PressureSample {
  memAvailable: number | null;
  headroom: number | null;
  someAvg10: number | null;
}

export interface PressureChange {
  admitting: boolean;
  reason: string;
  sample: PressureSample;
}

export declare interface PressureWatcher {
  on(event: "change", listener: (change: PressureChange) => void): this;
  emit(event: "change", change: PressureChange): boolean;
}

export class PressureWatcher extends EventEmitter {
  private readonly root: string;
  private readonly intervalMs: number;
  private readonly residentBytes: number;
  private readonly minHeadroom: number;
  private readonly maxSomeAvg10: number;
  private timer: NodeJS.Timeout | null = null;
  private admit = true;
  private last: PressureSample = { memAvailable: null, headroom: null, someAvg10: null };

  constructor(options: PressureOptions = {}) {
    super();
    this.root = options.root ?? "/";
    this.intervalMs = options.intervalMs ?? 2000;
    this.residentBytes = options.residentBytes ?? 0;
    this.minHeadroom = options.minHeadroom ?? 64 * MiB;
    this.maxSomeAvg10 = options.maxSomeAvg10 ?? 10;
  }

  /** Whether the scheduler may start new work now. */
  admitting(): boolean {
    return this.admit;
  }

  /** The last reading. */
  lastSample(): PressureSample {
    return this.last;
  }

  start(): this {
    if (this.timer) return this;
    this.poll();
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref(); // watching must never keep the process alive
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reads once and updates admission; emits "change" when it flips. Public for tests and for a check on demand. */
  poll(): PressureSample {
    const mem = readMeminfo(this.root);
    const psi = readMemoryPressure(this.root);
    const sample: PressureSample = {
      memAvailable: mem?.memAvailable ?? null,
      headroom: mem ? mem.memAvailable - this.residentBytes : null,
      someAvg10: psi?.someAvg10 ?? null,
    };
    this.last = sample;
    const reason = this.admit ? this.stopReason(sample) : this.resumeBlocker(sample);
    if (this.admit && reason) this.flip(false, reason, sample);
    else if (!this.admit && !reason) this.flip(true, "memory pressure eased", sample);
    return sample;
  }

  private stopReason(s: PressureSample): string | null {
    if (s.headroom !== null && s.headroom < this.minHeadroom)
      return `headroom ${mib(s.headroom)} below ${mib(this.minHeadroom)}`;
    if (s.someAvg10 !== null && s.someAvg10 > this.maxSomeAvg10)
      return `memory stalls ${s.someAvg10} % of the last 10 s (above ${this.maxSomeAvg10} %)`;
    return null;
  }

  private resumeBlocker(s: PressureSample): string | null {
    if (s.headroom !== null && s.headroom < 2 * this.minHeadroom) return "headroom still low";
    if (s.someAvg10 !== null && s.someAvg10 > this.maxSomeAvg10 / 2) return "memory stalls still high";
    return null;
  }

  private flip(admitting: boolean, reason: string, sample: PressureSample): void {
    this.admit = admitting;
    this.emit("change", { admitting, reason, sample });
  }
}

function mib(n: number): string {
  return `${(n / MiB).toFixed(0)} MiB`;
}
