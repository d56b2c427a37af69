// docs/examples/mosquitto.acl, exactly as shipped, on a real Mosquitto with a password file: two
// daemons log in as "alpaca" and share generate requests; every flow docs/mqtt.md documents runs as
// the user it names — its mosquitto_rr / mosquitto_sub / mosquitto_pub commands as written, Home
// Assistant's entities, mqtt.publish and deleting an entity, shared subscriptions — and works; what
// the ACL denies (a client writing the daemon's state, reading another user's replies, faking
// answers or discovery configs) is denied.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import type { ExecutionContext, TestFn } from "ava";
import { ENTITIES } from "../daemon/transports/mqtt/homeassistant.js";
import type { MqttDaemon, Received } from "./helpers/mqtt-daemon.js";
import { answersFor, closeClient, connectClient, publish, record, sleep, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { Mosquitto, needMosquitto, needMosquittoClients } from "./helpers/mosquitto.js";
import { start } from "./helpers/process.js";
import { needShared, ROOT, testNeeding } from "./helpers/shared.js";

const need = () => needMosquitto() ?? needMosquittoClients() ?? needShared();
const serial = test.serial as unknown as TestFn;

const ACL = fs.readFileSync(path.join(ROOT, "docs", "examples", "mosquitto.acl"), "utf8");
const PASSWORDS: Record<string, string> = { alpaca: "daemon-pw", homeassistant: "ha-pw", kitchen: "kitchen-pw", nodered: "nodered-pw" };

let broker: Mosquitto | undefined;
let daemons: MqttDaemon[] = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-76-"));

test.before(async () => {
  if (need()) return;
  broker = await Mosquitto.start({ users: PASSWORDS, acl: ACL });
  const passwordFile = path.join(dir, "mqtt-password");
  fs.writeFileSync(passwordFile, `${PASSWORDS.alpaca}\n`, { mode: 0o600 });
  for (const name of ["a", "b"])
    daemons.push(
      await startMqttDaemon({
        mqtt: { url: broker.url, clientId: `pi-${name}`, username: "alpaca", passwordFile, shareGroup: "pis", homeAssistant: {}, stateDir: path.join(dir, name) },
        paceMs: 10,
      }),
    );
});

test.after.always(async () => {
  for (const d of daemons) await d.stop();
  await broker?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function as(t: ExecutionContext, user: string, protocolVersion: 4 | 5 = 5) {
  const c = await connectClient(broker!.url, { username: user, password: PASSWORDS[user], protocolVersion });
  t.teardown(() => closeClient(c));
  return { c, got: record(c) };
}

const denied = { message: /Not authorized/ };
const requests = () => daemons.map((d) => d.scheduler.stats().totals.requests);

// ─── The documented commands, as written ───────────────────────────────────────────────────────

/** The shell blocks of a doc: each a list of commands (continuation lines joined). */
function shellBlocks(file: string): string[][] {
  const text = fs.readFileSync(path.join(ROOT, "docs", file), "utf8");
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1].replace(/\\\n\s*/g, "").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")),
  );
}

interface Ran {
  command: string;
  stdout: string;
  stop(): void;
  exited: Promise<number | null>;
}

/** Runs a documented command against the test's broker, as the user it names, with that user's password. */
function run(t: ExecutionContext, command: string): Ran {
  const user = /-u (\S+)/.exec(command)?.[1] ?? "";
  const line = command.replace(/&$/, "").replaceAll("broker.lan", `127.0.0.1 -p ${broker!.port}`);
  const p = start(t, "bash", ["-c", `exec ${line}`], { env: { ...process.env, MQTT_PASSWORD: PASSWORDS[user] ?? "" } });
  return { command, get stdout() { return p.output; }, stop: () => p.signal("SIGTERM"), exited: p.exited.then((e) => e.code) };
}

const lines = (out: string) => out.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, any>);

testNeeding(serial, need, "docs/mqtt.md's mosquitto commands, run as written by the users they name, get their answers", async (t) => {
  const blocks = shellBlocks("mqtt.md").filter((b) => b.some((c) => c.startsWith("mosquitto_")));
  t.deepEqual(blocks.map((b) => b.map((c) => c.split(" ")[0])), [["mosquitto_rr"], ["mosquitto_sub", "mosquitto_pub"]], "the commands this test knows how to check");

  const [rr] = blocks[0].map((c) => run(t, c));
  t.is(await rr.exited, 0, rr.stdout);
  const [answer] = lines(rr.stdout);
  t.like(answer, { status: "ok", data: { stop_reason: "length", usage: { completion_tokens: 32 } } }, rr.stdout);
  t.true(answer.data.text.length > 0);
  t.log(`mosquitto_rr printed: ${rr.stdout.trim().slice(0, 200)}…`);

  const [sub, pub] = blocks[1];
  const connected = () => broker!.log().split("\n").filter((l) => /New client connected .* u'nodered'/.test(l)).length;
  const before = connected();
  const subscriber = run(t, sub);
  await waitFor(() => connected() > before, 5000, "mosquitto_sub connected");
  await sleep(1000); // and subscribed (the broker logs the connection, not the subscription)
  const publisher = run(t, pub);
  t.is(await publisher.exited, 0, publisher.stdout);
  await waitFor(() => subscriber.stdout.includes('"status":"ok"'), 15_000, `the final on mosquitto_sub's output (${subscriber.stdout})`);
  subscriber.stop();
  const got = lines(subscriber.stdout).filter((m) => m.transaction === "kitchen-42");
  const finals = got.filter((m) => m.status);
  t.is(finals.length, 1);
  t.true(got.length > 2, "chunks before the final");
  t.is(got.filter((m) => !m.status).map((m) => m.delta).join(""), finals[0].data.text);
});

// ─── Home Assistant ──────────────────────────────────────────────────────────────────────────

testNeeding(serial, need, "Home Assistant's user: discovery, its birth message, prompt, response, event, cancel, mqtt.publish, deleting an entity", async (t) => {
  const ha = await as(t, "homeassistant", 4);
  await subscribe(ha.c, ["homeassistant/#", "alpaca/bridge/state", "alpaca/bridge/info", "alpaca/bridge/stats", "alpaca/prompt", "alpaca/response", "alpaca/event", "alpaca/bridge/response/generate"]);
  const configs = () => ha.got.filter((m) => /^homeassistant\/[^/]+\/alpaca\/[^/]+\/config$/.test(m.topic) && m.text !== "");
  const has = (topic: string) => ha.got.some((m) => m.topic === topic);
  await waitFor(() => configs().length >= ENTITIES.length && has("alpaca/bridge/state") && has("alpaca/bridge/info"), 5000, "the discovery configs, state and info");
  t.true(configs().every((m) => m.packet.retain));
  t.is(ha.got.find((m) => m.topic === "alpaca/bridge/state")!.text, "online");

  const before = configs().length;
  await publish(ha.c, "homeassistant/status", "online");
  await waitFor(() => configs().length >= before + ENTITIES.length, 5000, "configs again after the birth message");

  await publish(ha.c, "alpaca/prompt/set", "Once upon a time");
  await waitFor(() => ha.got.some((m) => m.topic === "alpaca/event"), 15_000, "the completion event");
  await waitFor(() => ha.got.some((m) => m.topic === "alpaca/response"), 5000, "the response sensor");
  t.like(ha.got.find((m) => m.topic === "alpaca/event")!.json as object, { event_type: "completed" });
  t.is(ha.got.find((m) => m.topic === "alpaca/prompt")!.text, "Once upon a time");

  await publish(ha.c, "alpaca/prompt/set", "Tom had a red ball");
  await waitFor(() => ha.got.some((m) => m.topic === "alpaca/bridge/stats" && (m.json as { busy: boolean }).busy), 5000, "busy");
  await publish(ha.c, "alpaca/cancel", "cancel");
  await waitFor(() => ha.got.filter((m) => m.topic === "alpaca/event").length >= 2, 15_000, "the second event");
  const second = ha.got.filter((m) => m.topic === "alpaca/event")[1].json as Record<string, unknown>;
  t.true(second.stop_reason === "cancelled" || second.code === "cancelled", JSON.stringify(second));

  // mqtt.publish of a request with its own settings (Home Assistant cannot set MQTT 5 properties).
  await publish(ha.c, "alpaca/bridge/request/generate", JSON.stringify({ transaction: "ha-1", prompt: "Lily", max_tokens: 8 }));
  await waitFor(() => answersFor(ha.got, "ha-1").finals.length > 0, 10_000, "the answer on bridge/response/generate");
  t.like(answersFor(ha.got, "ha-1").finals[0], { status: "ok" });

  // Deleting an entity: Home Assistant publishes an empty retained config.
  await publish(ha.c, "homeassistant/sensor/alpaca/tokens_per_second/config", "", { qos: 1, retain: true });
  const probe = await as(t, "homeassistant");
  await subscribe(probe.c, "homeassistant/sensor/alpaca/+/config");
  await sleep(300);
  t.false(probe.got.some((m) => m.topic.endsWith("/tokens_per_second/config") && m.text !== ""), "the entity's config is gone");
  t.true(probe.got.some((m) => m.topic.endsWith("/response/config") && m.text !== ""), "the others stay");
});

// ─── Several daemons ─────────────────────────────────────────────────────────────────────────

testNeeding(serial, need, "shared subscriptions as the daemon's user: each request answered once, both daemons used", async (t) => {
  const kitchen = await as(t, "kitchen");
  await subscribe(kitchen.c, "alpaca/reply/kitchen/pool");
  const start = requests();
  const ids = Array.from({ length: 12 }, (_, i) => `pool-${i}`);
  for (const id of ids)
    await publish(kitchen.c, "alpaca/bridge/request/generate", JSON.stringify({ transaction: id, prompt: "Lily went", max_tokens: 8, temperature: 0 }), {
      qos: 1,
      properties: { responseTopic: "alpaca/reply/kitchen/pool" },
    });
  await waitFor(() => ids.every((id) => answersFor(kitchen.got, id).finals.length > 0), 20_000, "12 answers");
  await sleep(300);
  for (const id of ids) t.is(answersFor(kitchen.got, id).finals.length, 1, id);
  const served = requests().map((n, i) => n - start[i]);
  t.is(served[0] + served[1], 12);
  t.true(served[0] > 0 && served[1] > 0, `both daemons used (${served.join(" + ")})`);
});

// ─── What is denied ──────────────────────────────────────────────────────────────────────────

testNeeding(serial, need, "denied: writing the daemon's topics, faking answers or configs, reading another user's replies", async (t) => {
  const kitchen = await as(t, "kitchen");
  const nodered = await as(t, "nodered");
  const ha = await as(t, "homeassistant");
  const start = requests();
  await t.throwsAsync(publish(kitchen.c, "alpaca/bridge/state", "offline", { qos: 1, retain: true }), denied, "a client writing bridge/state");
  await t.throwsAsync(publish(ha.c, "alpaca/bridge/state", "offline", { qos: 1, retain: true }), denied, "Home Assistant writing bridge/state");
  await t.throwsAsync(publish(kitchen.c, "alpaca/prompt/set", "Once upon a time"), denied, "a client using Home Assistant's prompt");
  await t.throwsAsync(publish(kitchen.c, "homeassistant/sensor/alpaca/evil/config", "{}", { qos: 1, retain: true }), denied, "a client writing discovery");
  await t.throwsAsync(publish(kitchen.c, "alpaca/reply/nodered/1", '{"status":"ok"}'), denied, "a client faking another's answer");
  await t.throwsAsync(publish(nodered.c, "alpaca/bridge/response/generate", '{"status":"ok","transaction":"x"}'), denied, "a client faking a bridge answer");

  // nodered asks over MQTT 5 with its own reply topic; kitchen listens there and on the bridge.
  await subscribe(kitchen.c, ["alpaca/reply/nodered/#", "alpaca/reply/+/#", "alpaca/bridge/response/+"]);
  await subscribe(nodered.c, "alpaca/reply/nodered/1");
  await publish(nodered.c, "alpaca/bridge/request/generate", JSON.stringify({ transaction: "private", prompt: "Lily", max_tokens: 8 }), {
    qos: 1,
    properties: { responseTopic: "alpaca/reply/nodered/1" },
  });
  await publish(nodered.c, "alpaca/bridge/request/status", "");
  await waitFor(() => answersFor(nodered.got, "private").finals.length > 0, 10_000, "nodered's answer");
  await sleep(500);
  t.deepEqual(kitchen.got.map((m: Received) => m.topic), [], "kitchen read none of nodered's replies, nor the bridge's");
  const state = await as(t, "homeassistant");
  await subscribe(state.c, "alpaca/bridge/state");
  await waitFor(() => state.got.length > 0, 2000, "the retained state");
  t.is(state.got[0].text, "online", "bridge/state is still the daemon's");
  t.is(requests()[0] + requests()[1] - start[0] - start[1], 1, "only nodered's generate ran");
});

testNeeding(serial, need, "the daemons' own subscriptions and publishes were all granted", (t) => {
  for (const d of daemons) {
    const trouble = d.logs.filter((l) => /refused|cannot|failed|Not authorized|warn:/i.test(l));
    t.deepEqual(trouble, [], d.logs.join("\n"));
    t.true(d.logs.some((l) => /mqtt: connected/.test(l)));
  }
});
