// A daemon for the protocol fuzzer and the soak run: the real engine, scheduler and router behind
// the Unix socket and (given a broker URL) the MQTT transport, in a process of its own so that its
// memory is measured apart from the client's. Prints "ready" on stdout; SIGUSR2 runs a full GC
// (started with --expose-gc) so RSS is read without garbage; SIGTERM stops it cleanly.
// ALPACA_PACE_MS adds that many milliseconds to every engine step, so that a generation is still
// running when a test kills the daemon however loaded the machine is.
// Usage: node --expose-gc bench/protocol-daemon.mjs MODEL SOCKET [MQTT_URL BASE_TOPIC [STATE_DIR]]
import { openModel } from "../dist/daemon/engine/engine.js";
import { createLogger } from "../dist/daemon/log.js";
import { Router } from "../dist/daemon/serving/router.js";
import { Scheduler } from "../dist/daemon/serving/scheduler.js";
import { MqttTransport } from "../dist/daemon/transports/mqtt/transport.js";
import { SocketTransport } from "../dist/daemon/transports/socket.js";
import { paced } from "../dist/test/helpers/mqtt-daemon.js";

const [modelPath, socketPath, mqttUrl, baseTopic, stateDir] = process.argv.slice(2);
const log = createLogger(process.env.ALPACA_LOG_LEVEL ?? "warn");
const model = paced(openModel(modelPath, { nCtx: 128, nSeq: 4, threads: 1 }), Number(process.env.ALPACA_PACE_MS ?? 0));
const scheduler = new Scheduler(model, { maxQueue: 64 });
const router = new Router({ model, scheduler, version: "bench", log });
const socket = new SocketTransport(router, { path: socketPath, log });
const mqtt = mqttUrl
  ? new MqttTransport(router, { url: mqttUrl, baseTopic, clientId: `${baseTopic}-daemon`, statsInterval: 0, reconnectMinMs: 100, reconnectMaxMs: 1000, stateDir: stateDir ?? null }, { version: "bench", log })
  : null;
scheduler.start();
await socket.start();
if (mqtt) {
  mqtt.start();
  await mqtt.whenConnected();
}
process.on("SIGUSR2", () => globalThis.gc?.());
process.on("SIGTERM", async () => {
  mqtt?.stopListening();
  router.stopAccepting();
  await socket.stopListening();
  await scheduler.stop(0);
  await Promise.all([socket.close(1000), mqtt?.close(1000)]);
  model.close();
  process.exit(0);
});
process.stdout.write("ready\n");

