// Home Assistant MQTT discovery: one table of entities, each a few fields on top of what they all
// share (device, origin, availability). Published retained under
// <prefix>/<component>/<node>/<object>/config; re-sent when Home Assistant says it is online
// (homeassistant/status); configs this version no longer has are cleared with an empty retained
// message, so renamed or dropped entities do not linger in Home Assistant.
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

/** Home Assistant refuses a state longer than this; the full text goes into attributes. */
export const HA_STATE_MAX = 255;

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

/** The filter that finds every config of this node, current or left over from an older version. */
export function nodeConfigFilter(ha: HomeAssistantOptions): string {
  return `${ha.prefix}/+/${ha.nodeId}/+/config`;
}

/** True for a config topic of this node that the table no longer has (to be cleared). */
export function isStaleConfig(ha: HomeAssistantOptions, topic: string): boolean {
  const parts = topic.split("/");
  const prefixLevels = ha.prefix.split("/").length;
  if (parts.length !== prefixLevels + 4 || parts.slice(0, prefixLevels).join("/") !== ha.prefix) return false;
  const [component, node, object, last] = parts.slice(prefixLevels);
  if (node !== ha.nodeId || last !== "config") return false;
  return !ENTITIES.some((e) => e.component === component && e.object === object);
}

/** Home Assistant's birth message topic: "online" there means configs must be sent again. */
export function statusTopic(ha: HomeAssistantOptions): string {
  return `${ha.prefix}/status`;
}
