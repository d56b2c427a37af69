// Which MQTT 5 Response Topics a request may name. The daemon publishes every reply there with its
// own rights, so a topic is accepted only when the configured allow list (mqttResponseTopics,
// default <base>/reply/#) covers it, and never when it could make the daemon act on itself or on
// Home Assistant: a wildcard, a $ topic, the daemon's own topics, anything under the discovery
// prefix, or anything under <base>/ that the list does not name explicitly (a "#" entry does not
// reach into <base>/; only entries that spell the base topic out do).

/** The daemon's own topics under <base>/: a request may never name them, whatever the list says. */
const OWN = ["bridge/#", "prompt", "prompt/set", "response", "event", "cancel"];

export function defaultResponseTopics(base: string): string[] {
  return [`${base}/reply/#`];
}

/** True when topic filter `filter` (with + and #) matches the plain topic `topic`. */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true; // also the parent level: "a/#" matches "a"
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when some topic matches both filters. */
function filtersOverlap(a: string, b: string): boolean {
  const x = a.split("/");
  const y = b.split("/");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] === "#" || y[i] === "#") return true;
    if (x[i] === undefined || y[i] === undefined) return false;
    if (x[i] !== "+" && y[i] !== "+" && x[i] !== y[i]) return false;
  }
  return true;
}

/** True when the topic (or filter) lies in `prefix` or under it, spelled out level by level. */
function under(prefix: string, topic: string): boolean {
  return topic === prefix || topic.startsWith(`${prefix}/`);
}

/** Why a topic filter cannot be an allow-list entry, or null when it can. */
function filterProblem(filter: string): string | null {
  if (filter === "") return "is empty";
  if (filter.startsWith("$")) return "starts with $ (broker topics cannot be reply topics)";
  if (filter.includes("\0")) return "contains a NUL character";
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l === "#" && i !== levels.length - 1) return "has # before its last level";
    if (l !== "#" && l !== "+" && /[+#]/.test(l)) return "uses + or # inside a level";
  }
  return null;
}

export class ResponseTopics {
  private readonly own: string[];

  /**
   * Checks the list once, at start: a TypeError names an entry that is not a topic filter or that
   * would cover the daemon's own topics or the discovery prefix.
   */
  constructor(
    readonly allowed: readonly string[],
    private readonly base: string,
    private readonly discoveryPrefix: string,
  ) {
    this.own = OWN.map((p) => `${base}/${p}`);
    for (const entry of allowed) {
      const problem = filterProblem(entry);
      if (problem) throw new TypeError(`the MQTT response topic ${JSON.stringify(entry)} ${problem}`);
      if (under(base, entry) && this.own.some((own) => filtersOverlap(entry, own)))
        throw new TypeError(`the MQTT response topic ${JSON.stringify(entry)} covers the daemon's own topics under ${base}/ (bridge/…, prompt, response, event, cancel); use a subtree of its own such as ${base}/reply/#`);
      if (under(discoveryPrefix, entry))
        throw new TypeError(`the MQTT response topic ${JSON.stringify(entry)} lies under the Home Assistant discovery prefix ${discoveryPrefix}/`);
    }
  }

  /** Why a request may not name this response topic, or null when the daemon may publish there. */
  refusal(topic: string): string | null {
    if (topic === "") return "the response topic is empty";
    if (/[+#]/.test(topic)) return `the response topic ${JSON.stringify(topic)} contains a wildcard (+ or #)`;
    if (topic.startsWith("$")) return `the response topic ${JSON.stringify(topic)} is a broker topic ($…)`;
    if (topic.includes("\0")) return "the response topic contains a NUL character";
    if (under(this.discoveryPrefix, topic))
      return `the response topic ${JSON.stringify(topic)} lies under the Home Assistant discovery prefix ${this.discoveryPrefix}/`;
    if (this.own.some((own) => filterMatches(own, topic))) return `the response topic ${JSON.stringify(topic)} is one of the daemon's own topics`;
    const entries = under(this.base, topic) ? this.allowed.filter((e) => under(this.base, e)) : this.allowed;
    if (entries.some((e) => filterMatches(e, topic))) return null;
    const list = this.allowed.length ? this.allowed.join(", ") : "(none)";
    return `the response topic ${JSON.stringify(topic)} is not on the daemon's list of response topics (mqttResponseTopics: ${list})`;
  }
}
