// format / grammar end to end: `alpaca run` and `alpaca ask` with --schema, --grammar and
// --json-output, the Unix socket and MQTT answering the same way (tool calls included), bad grammars
// refused with their position before anything runs.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import type { GenerateResult } from "../daemon/serving/protocol.js";
import { SocketClient } from "../daemon/transports/socket.js";
import { errorsText, validator } from "./helpers/ajv.js";
import { answersFor, closeClient, connectClient, publish, record, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { startDaemon, STORIES, tempSocketPath } from "./helpers/daemon.js";
import { needQwen3, QWEN3 } from "./helpers/http-daemon.js";
import { alpaca, start } from "./helpers/process.js";
import { CLI, needShared, ROOT, sharedModel, testNeeding } from "./helpers/shared.js";

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

testNeeding(test, () => needMosquitto() ?? needQwen3(), "tool calls: the same final with tool_calls over MQTT and over the socket", async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.dispose());
  const socketPath = tempSocketPath();
  const daemon = start(t, process.execPath, [
    CLI, "serve", "-m", QWEN3(), "--socket", socketPath, "--threads", "1", "--ctx", "2048", "--parallel", "2",
    "--mqtt-url", broker.url, "--mqtt-base-topic", "alpaca24", "--mqtt-client-id", "d24", "--mqtt-home-assistant", "false",
  ], { env: { ...process.env, STATE_DIRECTORY: dir } });
  const c = await connectClient(broker.url, { protocolVersion: 4 });
  t.teardown(() => closeClient(c));
  const got = record(c);
  await subscribe(c, ["alpaca24/bridge/response/generate", "alpaca24/bridge/state"]);
  await waitFor(() => got.some((m) => m.topic === "alpaca24/bridge/state" && m.text === "online"), 30_000, `the daemon online (stderr: ${daemon.stderr})`);

  // Home Assistant's Assist tools (test/fixtures/schemas/tools.json) that take arguments.
  const tools = (JSON.parse(fs.readFileSync(path.join(ROOT, "test", "fixtures", "schemas", "tools.json"), "utf8")) as { function: { name: string; parameters: object } }[])
    .filter((x) => x.function.name !== "GetLiveContext");
  const request = { messages: [{ role: "user", content: "Turn on the kitchen light" }], tools, tool_choice: "required", temperature: 1, seed: 1, max_tokens: 160 };
  const client = await SocketClient.connect(socketPath);
  t.teardown(() => client.close());
  const deltas: string[] = [];
  const bySocket = await client.request({ op: "generate", transaction: "s1", ...request }, (ch) => deltas.push(ch.delta));
  await publish(c, "alpaca24/bridge/request/generate", JSON.stringify({ transaction: "m1", ...request }));
  await waitFor(() => answersFor(got, "m1").finals.length > 0, 60_000, "the answer over MQTT");
  const byMqtt = answersFor(got, "m1", "alpaca24/bridge/response/generate");
  t.is(byMqtt.finals.length, 1);

  const finals = [bySocket, byMqtt.finals[0]].map((f) => {
    t.is(f.status, "ok", JSON.stringify(f));
    return (f as { data: GenerateResult }).data;
  });
  for (const f of finals) {
    t.is(f.stop_reason, "tool_calls", `${f.text} ${f.tool_call_error ?? ""}`);
    t.true((f.tool_calls?.length ?? 0) > 0);
    for (const call of f.tool_calls ?? []) {
      t.regex(call.id, /^[a-zA-Z0-9]{9}$/);
      const tool = tools.find((x) => x.function.name === call.name);
      t.truthy(tool, `"${call.name}" is not a given tool`);
      const check = validator(tool!.function.parameters);
      t.true(check(call.arguments), `${call.name} ${JSON.stringify(call.arguments)}: ${errorsText(check)}`);
    }
  }
  // the same seed on either transport: the same calls (each with its own id) and the same usage
  t.deepEqual(finals[1].tool_calls!.map((x) => [x.name, x.arguments]), finals[0].tool_calls!.map((x) => [x.name, x.arguments]));
  t.deepEqual(finals[1].usage.completion_tokens, finals[0].usage.completion_tokens);
  t.is(finals[1].closed_by_budget, finals[0].closed_by_budget);
  t.log(`calls on both: ${JSON.stringify(finals[0].tool_calls!.map((x) => [x.name, x.arguments])).slice(0, 120)}…${finals[0].closed_by_budget ? " (closed by the budget)" : ""}`);
  // required calls from the first token: no call markup streamed on either
  t.is(deltas.join(""), "");
  t.is(byMqtt.chunks.map((ch) => ch.delta).join(""), "");
});
