// systemd's notification protocol (Type=notify): READY, STATUS, STOPPING and the watchdog.
// Everything here is fail-soft: without $NOTIFY_SOCKET (not under systemd) each call does
// nothing, and a failing send is reported once on stderr, never thrown at the caller, because
// a daemon must not die for want of telling systemd how it is.
import { addon } from "../engine/native.js";

interface SdNotifyBinding {
  sdNotify(socketPath: string, state: string): void;
}

let warned = false;

/** Sends one notification ("READY=1", "STATUS=…"); returns whether it was sent. */
export function sdNotify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return false;
  try {
    addon<SdNotifyBinding>().sdNotify(socketPath, state);
    return true;
  } catch (e) {
    if (!warned) {
      warned = true;
      process.stderr.write(`alpaca: cannot notify systemd (${(e as Error).message}); carrying on\n`);
    }
    return false;
  }
}

/** One line: the protocol is newline-separated assignments. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ").trim();
}

/** The service is up; systemd starts units ordered after it. An optional status goes along. */
export function notifyReady(status?: string): boolean {
  return sdNotify(status ? `READY=1\nSTATUS=${oneLine(status)}` : "READY=1");
}

/** Free text shown by `systemctl status` ("serving 7B, 2 requests running"). */
export function notifyStatus(text: string): boolean {
  return sdNotify(`STATUS=${oneLine(text)}`);
}

/** The service is shutting down (sent before the grace period, so systemd does not think it hung). */
export function notifyStopping(status?: string): boolean {
  return sdNotify(status ? `STOPPING=1\nSTATUS=${oneLine(status)}` : "STOPPING=1");
}

/**
 * Milliseconds between watchdog pings: half of WATCHDOG_USEC, as sd_watchdog_enabled advises;
 * null when there is no watchdog, or when it is meant for another process (WATCHDOG_PID).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env): number | null {
  if (!env.NOTIFY_SOCKET || !env.WATCHDOG_USEC) return null;
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

export interface Watchdog {
  stop(): void;
}

/**
 * Sends WATCHDOG=1 every half WATCHDOG_USEC while `healthCheck` passes (say, "the scheduler's
 * last step ended less than a minute ago"), so that systemd restarts a daemon that is alive
 * but stuck. A check that throws or rejects counts as failing. The timer is unref'd: it never
 * keeps the process alive. Without a watchdog this returns a watchdog that does nothing.
 */
export function startWatchdog(healthCheck: () => boolean | Promise<boolean>, env: NodeJS.ProcessEnv = process.env): Watchdog {
  const interval = watchdogIntervalMs(env);
  if (interval === null) return { stop() {} };
  let stopped = false;
  let checking = false;
  const tick = async () => {
    if (checking) return; // a slow check must not pile up
    checking = true;
    try {
      if ((await healthCheck()) === true && !stopped) sdNotify("WATCHDOG=1", env);
    } catch {
      // a failing check is simply no ping: systemd acts when pings stop
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void tick(), interval);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
