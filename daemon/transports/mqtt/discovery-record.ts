// The Home Assistant discovery configs this daemon has published, kept in its state directory.
// Clearing a config means publishing an empty retained message on its topic; the daemon does that
// only for topics on this list, so that a changed base topic, a renamed entity or discovery turned
// off removes exactly what this daemon left behind, and nothing anyone else published.
import fs from "node:fs";
import { writeFileAtomically } from "./journal.js";

export class DiscoveryRecord {
  constructor(readonly file: string) {}

  /** The topics published and not yet cleared; a missing or unreadable file is an empty list. */
  load(): { topics: string[]; problem?: string } {
    let text: string;
    try {
      text = fs.readFileSync(this.file, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return code === "ENOENT" ? { topics: [] } : { topics: [], problem: `cannot read ${this.file} (${code})` };
    }
    try {
      const parsed = JSON.parse(text) as { topics?: unknown };
      const topics = Array.isArray(parsed.topics) ? parsed.topics.filter((t): t is string => typeof t === "string" && t !== "") : [];
      return { topics };
    } catch {
      return { topics: [], problem: `${this.file} is not valid JSON; the discovery configs it listed are not cleared` };
    }
  }

  save(topics: Iterable<string>): void {
    writeFileAtomically(this.file, JSON.stringify({ topics: [...new Set(topics)].sort() }));
  }
}
