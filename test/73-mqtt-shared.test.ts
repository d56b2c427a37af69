// Scale-out: two daemons behind one broker share generate requests through an MQTT 5 shared
// subscription ($share/<group>/<base>/bridge/request/generate); each request is answered once.
import test from "ava";
import { answersFor, closeClient, connectClient, publish, record, sleep, startMqttDaemon, subscribe, waitFor } from "./helpers/mqtt-daemon.js";
import { Mosquitto, needMosquitto } from "./helpers/mosquitto.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const need = () => needMosquitto() ?? needShared();

testNeeding(test, need, "two daemons sharing a subscription: 20 requests, each answered exactly once, both daemons used", async (t) => {
  const broker = await Mosquitto.start();
  const mqtt = { url: broker.url, baseTopic: "pool73", shareGroup: "workers", homeAssistant: null };
  const a = await startMqttDaemon({ mqtt: { ...mqtt, clientId: "worker-a" }, paceMs: 5 });
  const b = await startMqttDaemon({ mqtt: { ...mqtt, clientId: "worker-b" }, paceMs: 5 });
  const c = await connectClient(broker.url);
  try {
    const got = record(c);
    await subscribe(c, "pool73/bridge/response/+");
    const ids = Array.from({ length: 20 }, (_, i) => `shared-${i}`);
    for (const id of ids)
      await publish(c, "pool73/bridge/request/generate", JSON.stringify({ transaction: id, prompt: "Lily went", max_tokens: 12, temperature: 0 }));
    await waitFor(() => ids.every((id) => answersFor(got, id).finals.length > 0), 30_000, "20 answers");
    await sleep(300); // a duplicate would arrive by now
    for (const id of ids) {
      const x = answersFor(got, id);
      t.is(x.finals.length, 1, `${id} answered once`);
      t.is(x.finals[0].status, "ok", id);
    }
    const served = [a, b].map((d) => d.scheduler.stats().totals.requests);
    t.is(served[0] + served[1], 20, `served ${served.join(" + ")}`);
    t.true(served[0] > 0 && served[1] > 0, `both daemons used (${served.join(" + ")})`);

    // A prompt written to prompt/set (Home Assistant's text entity) is shared too: it runs once.
    await publish(c, "pool73/prompt/set", "Lily went");
    await waitFor(() => a.scheduler.stats().totals.requests + b.scheduler.stats().totals.requests === 21, 10_000, "the prompt run");
    await sleep(300); // a second run would have started by now
    t.is(a.scheduler.stats().totals.requests + b.scheduler.stats().totals.requests, 21, "prompt/set ran on one daemon only");

    // status is not shared: every daemon answers for itself.
    await publish(c, "pool73/bridge/request/status", JSON.stringify({ transaction: "who" }));
    await waitFor(() => answersFor(got, "who").finals.length >= 2, 5000, "two status answers");
    t.is(answersFor(got, "who").finals.length, 2);
  } finally {
    await closeClient(c);
    await a.stop();
    await b.stop();
    await broker.dispose();
  }
});
