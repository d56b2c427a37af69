// Home Assistant MQTT discovery: one table of entities, each a few fields on top of what they all
// share (device, origin, availability). Published retained under
// <prefix>/<component>/<node>/<object>/config and re-sent when Home Assistant says it is online
// (homeassistant/status). Which configs this daemon published is remembered in its state directory
// (discovery-record.ts), so that the ones it no longer wants are cleared and no others. Also Home
// Assistant's limits on what an entity may carry.
import type { Topics } from "./topics.js";

export type Component = "text" | "sensor" | "event" | "binary_sensor" | "button";

export interface HomeAssistantOptions {
  /** Discovery prefix (Home Assistant's default: homeassistant). */
  prefix: string;
  /** Node id in discovery topics and unique ids; one per daemon. */
  nodeId: string;
  /** Device name shown in Home Assistant. */
  deviceName: string;
}

export interface DiscoveryContext {
  topics: Topics;
  ha: HomeAssistantOptions;
  version: string;
  model: string;
}

type Fields = Record<string, unknown>;

interface Entity {
  component: Component;
  object: string;
  fields: (t: Topics) => Fields;
}

// ─── Home Assistant's limits ────────────────────────────────────────────────────────────────

/** Home Assistant refuses a state longer than this many characters (code points, as Python counts). */
export const HA_STATE_MAX = 255;

/** The recorder stores no attributes at all for a state whose attributes exceed this (JSON bytes). */
export const HA_RECORDER_ATTRIBUTES_MAX = 16384;

/** Our share of that: Home Assistant adds friendly_name, icon and the like to what we publish. */
export const HA_ATTRIBUTES_BUDGET = HA_RECORDER_ATTRIBUTES_MAX - 1024;

/** Characters in a device name: the entities' friendly names begin with it. */
export const HA_DEVICE_NAME_MAX = 100;

/** The first n code points of s: never half of a surrogate pair. */
export function cutCodePoints(s: string, n: number): string {
  let end = 0;
  for (let count = 0; count < n && end < s.length; count++) end += s.codePointAt(end)! > 0xffff ? 2 : 1;
  return s.slice(0, end);
}

const jsonBytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

/**
 * Attributes whose JSON fits in maxBytes: when they do not, the listed text fields are cut to a
 * common length (shorter ones stay whole) and `truncated: true` says so.
 */
export function fitAttributes<T extends Record<string, unknown>>(attrs: T, fields: (keyof T & string)[], maxBytes = HA_ATTRIBUTES_BUDGET): T & { truncated?: true } {
  if (jsonBytes(attrs) <= maxBytes) return attrs;
  const points = fields.map((f) => [...String(attrs[f] ?? "")]);
  const cut = (n: number) => ({ ...attrs, ...Object.fromEntries(fields.map((f, i) => [f, points[i].slice(0, n).join("")])), truncated: true as const });
  let lo = 0;
  let hi = Math.max(0, ...points.map((p) => p.length));
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (jsonBytes(cut(mid)) <= maxBytes) lo = mid;
    else hi = mid - 1;
  }
  return cut(lo);
}

const diagnostic = (template: string, extra: Fields = {}) => (t: Topics) => ({
  state_topic: t.of("stats"),
  value_template: template,
  entity_category: "diagnostic",
  ...extra,
});

// ─── The table ──────────────────────────────────────────────────────────────────────────────

export const ENTITIES: readonly Entity[] = [
  {
    component: "text",
    object: "prompt",
    fields: (t) => ({
      name: "Prompt",
      icon: "mdi:chat-question",
      command_topic: t.promptSet,
      state_topic: t.of("promptState"),
      min: 1,
      max: HA_STATE_MAX,
      mode: "text",
      qos: 1,
    }),
  },
  {
    component: "sensor",
    object: "response",
    fields: (t) => ({
      name: "Response",
      icon: "mdi:chat",
      state_topic: t.of("lastResponse"),
      value_template: "{{ value_json.state }}",
      json_attributes_topic: t.of("lastResponse"),
      qos: 1,
    }),
  },
  {
    component: "event",
    object: "completion",
    fields: (t) => ({
      name: "Completion",
      state_topic: t.of("event"),
      event_types: ["completed", "error"],
      qos: 1,
    }),
  },
  {
    component: "binary_sensor",
    object: "busy",
    fields: (t) => ({
      name: "Busy",
      device_class: "running",
      state_topic: t.of("stats"),
      value_template: "{{ 'ON' if value_json.busy else 'OFF' }}",
    }),
  },
  {
    component: "button",
    object: "cancel",
    fields: (t) => ({ name: "Cancel", icon: "mdi:stop", command_topic: t.cancel, payload_press: "cancel", qos: 1 }),
  },
  {
    component: "sensor",
    object: "tokens_per_second",
    fields: diagnostic("{{ value_json.tokens_per_second }}", {
      name: "Tokens per second",
      unit_of_measurement: "tok/s",
      state_class: "measurement",
      icon: "mdi:speedometer",
    }),
  },
  {
    component: "sensor",
    object: "queue",
    fields: diagnostic("{{ value_json.queue.queued }}", { name: "Queue depth", state_class: "measurement", icon: "mdi:tray-full" }),
  },
  {
    component: "sensor",
    object: "memory",
    fields: diagnostic("{{ (value_json.memory.rss_bytes / 1048576) | round(1) }}", {
      name: "Memory",
      device_class: "data_size",
      unit_of_measurement: "MiB",
      state_class: "measurement",
    }),
  },
  {
    component: "sensor",
    object: "temperature",
    // "None" (no sensor on this machine) is what Home Assistant reads as an unknown state.
    fields: diagnostic("{{ value_json.cpu_temperature_c }}", {
      name: "CPU temperature",
      device_class: "temperature",
      unit_of_measurement: "°C",
      state_class: "measurement",
    }),
  },
];

// ─── Building and recognising configs ───────────────────────────────────────────────────────

/** A node id Home Assistant accepts: letters, digits, _ and -. */
export function haNodeId(s: string): string {
  return s.replace(/[^a-zA-Z0-9_-]/g, "_");
}

export function discoveryTopic(ha: HomeAssistantOptions, component: Component, object: string): string {
  return `${ha.prefix}/${component}/${ha.nodeId}/${object}/config`;
}

/** Every config to publish retained, in table order. */
export function discoveryConfigs(ctx: DiscoveryContext): { topic: string; config: Fields }[] {
  const { topics, ha } = ctx;
  const device = {
    identifiers: [`alpaca_${ha.nodeId}`],
    name: ha.deviceName,
    manufacturer: "alpaca",
    model: ctx.model || "LLaMA GGUF",
    sw_version: ctx.version,
  };
  const origin = { name: "alpaca", sw_version: ctx.version };
  const availability = [{ topic: topics.of("state"), payload_available: "online", payload_not_available: "offline" }];
  return ENTITIES.map((e) => ({
    topic: discoveryTopic(ha, e.component, e.object),
    config: { ...e.fields(topics), unique_id: `${ha.nodeId}_${e.object}`, device, origin, availability },
  }));
}

/** Home Assistant's birth message topic: "online" there means configs must be sent again. */
export function statusTopic(ha: HomeAssistantOptions): string {
  return `${ha.prefix}/status`;
}
