// From the daemon's configuration to the MQTT transport's settings: null when no broker is
// configured. Files named by the configuration (password, TLS) are checked here, at start, so a
// typo is one line and exit code 2 rather than a daemon that never connects.
import fs from "node:fs";
import type { Config } from "../../config.js";
import { optionNames } from "../../config.js";
import { UserError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { stateDirectory } from "../socket.js";
import type { MqttSettings } from "./options.js";
import { resolveMqttOptions } from "./options.js";

type FileKey = "mqttPasswordFile" | "mqttCa" | "mqttCert" | "mqttKey";

function readableFile(config: Config, key: FileKey): string | undefined {
  const file = config[key];
  if (file === null) return undefined;
  try {
    fs.accessSync(file, fs.constants.R_OK);
    if (!fs.statSync(file).isFile()) throw Object.assign(new Error("not a file"), { code: "not a file" });
  } catch (e) {
    const { flag, env } = optionNames(key);
    throw new UserError(`${flag} / ${env}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return file;
}

/** Which option a mistake found by resolveMqttOptions is about, for the one-line error. */
const OPTION_OF: [RegExp, Parameters<typeof optionNames>[0]][] = [
  [/response topic/, "mqttResponseTopics"],
  [/device name/, "mqttDeviceName"],
];

export function mqttSettingsFromConfig(config: Config, log?: Logger): MqttSettings | null {
  if (config.mqttUrl === null) return null;
  const url = new URL(config.mqttUrl);
  if (url.password) log?.warn("mqtt: the broker URL carries a password; put it in a file named by mqttPasswordFile instead");
  if (url.protocol !== "mqtts:" && (config.mqttCa || config.mqttCert || config.mqttKey))
    log?.warn("mqtt: TLS files are configured but the broker URL is not mqtts://; they are not used");
  if (config.mqttProtocol === "3.1.1" && config.mqttShareGroup !== null)
    throw new UserError("--mqtt-share-group needs MQTT 5 (shared subscriptions), but --mqtt-protocol is 3.1.1");
  const settings: MqttSettings = {
    url: config.mqttUrl,
    baseTopic: config.mqttBaseTopic,
    protocolVersion: config.mqttProtocol === "3.1.1" ? 4 : 5,
    clientId: config.mqttClientId ?? undefined,
    username: config.mqttUsername ?? undefined,
    passwordFile: readableFile(config, "mqttPasswordFile"),
    ca: readableFile(config, "mqttCa"),
    cert: readableFile(config, "mqttCert"),
    key: readableFile(config, "mqttKey"),
    keepalive: config.mqttKeepalive,
    sessionExpiry: config.mqttSessionExpiry,
    shareGroup: config.mqttShareGroup,
    responseTopics: config.mqttResponseTopics ?? undefined,
    statsInterval: config.mqttStatsInterval,
    // Requests accepted but unanswered survive a crash here (systemd's StateDirectory=), and the
    // discovery configs published are remembered here.
    stateDir: stateDirectory(),
    discoveryPrefix: config.mqttDiscoveryPrefix,
    homeAssistant: config.mqttHomeAssistant ? { deviceName: config.mqttDeviceName ?? undefined } : null,
  };
  try {
    resolveMqttOptions(settings); // every value checked now, before the model loads
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const key = OPTION_OF.find(([re]) => re.test(message))?.[1];
    if (!key) throw new UserError(message);
    const { flag, env } = optionNames(key);
    throw new UserError(`${flag} / ${env}: ${message}`);
  }
  return settings;
}
