// format / grammar end to end: `alpaca run` and `alpaca ask` with --schema, --grammar and
// --json-output, the Unix socket and MQTT answering the same way, bad grammars refused with their
// position before anything runs.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import { answersFor, closeClient, connectClient, publish, record, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { startDaemon, STORIES } from "./helpers/daemon.js";
import { alpaca } from "./helpers/process.js";
import { needShared, sharedModel, testNeeding } from "./helpers/shared.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-constrained-"));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};
const SCHEMA = file(
  "light.json",
  JSON.stringify({
    type: "object",
    properties: { entity: { enum: ["light.kitchen", "light.hall"] }, on: { type: "boolean" }, level: { type: "integer", minimum: 0, maximum: 255 } },
    required: ["entity", "on", "level"],
    additionalProperties: false,
  }),
);
const GBNF = file("answer.gbnf", 'root ::= ("yes" | "no") ", because " [a-z ]{3,30} "."\n');
const BAD = file("bad.gbnf", 'root ::= "yes" |\n  maybe\n');

test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = (args: string[]) => alpaca(["run", ...args]);

testNeeding(test, needShared, "alpaca run --schema / --grammar / --json-output; --no-fast-forward gives the same tokens", async (t) => {
  for (const model of [STORIES(), sharedModel("llama3-tiny-f32.gguf")]) {
    const common = ["-m", model, "-p", "The light", "-n", "60", "--temp", "1", "--seed", "5", "--json"];
    const fast = await run([...common, "--schema", SCHEMA]);
    t.is(fast.code, 0, fast.stderr);
    const a = JSON.parse(fast.stdout) as { text: string; tokens: number[]; stop_reason: string; timings: { forcedTokens: number; decodeSteps: number } };
    const value = JSON.parse(a.text) as { entity: string; on: boolean; level: number };
    t.true(["light.kitchen", "light.hall"].includes(value.entity) && typeof value.on === "boolean" && value.level >= 0 && value.level <= 255, a.text);
    t.is(a.stop_reason, "eos");
    t.true(a.timings.forcedTokens > 0);
    t.true(a.timings.decodeSteps < a.tokens.length);
    const slow = JSON.parse((await run([...common, "--schema", SCHEMA, "--no-fast-forward"])).stdout) as typeof a;
    t.deepEqual(slow.tokens, a.tokens);
    t.is(slow.timings.forcedTokens, 0);
  }
  const g = await run(["-m", STORIES(), "-p", "Is it raining?", "-n", "40", "--grammar", GBNF, "--json", "--seed", "2"]);
  t.regex((JSON.parse(g.stdout) as { text: string }).text, /^(yes|no), because [a-z ]{3,30}\.$/);
  const j = await run(["-m", STORIES(), "-p", "Data:", "-n", "30", "--json-output", "--json", "--seed", "2", "--temp", "0"]);
  t.is((JSON.parse(j.stdout) as { text: string }).text.trimStart()[0], "{");
  const bad = await run(["-m", STORIES(), "-p", "x", "--grammar", BAD]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /bad\.gbnf: line 2, column 3: rule "maybe" is used but never defined/);
  t.notRegex(bad.stderr, /at .*\.js/); // no stack trace
  const both = await run(["-m", STORIES(), "-p", "x", "--grammar", GBNF, "--schema", SCHEMA]);
  t.is(both.code, 2);
  t.regex(both.stderr, /choose one of --schema, --grammar and --json-output/);
  const missing = await run(["-m", STORIES(), "-p", "x", "--schema", path.join(dir, "nope.json")]);
  t.regex(missing.stderr, /cannot read the schema .*nope\.json: ENOENT/);
});

testNeeding(test, needShared, "alpaca ask over the socket: --schema gives `json` in the final, a bad grammar is bad_request with its position", async (t) => {
  const d = await startDaemon();
  t.teardown(() => d.stop());
  const schema = await alpaca(["ask", "--socket", d.socketPath, "The light", "--schema", SCHEMA, "--json", "--seed", "4"]);
  t.is(schema.code, 0, schema.stderr);
  const final = JSON.parse(schema.stdout) as { status: string; data: { text: string; json: { entity: string }; timings: { forced_tokens: number } } };
  t.is(final.status, "ok");
  t.deepEqual(final.data.json, JSON.parse(final.data.text));
  t.true(["light.kitchen", "light.hall"].includes(final.data.json.entity));
  t.true(final.data.timings.forced_tokens > 0);
  const streamed = await alpaca(["ask", "--socket", d.socketPath, "Is it raining?", "--grammar", GBNF, "--seed", "4"]);
  t.regex(streamed.stdout, /^(yes|no), because [a-z ]{3,30}\.\n$/);
  const bad = await alpaca(["ask", "--socket", d.socketPath, "x", "--grammar", BAD]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /bad_request: grammar: line 2, column 3: rule "maybe" is used but never defined/);
  const json = await alpaca(["ask", "--socket", d.socketPath, "Data:", "--json-output", "-n", "40", "--json", "--temp", "0"]);
  t.is((JSON.parse(json.stdout) as { data: { text: string } }).data.text.trimStart()[0], "{");
});

const needMqtt = () => needMosquitto() ?? needShared();

testNeeding(test, needMqtt, "over MQTT: format and grammar as on the socket, a bad schema refused naming its keyword", async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.dispose());
  const daemon = await startMqttDaemon({ mqtt: { url: broker.url, baseTopic: "alpaca49", clientId: "d49", homeAssistant: null } });
  t.teardown(() => daemon.stop());
  const c = await connectClient(broker.url, { protocolVersion: 4 });
  t.teardown(() => closeClient(c));
  const got = record(c);
  await subscribe(c, "alpaca49/bridge/response/generate");
  const ask = (transaction: string, extra: Record<string, unknown>) =>
    publish(c, "alpaca49/bridge/request/generate", JSON.stringify({ transaction, prompt: "The light", max_tokens: 60, seed: 1, ...extra }));
  await ask("schema", { format: JSON.parse(fs.readFileSync(SCHEMA, "utf8")) });
  await ask("gbnf", { grammar: fs.readFileSync(GBNF, "utf8") });
  await ask("bad-schema", { format: { type: "string", pattern: "^a+$" } });
  await waitFor(() => ["schema", "gbnf", "bad-schema"].every((id) => answersFor(got, id).finals.length === 1), 30_000, "three finals");
  const schema = answersFor(got, "schema").finals[0] as { status: string; data: { text: string; json: unknown } };
  t.is(schema.status, "ok");
  t.deepEqual(schema.data.json, JSON.parse(schema.data.text));
  t.regex((answersFor(got, "gbnf").finals[0] as { data: { text: string } }).data.text, /^(yes|no), because [a-z ]{3,30}\.$/);
  const bad = answersFor(got, "bad-schema").finals[0];
  t.is(bad.error?.code, "bad_request");
  t.regex(bad.error?.message ?? "", /pattern/);
});
