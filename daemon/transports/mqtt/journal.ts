// Generation requests the MQTT transport has acknowledged to the broker but not yet answered,
// kept in a small file so that a daemon killed outright (power cut, OOM killer, SIGKILL) answers
// them after its restart: the broker will not deliver an acknowledged message again, so without
// this the request running at the moment of death would be lost. The file holds only requests in
// flight (bounded by the queue) and is replaced atomically (write, fsync, rename) on every change.
import fs from "node:fs";
import path from "node:path";
import type { TransactionId } from "../../serving/protocol.js";

/** Where an answer goes: an MQTT topic (with MQTT 5 correlation data) or Home Assistant's prompt entities. */
export type JournalRoute =
  | { kind: "mqtt"; topic: string; correlation?: string } // correlation: base64
  | { kind: "prompt"; prompt: string };

export interface JournalEntry {
  /** The MQTT client the request came from, as the transport keys its sessions (absent in old files). */
  client?: string;
  transaction: TransactionId;
  request: unknown;
  route: JournalRoute;
  /** ms since the epoch when it was first accepted. */
  at: number;
}

/** Two clients may use the same transaction: an entry is theirs by both. */
const keyOf = (client: string | undefined, transaction: TransactionId) => JSON.stringify([client ?? null, transaction]);

export class PendingJournal {
  private readonly entries = new Map<string, JournalEntry>();

  constructor(readonly file: string) {}

  /** What a previous run left unanswered; the file's entries stay pending until answered. */
  load(): { entries: JournalEntry[]; problem?: string } {
    const { json, problem } = readStateFile(this.file, "its requests are dropped");
    const list = Array.isArray(json) ? json.filter(isEntry) : [];
    for (const e of list) this.entries.set(keyOf(e.client, e.transaction), e);
    return { entries: list, ...(problem ? { problem } : {}) };
  }

  add(entry: JournalEntry): void {
    this.entries.set(keyOf(entry.client, entry.transaction), entry);
    this.write();
  }

  remove(client: string | undefined, transaction: TransactionId): void {
    if (this.entries.delete(keyOf(client, transaction))) this.write();
  }

  get size(): number {
    return this.entries.size;
  }

  private write(): void {
    writeFileAtomically(this.file, JSON.stringify([...this.entries.values()]));
  }
}

/** A state file's JSON: undefined when there is none yet, or with the problem when it cannot be read. */
export function readStateFile(file: string, consequence: string): { json?: unknown; problem?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? {} : { problem: `cannot read ${file} (${code})` };
  }
  try {
    return { json: JSON.parse(text) };
  } catch {
    return { problem: `${file} is not valid JSON; ${consequence}` };
  }
}

/** Replaces a file in the state directory so that a crash leaves the old or the new text, whole. */
export function writeFileAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  const fd = fs.openSync(tmp, "w", 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function isEntry(e: unknown): e is JournalEntry {
  if (typeof e !== "object" || e === null) return false;
  const x = e as Record<string, unknown>;
  const r = x.route as Record<string, unknown> | undefined;
  return (typeof x.transaction === "string" || typeof x.transaction === "number") && (x.client === undefined || typeof x.client === "string") && typeof x.at === "number" && typeof r === "object" && r !== null &&
    ((r.kind === "mqtt" && typeof r.topic === "string") || (r.kind === "prompt" && typeof r.prompt === "string"));
}
