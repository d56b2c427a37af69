// What the daemon sends while the broker may be away: a stream chunk goes now or never (the final
// carries the whole text anyway); a final answer goes now or waits, bounded in count and bytes,
// for the broker to come back, and is dropped when its message expiry passes meanwhile.
import type { Logger } from "../../log.js";
import type { MqttConnection, PublishOptions } from "./connection.js";

export interface Held extends PublishOptions {
  topic: string;
  payload: string;
  /** ms since the epoch when it was made (its expiry counts from then). */
  at: number;
}

export interface OutboxLimits {
  maxPendingFinals: number;
  maxPendingBytes: number;
}

export class Outbox {
  private held: Held[] = [];
  private heldBytes = 0;
  private droppedThisOutage = 0;
  readonly counters = { droppedChunks: 0, droppedFinals: 0 };

  constructor(
    private readonly connection: MqttConnection,
    private readonly limits: OutboxLimits,
    private readonly log: Logger,
  ) {}

  get pending(): number {
    return this.held.length;
  }

  /** A stream chunk: never held. */
  chunk(topic: string, payload: string, o: PublishOptions): void {
    if (!this.connection.connected) return void this.counters.droppedChunks++;
    this.connection.publish(topic, payload, o);
  }

  /** A final answer goes out now, or waits (bounded) for the broker to come back. */
  final(h: Held): void {
    if (this.connection.connected) return this.publishHeld(h);
    this.held.push(h);
    this.heldBytes += h.payload.length;
    while (this.held.length > this.limits.maxPendingFinals || this.heldBytes > this.limits.maxPendingBytes) {
      const dropped = this.held.shift()!;
      this.heldBytes -= dropped.payload.length;
      this.counters.droppedFinals++;
      if (this.droppedThisOutage++ === 0)
        this.log.warn(`mqtt: more final answers than the ${this.limits.maxPendingFinals} held while the broker is away; dropping the oldest`);
    }
  }

  /** Connected again: what waited goes out, less what expired meanwhile. */
  deliverHeld(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    if (held.length || this.droppedThisOutage)
      this.log.info(`mqtt: delivering ${held.length} final answers held while the broker was away${this.droppedThisOutage ? `, ${this.droppedThisOutage} dropped` : ""}`);
    this.droppedThisOutage = 0;
    for (const h of held) this.publishHeld(h);
  }

  private publishHeld(h: Held): void {
    let expiry = h.expiry;
    if (expiry !== undefined) {
      expiry -= Math.floor((Date.now() - h.at) / 1000);
      if (expiry <= 0) return void this.counters.droppedFinals++;
    }
    this.connection.publish(h.topic, h.payload, { qos: h.qos, retain: h.retain, expiry, correlation: h.correlation });
  }
}
