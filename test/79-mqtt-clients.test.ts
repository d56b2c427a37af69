// Who the MQTT transport answers, against a real Mosquitto: a response topic the allow list does
// not accept is refused on bridge/response/<op> and nothing reaches it, while other clients'
// prompts run on; clients are told apart by their response topics, so the same transaction ids
// and correlation data from two clients never mix; under 3.1.1 a transaction already in flight gets
// the duplicate error and the first request's final comes once; numeric transactions come back as
// numbers; an empty status/info/models request means {}.
import test from "ava";
import type { ExecutionContext } from "ava";
import type { MqttClient } from "mqtt";
import { ResponseTopics } from "../daemon/transports/mqtt/response-topics.js";
import type { Received } from "./helpers/mqtt-daemon.js";
import { answersFor, closeClient, connectClient, publish, record, sleep, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const need = () => needMosquitto() ?? needShared();

async function setup(t: ExecutionContext, base: string, paceMs = 0) {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.dispose());
  const d = await startMqttDaemon({ mqtt: { url: broker.url, baseTopic: base, clientId: `d-${base}`, homeAssistant: {} }, paceMs });
  t.teardown(() => d.stop());
  const client = async (protocolVersion: 4 | 5 = 5) => {
    const c = await connectClient(broker.url, { protocolVersion });
    t.teardown(() => closeClient(c));
    return { c, got: record(c) };
  };
  return { broker, d, client };
}

const generate = (transaction: unknown, prompt: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ transaction, prompt, max_tokens: 40, temperature: 0, ...extra });

const ask = (c: MqttClient, base: string, payload: string, responseTopic?: string, correlation?: Buffer) =>
  publish(c, `${base}/bridge/request/generate`, payload, { qos: 1, properties: responseTopic ? { responseTopic, correlationData: correlation } : {} });

testNeeding(test, need, "refused response topics: an error on bridge/response/generate, nothing on the topic, others' prompts run on", async (t) => {
  const base = "r75a";
  const { d, client } = await setup(t, base, 15);
  const spy = await client();
  await subscribe(spy.c, "#");
  const running = await client();
  await subscribe(running.c, `${base}/reply/running`);
  await ask(running.c, base, generate("long", "Once upon a time", { max_tokens: 60 }), `${base}/reply/running`);
  await waitFor(() => answersFor(running.got, "long").chunks.length > 0, 5000, "the running prompt's first chunk");

  const refused: [string, RegExp][] = [
    [`${base}/bridge/state`, /is one of the daemon's own topics/],
    [`${base}/cancel`, /is one of the daemon's own topics/],
    [`${base}/prompt/set`, /is one of the daemon's own topics/],
    [`${base}/elsewhere`, /is not on the daemon's list of response topics \(mqttResponseTopics: r75a\/reply\/#\)/],
    [`homeassistant/sensor/${base}/evil/config`, /lies under the Home Assistant discovery prefix homeassistant\//],
    [`${base}/reply/+`, /contains a wildcard/],
    [`${base}/reply/#`, /contains a wildcard/],
    ["other/replies", /is not on the daemon's list/],
    ["$SYS/broker/x", /is a broker topic/],
  ];
  const asker = await client();
  await subscribe(asker.c, `${base}/bridge/response/generate`);
  for (const [i, [topic]] of refused.entries()) await ask(asker.c, base, generate(`refused-${i}`, "Lily"), topic, Buffer.from(`c${i}`));
  await waitFor(() => refused.every((_, i) => answersFor(asker.got, `refused-${i}`).finals.length > 0), 5000, "every refusal");
  for (const [i, [topic, reason]] of refused.entries()) {
    const a = answersFor(asker.got, `refused-${i}`, `${base}/bridge/response/generate`);
    t.is(a.messages.length, 1, topic);
    t.like(a.finals[0], { status: "error", error: { code: "bad_request" } }, topic);
    t.regex(a.finals[0].error!.message, reason, topic);
    t.regex(a.finals[0].error!.message, /the request was not run$/, topic);
    t.deepEqual(a.messages[0].packet.properties?.correlationData, Buffer.from(`c${i}`), `${topic}: correlation data echoed`);
  }
  await waitFor(() => answersFor(running.got, "long").finals.length > 0, 10_000, "the running prompt's final");
  const long = answersFor(running.got, "long");
  t.like(long.finals[0], { status: "ok", data: { stop_reason: "length" } }, "the other client's prompt ran to its end");
  t.is(long.chunks.map((c) => c.delta).join(""), long.finals[0].data!.text);
  await sleep(200);
  // Retained messages the spy found on subscribing (bridge/state's "online") are from before.
  const onRefused = spy.got.filter((m) => !m.packet.retain && refused.some(([topic]) => m.topic === topic));
  t.deepEqual(onRefused.map((m) => m.topic), [], "nothing was published on a refused topic");
  t.false(spy.got.some((m) => m.topic.startsWith(`homeassistant/`) && !m.packet.retain && m.text === ""), "no discovery config was cleared");
  t.is(d.scheduler.stats().totals.requests, 1, "no refused request reached the scheduler");
  const state = spy.got.filter((m) => m.topic === `${base}/bridge/state`);
  t.deepEqual(state.map((m) => m.text), ["online"]);
});

testNeeding(test, need, "two MQTT 5 clients with the same transactions and correlation data each get their own answers", async (t) => {
  const base = "r75b";
  const { client } = await setup(t, base, 5);
  const correlation = Buffer.from("same");
  const clients = [
    { ...(await client()), topic: `${base}/reply/a`, prompt: "Once upon a time" },
    { ...(await client()), topic: `${base}/reply/b`, prompt: "Lily went to the park" },
  ];
  for (const x of clients) await subscribe(x.c, x.topic);
  const ids = ["t1", "t2", 3];
  await Promise.all(clients.flatMap((x) => ids.map((id) => ask(x.c, base, generate(id, x.prompt), x.topic, correlation))));
  await waitFor(() => clients.every((x) => ids.every((id) => answersFor(x.got, id).finals.length > 0)), 20_000, "every answer");
  await sleep(200);
  const texts = clients.map((x) =>
    ids.map((id) => {
      const a = answersFor(x.got, id, x.topic);
      t.is(a.messages.length, x.got.filter((m) => (m.json as { transaction?: unknown }).transaction === id).length, "nothing on another topic");
      t.is(a.finals.length, 1, `${x.topic} ${id}: one final`);
      t.is(a.finals[0].status, "ok");
      t.deepEqual(a.chunks.map((c) => c.seq), a.chunks.map((_, i) => i), "its own chunks, none missing or doubled");
      t.is(a.chunks.map((c) => c.delta).join(""), a.finals[0].data!.text);
      for (const m of a.messages) t.deepEqual(m.packet.properties?.correlationData, correlation);
      return a.finals[0].data!.text;
    }),
  );
  // Greedy: each client's three answers are its own prompt's, and the two prompts differ.
  for (const own of texts) t.is(new Set(own).size, 1);
  t.not(texts[0][0], texts[1][0]);
  t.is(clients[0].got.length + clients[1].got.length, clients.reduce((n, x) => n + x.got.filter((m) => m.topic === x.topic).length, 0));

  // A cancel reaches only its sender's generations.
  await Promise.all(clients.map((x) => ask(x.c, base, generate("slow", x.prompt, { max_tokens: 120 }), x.topic, correlation)));
  await waitFor(() => clients.every((x) => answersFor(x.got, "slow").chunks.length > 0), 5000, "both running");
  await publish(clients[1].c, `${base}/bridge/request/cancel`, JSON.stringify({ transaction: "stop" }), { qos: 1, properties: { responseTopic: clients[1].topic } });
  await waitFor(() => clients.every((x) => answersFor(x.got, "slow").finals.length > 0), 20_000, "both finals");
  t.like(answersFor(clients[1].got, "stop").finals[0], { status: "ok", data: { cancelled: ["slow"] } });
  t.is((answersFor(clients[1].got, "slow").finals[0].data as { stop_reason?: string }).stop_reason, "cancelled");
  t.is((answersFor(clients[0].got, "slow").finals[0].data as { stop_reason?: string }).stop_reason, "length", "the other client's generation was not cancelled");
});

testNeeding(test, need, "MQTT 3.1.1: a transaction in flight gets the duplicate error, the first request's final comes once", async (t) => {
  const base = "r75c";
  const { client } = await setup(t, base, 10);
  const first = await client(4);
  const second = await client(4);
  for (const x of [first, second]) await subscribe(x.c, `${base}/bridge/response/generate`);
  await ask(first.c, base, generate("kitchen-1", "Once upon a time", { max_tokens: 30 }));
  await waitFor(() => answersFor(first.got, "kitchen-1").chunks.length > 0, 5000, "the first request running");
  await ask(second.c, base, generate("kitchen-1", "Lily went to the park"));
  const duplicate = (got: Received[]) => got.filter((m) => (m.json as { error?: { duplicate_of?: unknown } }).error?.duplicate_of !== undefined);
  await waitFor(() => answersFor(first.got, "kitchen-1").finals.length > 0 && duplicate(second.got).length > 0, 10_000, "the final and the duplicate error");
  await sleep(200);
  for (const x of [first, second]) {
    const finals = answersFor(x.got, "kitchen-1").finals;
    t.is(finals.length, 1, "one final carries the transaction");
    t.like(finals[0], { status: "ok", data: { stop_reason: "length" } });
    t.deepEqual(duplicate(x.got).map((m) => m.json), [
      {
        status: "error",
        transaction: null,
        error: { code: "bad_request", message: 'transaction "kitchen-1" is already in flight; this request was not run', duplicate_of: "kitchen-1" },
      },
    ]);
  }
  t.true(answersFor(first.got, "kitchen-1").finals[0].data!.text.length > 0);
});

testNeeding(test, need, "numeric transactions come back as numbers; an empty status, info or models request means {}", async (t) => {
  const base = "r75d";
  const { client } = await setup(t, base);
  const x = await client(4);
  await subscribe(x.c, `${base}/bridge/response/+`);
  await ask(x.c, base, generate(42, "Once upon a time", { max_tokens: 4 }));
  for (const op of ["status", "info", "models"]) await publish(x.c, `${base}/bridge/request/${op}`, "");
  await publish(x.c, `${base}/bridge/request/status`, JSON.stringify({ transaction: 7.5 }));
  await waitFor(() => x.got.filter((m) => "status" in (m.json as object)).length >= 5, 10_000, "five answers");
  const numbered = x.got.filter((m) => (m.json as { transaction: unknown }).transaction === 42);
  t.true(numbered.length > 1);
  t.true(numbered.every((m) => m.text.includes('"transaction":42')), "echoed as the number 42, not \"42\"");
  t.like(numbered[numbered.length - 1].json as object, { status: "ok" });
  for (const op of ["status", "info", "models"]) {
    const m = x.got.find((r) => r.topic === `${base}/bridge/response/${op}`)!;
    t.like(m.json as object, { status: "ok" }, op);
    t.regex(String((m.json as { transaction: string }).transaction), /^mqtt-\d+$/, `${op}: the daemon named the transaction`);
  }
  t.truthy(x.got.find((r) => (r.json as { transaction: unknown }).transaction === 7.5 && "status" in (r.json as object)));
  await publish(x.c, `${base}/bridge/request/generate`, "");
  await waitFor(() => x.got.some((m) => (m.json as { error?: { message: string } }).error?.message?.includes("not JSON")), 5000, "an empty generate refused");
  t.pass();
});

test("the allow list: entries checked at start, topics by rule", (t) => {
  const list = new ResponseTopics(["alpaca/reply/#", "#", "apps/+/answers"], "alpaca", "homeassistant");
  t.is(list.refusal("alpaca/reply/kitchen/1"), null);
  t.is(list.refusal("alpaca/reply"), null, "a/# matches a itself, as MQTT says");
  t.is(list.refusal("anything/else"), null, "# admits topics outside alpaca/ and the discovery prefix");
  t.regex(list.refusal("alpaca/other")!, /not on the daemon's list/, "# does not reach into the base topic");
  t.regex(list.refusal("alpaca/bridge/response/generate")!, /daemon's own topics/);
  t.regex(list.refusal("alpaca/event")!, /daemon's own topics/);
  t.regex(list.refusal("homeassistant/status")!, /discovery prefix/);
  t.regex(list.refusal("homeassistant")!, /discovery prefix/);
  t.regex(list.refusal("")!, /empty/);
  t.regex(list.refusal("a/+/b")!, /wildcard/);
  const strict = new ResponseTopics(["apps/+/answers"], "alpaca", "homeassistant");
  t.is(strict.refusal("apps/kitchen/answers"), null);
  t.regex(strict.refusal("apps/kitchen/answers/x")!, /not on the daemon's list of response topics \(mqttResponseTopics: apps\/\+\/answers\)/);
  t.regex(new ResponseTopics([], "alpaca", "homeassistant").refusal("x")!, /\(mqttResponseTopics: \(none\)\)/);
  const bad = (entries: string[], message: RegExp) => t.throws(() => new ResponseTopics(entries, "alpaca", "homeassistant"), { instanceOf: TypeError, message });
  bad(["alpaca/#"], /covers the daemon's own topics/);
  bad(["alpaca/+"], /covers the daemon's own topics/);
  bad(["alpaca/bridge/response/x"], /covers the daemon's own topics/);
  bad(["homeassistant/#"], /discovery prefix/);
  bad(["a/#/b"], /# before its last level/);
  bad(["a/b+"], /\+ or # inside a level/);
  bad(["$share/g/x"], /starts with \$/);
  bad([""], /is empty/);
});
