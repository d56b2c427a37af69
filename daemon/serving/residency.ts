// The residency split of the memory plan: when the whole file cannot stay in RAM beside the KV
// cache, scratch and the process, how many layers stay (mlock'd when permitted) and how many
// stream from storage on every pass (native/model/residency.cc reads them ahead and releases them).
//
// What the cgroup charges: the page cache of the mapped file counts against the memory limit
// (cgroup v1 and v2 alike), so every weight page in RAM is a cost: the layers kept, the output
// matrix (read whole every pass), the pages of the embedding table's rows in use (one row per
// token, the rest is never read: the engine reads that table without read-ahead), and the stream
// window: the streamed layer computing plus the one being read ahead. That window is why
// streaming needs room for at least two layers, and why streaming one or two layers saves
// nothing: the window costs as much as keeping them.
import type { ModelShape } from "./memory.js";

export interface ResidencyModel extends ModelShape {
  weightBytes: number;
  /** Bytes of all blk.* tensors; estimated from the shape when unknown. */
  layerBytes?: number;
  /** token_embd.weight; estimated when unknown. */
  embeddingBytes?: number;
  /** output.weight; 0 = tied embeddings (the table is then read whole every pass); estimated when unknown. */
  outputBytes?: number;
}

export interface ResidencySplit {
  /** "resident": every layer stays; "streaming": streamLayers are read from storage every pass. */
  mode: "resident" | "streaming";
  nLayer: number;
  /** Layers kept in RAM (mlock'd when `lock`). */
  keptLayers: number;
  streamLayers: number;
  /** Bytes of one layer (the average). */
  layerBytes: number;
  /** Weight bytes kept in RAM: kept layers, output matrix and norms, embedding rows in use. */
  residentBytes: number;
  /** Of those, what mlock pins (kept layers, output matrix): 0 when locking is not permitted. */
  lockedBytes: number;
  /** Read from storage on every pass (a decode step): streamLayers × layerBytes. */
  streamedBytes: number;
  /** Streamed bytes in RAM at once: min(streamLayers, 2) layers. */
  windowBytes: number;
  /** Whether the engine is asked to mlock. */
  lock: boolean;
}

/** Where a model's weight bytes are: the layer stack, the embedding table, the output and the rest. */
export function weightLayout(m: ResidencyModel) {
  const q = m.nHead * m.headDim, kv = m.nHeadKv * m.headDim;
  const perLayerParams = 2 * m.nEmbd * q + 2 * m.nEmbd * kv + 3 * m.nEmbd * m.nFf + 2 * m.nEmbd;
  const tableParams = m.nVocab * m.nEmbd;
  const estimated = m.layerBytes === undefined || m.embeddingBytes === undefined || m.outputBytes === undefined;
  // Unknown: spread the file's bytes over the parameters evenly (an untied LLaMA).
  const perParam = m.weightBytes / (m.nLayer * perLayerParams + 2 * tableParams + m.nEmbd);
  const layers = estimated ? perParam * perLayerParams * m.nLayer : m.layerBytes!;
  const embedding = estimated ? perParam * tableParams : m.embeddingBytes!;
  const output = estimated ? perParam * tableParams : m.outputBytes!;
  const tied = output === 0;
  const other = Math.max(0, m.weightBytes - layers - embedding - output); // norms, rope factors
  const embeddingRowBytes = embedding / m.nVocab;
  return { layers, embedding, output, other, tied, embeddingRowBytes };
}

/** The unit the page cache reads and charges (4 KiB on x86-64 and on the Pi 4's arm64 kernel). */
export const PAGE_BYTES = 4096;

/**
 * Charged whatever streams: the output matrix and norms (locked), and of the embedding table
 * the pages of the rows in use (a row starts anywhere in a page: it touches its own pages and at
 * most one more), unless it is tied and so read whole as the output.
 */
function fixedBytes(w: ReturnType<typeof weightLayout>, tokensInUse: number): { fixed: number; locked: number } {
  const locked = w.output + w.other + (w.tied ? w.embedding : 0);
  const rowPages = (Math.ceil(w.embeddingRowBytes / PAGE_BYTES) + 1) * PAGE_BYTES;
  return { fixed: locked + (w.tied ? 0 : Math.min(w.embedding, tokensInUse * rowPages)), locked };
}

/**
 * The fewest streamed layers whose charged bytes fit in `room` (the budget less KV, scratch and
 * process), or null when not even the two-layer stream window fits. `tokensInUse` bounds the
 * embedding rows that are read (context × sequences).
 */
export function splitLayers(m: ResidencyModel, room: number, tokensInUse: number, lockPermitted: boolean): ResidencySplit | null {
  const w = weightLayout(m);
  const layer = w.layers / m.nLayer;
  const { fixed, locked } = fixedBytes(w, tokensInUse);
  for (let s = 0; s <= m.nLayer; s++) {
    const kept = m.nLayer - s;
    const window = Math.min(s, 2) * layer;
    if (fixed + kept * layer + window > room) continue;
    return {
      mode: s === 0 ? "resident" : "streaming",
      nLayer: m.nLayer,
      keptLayers: kept,
      streamLayers: s,
      layerBytes: layer,
      residentBytes: fixed + kept * layer,
      lockedBytes: lockPermitted ? locked + kept * layer : 0,
      streamedBytes: s * layer,
      windowBytes: window,
      lock: lockPermitted,
    };
  }
  return null;
}

/** Every layer resident: what the cgroup is charged for the weights when none streams. */
export function allResident(m: ResidencyModel, tokensInUse: number, lockPermitted: boolean): ResidencySplit {
  const w = weightLayout(m);
  const { fixed, locked } = fixedBytes(w, tokensInUse);
  return {
    mode: "resident", nLayer: m.nLayer, keptLayers: m.nLayer, streamLayers: 0, layerBytes: w.layers / m.nLayer,
    residentBytes: fixed + w.layers, lockedBytes: lockPermitted ? locked + w.layers : 0,
    streamedBytes: 0, windowBytes: 0, lock: lockPermitted,
  };
}
