// One step's engine batch from the scheduler's parts (scheduler.ts): which tokens of which
// sequence go in, at which positions, and which rows of logits come back.
import type { Batch } from "../engine/engine.js";
import type { Part, Slot } from "./scheduler-types.js";

/**
 * The engine's batch for one step. batch: [nTokens] token, position, sequence, wants-logits; a
 * part's tokens are its pending ones, then its draft; logits for the last pending token and for
 * every drafted one.
 */
export function batchOf(parts: Part[], slots: Slot[]): Batch {
  const total = parts.reduce((a, p) => a + p.n, 0);
  const batch: Batch = {
    tokens: new Int32Array(total),
    positions: new Int32Array(total),
    seqs: new Int32Array(total),
    logits: new Uint8Array(total),
  };
  let k = 0;
  for (const p of parts) {
    const start = slots[p.r.slot].cached.length;
    const fed = p.draft.length ? p.r.pending.concat(p.draft) : p.r.pending;
    for (let j = 0; j < p.n; j++, k++) {
      batch.tokens[k] = fed[j];
      batch.positions[k] = start + j;
      batch.seqs[k] = p.r.slot;
    }
    if (p.logits) batch.logits.fill(1, k - 1 - p.draft.length, k);
  }
  return batch;
}
