// The model file changed under the daemon: truncated while mapped (requests get an error, the
// daemon lives on), replaced by a rename (the daemon keeps serving the file it mapped), and the
// SIGBUS guard itself against a real fault.
import test from "ava";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startDaemon } from "./helpers/daemon.js";
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

test("mapping_guard turns a SIGBUS on a truncated mapping into zeros and a damaged flag", (t) => {
  const exe = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-guard-")), "mapping_guard_check");
  const native = path.join(ROOT, "native");
  const build = spawnSync("g++", ["-std=c++17", "-O1", "-o", exe, path.join(native, "tools", "mapping_guard_check.cc"),
    path.join(native, "mapped_file.cc"), path.join(native, "mapping_guard.cc")], { encoding: "utf8" });
  t.is(build.status, 0, build.stderr);
  const file = path.join(path.dirname(exe), "data.bin");
  fs.writeFileSync(file, Buffer.alloc(64 * 1024, 1));
  const r = spawnSync(exe, [file], { encoding: "utf8" });
  t.is(r.signal, null, "killed by a signal");
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^damaged=1 truncated=1 sum=4096 status=the model file shrank while it was mapped/);
});
