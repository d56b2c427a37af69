// `alpaca serve --mqtt-url …` as a user runs it: the real daemon process logs in to a real
// Mosquitto with a password read from a file, answers a prompt published by another client,
// says offline (retained) when SIGTERM stops it; MQTT mistakes are one line and exit code 2.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { STORIES, tempSocketPath } from "./helpers/daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { answersFor, closeClient, connectClient, publish, record, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { alpaca, start } from "./helpers/process.js";
import { CLI, needShared, testNeeding } from "./helpers/shared.js";

const need = () => needMosquitto() ?? needShared();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-74-"));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

testNeeding(test, need, "serve connects with the configured user and password file, answers over MQTT, says offline on SIGTERM", async (t) => {
  const broker = await Mosquitto.start({ users: { alpaca: "daemon-secret", kitchen: "client-secret" } });
  t.teardown(() => broker.dispose());
  const passwordFile = path.join(tmp, "mqtt-password");
  fs.writeFileSync(passwordFile, "daemon-secret\n", { mode: 0o600 });
  const daemon = start(t, process.execPath, [
    CLI, "serve", "-m", STORIES(), "--socket", tempSocketPath(), "--threads", "1", "--ctx", "256", "--parallel", "2",
    "--mqtt-url", broker.url, "--mqtt-username", "alpaca", "--mqtt-password-file", passwordFile,
    "--mqtt-base-topic", "alpaca74", "--mqtt-client-id", "d74", "--mqtt-home-assistant", "false",
  ], { env: { ...process.env, STATE_DIRECTORY: tmp } });

  const c = await connectClient(broker.url, { protocolVersion: 5, username: "kitchen", password: "client-secret" });
  t.teardown(() => closeClient(c));
  const got = record(c);
  await subscribe(c, ["alpaca74/bridge/response/generate", "alpaca74/bridge/state"]);
  await waitFor(() => got.some((m) => m.topic === "alpaca74/bridge/state" && m.text === "online"), 20_000, `the daemon online (stderr: ${daemon.stderr})`);
  await publish(c, "alpaca74/bridge/request/generate", JSON.stringify({ transaction: "k1", prompt: "Once upon a time", max_tokens: 12, temperature: 0 }));
  await waitFor(() => answersFor(got, "k1").finals.length > 0, 20_000, "the answer");
  const answer = answersFor(got, "k1", "alpaca74/bridge/response/generate");
  t.is(answer.finals.length, 1);
  t.is(answer.finals[0].status, "ok");
  t.true(answer.finals[0].data!.text.length > 0);
  t.is(answer.chunks.map((ch) => ch.delta).join(""), answer.finals[0].data!.text);
  t.regex(daemon.stderr, /mqtt: connected/);
  t.false(daemon.output.includes("daemon-secret"), "the password is never logged");

  daemon.signal("SIGTERM");
  t.deepEqual(await daemon.exited, { code: 0, signal: null }, daemon.stderr);
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(tmp, "mqtt-d74.pending.json"), "utf8")), [], "nothing left pending after a clean stop");
  await waitFor(() => got.some((m) => m.topic === "alpaca74/bridge/state" && m.text === "offline"), 5000, "offline after SIGTERM");
});

testNeeding(test, needShared, "MQTT mistakes in the configuration: one line, exit code 2, before the model loads", async (t) => {
  const serve = (...args: string[]) => alpaca(["serve", "-m", STORIES(), "--socket", tempSocketPath(), ...args], { timeoutMs: 20_000 });
  const missing = await serve("--mqtt-url", "mqtt://127.0.0.1:1", "--mqtt-password-file", path.join(tmp, "absent"));
  t.is(missing.code, 2, missing.stderr);
  t.regex(missing.stderr, /^alpaca: --mqtt-password-file \/ ALPACA_MQTT_PASSWORD_FILE: cannot read .*absent \(ENOENT\)\n$/);
  const scheme = await serve("--mqtt-url", "http://broker");
  t.is(scheme.code, 2);
  t.is(scheme.stderr, "alpaca: --mqtt-url must use mqtt: or mqtts:, got \"http://broker\"\n");
  const shared311 = await serve("--mqtt-url", "mqtt://127.0.0.1:1", "--mqtt-protocol", "3.1.1", "--mqtt-share-group", "pis");
  t.is(shared311.code, 2);
  t.regex(shared311.stderr, /needs MQTT 5/);
  const ownTopics = await serve("--mqtt-url", "mqtt://127.0.0.1:1", "--mqtt-response-topics", "alpaca/reply/#,alpaca/#");
  t.is(ownTopics.code, 2);
  t.regex(ownTopics.stderr, /^alpaca: --mqtt-response-topics \/ ALPACA_MQTT_RESPONSE_TOPICS: the MQTT response topic "alpaca\/#" covers the daemon's own topics under alpaca\/ .*\n$/);
  const longName = await serve("--mqtt-url", "mqtt://127.0.0.1:1", "--mqtt-device-name", "x".repeat(101));
  t.is(longName.code, 2);
  t.regex(longName.stderr, /^alpaca: --mqtt-device-name \/ ALPACA_MQTT_DEVICE_NAME: the Home Assistant device name must be 1 to 100 characters/);
});
