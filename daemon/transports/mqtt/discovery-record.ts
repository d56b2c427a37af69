// The Home Assistant discovery configs this daemon has published, kept in its state directory.
// Clearing a config means publishing an empty retained message on its topic; the daemon does that
// only for topics on this list, so that a changed base topic, a renamed entity or discovery turned
// off removes exactly what this daemon left behind, and nothing anyone else published.
import { readStateFile, writeFileAtomically } from "./journal.js";

export class DiscoveryRecord {
  constructor(readonly file: string) {}

  /** The topics published and not yet cleared; a missing or unreadable file is an empty list. */
  load(): { topics: string[]; problem?: string } {
    const { json, problem } = readStateFile(this.file, "the discovery configs it listed are not cleared");
    const listed = (json as { topics?: unknown } | undefined)?.topics;
    const topics = Array.isArray(listed) ? listed.filter((t): t is string => typeof t === "string" && t !== "") : [];
    return { topics, ...(problem ? { problem } : {}) };
  }

  save(topics: Iterable<string>): void {
    writeFileAtomically(this.file, JSON.stringify({ topics: [...new Set(topics)].sort() }));
  }
}
