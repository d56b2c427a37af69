// Home Assistant MQTT discovery against a real Mosquitto: the configs field by field, re-sent on
// Home Assistant's birth message, stale ones cleared; a prompt written to the text entity's
// command topic answered on the response sensor and the completion event; the cancel button.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import type { ExecutionContext } from "ava";
import { cutCodePoints, ENTITIES, fitAttributes, HA_ATTRIBUTES_BUDGET, HA_RECORDER_ATTRIBUTES_MAX } from "../daemon/transports/mqtt/homeassistant.js";
import type { Received } from "./helpers/mqtt-daemon.js";
import { closeClient, connectClient, publish, record, sleep, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const need = () => needMosquitto() ?? needShared();

async function setup(t: ExecutionContext, base: string, paceMs = 0, before?: (broker: Mosquitto) => Promise<void>) {
  const broker = await Mosquitto.start();
  await before?.(broker);
  const d = await startMqttDaemon({
    mqtt: { url: broker.url, baseTopic: base, clientId: `d-${base}`, homeAssistant: { prefix: "homeassistant", nodeId: base, deviceName: "Kitchen LLM" } },
    paceMs,
  });
  const c = await connectClient(broker.url);
  const got = record(c);
  t.teardown(async () => {
    await closeClient(c);
    await d.stop();
    await broker.dispose();
  });
  return { broker, d, c, got };
}

const configs = (got: Received[]) => got.filter((m) => m.topic.endsWith("/config") && m.text !== "");

testNeeding(test, need, "discovery: one device, every entity's config field by field", async (t) => {
  const { c, got } = await setup(t, "ha72a");
  await subscribe(c, "homeassistant/+/ha72a/+/config");
  await waitFor(() => configs(got).length >= ENTITIES.length, 5000, "every config");
  const by = new Map(configs(got).map((m) => [m.topic, m]));
  t.is(by.size, ENTITIES.length);
  for (const m of by.values()) t.true(m.packet.retain, `${m.topic} is retained`);
  const cfg = (component: string, object: string) => {
    const m = by.get(`homeassistant/${component}/ha72a/${object}/config`);
    if (!m) throw new Error(`no config for ${component}/${object}`);
    return m.json as Record<string, any>;
  };
  // What every entity shares.
  for (const e of ENTITIES) {
    const x = cfg(e.component, e.object);
    t.is(x.unique_id, `ha72a_${e.object}`);
    t.deepEqual(x.device, { identifiers: ["alpaca_ha72a"], name: "Kitchen LLM", manufacturer: "alpaca", model: "llama", sw_version: "0.0.0-test" });
    t.deepEqual(x.origin, { name: "alpaca", sw_version: "0.0.0-test" });
    t.deepEqual(x.availability, [{ topic: "ha72a/bridge/state", payload_available: "online", payload_not_available: "offline" }]);
    t.is(typeof x.name, "string");
  }
  t.like(cfg("text", "prompt"), { command_topic: "ha72a/prompt/set", state_topic: "ha72a/prompt", max: 255, min: 1, mode: "text" });
  t.like(cfg("sensor", "response"), { state_topic: "ha72a/response", value_template: "{{ value_json.state }}", json_attributes_topic: "ha72a/response" });
  t.like(cfg("event", "completion"), { state_topic: "ha72a/event", event_types: ["completed", "error"] });
  t.like(cfg("binary_sensor", "busy"), { state_topic: "ha72a/bridge/stats", device_class: "running", value_template: "{{ 'ON' if value_json.busy else 'OFF' }}" });
  t.like(cfg("button", "cancel"), { command_topic: "ha72a/cancel", payload_press: "cancel" });
  const diagnostics = { tokens_per_second: "tok/s", queue: undefined, memory: "MiB", temperature: "°C" } as const;
  for (const [object, unit] of Object.entries(diagnostics)) {
    const x = cfg("sensor", object);
    t.like(x, { state_topic: "ha72a/bridge/stats", entity_category: "diagnostic", state_class: "measurement" }, object);
    t.is(x.unit_of_measurement, unit, object);
    t.regex(x.value_template, /value_json\./, object);
  }
  t.is(cfg("sensor", "temperature").device_class, "temperature");
  t.is(cfg("sensor", "memory").device_class, "data_size");
});

testNeeding(test, need, "discovery is sent again when Home Assistant comes online", async (t) => {
  const { c, got } = await setup(t, "ha72b");
  await subscribe(c, "homeassistant/+/ha72b/+/config");
  await waitFor(() => configs(got).length >= ENTITIES.length, 5000, "every config");
  const first = configs(got).length;
  await publish(c, "homeassistant/status", "offline");
  await sleep(200);
  t.is(configs(got).length, first, "offline changes nothing");
  await publish(c, "homeassistant/status", "online");
  await waitFor(() => configs(got).length >= first + ENTITIES.length, 5000, "configs again");
  t.pass();
});

/** The retained configs a new subscriber finds under a filter (an empty config is a cleared one). */
async function retainedConfigs(url: string, filter: string): Promise<string[]> {
  const probe = await connectClient(url);
  const got = record(probe);
  await subscribe(probe, filter);
  await sleep(300);
  await closeClient(probe);
  return got.filter((m) => m.packet.retain && m.text !== "").map((m) => m.topic).sort();
}

testNeeding(test, need, "old discovery configs go when the base topic changes or discovery is turned off; others' stay", async (t) => {
  const broker = await Mosquitto.start();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-72-"));
  t.teardown(async () => {
    await broker.dispose();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  // A config under the same node that some other program published: never this daemon's to clear.
  const foreign = "homeassistant/sensor/ha72e/old_thing/config";
  const other = await connectClient(broker.url);
  await publish(other, foreign, JSON.stringify({ name: "Old", state_topic: "ha72e/old" }), { qos: 1, retain: true });
  await closeClient(other);
  const run = async (base: string, homeAssistant: boolean) => {
    const d = await startMqttDaemon({ mqtt: { url: broker.url, baseTopic: base, clientId: "d72e", stateDir, homeAssistant: homeAssistant ? {} : null } });
    await sleep(500); // configs published and old ones cleared
    await d.stop();
    return d;
  };
  const ours = (node: string) => ENTITIES.map((e) => `homeassistant/${e.component}/${node}/${e.object}/config`).sort();

  await run("ha72e", true);
  t.deepEqual(await retainedConfigs(broker.url, "homeassistant/+/ha72e/+/config"), [...ours("ha72e"), foreign].sort());
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(stateDir, "mqtt-discovery.json"), "utf8")).topics, ours("ha72e"), "remembered in the state directory");

  const moved = await run("ha72f", true);
  t.deepEqual(await retainedConfigs(broker.url, "homeassistant/+/ha72f/+/config"), ours("ha72f"), "the new base topic's entities");
  t.deepEqual(await retainedConfigs(broker.url, "homeassistant/+/ha72e/+/config"), [foreign], "the old base topic's entities are gone, the foreign one stays");
  t.true(moved.logs.some((l) => /removing 9 Home Assistant entities this daemon published before/.test(l)), moved.logs.join("\n"));

  await run("ha72f", false);
  t.deepEqual(await retainedConfigs(broker.url, "homeassistant/#"), [foreign], "discovery off: every entity this daemon published is gone");
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(stateDir, "mqtt-discovery.json"), "utf8")).topics, []);
});

testNeeding(test, need, "a prompt on the text entity's command topic is answered on the sensor and the event", async (t) => {
  const { broker, c, got } = await setup(t, "ha72c");
  await subscribe(c, ["ha72c/response", "ha72c/event", "ha72c/prompt"]);
  await publish(c, "ha72c/prompt/set", "Once upon a time there was a dragon");
  await waitFor(() => got.some((m) => m.topic === "ha72c/event"), 15_000, "the completion event");
  await waitFor(() => got.some((m) => m.topic === "ha72c/response"), 2000, "the response sensor");
  t.is(got.find((m) => m.topic === "ha72c/prompt")!.text, "Once upon a time there was a dragon", "the text entity's state");
  const response = got.find((m) => m.topic === "ha72c/response")!;
  const r = response.json as Record<string, any>;
  t.true(r.state.length > 0 && r.state.length <= 255, `state of ${r.state.length} characters`);
  t.true(r.text.trim().startsWith(r.state), "the state is the start of the text");
  t.true(r.text.length > 255, "the full text, longer than a state may be, is in the attributes");
  t.is(r.prompt, "Once upon a time there was a dragon");
  t.true(["eos", "length"].includes(r.stop_reason));
  t.is(typeof r.timings.total_ms, "number");
  t.is(typeof r.usage.completion_tokens, "number");
  const e = got.find((m) => m.topic === "ha72c/event")!.json as Record<string, any>;
  t.like(e, { event_type: "completed", transaction: r.transaction, text: r.text, stop_reason: r.stop_reason });

  // Retained: a Home Assistant that starts later still sees the last response.
  const late = await connectClient(broker.url);
  const lateGot = record(late);
  await subscribe(late, "ha72c/response");
  await waitFor(() => lateGot.length > 0, 2000, "the retained response");
  t.true(lateGot[0].packet.retain);
  t.is(lateGot[0].text, response.text);
  await closeClient(late);

  await publish(c, "ha72c/prompt/set", "   ");
  await waitFor(() => got.filter((m) => m.topic === "ha72c/event").length >= 2, 5000, "the error event");
  t.like(got.filter((m) => m.topic === "ha72c/event")[1].json as object, { event_type: "error", code: "bad_request", message: "the prompt is empty" });
});

testNeeding(test, need, "the cancel button stops the running prompt; busy turns on and off", async (t) => {
  const { c, got } = await setup(t, "ha72d", 20);
  await subscribe(c, ["ha72d/event", "ha72d/bridge/stats"]);
  await publish(c, "ha72d/prompt/set", "Once upon a time");
  const busy = (on: boolean) => got.some((m) => m.topic === "ha72d/bridge/stats" && (m.json as { busy: boolean }).busy === on);
  await waitFor(() => busy(true), 5000, "busy on");
  await publish(c, "ha72d/cancel", "cancel");
  await waitFor(() => got.some((m) => m.topic === "ha72d/event"), 5000, "the event");
  const e = got.find((m) => m.topic === "ha72d/event")!.json as Record<string, any>;
  t.true(e.stop_reason === "cancelled" || e.code === "cancelled", JSON.stringify(e));
  const lastBusy = () => [...got].reverse().find((m) => m.topic === "ha72d/bridge/stats")?.json as { busy: boolean } | undefined;
  await waitFor(() => lastBusy()?.busy === false, 5000, "busy off");
  t.pass();
});

const LLAMA = "\u{1F999}"; // two UTF-16 units, four UTF-8 bytes
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

test("states are cut at 255 code points, never inside a surrogate pair", (t) => {
  const cut = cutCodePoints(LLAMA.repeat(300), 255);
  t.is([...cut].length, 255);
  t.is(cut, LLAMA.repeat(255));
  t.true(wellFormed(cut));
  t.is(cutCodePoints(`a${LLAMA}b`, 2), `a${LLAMA}`);
  t.is(cutCodePoints("short", 255), "short");
  t.false(wellFormed(LLAMA.repeat(200).slice(0, 255)), "what cutting UTF-16 units would have left");
});

test("attributes are bounded under the recorder's limit; small ones stay whole", (t) => {
  const small = { state: "x", text: "hello", prompt: "hi" };
  t.is(fitAttributes(small, ["text", "prompt"]), small);
  const big = { state: "x", text: LLAMA.repeat(20_000), prompt: "p".repeat(3000), transaction: "t" };
  const fit = fitAttributes(big, ["text", "prompt"]);
  const bytes = Buffer.byteLength(JSON.stringify(fit));
  t.true(bytes <= HA_ATTRIBUTES_BUDGET && HA_ATTRIBUTES_BUDGET < HA_RECORDER_ATTRIBUTES_MAX, `${bytes} bytes`);
  t.true(bytes > HA_ATTRIBUTES_BUDGET - 8, `as much as fits (${bytes} bytes)`);
  t.is(fit.truncated, true);
  t.is(fit.prompt, big.prompt, "the shorter field stays whole while the longer one is cut");
  t.true(big.text.startsWith(fit.text) && wellFormed(fit.text));
  // Escaped characters count as the bytes JSON spends on them.
  const quotes = fitAttributes({ text: '"'.repeat(20_000) }, ["text"], 1000);
  t.true(Buffer.byteLength(JSON.stringify(quotes)) <= 1000);
});

testNeeding(test, need, "a prompt of astral characters: the text entity's state is 255 whole code points", async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.dispose());
  const d = await startMqttDaemon({ mqtt: { url: broker.url, baseTopic: "ha72g", clientId: "d-ha72g", homeAssistant: {} } });
  t.teardown(() => d.stop());
  const c = await connectClient(broker.url);
  t.teardown(() => closeClient(c));
  const got = record(c);
  await subscribe(c, ["ha72g/prompt", "ha72g/event"]);
  // 1200 byte tokens: more than the test's context holds, so the answer is an error event.
  await publish(c, "ha72g/prompt/set", LLAMA.repeat(300) + " Once upon a time");
  await waitFor(() => got.some((m) => m.topic === "ha72g/event"), 10_000, "the event");
  t.is(got.find((m) => m.topic === "ha72g/prompt")!.text, LLAMA.repeat(255), "255 whole llamas, no U+FFFD");
  t.like(got.find((m) => m.topic === "ha72g/event")!.json as object, { event_type: "error", code: "too_long" });
});
