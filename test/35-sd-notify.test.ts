// sd_notify through the addon, received on a real Unix datagram socket. Node cannot bind
// datagram Unix sockets, so a few lines of python3 (which node-gyp needs anyway) receive.
import test, { type TestFn } from "ava";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import {
  notifyReady, notifyStatus, notifyStopping, sdNotify, startWatchdog, watchdogIntervalMs,
} from "../daemon/system/sd-notify.js";
import { start, type Owner } from "./helpers/process.js";
import { testNeeding } from "./helpers/shared.js";

const RECEIVER = `
import json, socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + addr[1:] if addr.startswith("@") else addr)
s.settimeout(10)
print("bound", flush=True)
try:
    while True:
        print(json.dumps(s.recv(4096).decode()), flush=True)
except socket.timeout:
    pass
`;

const needPython = () =>
  spawnSync("python3", ["-c", "import socket; socket.AF_UNIX"]).status === 0 ? null : "python3 (to receive datagrams) is missing";

/** A datagram receiver at `address`, stopped with its test; next() resolves with each message in turn. */
async function receiver(owner: Owner, address: string) {
  const p = start(owner, "python3", ["-c", RECEIVER, address]);
  const lines = createInterface({ input: p.child.stdout! })[Symbol.asyncIterator]();
  await p.waitFor(/^bound$/m, { what: "the receiver bound" });
  await lines.next();
  return {
    async next(): Promise<string> {
      const line = await lines.next();
      if (line.done) throw new Error("receiver ended");
      return JSON.parse(line.value) as string;
    },
  };
}

// Serial: the tests set process.env.NOTIFY_SOCKET, which all tests of this file share.
const serial = test.serial as unknown as TestFn;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-notify-"));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
const savedEnv = { ...process.env };
test.afterEach.always(() => {
  for (const k of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

testNeeding(serial, needPython, "READY=1, STATUS and STOPPING=1 arrive at a socket path", async (t) => {
  const address = path.join(tmp, "notify.sock");
  const r = await receiver(t, address);
  process.env.NOTIFY_SOCKET = address;
  t.true(notifyReady());
  t.is(await r.next(), "READY=1");
  t.true(notifyStatus("serving 7B\nline two"));
  t.is(await r.next(), "STATUS=serving 7B line two");
  t.true(notifyStopping());
  t.is(await r.next(), "STOPPING=1");
  t.true(notifyReady("up"));
  t.is(await r.next(), "READY=1\nSTATUS=up");
});

testNeeding(serial, needPython, "an abstract @socket works too", async (t) => {
  const address = `@alpaca-test-${process.pid}`;
  const r = await receiver(t, address);
  process.env.NOTIFY_SOCKET = address;
  t.true(notifyReady());
  t.is(await r.next(), "READY=1");
});

testNeeding(serial, needPython, "the watchdog pings at half WATCHDOG_USEC only while the health check passes", async (t) => {
  const address = path.join(tmp, "watchdog.sock");
  const r = await receiver(t, address);
  process.env.NOTIFY_SOCKET = address;
  process.env.WATCHDOG_USEC = "100000"; // 100 ms → a ping every 50 ms
  t.is(watchdogIntervalMs(), 50);
  let healthy = false;
  let checks = 0;
  const keepAlive = setInterval(() => {}, 1000); // the watchdog's timer is unref'd by design
  const dog = startWatchdog(() => {
    checks++;
    if (checks === 3) healthy = true;
    return healthy;
  });
  t.teardown(() => { dog.stop(); clearInterval(keepAlive); });
  t.is(await r.next(), "WATCHDOG=1");
  t.true(checks >= 3, "no ping before the check passed");
  dog.stop();
  t.true(notifyStatus("after"));
  // a ping already on its way when stop() ran may come first; nothing else may
  for (let m = await r.next(); m !== "STATUS=after"; m = await r.next()) t.is(m, "WATCHDOG=1");
});

test.serial("without NOTIFY_SOCKET everything is a quiet no-op", (t) => {
  delete process.env.NOTIFY_SOCKET;
  process.env.WATCHDOG_USEC = "100000";
  t.false(notifyReady());
  t.false(notifyStatus("x"));
  t.false(notifyStopping());
  t.is(watchdogIntervalMs(), null);
  let called = false;
  startWatchdog(() => (called = true)).stop();
  t.false(called);
});

test.serial("a watchdog meant for another PID is not ours", (t) => {
  t.is(watchdogIntervalMs({ NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "2000000", WATCHDOG_PID: String(process.pid + 1) }), null);
  t.is(watchdogIntervalMs({ NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "2000000", WATCHDOG_PID: String(process.pid) }), 1000);
});

test.serial("a socket nobody listens on fails soft: false, one warning, no throw", (t) => {
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    t.false(sdNotify("READY=1", { NOTIFY_SOCKET: path.join(tmp, "nobody.sock") }));
    t.false(sdNotify("READY=1", { NOTIFY_SOCKET: "relative/path" }));
  } finally {
    process.stderr.write = write;
  }
  t.is(written.length, 1);
  t.regex(written[0], /^alpaca: cannot notify systemd \(sendto .*nobody\.sock: (No such file or directory|Connection refused)\); carrying on\n$/);
});
