// Stopping with clients still connected: an idle client that keeps its end of the socket open is
// ended at once, a busy one right after its final message; stopping never waits on a client.
import test from "ava";
import net from "node:net";
import { startDaemon, waitFor } from "./helpers/daemon.js";
import { scaled } from "./helpers/process.js";
import { needShared, testNeeding } from "./helpers/shared.js";

/** A client that never closes its side: only the daemon can end this connection. */
function halfOpenClient(socketPath: string): Promise<{ socket: net.Socket; lines: () => unknown[]; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: socketPath, allowHalfOpen: true });
    let buffer = "";
    socket.on("data", (b) => (buffer += b.toString()));
    const ended = new Promise<void>((r) => socket.once("end", () => r()));
    socket.once("error", reject);
    socket.once("connect", () =>
      resolve({
        socket,
        lines: () => buffer.split("\n").filter(Boolean).map((l) => JSON.parse(l) as unknown),
        ended,
      }),
    );
  });
}

// No fallback timer may finish the job: the connections get an hour before they would be destroyed.
const AN_HOUR = 3600 * 1000;

testNeeding(test, needShared, "close ends an idle client that keeps its end open, without waiting for it", async (t) => {
  t.timeout(scaled(60_000));
  const d = await startDaemon();
  const idle = await halfOpenClient(d.socketPath);
  d.server.router.stopAccepting();
  await d.server.scheduler.stop(0);
  await d.server.socket.close(AN_HOUR);
  await idle.ended;
  t.deepEqual(idle.lines(), []);
  idle.socket.destroy();
  d.server.model.close();
});

testNeeding(test, needShared, "stop answers a busy client's generation, then ends it; an idle one is ended at once", async (t) => {
  t.timeout(scaled(60_000));
  const d = await startDaemon();
  const idle = await halfOpenClient(d.socketPath);
  const busy = await halfOpenClient(d.socketPath);
  busy.socket.write(JSON.stringify({ op: "generate", transaction: "g", prompt: "Once upon a time", max_tokens: 100, temperature: 0 }) + "\n");
  await waitFor(() => busy.lines().length > 0, 10_000, "the first chunk");
  const stopped = d.server.stop(AN_HOUR); // the generation may run to its end
  await idle.ended;
  await busy.ended;
  await stopped;
  const finals = busy.lines().filter((m) => typeof m === "object" && m !== null && "status" in m);
  t.is(finals.length, 1);
  t.like(finals[0], { status: "ok", transaction: "g", data: { stop_reason: "length" } });
  t.deepEqual(idle.lines(), []);
  idle.socket.destroy();
  busy.socket.destroy();
});
