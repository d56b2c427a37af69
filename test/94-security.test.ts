// What a client cannot do to the daemon: every input has a size limit answered with one clear
// bad_request; the socket is 0660 in the daemon's group; prompts and answers never reach the log.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "../daemon/log.js";
import { LIMITS } from "../daemon/serving/protocol.js";
import { groupId } from "../daemon/transports/socket.js";
import { STORIES, startDaemon, tempSocketPath } from "./helpers/daemon.js";
import { alpaca } from "./helpers/process.js";
import { needShared, ROOT, testNeeding } from "./helpers/shared.js";

const many = (n: number, s: string) => Array.from({ length: n }, () => s);

const overLimit: [string, Record<string, unknown>, RegExp][] = [
  ["prompt", { prompt: "a".repeat(LIMITS.maxPromptChars + 1) }, /^prompt is longer than 262144 characters$/],
  ["instruction + input", { instruction: "a".repeat(LIMITS.maxPromptChars / 2 + 1), input: "b".repeat(LIMITS.maxPromptChars / 2) }, /^instruction and input hold more than/],
  ["max_tokens", { prompt: "x", max_tokens: 129 }, /^max_tokens must be from 1 to 128, got 129$/],
  ["stop list", { prompt: "x", stop: many(LIMITS.maxStopStrings + 1, "s") }, /^stop has more than 16 strings$/],
  ["stop string", { prompt: "x", stop: ["s".repeat(LIMITS.maxStopChars + 1)] }, /^stop\[0\] is longer than 128 characters$/],
  ["messages", { messages: many(LIMITS.maxMessages + 1, "x").map((content) => ({ role: "user", content })) }, /^messages has more than 256 entries$/],
  ["message total", { messages: many(2, "m".repeat(LIMITS.maxPromptChars / 2 + 1)).map((content) => ({ role: "user", content })) }, /^messages hold more than/],
  ["role", { messages: [{ role: "r".repeat(LIMITS.maxRoleChars + 1), content: "x" }] }, /^role is longer than 32 characters$/],
  ["timeout", { prompt: "x", timeout: 1e9 }, /^timeout must be from/],
];

testNeeding(test, needShared, "every size limit gives one bad_request naming it, and the connection goes on", async (t) => {
  const d = await startDaemon({ nCtx: 128 });
  try {
    const c = await d.connect();
    for (const [what, body, message] of overLimit) {
      const r = await c.request({ op: "generate", ...body });
      t.is(r.status, "error", what);
      if (r.status === "error") {
        t.is(r.error.code, "bad_request", what);
        t.regex(r.error.message, message, what);
      }
    }
    // A transaction id over the limit cannot be echoed: the answer has transaction null.
    c.writeRaw(JSON.stringify({ op: "generate", prompt: "x", transaction: "t".repeat(LIMITS.maxTransactionChars + 1) }) + "\n");
    t.like(await c.nextUnmatched(), { status: "error", transaction: null, error: { code: "bad_request", message: "transaction is longer than 128 characters" } });
    c.writeRaw(Buffer.concat([Buffer.alloc(LIMITS.maxLineBytes + 10, 0x20), Buffer.from("x\n")]));
    const tooLong = await c.nextUnmatched();
    t.like(tooLong, { status: "error", transaction: null, error: { code: "bad_request" } });
    t.regex(tooLong.status === "error" ? tooLong.error.message : "", /longer than 1048576 bytes; it was discarded/);
    t.like(await c.request({ op: "generate", prompt: "Once", max_tokens: 2 }), { status: "ok" });
    c.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "the socket is 0660 and belongs to the daemon's group; its new directory is 0750", async (t) => {
  const d = await startDaemon();
  try {
    const st = fs.statSync(d.socketPath);
    t.is(st.mode & 0o777, 0o660);
    t.is(st.gid, process.getgid!());
    const nested = path.join(path.dirname(d.socketPath), "run", "alpaca.sock");
    const other = await startDaemon({ socketPath: nested });
    t.is(fs.statSync(path.dirname(nested)).mode & 0o777, 0o750);
    await other.stop();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "socket mode and group are honoured: 0600 alone, 0666 with a traversable directory, another group", async (t) => {
  const owner = await startDaemon({ socketMode: 0o600 });
  try {
    t.is(fs.statSync(owner.socketPath).mode & 0o777, 0o600);
  } finally {
    await owner.stop();
  }
  const nested = path.join(path.dirname(tempSocketPath()), "open", "alpaca.sock");
  const open = await startDaemon({ socketPath: nested, socketMode: 0o666 });
  try {
    t.is(fs.statSync(nested).mode & 0o777, 0o666);
    t.is(fs.statSync(path.dirname(nested)).mode & 0o777, 0o755, "others can reach a socket they may use");
  } finally {
    await open.stop();
  }
  // A group the daemon's user may hand files to: any group as root, else its own.
  const gid = process.getuid!() === 0 ? groupId("daemon") ?? 1 : process.getgid!();
  const grouped = await startDaemon({ socketGid: gid });
  try {
    t.is(fs.statSync(grouped.socketPath).gid, gid);
    t.is(fs.statSync(grouped.socketPath).mode & 0o777, 0o660);
  } finally {
    await grouped.stop();
  }
  t.is(groupId("root"), 0);
  t.is(groupId("no-such-group-here"), null);
});

testNeeding(test, needShared, "serve: a socket group that does not exist or a bad mode is one line and exit code 2", async (t) => {
  const serve = (...args: string[]) => alpaca(["serve", "-m", STORIES(), "--socket", tempSocketPath(), ...args], { timeoutMs: 20_000 });
  const group = await serve("--socket-group", "no-such-group-here");
  t.is(group.code, 2, group.stderr);
  t.is(group.stderr, "alpaca: --socket-group / ALPACA_SOCKET_GROUP: no group named \"no-such-group-here\" in /etc/group\n");
  const mode = await serve("--socket-mode", "rw-rw----");
  t.is(mode.code, 2);
  t.regex(mode.stderr, /^alpaca: --socket-mode must be octal permission bits such as 0660, got "rw-rw----"\n$/);
});

testNeeding(test, needShared, "prompts and answers are not logged, not even at debug", async (t) => {
  const lines: string[] = [];
  const record = (level: string) => (m: string) => void lines.push(`${level}: ${m}`);
  const log: Logger = { error: record("error"), warn: record("warn"), info: record("info"), debug: record("debug") } as Logger;
  const d = await startDaemon({ log });
  try {
    const c = await d.connect();
    const secret = "Zanzibar-7731 once upon a time";
    const r = await c.request({ op: "generate", prompt: secret, max_tokens: 12, temperature: 0 });
    t.is(r.status, "ok");
    const answer = r.status === "ok" ? (r.data as { text: string }).text : "";
    await c.request({ op: "generate", prompt: secret, max_tokens: "x" });
    c.close();
    await d.stop();
    const all = lines.join("\n");
    t.true(lines.some((l) => l.startsWith("debug:")), "the debug level was on");
    t.false(all.includes("Zanzibar"), all);
    t.false(answer.trim() !== "" && all.includes(answer.trim()), all);
  } finally {
    await d.stop();
  }
});

test("the example Mosquitto ACL gives each user only its own topics", (t) => {
  const acl = fs.readFileSync(path.join(ROOT, "docs", "examples", "mosquitto.acl"), "utf8");
  const rules = acl.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  t.false(rules.some((r) => /^topic (readwrite |write |read )?#$/.test(r)), "no user may use every topic");
  t.false(rules.some((r) => /^pattern/.test(r) && r.endsWith(" #")));
  t.true(rules.includes("user alpaca"));
  t.true(rules.includes("user homeassistant"));
});
