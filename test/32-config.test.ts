// Configuration: flag > environment > file > default for every option, and one-line errors
// (unknown key, wrong type, bad size) that the CLI turns into exit code 2.
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import yargs from "yargs";
import { CONFIG_KEYS, configOptions, loadConfig, optionNames, parseSeconds, parseSize, withConfigOptions } from "../daemon/config.js";
import { UserError } from "../daemon/errors.js";
import { alpaca } from "./helpers/process.js";
import { ROOT } from "./helpers/shared.js";

const GiB = 2 ** 30;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alpaca-config-"));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
const NO_DEFAULT_FILE = path.join(tmp, "absent.json");

function configFile(content: unknown, name = "config.json"): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

/** Parses flags the way a command does, then loads the config. */
function load(args: string[], env: NodeJS.ProcessEnv = {}) {
  const argv = withConfigOptions(yargs(args)).strict().exitProcess(false).fail((msg, err) => { throw err ?? new Error(msg); }).parseSync();
  return loadConfig(argv as Record<string, unknown>, env, NO_DEFAULT_FILE);
}

test("sizes: bytes or K/M/G/T in powers of 1024", (t) => {
  t.is(parseSize("3.5G"), 3.5 * GiB);
  t.is(parseSize("512M"), 512 * 2 ** 20);
  t.is(parseSize("4gib"), 4 * GiB);
  t.is(parseSize("1T"), 2 ** 40);
  t.is(parseSize("1048576"), 1048576);
  t.is(parseSize("64 KiB"), 65536);
  for (const bad of ["", "G", "3.5X", "-1G", "1.5", "4 GB extra"]) t.is(parseSize(bad), null, bad);
  t.is(parseSeconds("10"), 10);
  t.is(parseSeconds("500ms"), 0.5);
  t.is(parseSeconds("1m"), 60);
  t.is(parseSeconds("soon"), null);
});

test("defaults without flags, environment or file", (t) => {
  const c = load([]);
  t.like(c, {
    configFile: null, model: null, socket: "/run/alpaca/alpaca.sock", socketMode: "0660", socketGroup: null, memoryLimit: null, threads: os.availableParallelism(),
    ctx: null, parallel: null, kvType: "auto", queueSize: 32, grace: 10, logLevel: "info", mqttUrl: null, mqttBaseTopic: "alpaca",
    mqttUsername: null, mqttPasswordFile: null, mqttClientId: null, mqttProtocol: "5", mqttKeepalive: 30, mqttSessionExpiry: 86400,
    mqttShareGroup: null, mqttResponseTopics: null, mqttCa: null, mqttCert: null, mqttKey: null, mqttHomeAssistant: true,
    mqttDiscoveryPrefix: "homeassistant", mqttDeviceName: null, mqttStatsInterval: 30, http: null, httpTokenFile: null, httpInsecure: false,
  });
});

test("precedence: flag > environment > file > default, for each option", (t) => {
  const file = configFile({ model: "/file.gguf", memoryLimit: "2G", threads: 2, ctx: 1024, queueSize: 8, mqttBaseTopic: "file" });
  const env = { ALPACA_MODEL: "/env.gguf", ALPACA_MEMORY_LIMIT: "3G", ALPACA_THREADS: "3" };
  const c = load(["--config", file, "--model", "/flag.gguf", "--memory-limit", "3.5G"], env);
  t.is(c.configFile, file);
  t.is(c.model, "/flag.gguf", "flag beats environment and file");
  t.is(c.memoryLimit, 3.5 * GiB, "flag beats environment");
  t.is(c.threads, 3, "environment beats file");
  t.is(c.ctx, 1024, "file beats default");
  t.is(c.queueSize, 8);
  t.is(c.mqttBaseTopic, "file");
  t.is(c.grace, 10, "default when nobody says");
});

test("every option has a flag and an ALPACA_* variable", (t) => {
  const values: Record<string, [string, string | number | boolean | string[]]> = {
    model: ["/m.gguf", "/m.gguf"], socket: ["/tmp/a.sock", "/tmp/a.sock"], socketMode: ["0600", "0600"], socketGroup: ["homeauto", "homeauto"], memoryLimit: ["1G", GiB], threads: ["2", 2],
    ctx: ["768", 768], parallel: ["3", 3], kvType: ["q8_0", "q8_0"], queueSize: ["5", 5], grace: ["30s", 30],
    logLevel: ["debug", "debug"], promptCacheDir: ["/srv/kv", "/srv/kv"], promptCacheSize: ["0", 0], promptCacheFiles: ["3", 3], speculation: ["false", false],
    mqttUrl: ["mqtt://broker:1883", "mqtt://broker:1883"], mqttBaseTopic: ["home/llm", "home/llm"],
    mqttUsername: ["alpaca", "alpaca"], mqttPasswordFile: ["/etc/alpaca/mqtt-password", "/etc/alpaca/mqtt-password"],
    mqttClientId: ["kitchen-pi", "kitchen-pi"], mqttProtocol: ["3.1.1", "3.1.1"], mqttKeepalive: ["60", 60],
    mqttSessionExpiry: ["0", 0], mqttShareGroup: ["pis", "pis"], mqttCa: ["/etc/ssl/ca.pem", "/etc/ssl/ca.pem"],
    mqttCert: ["/etc/ssl/c.pem", "/etc/ssl/c.pem"], mqttKey: ["/etc/ssl/k.pem", "/etc/ssl/k.pem"],
    mqttHomeAssistant: ["false", false], mqttDiscoveryPrefix: ["ha", "ha"], mqttStatsInterval: ["0", 0],
    http: ["[::1]:11434", "[::1]:11434"], httpTokenFile: ["/etc/alpaca/http-token", "/etc/alpaca/http-token"], httpInsecure: ["true", true],
    mqttResponseTopics: ["home/llm/reply/#, apps/+/answers", ["home/llm/reply/#", "apps/+/answers"]], mqttDeviceName: ["Kitchen LLM", "Kitchen LLM"],
  };
  t.deepEqual(Object.keys(values).sort(), [...CONFIG_KEYS].sort());
  for (const key of CONFIG_KEYS) {
    const { flag, env } = optionNames(key);
    t.truthy(configOptions[flag.slice(2)], flag);
    t.regex(env, /^ALPACA_[A-Z_]+$/);
    const [raw, parsed] = values[key];
    t.deepEqual(load([flag, raw])[key], parsed, `${flag} ${raw}`);
    t.deepEqual(load([], { [env]: raw })[key], parsed, `${env}=${raw}`);
  }
});

test("lists: comma-separated from a flag or variable, an array (or [] for none) in the file", (t) => {
  t.deepEqual(load(["--config", configFile({ mqttResponseTopics: ["a/reply/#", "b,c/x"] }, "lists.json")]).mqttResponseTopics, ["a/reply/#", "b,c/x"]);
  t.deepEqual(load(["--config", configFile({ mqttResponseTopics: [] }, "none.json")]).mqttResponseTopics, []);
  t.throws(() => load(["--mqtt-response-topics", " , "]), { instanceOf: UserError, message: /--mqtt-response-topics must name at least one entry/ });
  t.throws(() => load(["--config", configFile({ mqttResponseTopics: [3] }, "bad-list.json")]), { instanceOf: UserError, message: /"mqttResponseTopics" must be a list of strings, got \[3\]/ });
});

test("ALPACA_CONFIG names the file; an empty variable counts as unset", (t) => {
  const file = configFile({ socket: "/run/x.sock" }, "env-named.json");
  t.is(load([], { ALPACA_CONFIG: file, ALPACA_SOCKET: "" }).socket, "/run/x.sock");
});

test("the default file is read when it exists, and may be absent", (t) => {
  const file = configFile({ logLevel: "warn" }, "default.json");
  t.is(loadConfig({}, {}, file).logLevel, "warn");
  t.is(loadConfig({}, {}, NO_DEFAULT_FILE).configFile, null);
});

test("keys beginning with // are comments", (t) => {
  const file = configFile({ "// model": "the GGUF file", model: "/m.gguf" }, "comments.json");
  t.is(load(["--config", file]).model, "/m.gguf");
});

test("validation: one line naming the source, as a UserError", (t) => {
  const bad = (args: string[], env: NodeJS.ProcessEnv, message: RegExp) =>
    t.throws(() => load(args, env), { instanceOf: UserError, message }, message.source);
  bad(["--config", configFile({ treads: 4 }, "unknown.json")], {}, /config .*unknown\.json: unknown key "treads" \(known: model, socket/);
  bad(["--config", configFile({ threads: "4" }, "type.json")], {}, /config .*type\.json: "threads" must be a number, got "4"/);
  bad(["--config", configFile({ model: 7 }, "str.json")], {}, /"model" must be a string, got 7/);
  bad(["--config", configFile("{ not json", "broken.json")], {}, /broken\.json: not valid JSON/);
  bad(["--config", configFile("[1]", "array.json")], {}, /must be a JSON object of options/);
  bad(["--config", path.join(tmp, "missing.json")], {}, /missing\.json: cannot read it \(ENOENT\)/);
  bad(["--memory-limit", "3.5X"], {}, /^--memory-limit "3\.5X" is not a size \(bytes, or a number with K, M, G or T, e\.g\. 3\.5G\)$/);
  bad([], { ALPACA_THREADS: "four" }, /^ALPACA_THREADS must be an integer from 1 to 256, got "four"$/);
  bad(["--parallel", "0"], {}, /^--parallel must be an integer from 1 to 256/);
  bad(["--kv-type", "q4_0"], {}, /^--kv-type must be one of auto, f16, q8_0, got "q4_0"$/);
  bad([], { ALPACA_LOG_LEVEL: "loud" }, /must be one of error, warn, info, debug/);
  bad([], { ALPACA_MQTT_URL: "http://x" }, /^ALPACA_MQTT_URL must use mqtt: or mqtts:/);
  bad([], { ALPACA_MQTT_SHARE_GROUP: "a/b" }, /^ALPACA_MQTT_SHARE_GROUP must be one topic level/);
  bad(["--mqtt-home-assistant", "maybe"], {}, /^--mqtt-home-assistant must be true or false, got "maybe"$/);
  bad(["--config", configFile({ mqttHomeAssistant: "yes" }, "bool.json")], {}, /"mqttHomeAssistant" must be true or false/);
  bad(["--mqtt-protocol", "4"], {}, /^--mqtt-protocol must be one of 5, 3\.1\.1/);
  bad([], { ALPACA_MQTT_BASE_TOPIC: "a/#" }, /must not contain the wildcards/);
  bad([], { ALPACA_GRACE: "soon" }, /^ALPACA_GRACE "soon" is not a duration/);
  for (const v of ["11434", "0.0.0.0", "host:99999", "http://127.0.0.1:11434", "::1:11434"])
    bad(["--http", v], {}, /^--http must be HOST:PORT, e\.g\. 127\.0\.0\.1:11434/);
});

test("a boolean flag alone says true; --no-… and an explicit value still work", (t) => {
  t.true(load(["--http-insecure"]).httpInsecure);
  t.true(load(["--http-insecure", "--http", "0.0.0.0:11434"]).httpInsecure);
  t.false(load(["--http-insecure", "false"]).httpInsecure);
  t.false(load([]).httpInsecure);
  t.false(load(["--mqtt-home-assistant", "false"]).mqttHomeAssistant);
});

test("through the CLI a bad option is one line and exit code 2", async (t) => {
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => alpaca(args, { env: { ...process.env, ...env } });
  const size = await cli(["plan", "--model", "/nonexistent.gguf", "--memory-limit", "lots"]);
  t.is(size.code, 2);
  t.is(size.stderr, "alpaca: --memory-limit \"lots\" is not a size (bytes, or a number with K, M, G or T, e.g. 3.5G)\n");
  const key = await cli(["plan", "--config", configFile({ modle: "x" }, "cli.json")]);
  t.is(key.code, 2);
  t.regex(key.stderr, /^alpaca: config .*cli\.json: unknown key "modle" \(known: .*\)\n$/);
  const noModel = await cli(["plan", "--config", configFile({}, "empty.json")], { ALPACA_MODEL: "" });
  t.is(noModel.code, 2);
  t.regex(noModel.stderr, /say which model/);
});

test("the documented example file loads and names every option", (t) => {
  const example = path.join(ROOT, "systemd", "alpaca.example.json");
  const keys = Object.keys(JSON.parse(fs.readFileSync(example, "utf8"))).filter((k) => !k.startsWith("//"));
  t.deepEqual(keys.sort(), [...CONFIG_KEYS].sort());
  const c = load(["--config", example]);
  t.like(c, { configFile: example, kvType: "auto", queueSize: 32, grace: 10, memoryLimit: null, threads: os.availableParallelism() });
  t.like(c, { http: "127.0.0.1:11434", httpTokenFile: null, httpInsecure: false }, "HTTP on, for this machine only");
  t.regex(c.model!, /\.gguf$/);
});

test("docs/configuration.md documents every flag and variable", (t) => {
  const doc = fs.readFileSync(path.join(ROOT, "docs", "configuration.md"), "utf8");
  for (const key of CONFIG_KEYS) {
    const { flag, env } = optionNames(key);
    t.true(doc.includes(`\`${key}\``) && doc.includes(`\`${flag}\``) && doc.includes(`\`${env}\``), key);
  }
});
