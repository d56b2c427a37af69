// The service unit: `systemd-analyze verify` must print nothing (a warning is a failure: verify
// exits 0 on unknown keys), and `systemd-analyze security` must rate it below SECURITY_THRESHOLD.
// verify resolves ExecStart and the units it orders against, so it runs on the unit as
// install.sh --root lays it out, in a scratch root that also holds the distribution's units.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { run } from "./helpers/process.js";
import { ROOT, testNeeding } from "./helpers/shared.js";
import { needTools, scratchDir } from "./helpers/pi.js";

const UNIT = path.join(ROOT, "systemd", "alpaca.service");
/** "OK" in systemd-analyze's words starts below 4.0 (1.2 when this was written). */
const SECURITY_THRESHOLD = 4.0;
const SYSTEM_UNITS = ["/usr/lib/systemd/system", "/lib/systemd/system"].find((d) => fs.existsSync(path.join(d, "sysinit.target")));
const needAnalyze = () => needTools("systemd-analyze")() ?? (SYSTEM_UNITS ? null : "no systemd unit directory with sysinit.target");

/** A scratch root as install.sh --root leaves it, with a stand-in for the program. */
function scratchRoot(withProgram = true): string {
  const root = scratchDir("alpaca-60-");
  fs.mkdirSync(path.join(root, "etc/systemd/system"), { recursive: true });
  fs.mkdirSync(path.join(root, "usr/lib/systemd"), { recursive: true });
  fs.cpSync(SYSTEM_UNITS!, path.join(root, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
  fs.copyFileSync(UNIT, path.join(root, "etc/systemd/system/alpaca.service"));
  if (withProgram) {
    fs.mkdirSync(path.join(root, "opt/alpaca/bin"), { recursive: true });
    fs.writeFileSync(path.join(root, "opt/alpaca/bin/alpaca"), "#!/bin/sh\n", { mode: 0o755 });
  }
  return root;
}

function verify(root: string) {
  return run("systemd-analyze", ["verify", `--root=${root}`, "alpaca.service"]);
}

testNeeding(test, needAnalyze, "systemd-analyze verify prints nothing for the installed unit", async (t) => {
  const root = scratchRoot();
  const r = await verify(root);
  t.is(r.stderr, "", r.stderr);
  t.is(r.code, 0);
  fs.rmSync(root, { recursive: true, force: true });
});

testNeeding(test, needAnalyze, "verify stays silent with the example configuration (HTTP on 127.0.0.1:11434) in /etc/alpaca", async (t) => {
  const root = scratchRoot();
  fs.mkdirSync(path.join(root, "etc/alpaca"), { recursive: true });
  const example = fs.readFileSync(path.join(ROOT, "systemd", "alpaca.example.json"), "utf8");
  t.is(JSON.parse(example).http, "127.0.0.1:11434");
  fs.writeFileSync(path.join(root, "etc/alpaca/config.json"), example);
  const r = await verify(root);
  t.is(r.stderr, "", r.stderr);
  t.is(r.code, 0);
  fs.rmSync(root, { recursive: true, force: true });
});

testNeeding(test, needAnalyze, "verify would notice a missing program (so its silence means something)", async (t) => {
  const root = scratchRoot(false);
  const r = await verify(root);
  t.regex(r.stderr, /\/opt\/alpaca\/bin\/alpaca/);
  fs.rmSync(root, { recursive: true, force: true });
});

testNeeding(test, needAnalyze, `systemd-analyze security rates the unit below ${SECURITY_THRESHOLD}`, async (t) => {
  const r = await run("systemd-analyze", ["security", "--offline=yes", UNIT]);
  t.is(r.stderr, "", r.stderr);
  const m = /Overall exposure level for alpaca\.service: ([\d.]+) (\w+)/.exec(r.stdout);
  t.truthy(m, r.stdout.slice(-400));
  const score = Number(m![1]);
  t.log(`exposure ${score} ${m![2]}`);
  t.true(score < SECURITY_THRESHOLD, `exposure ${score}`);
});

test("the unit keeps what the daemon needs: notify, W^X off for V8, /proc readable for the plan", (t) => {
  const text = fs.readFileSync(UNIT, "utf8");
  const keys = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) keys.set(m[1], [...(keys.get(m[1]) ?? []), m[2]]);
  }
  const one = (k: string) => keys.get(k)?.at(-1);
  t.is(one("Type"), "notify");
  t.is(one("NotifyAccess"), "main");
  t.truthy(one("WatchdogSec"));
  t.is(one("User"), "alpaca");
  t.is(one("RuntimeDirectory"), "alpaca");
  t.is(one("StateDirectory"), "alpaca");
  t.is(one("ConfigurationDirectory"), "alpaca");
  t.is(one("ExecStart"), "/opt/alpaca/bin/alpaca serve");
  t.is(one("RestrictAddressFamilies"), "AF_UNIX AF_INET AF_INET6");
  t.is(one("CapabilityBoundingSet"), "");
  t.is(one("LimitMEMLOCK"), "infinity");
  t.false(keys.has("MemoryDenyWriteExecute"), "V8 writes machine code: W^X must stay off");
  t.false(keys.has("ProcSubset"), "the memory plan reads /proc/meminfo");
  t.false(keys.has("MemoryMax"), "a default MemoryMax would evict the mapped weights");
  // TimeoutStartSec: a cold 7B (≈3.9 GiB) from a slow SD card at 5 MB/s takes ≈14 minutes.
  t.regex(one("TimeoutStartSec") ?? "", /^1[5-9]min$|^[2-9]\dmin$/);
});
