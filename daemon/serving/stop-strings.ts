// Stop strings for streamed generation (docs/protocol.md, `stop`).

/**
 * Passes generated text through, holding back any tail that could be the start of a stop string
 * so that a client never sees part of one. When a stop string appears, the text before it is the
 * last output.
 */
export class StopStringFilter {
  private held = "";

  constructor(private readonly stops: string[]) {}

  push(text: string): { emit: string; stopped: boolean } {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buf = this.held + text;
    // Earliest stop string in the buffer: none can start in text already emitted, since any
    // such start would have been held back.
    let at = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = "";
      return { emit: buf.slice(0, at), stopped: true };
    }
    const keep = this.partialStopTail(buf);
    this.held = buf.slice(buf.length - keep);
    return { emit: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** Whatever is held back plus the last text, at the end of generation. */
  flush(text = ""): string {
    const r = this.push(text);
    if (r.stopped) return r.emit;
    const rest = this.held;
    this.held = "";
    return r.emit + rest;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private partialStopTail(buf: string): number {
    let best = 0;
    for (const s of this.stops)
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--)
        if (buf.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
    return best;
  }
}
