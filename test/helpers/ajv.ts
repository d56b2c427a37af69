// A JSON Schema validator for tests (ajv with the standard formats), set up once for every draft the
// fixtures use, and Home Assistant's custom formats.
import { createRequire } from "node:module";
import type { ValidateFunction } from "ajv";

const require = createRequire(import.meta.url);
const { Ajv2020 } = require("ajv/dist/2020.js") as typeof import("ajv/dist/2020.js");
const addFormats = require("ajv-formats") as typeof import("ajv-formats").default;

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
// Home Assistant's entity ids (homeassistant/core.py VALID_ENTITY_ID) and its annotation-only formats.
ajv.addFormat("entity_id", /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/);
for (const f of ["RGB", "jinja2", "ISO 3166-1 alpha-2", "RFC 5646"]) ajv.addFormat(f, true);

/** A validator for `schema`; its `errors` say what failed. */
export function validator(schema: unknown): ValidateFunction {
  return ajv.compile(schema as object);
}

/** ajv's errors as one line, for assertion messages. */
export function errorsText(v: ValidateFunction): string {
  return ajv.errorsText(v.errors);
}
