// Faults around the daemon: the model file truncated while mapped (requests get an error, the
// daemon lives on), replaced by a rename (the daemon keeps serving the file it mapped), the SIGBUS
// guard against a real fault, the disk filling up during `alpaca pull`, and the daemon killed with
// SIGKILL mid-generation while MQTT requests wait for it.
import test from "ava";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { pullModel } from "../models/pull.js";
import { PendingJournal } from "../daemon/transports/mqtt/journal.js";
import { startDaemon } from "./helpers/daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { connectClient, publish, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { run, scaled, start, type Owner, type TestProcess } from "./helpers/process.js";
import { needShared, ROOT, sharedModel, testNeeding } from "./helpers/shared.js";

function copyOfModel(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-faults-"));
  const file = path.join(dir, "model.gguf");
  fs.copyFileSync(sharedModel("stories260K-f32.gguf"), file);
  return file;
}

const generate = { op: "generate", prompt: "Once upon a time", max_tokens: 8, temperature: 0 };

testNeeding(test, needShared, "a model file truncated while mapped: each request gets an error, the daemon keeps answering", async (t) => {
  const modelPath = copyOfModel();
  const d = await startDaemon({ modelPath });
  try {
    const client = await d.connect();
    t.like(await client.request(generate), { status: "ok" });
    t.like(d.server.model.fileStatus(), { ok: true, truncated: false, replaced: false, damaged: false });

    fs.truncateSync(modelPath, 4096);
    t.like(d.server.model.fileStatus(), { ok: false, truncated: true, size: 4096 });
    for (let i = 0; i < 3; i++) {
      const r = await client.request(generate);
      t.is(r.status, "error");
      if (r.status === "error") {
        t.is(r.error.code, "internal");
        t.regex(r.error.message, /model\.gguf: the model file was truncated to 4096 bytes while it was mapped; restart the daemon/);
        t.notRegex(r.error.message, /\n\s+at /); // no stack trace
      }
    }
    t.like(await client.request({ op: "status" }), { status: "ok" });
    client.close();
  } finally {
    await d.stop();
  }
});

testNeeding(test, needShared, "a model file replaced by a rename: the daemon keeps serving the file it mapped", async (t) => {
  const modelPath = copyOfModel();
  const d = await startDaemon({ modelPath });
  try {
    const client = await d.connect();
    const before = await client.request(generate);
    const other = `${modelPath}.new`;
    fs.writeFileSync(other, "not a model");
    fs.renameSync(other, modelPath);
    t.like(d.server.model.fileStatus(), { ok: true, replaced: true, truncated: false });
    const after = await client.request(generate);
    t.is(after.status, "ok");
    t.deepEqual(after.status === "ok" && (after.data as { text: string }).text, before.status === "ok" && (before.data as { text: string }).text);
    client.close();
  } finally {
    await d.stop();
  }
});

test("mapping_guard turns a SIGBUS on a truncated mapping into zeros and a damaged flag", async (t) => {
  const exe = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-guard-")), "mapping_guard_check");
  const native = path.join(ROOT, "native");
  const build = await run("g++", ["-std=c++17", "-O1", "-o", exe, path.join(native, "tools", "mapping_guard_check.cc"),
    path.join(native, "gguf", "mapped_file.cc"), path.join(native, "gguf", "mapping_guard.cc")]);
  t.is(build.code, 0, build.stderr);
  const file = path.join(path.dirname(exe), "data.bin");
  fs.writeFileSync(file, Buffer.alloc(64 * 1024, 1));
  const r = await run(exe, [file]);
  t.is(r.signal, null, "killed by a signal");
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^damaged=1 truncated=1 sum=4096 status=the model file shrank while it was mapped/);
});

/** A 1 MiB tmpfs (root only), else /dev/full behind the part file: either way writes get ENOSPC. */
function fullDisk(): { dir: string; real: boolean; dispose: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-full-"));
  if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).status === 0)
    return { dir, real: true, dispose: () => spawnSync("umount", [dir]) };
  fs.symlinkSync("/dev/full", path.join(dir, "model.gguf.part"));
  return { dir, real: false, dispose: () => {} };
}

test("alpaca pull on a full disk: one clear error, the part kept to resume, no crash", async (t) => {
  const body = Buffer.alloc(3 << 20, 7);
  // No Content-Length: the free-space check cannot see it coming; the write must.
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const disk = fullDisk();
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.gguf`;
    const e = await t.throwsAsync(pullModel(url, { dir: disk.dir, retries: 0, backoffMs: 1 }));
    t.is(e!.name, "UserError");
    t.regex(e!.message, /^disk full while writing .*model\.gguf\.part \(.* kept: free some space and pull again to resume\)$/);
    t.false(fs.existsSync(path.join(disk.dir, "model.gguf")), "nothing half-written under the final name");
    if (disk.real) {
      const kept = fs.statSync(path.join(disk.dir, "model.gguf.part")).size;
      t.true(kept > 0 && kept <= 1 << 20, `kept ${kept} bytes`);
    }
    t.log(disk.real ? "on a 1 MiB tmpfs" : "on /dev/full (mounting a tmpfs is not permitted here)");
  } finally {
    disk.dispose();
    server.close();
  }
});

// ─── The daemon killed outright ─────────────────────────────────────────────────────────────

async function startDaemonProcess(owner: Owner, brokerUrl: string, journalDir: string): Promise<TestProcess> {
  const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-kill-")), "alpaca.sock");
  // Paced (20 ms a step): the killed request must still be running when SIGKILL arrives, however
  // late a loaded machine lets the test see its first chunk.
  const daemon = start(owner, process.execPath, [path.join(ROOT, "bench", "protocol-daemon.mjs"), sharedModel("stories260K-f32.gguf"), socketPath, brokerUrl, "k93", journalDir],
    { env: { ...process.env, ALPACA_PACE_MS: "20" } });
  await daemon.waitFor(/ready/, { what: "the daemon ready" });
  return daemon;
}

testNeeding(test, () => needShared() ?? needMosquitto(), "SIGKILL mid-generation: after a restart the killed request is answered from the journal, those sent meanwhile from the session", async (t) => {
  t.timeout(scaled(60_000));
  const broker = await Mosquitto.start();
  t.teardown(() => broker.dispose());
  const journalDir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-journal-"));
  t.teardown(() => fs.rmSync(journalDir, { recursive: true, force: true }));
  let daemon = await startDaemonProcess(t, broker.url, journalDir);
  const c = await connectClient(broker.url, { protocolVersion: 5 });
  try {
    const got: { t: string; final: boolean }[] = [];
    await subscribe(c, "k93/reply/t");
    c.on("message", (_topic, payload) => {
      const m = JSON.parse(payload.toString()) as { transaction: string; status?: string };
      got.push({ t: m.transaction, final: m.status !== undefined });
    });
    const ask = (transaction: string, maxTokens: number) =>
      publish(c, "k93/bridge/request/generate", JSON.stringify({ transaction, prompt: "Once upon a time", max_tokens: maxTokens, stream: true }), {
        qos: 1,
        properties: { responseTopic: "k93/reply/t" },
      });
    await ask("killed", 120);
    await waitFor(() => got.some((m) => m.t === "killed"), 10_000, "the first chunk");
    await daemon.kill();
    await ask("meanwhile", 4); // waits in the daemon's persistent session at the broker
    const journal = JSON.parse(fs.readFileSync(path.join(journalDir, "mqtt-k93-daemon.pending.json"), "utf8")) as { transaction: string }[];
    t.deepEqual(journal.map((e) => e.transaction), ["killed"], "the running request was journaled");
    daemon = await startDaemonProcess(t, broker.url, journalDir);
    await waitFor(() => got.some((m) => m.t === "meanwhile" && m.final), 15_000, "the answer to the request sent while the daemon was dead");
    await waitFor(() => got.some((m) => m.t === "killed" && m.final), 15_000, "the answer to the request that was running when the daemon died");
    t.is(got.filter((m) => m.t === "meanwhile" && m.final).length, 1);
    t.is(got.filter((m) => m.t === "killed" && m.final).length, 1, "answered exactly once");
    await waitFor(() => (JSON.parse(fs.readFileSync(path.join(journalDir, "mqtt-k93-daemon.pending.json"), "utf8")) as unknown[]).length === 0, 5000, "an empty journal");
    await ask("after", 4);
    await waitFor(() => got.some((m) => m.t === "after" && m.final), 15_000, "an answer after the restart");
  } finally {
    c.end(true);
  }
});

test("the pending-request journal: written atomically, read back, a damaged file is named and dropped", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-journal-unit-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "state", "mqtt-x.pending.json");
  const a = new PendingJournal(file);
  a.add({ client: "reply:r/t", transaction: "t1", request: { op: "generate", prompt: "hi" }, route: { kind: "mqtt", topic: "r/t", correlation: "AAE=" }, at: 1 });
  a.add({ client: "reply:r/u", transaction: "t1", request: { op: "generate", prompt: "hi" }, route: { kind: "mqtt", topic: "r/u" }, at: 1 });
  a.add({ client: "prompt", transaction: "t2", request: { op: "generate", prompt: "yo" }, route: { kind: "prompt", prompt: "yo" }, at: 2 });
  a.remove("reply:r/t", "t1");
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  t.false(fs.existsSync(`${file}.tmp`));
  const b = new PendingJournal(file).load();
  t.deepEqual(b.entries.map((e) => [e.client, e.transaction]), [["reply:r/u", "t1"], ["prompt", "t2"]], "two clients' t1 are two entries");
  fs.writeFileSync(file, "{ half written");
  const c = new PendingJournal(file).load();
  t.deepEqual(c.entries, []);
  t.regex(c.problem!, /is not valid JSON; its requests are dropped/);
  t.deepEqual(new PendingJournal(path.join(dir, "absent.json")).load(), { entries: [] });
});
