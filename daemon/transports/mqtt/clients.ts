// MQTT clients as far as the daemon can tell them apart, each with its own router Session, so that
// two clients that pick the same transaction never collide and a cancel reaches only its sender's
// generations. The broker does not say who published a message, so a client is what its replies
// are addressed to: an MQTT 5 Response Topic, or — for requests without one (MQTT 3.1.1, Home
// Assistant's mqtt.publish) — the shared <base>/bridge/response/<op> family, or Home Assistant's
// prompt entity. A client's session lives while it has requests in flight.
import type { ReplyMessage, TransactionId } from "../../serving/protocol.js";
import { duplicateMessage, transactionOf } from "../../serving/protocol.js";
import type { Router, Session } from "../../serving/router.js";

/** Where the answer to one request goes. */
export type Route =
  | { kind: "mqtt"; topic: string; correlation?: Buffer; generation: boolean }
  | { kind: "prompt"; prompt: string; generation: true }; // from <base>/prompt/set (Home Assistant)

/** The client of requests without a response topic, and of Home Assistant's prompt entity. */
export const BRIDGE_CLIENT = "bridge";
export const PROMPT_CLIENT = "prompt";
export const replyClient = (responseTopic: string) => `reply:${responseTopic}`;

export interface ClientEvents {
  /** Every reply, addressed. */
  deliver(route: Route, message: ReplyMessage): void;
  /** A request with a transaction was taken on (before the router saw it). */
  accepted(client: string, transaction: TransactionId, raw: unknown, route: Route): void;
  /** Its final went out. */
  answered(client: string, transaction: TransactionId, route: Route): void;
}

interface Client {
  readonly key: string;
  readonly session: Session;
  readonly routes: Map<TransactionId, Route>;
  /** The route of the request being dispatched (for replies that carry no transaction). */
  current?: Route;
}

export class MqttClients {
  private readonly clients = new Map<string, Client>();

  constructor(
    private readonly router: Router,
    private readonly flow: { congested(): boolean; onceDrained(callback: () => void): void },
    private readonly on: ClientEvents,
  ) {}

  /** Hands a parsed request to its client's session; a transaction that client has in flight is refused. */
  dispatch(key: string, raw: unknown, route: Route): void {
    const client = this.client(key);
    const t = transactionOf(raw);
    if (t !== null) {
      if (client.routes.has(t)) {
        this.on.deliver(route, duplicateMessage(t));
        return this.closeIfIdle(client);
      }
      client.routes.set(t, route);
      this.on.accepted(key, t, raw, route);
    }
    const outer = client.current;
    client.current = route;
    try {
      client.session.handle(raw);
    } finally {
      client.current = outer;
    }
    this.closeIfIdle(client);
  }

  /** Cancels every generation of one client (Home Assistant's cancel button). */
  cancelAll(key: string): void {
    this.clients.get(key)?.session.cancel(undefined);
  }

  /** Generations in flight, over all clients. */
  generations(): number {
    let n = 0;
    for (const c of this.clients.values()) for (const r of c.routes.values()) if (r.generation) n++;
    return n;
  }

  /** The transport is closing: every session ends, its generations cancelled. */
  closeAll(): void {
    for (const c of this.clients.values()) c.session.close();
    this.clients.clear();
  }

  private client(key: string): Client {
    let c = this.clients.get(key);
    if (c) return c;
    const routes = new Map<TransactionId, Route>();
    const client: Client = {
      key,
      routes,
      session: this.router.openSession(
        { send: (m) => this.send(client, m), congested: () => this.flow.congested(), onceDrained: (cb) => this.flow.onceDrained(cb) },
        "mqtt",
      ),
    };
    this.clients.set(key, (c = client));
    return c;
  }

  /** A reply of the router: addressed by transaction, or to the request being dispatched. */
  private send(client: Client, m: ReplyMessage): void {
    const t = m.transaction;
    const route = (t !== null ? client.routes.get(t) : undefined) ?? client.current;
    if (!route) return;
    const final = "status" in m && t !== null && client.routes.get(t) === route;
    if (final) client.routes.delete(t);
    this.on.deliver(route, m);
    if (final) {
      this.on.answered(client.key, t, route);
      this.closeIfIdle(client);
    }
  }

  /** A client with nothing in flight has no session: the next request opens a new one. */
  private closeIfIdle(client: Client): void {
    queueMicrotask(() => {
      if (client.routes.size > 0 || client.session.inFlight() > 0 || this.clients.get(client.key) !== client) return;
      this.clients.delete(client.key);
      client.session.close();
    });
  }
}
