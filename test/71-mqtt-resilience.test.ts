// The MQTT transport when things go wrong: the broker restarts mid-generation, the daemon
// restarts while prompts wait in its session, the broker is not there at all, the password is
// wrong. The daemon never crashes, logs each state change once, and answers what it accepted.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import { answersFor, closeClient, connectClient, publish, record, sleep, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { freePort, Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const need = () => needMosquitto() ?? needShared();

const request = (transaction: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ transaction, prompt: "Once upon a time", max_tokens: 40, temperature: 0, ...extra });

testNeeding(test, need, "the broker stops mid-generation: the final answer arrives after it is back", async (t) => {
  const broker = await Mosquitto.start({ persistence: true });
  // 25 ms per step: 40 tokens take a second, the broker is away for 1.5 s of it and after.
  const d = await startMqttDaemon({ mqtt: { url: broker.url, baseTopic: "a71", clientId: "d71a", homeAssistant: null }, paceMs: 25 });
  // The client keeps its session too, so the broker holds the answer for it while it reconnects.
  const c = await connectClient(broker.url, { clientId: "c71a", clean: false, properties: { sessionExpiryInterval: 300 } });
  try {
    const got = record(c);
    await subscribe(c, "a71/reply/c71a");
    await publish(c, "a71/bridge/request/generate", request("restart"), {
      qos: 1,
      properties: { responseTopic: "a71/reply/c71a", correlationData: Buffer.from("r1") },
    });
    await waitFor(() => answersFor(got, "restart").chunks.length > 0, 5000, "the first chunk");
    await broker.stop();
    await sleep(1500);
    t.true(d.scheduler.stats().running === 0, "the generation ended while the broker was away");
    await broker.start();
    await waitFor(() => answersFor(got, "restart").finals.length > 0, 15_000, "the final answer");
    const a = answersFor(got, "restart");
    t.is(a.finals.length, 1);
    t.is(a.finals[0].status, "ok");
    t.true(a.chunks.length < 40, "chunks made while the broker was away were dropped, not queued");
    t.true(a.finals[0].data!.text.startsWith(a.chunks.map((x) => x.delta).join("").slice(0, 1)));
    t.deepEqual(a.messages[a.messages.length - 1].packet.properties?.correlationData, Buffer.from("r1"));
    t.is(d.logs.filter((l) => /lost the connection/.test(l)).length, 1, d.logs.join("\n"));
    t.true(d.logs.some((l) => /delivering 1 final answers held/.test(l)), d.logs.join("\n"));
    t.true(d.transport.connected);
  } finally {
    await closeClient(c);
    await d.stop();
    await broker.dispose();
  }
});

testNeeding(test, need, "prompts published while the daemon is stopped are answered when it starts, expired ones are not", async (t) => {
  const broker = await Mosquitto.start();
  const mqtt = { url: broker.url, baseTopic: "b71", clientId: "d71b", sessionExpiry: 300, homeAssistant: null };
  const first = await startMqttDaemon({ mqtt });
  await first.stop();
  const c = await connectClient(broker.url);
  try {
    const got = record(c);
    await subscribe(c, "b71/bridge/response/generate");
    await publish(c, "b71/bridge/request/generate", request("expired"), { qos: 1, properties: { messageExpiryInterval: 1 } });
    await sleep(2200);
    await publish(c, "b71/bridge/request/generate", request("waiting"), { qos: 1, properties: { messageExpiryInterval: 120 } });
    const second = await startMqttDaemon({ mqtt });
    try {
      await waitFor(() => answersFor(got, "waiting").finals.length > 0, 10_000, "the answer to the waiting prompt");
      t.is(answersFor(got, "waiting").finals[0].status, "ok");
      t.true(second.logs.some((l) => /session resumed/.test(l)), second.logs.join("\n"));
      await sleep(500);
      t.is(answersFor(got, "expired").messages.length, 0, "the expired prompt was not answered");
    } finally {
      await second.stop();
    }
  } finally {
    await closeClient(c);
    await broker.dispose();
  }
});

testNeeding(test, need, "no broker: the daemon retries with backoff, says so once, and connects when one appears", async (t) => {
  const port = await freePort();
  const d = await startMqttDaemon({
    mqtt: { url: `mqtt://127.0.0.1:${port}`, baseTopic: "c71", clientId: "d71c", homeAssistant: null },
    waitConnected: false,
  });
  let broker: Mosquitto | undefined;
  try {
    await sleep(1200);
    t.false(d.transport.connected);
    const down = d.logs.filter((l) => /cannot connect/.test(l));
    t.is(down.length, 1, d.logs.join("\n"));
    t.regex(down[0], /^warn: mqtt: cannot connect to mqtt:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*retrying with backoff/);
    // The router still answers (the Unix socket would serve meanwhile).
    t.is(d.router.busySessions(), 0);
    broker = await Mosquitto.start({ port });
    await d.transport.whenConnected(5000);
    t.true(d.logs.some((l) => /connected to/.test(l)));
  } finally {
    await d.stop();
    await broker?.dispose();
  }
});

testNeeding(test, need, "a password file and an ACL: a wrong password is logged once and retried; the right one works", async (t) => {
  const broker = await Mosquitto.start({
    users: { alpaca: "right horse battery", client: "client-pw" },
    acl: ["user alpaca", "topic readwrite d71/#", "topic readwrite homeassistant/#", "", "user client", "topic readwrite d71/#", ""].join("\n"),
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-pw-"));
  const good = path.join(dir, "good");
  fs.writeFileSync(good, "right horse battery\n", { mode: 0o600 });
  const wrong = await startMqttDaemon({
    mqtt: { url: broker.url, baseTopic: "d71", clientId: "d71-wrong", username: "alpaca", password: "wrong", homeAssistant: null },
    waitConnected: false,
  });
  try {
    await sleep(1500);
    t.false(wrong.transport.connected);
    const lines = wrong.logs.filter((l) => /cannot connect/.test(l));
    t.is(lines.length, 1, wrong.logs.join("\n"));
    t.regex(lines[0], /(Not authori[sz]ed|Bad User Name or Password).*check the MQTT username and password.*retrying with backoff/i);
    const attempts = broker.log().split("\n").filter((l) => /disconnected, not authori[sz]ed/i.test(l)).length;
    t.true(attempts >= 2, `retried (${attempts} attempts in the broker's log)`);
  } finally {
    await wrong.stop();
  }
  const right = await startMqttDaemon({
    mqtt: { url: broker.url, baseTopic: "d71", clientId: "d71-right", username: "alpaca", passwordFile: good, homeAssistant: null },
  });
  const c = await connectClient(broker.url, { username: "client", password: "client-pw" });
  try {
    const got = record(c);
    await subscribe(c, "d71/bridge/response/generate");
    await publish(c, "d71/bridge/request/generate", request("authed"));
    await waitFor(() => answersFor(got, "authed").finals.length > 0, 10_000, "the answer");
    t.is(answersFor(got, "authed").finals[0].status, "ok");
    t.false(right.logs.some((l) => /refused|cannot/.test(l)), right.logs.join("\n"));
  } finally {
    await closeClient(c);
    await right.stop();
    await broker.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
