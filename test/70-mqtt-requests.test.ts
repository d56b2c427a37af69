// MQTT requests against a real Mosquitto: MQTT 5 request/response with correlation data, a plain
// 3.1.1 publish with a transaction, streamed chunks in order and one final, 20 at once, the
// retained bridge topics, and bad payloads answered with an error envelope while serving goes on.
import test from "ava";
import type { MqttClient } from "mqtt";
import { MAX_PACKET_BYTES } from "../daemon/transports/mqtt/connection.js";
import { resolveMqttOptions } from "../daemon/transports/mqtt/transport.js";
import type { MqttDaemon, Received } from "./helpers/mqtt-daemon.js";
import { answersFor, closeClient, connectClient, publish, record, sleep, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const need = () => needMosquitto() ?? needShared();
const BASE = "alpaca70";

let broker: Mosquitto | undefined;
let daemon: MqttDaemon | undefined;

test.before(async () => {
  if (need()) return;
  broker = await Mosquitto.start();
  daemon = await startMqttDaemon({ mqtt: { url: broker.url, baseTopic: BASE, clientId: "d70", homeAssistant: null } });
});

test.after.always(async () => {
  await daemon?.stop();
  await broker?.dispose();
});

const generate = (transaction: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ transaction, prompt: "Once upon a time", max_tokens: 24, temperature: 0, ...extra });

/** Chunks numbered 0.., then exactly one final whose text is the chunks joined. */
function checkStream(t: import("ava").ExecutionContext, got: ReturnType<typeof answersFor>) {
  t.is(got.finals.length, 1, "one final message");
  t.is(got.order[got.order.length - 1], "final", "the final comes last");
  t.deepEqual(
    got.chunks.map((c) => c.seq),
    got.chunks.map((_, i) => i),
    "chunks in order, none missing",
  );
  t.true(got.chunks.length > 1, "the answer was streamed");
  t.is(got.finals[0].status, "ok");
  t.is(got.chunks.map((c) => c.delta).join(""), got.finals[0].data!.text);
}

testNeeding(test, need, "MQTT 5: the answer goes to the Response Topic with the Correlation Data echoed", async (t) => {
  const c = await connectClient(broker!.url, { protocolVersion: 5 });
  const got = record(c);
  await subscribe(c, `${BASE}/reply/client70`);
  const correlation = Buffer.from([0, 1, 2, 250, 255]);
  await publish(c, `${BASE}/bridge/request/generate`, generate("v5"), {
    qos: 1,
    properties: { responseTopic: `${BASE}/reply/client70`, correlationData: correlation, messageExpiryInterval: 60 },
  });
  await waitFor(() => answersFor(got, "v5").finals.length > 0, 10_000, "the final answer");
  const answers = answersFor(got, "v5", `${BASE}/reply/client70`);
  checkStream(t, answers);
  for (const m of answers.messages) t.deepEqual(m.packet.properties?.correlationData, correlation, "correlation data on every message");
  const chunk = answers.messages.find((m) => "delta" in (m.json as object))!;
  t.is(chunk.packet.qos, 0, "chunks at QoS 0");
  t.true((chunk.packet.properties?.messageExpiryInterval ?? 0) > 0, "chunks carry a message expiry");
  t.is(answers.messages[answers.messages.length - 1].packet.qos, 1, "the final at QoS 1");
  await closeClient(c);
});

testNeeding(test, need, "MQTT 3.1.1: a plain publish with a transaction is answered on bridge/response/generate", async (t) => {
  const c = await connectClient(broker!.url, { protocolVersion: 4 });
  const got = record(c);
  await subscribe(c, `${BASE}/bridge/response/generate`);
  await publish(c, `${BASE}/bridge/request/generate`, generate("v311"));
  await waitFor(() => answersFor(got, "v311").finals.length > 0, 10_000, "the final answer");
  checkStream(t, answersFor(got, "v311", `${BASE}/bridge/response/generate`));
  await closeClient(c);
});

testNeeding(test, need, "20 concurrent requests are all answered, each once and whole", async (t) => {
  const c = await connectClient(broker!.url);
  const got = record(c);
  await subscribe(c, `${BASE}/bridge/response/generate`);
  const ids = Array.from({ length: 20 }, (_, i) => `many-${i}`);
  await Promise.all(ids.map((id, i) => publish(c, `${BASE}/bridge/request/generate`, generate(id, { prompt: `Tom had ${i} cats`, max_tokens: 16 }))));
  await waitFor(() => ids.every((id) => answersFor(got, id).finals.length > 0), 30_000, "20 answers");
  await new Promise((r) => setTimeout(r, 200));
  for (const id of ids) {
    const a = answersFor(got, id);
    t.is(a.finals.length, 1, id);
    t.is(a.finals[0].status, "ok", id);
    t.is(a.chunks.map((x) => x.delta).join(""), a.finals[0].data!.text, id);
  }
  await closeClient(c);
});

testNeeding(test, need, "bridge/state is online and bridge/info describes the model, both retained", async (t) => {
  const c = await connectClient(broker!.url);
  const got = record(c);
  await subscribe(c, [`${BASE}/bridge/state`, `${BASE}/bridge/info`, `${BASE}/bridge/stats`]);
  const has = (k: string) => got.some((m) => m.topic === `${BASE}/bridge/${k}` && m.packet.retain);
  // stats may still be on its way (it reads memory and temperature first), so it may arrive live.
  await waitFor(() => has("state") && has("info") && got.some((m) => m.topic === `${BASE}/bridge/stats`), 5000, "state, info and stats");
  const state = got.find((m) => m.topic === `${BASE}/bridge/state`)!;
  t.is(state.text, "online");
  const info = got.find((m) => m.topic === `${BASE}/bridge/info`)!.json as Record<string, any>;
  t.is(info.api_version, 1);
  t.is(info.version, "0.0.0-test");
  t.is(typeof info.model.name, "string");
  t.is(info.plan.n_seq, 4);
  t.deepEqual(info.mqtt, { base_topic: BASE, protocol_version: 5, share_group: null, client_id: "d70" });
  const stats = got.find((m) => m.topic === `${BASE}/bridge/stats`)!.json as Record<string, any>;
  t.is(typeof stats.busy, "boolean");
  t.is(typeof stats.tokens_per_second, "number");
  t.true(stats.memory.rss_bytes > 0);
  t.true(stats.cpu_temperature_c === null || typeof stats.cpu_temperature_c === "number");
  await closeClient(c);
});

testNeeding(test, need, "status, info and models answer on their own response topics", async (t) => {
  const c = await connectClient(broker!.url);
  const got = record(c);
  await subscribe(c, `${BASE}/bridge/response/+`);
  for (const op of ["status", "info", "models"]) await publish(c, `${BASE}/bridge/request/${op}`, JSON.stringify({ transaction: op }));
  // Other tests in this file answer on these topics at the same time: wait for these three.
  const answer = (op: string) => got.find((x) => x.topic === `${BASE}/bridge/response/${op}` && (x.json as { transaction?: unknown }).transaction === op);
  await waitFor(() => ["status", "info", "models"].every(answer), 15_000, "the status, info and models answers");
  for (const op of ["status", "info", "models"]) t.like(answer(op)!.json as object, { status: "ok", transaction: op });
  await closeClient(c);
});

// Each bad payload gets an error envelope naming the problem; the last, good request proves the
// daemon kept serving.
const BAD: [string, string | Buffer, string, RegExp][] = [
  ["not JSON", "hello there", "bad_request", /not JSON/],
  ["binary", Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]), "bad_request", /UTF-8/],
  ["an array", "[1,2,3]", "bad_request", /JSON object/],
  ["a wrong type", JSON.stringify({ transaction: "b4", prompt: 42 }), "bad_request", /prompt must be a string/],
  ["max_tokens out of range", JSON.stringify({ transaction: "b5", prompt: "x", max_tokens: -3 }), "bad_request", /max_tokens/],
  ["a prompt over the limit", JSON.stringify({ transaction: "b6", prompt: "a".repeat(300 * 1024) }), "bad_request", /longer than/],
  ["a request over the size limit", Buffer.alloc(1.5 * 1024 * 1024, 0x20), "bad_request", /^the request is longer than 1048576 bytes$/],
  ["an op that contradicts the topic", JSON.stringify({ transaction: "b8", op: "status" }), "bad_request", /does not match/],
  ["an unknown field", JSON.stringify({ transaction: "b9", prompt: "x", colour: "red" }), "bad_request", /unknown field/],
];

testNeeding(test, need, "bad payloads get an error envelope and the daemon keeps serving", async (t) => {
  const c = await connectClient(broker!.url);
  const got: Received[] = record(c);
  await subscribe(c, [`${BASE}/bridge/response/generate`, `${BASE}/bridge/response/nosuchop`]);
  for (const [, payload] of BAD) await publish(c, `${BASE}/bridge/request/generate`, payload);
  await publish(c, `${BASE}/bridge/request/nosuchop`, JSON.stringify({ transaction: "b10" }));
  await publish(c, `${BASE}/bridge/request/generate`, generate("after-bad"));
  await waitFor(() => answersFor(got, "after-bad").finals.length > 0, 10_000, "the good request after the bad ones");
  // Other tests share the response topic: keep only the errors of this test's requests.
  const errors = got
    .map((m) => m.json as { status?: string; transaction?: string | null; error: { code: string; message: string; duplicate_of?: string } })
    .filter((m) => m?.status === "error" && m.error.duplicate_of === undefined && (m.transaction === null || /^b\d+$/.test(m.transaction ?? "")));
  t.is(errors.length, BAD.length + 1, "one error per bad request");
  BAD.forEach(([what, , code, message], i) => {
    t.is(errors[i].error.code, code, what);
    t.regex(errors[i].error.message, message, what);
  });
  t.regex(errors[BAD.length].error.message, /unknown op "nosuchop"/);
  t.is(answersFor(got, "after-bad").finals[0].status, "ok");
  await closeClient(c);
});

testNeeding(test, need, "a request over the maximum packet size never reaches the daemon: the broker drops it", async (t) => {
  const c = await connectClient(broker!.url);
  t.teardown(() => closeClient(c));
  const got = record(c);
  await subscribe(c, `${BASE}/bridge/response/models`);
  await publish(c, `${BASE}/bridge/request/models`, Buffer.alloc(MAX_PACKET_BYTES + 1, 0x20));
  await publish(c, `${BASE}/bridge/request/models`, JSON.stringify({ transaction: "after-big" }));
  await waitFor(() => answersFor(got, "after-big").finals.length > 0, 10_000, "the answer after the big one");
  await sleep(200);
  // Another test asks for models at the same time (transaction "models"); a dropped request would be answered with null.
  t.deepEqual(got.filter((m) => (m.json as { transaction: unknown }).transaction === null), [], "no answer to the packet the broker dropped");
  t.regex(broker!.log(), /Dropping too large outgoing PUBLISH for d70/);
});

testNeeding(test, need, "a transaction already in flight is refused without disturbing the first", async (t) => {
  const c = await connectClient(broker!.url);
  const got = record(c);
  await subscribe(c, `${BASE}/bridge/response/generate`);
  await publish(c, `${BASE}/bridge/request/generate`, generate("twice", { max_tokens: 64 }));
  await publish(c, `${BASE}/bridge/request/generate`, generate("twice", { max_tokens: 64 }));
  const duplicate = () => got.find((m) => (m.json as { error?: { duplicate_of?: string } }).error?.duplicate_of === "twice");
  await waitFor(() => answersFor(got, "twice").finals.length >= 1 && !!duplicate(), 10_000, "the final and the duplicate error");
  await sleep(200);
  const dup = duplicate()!.json as { status: string; transaction: unknown; error: { code: string; message: string } };
  t.like(dup, { status: "error", transaction: null, error: { code: "bad_request" } });
  t.regex(dup.error.message, /already in flight/);
  const finals = answersFor(got, "twice").finals;
  t.deepEqual(finals.map((f) => f.status), ["ok"], "the running request's final, once");
  await closeClient(c);
});

test("options: defaults, and mistakes named", (t) => {
  const o = resolveMqttOptions({ url: "mqtt://broker:1883" });
  t.is(o.protocolVersion, 5);
  t.is(o.baseTopic, "alpaca");
  t.true(o.sessionExpiry > 0, "a persistent session by default");
  t.is(o.homeAssistant?.prefix, "homeassistant");
  t.is(o.homeAssistant?.deviceName, "alpaca", "the device is named after the base topic");
  t.is(resolveMqttOptions({ url: "mqtt://x", baseTopic: "home/kitchen" }).homeAssistant?.deviceName, "home/kitchen");
  t.deepEqual(o.responseTopics, ["alpaca/reply/#"]);
  t.deepEqual(resolveMqttOptions({ url: "mqtt://x", baseTopic: "b" }).responseTopics, ["b/reply/#"]);
  t.throws(() => resolveMqttOptions({ url: "mqtt://x", responseTopics: ["alpaca/#"] }), { message: /covers the daemon's own topics/ });
  t.throws(() => resolveMqttOptions({ url: "mqtt://x", homeAssistant: { deviceName: "x".repeat(101) } }), { message: /device name must be 1 to 100/ });
  t.throws(() => resolveMqttOptions({ url: "http://x" }), { message: /mqtt: or mqtts:/ });
  t.throws(() => resolveMqttOptions({ url: "mqtt://x", baseTopic: "a/#" }), { message: /base topic/ });
  t.throws(() => resolveMqttOptions({ url: "mqtt://x", shareGroup: "a/b" }), { message: /share group/ });
  t.throws(() => resolveMqttOptions({ url: "mqtt://x", protocolVersion: 3 as 4 }), { message: /protocol version/ });
  t.throws(() => resolveMqttOptions({ url: "mqtt://x", keepalive: -1 }), { message: /keepalive/ });
});

export type { MqttClient };
