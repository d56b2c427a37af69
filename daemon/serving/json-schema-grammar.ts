// JSON Schema (and `format: "json"`) → GBNF, for the grammar engine (daemon/engine/grammar.ts).
//
// The interface the router and scheduler use (keep these signatures):
//   export class SchemaError extends Error { readonly path: string }  // JSON pointer of the offending
//                                                  // keyword ("/properties/a/minimum"); unsupported
//                                                  // keywords are errors that name them
//   export function schemaToGbnf(schema: unknown): string;          // GBNF whose start rule is "root"
//   export function formatToGbnf(format: "json" | object): string;  // "json": any JSON object
// The router turns `format` into GBNF with formatToGbnf, compiles it with compileGrammar(model, gbnf)
// before anything is queued (SchemaError / GrammarError → bad_request with the path / line:column),
// hands the compiled grammar to the scheduler job (`grammar`) and, for `format`, adds `json` (the
// parsed text) to the final.
// Tool calls: the job's `lazyGrammar: {grammar, triggers, triggerTokens}` switches the grammar on
// once the generated text contains one of `triggers` (the grammar then reads the text from the
// trigger's first byte, the trigger included) or right after one of `triggerTokens` is generated
// (special tokens with no text, e.g. `<|python_tag|>`); `grammar` instead constrains from the first
// token (tool_choice "required").
//
// What the grammars look like, and why:
// - Compact JSON, no optional whitespace: where a schema fixes what comes next (a key, `":"`, `,`,
//   a closing bracket) the grammar admits exactly one continuation, so the sampler can append it
//   without sampling (fast-forward) instead of spending a decode step on a space.
// - Object keys in the order of `properties`; optional ones may be left out. Without
//   `additionalProperties` no other keys are generated (as llama.cpp and Ollama do): every output
//   is still valid, the schema allows more than the grammar produces.
// - Strings count code points as JSON Schema does: `\u` escapes of surrogates are not generated, so
//   every character of the grammar is one code point of the parsed string.
// - Every output validates: keywords the grammar cannot honour (pattern, multipleOf, not, …) are a
//   SchemaError naming the keyword and its place, never skipped. Annotations (title, description,
//   default, examples, $schema, …) and `format` values that are not standard formats (Home
//   Assistant's "entity_id", "RGB", …) are read and ignored, as the specification says.
import { GbnfRules, gbnfClass, gbnfLiteral } from "./gbnf-writer.js";
import { integerRange, numberRange } from "./json-schema-numbers.js";

/** A schema that cannot be turned into a grammar; `path` is the JSON pointer of the keyword at fault. */
export class SchemaError extends Error {
  override name = "SchemaError";
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(path ? `${path}: ${message}` : message);
  }
}

type Schema = Record<string, unknown>;
type JsonType = "object" | "array" | "string" | "number" | "integer" | "boolean" | "null";
const TYPES: readonly JsonType[] = ["object", "array", "string", "number", "integer", "boolean", "null"];

// ─── Keywords ──────────────────────────────────────────────────────────────────────────────────

/** Read and ignored: they say nothing about which values are valid. */
const ANNOTATIONS = new Set([
  "title", "description", "$schema", "$id", "$comment", "$anchor", "default", "examples", "deprecated",
  "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "discriminator", "strict", "example",
]);

/** Keywords by the type they constrain (a keyword constrains only values of its own type). */
const KEYWORDS_OF: Record<"object" | "array" | "string" | "number", readonly string[]> = {
  object: ["properties", "required", "additionalProperties"],
  array: ["items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems"],
  string: ["minLength", "maxLength", "format"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
};
const GENERAL = ["type", "nullable", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions"];
const KNOWN = new Set([...GENERAL, ...Object.values(KEYWORDS_OF).flat()]);

/** Standard formats this translator constrains; other standard ones it cannot, and says so. */
const STANDARD_FORMATS_UNSUPPORTED = new Set([
  "email", "idn-email", "hostname", "idn-hostname", "ipv6", "uri", "uri-reference", "iri", "iri-reference",
  "uri-template", "json-pointer", "relative-json-pointer", "regex", "duration",
]);

// ─── Shared pieces ─────────────────────────────────────────────────────────────────────────────

const HEX = "[0-9a-fA-F]";
// One character of a JSON string: anything but `"`, `\` and controls, or an escape. \u escapes
// stop short of the surrogates (D800–DFFF), so one grammar character is one code point.
const CHAR = String.raw`[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" ([0-9a-cA-Ce-fE-F] ${HEX}{3} | [dD] [0-7] ${HEX}{2}))`;
const NUMBER = `"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?`;
const INTEGER = `"-"? ("0" | [1-9] [0-9]{0,15})`;

// Dates that exist in every year (29 February is left out), times and offsets as RFC 3339 writes
// them (JSON Schema's "time" needs an offset).
const FORMATS: Record<string, { body: string; length: [number, number] }> = {
  date: {
    body: `[0-9]{4} "-" (("01" | "03" | "05" | "07" | "08" | "10" | "12") "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | ("04" | "06" | "09" | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | "02-" ("0" [1-9] | "1" [0-9] | "2" [0-8]))`,
    length: [10, 10],
  },
  time: { body: `([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("Z" | [-+] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])`, length: [9, 14] },
  uuid: { body: `${HEX}{8} "-" ${HEX}{4} "-" ${HEX}{4} "-" ${HEX}{4} "-" ${HEX}{12}`, length: [36, 36] },
  ipv4: { body: `ipv4-octet "." ipv4-octet "." ipv4-octet "." ipv4-octet`, length: [7, 15] },
  // Home Assistant's entity ids (domain.object_id: lowercase, digits, single inner underscores).
  entity_id: { body: `[a-z0-9]+ ("_" [a-z0-9]+)* "." [a-z0-9]+ ("_" [a-z0-9]+)*`, length: [3, Infinity] },
};
FORMATS["date-time"] = { body: `${FORMATS.date.body} "T" ${FORMATS.time.body}`, length: [20, 25] };

// ─── Entry points ──────────────────────────────────────────────────────────────────────────────

/** GBNF for a JSON Schema; the start rule is "root". Throws SchemaError. */
export function schemaToGbnf(schema: unknown): string {
  const rules = new GbnfRules();
  const translator = new SchemaTranslator(rules, schema);
  rules.define("root", translator.rule(schema, "", "root"));
  return rules.toString();
}

/** GBNF for a request's `format`: "json" is any JSON object; anything else is a JSON Schema. */
export function formatToGbnf(format: "json" | object): string {
  if (format === "json") {
    const rules = new GbnfRules();
    rules.define("root", new SchemaTranslator(rules, {}).anyObject());
    return rules.toString();
  }
  return schemaToGbnf(format);
}

/**
 * Translates schemas into rules of a grammar under construction. Tool-call grammars use it to
 * embed several schemas (each tool's parameters) in one grammar: `rule` returns a rule body, `ref`
 * a rule name.
 */
export class SchemaTranslator {
  private readonly refs = new Map<string, string>(); // JSON pointer → rule name (defined or being defined)
  private readonly comma: string;
  private readonly colon: string;

  /**
   * `spaced`: write ", " and ": " between items and after keys (Python's json.dumps, and so the
   * tool-call arguments chat templates show the model) instead of compact JSON. Either way the
   * separators are fixed, never optional.
   */
  constructor(
    private readonly rules: GbnfRules,
    private readonly document: unknown,
    spaced = false,
  ) {
    this.comma = spaced ? '", "' : '","';
    this.colon = spaced ? ": " : ":";
  }

  /** The name of a rule for `schema` (found at `path` of the document). */
  ref(schema: unknown, path: string, hint: string): string {
    if (isObject(schema) && typeof schema.$ref === "string" && Object.keys(schema).every((k) => k === "$ref" || ANNOTATIONS.has(k)))
      return this.resolveRef(schema.$ref, `${path}/$ref`);
    return this.rules.add(hint, this.rule(schema, path, hint));
  }

  /** The body of a rule for `schema`. */
  rule(schema: unknown, path: string, hint: string): string {
    if (schema === true) return this.anyValue();
    if (schema === false) throw new SchemaError("the schema false admits no value", path);
    if (!isObject(schema)) throw new SchemaError(`a schema must be an object or a boolean, got ${describe(schema)}`, path);
    for (const key of Object.keys(schema))
      if (!KNOWN.has(key) && !ANNOTATIONS.has(key) && !key.startsWith("x-"))
        throw new SchemaError(`unsupported keyword "${key}"`, `${path}/${escapePointer(key)}`);

    if (schema.$ref !== undefined) return this.withRef(schema, path, hint);
    if (schema.allOf !== undefined) return this.rule(this.mergeAllOf(schema, path), path, hint);
    for (const key of ["anyOf", "oneOf"] as const) if (schema[key] !== undefined) return this.union(schema, key, path, hint);
    if (schema.const !== undefined || schema.enum !== undefined) return this.enumeration(schema, path);

    const types = this.types(schema, path);
    if (types.length === 0) return this.anyValue();
    if (types.length === 1) return this.typed(types[0], schema, path, hint);
    return types.map((t) => group(this.typed(t, schema, path, hint))).join(" | ");
  }

  /** Any JSON object (`format: "json"`). */
  anyObject(): string {
    this.anyValue();
    return "object";
  }

  // ─── Composition ───────────────────────────────────────────────────────────────────────────

  private withRef(schema: Schema, path: string, hint: string): string {
    const { $ref, ...rest } = schema;
    if (typeof $ref !== "string") throw new SchemaError("$ref must be a string", `${path}/$ref`);
    if (!Object.keys(rest).some((k) => !ANNOTATIONS.has(k))) return this.resolveRef($ref, `${path}/$ref`);
    // $ref beside other keywords applies both (2019-09 and later): merge the target in.
    const target = this.lookup($ref, `${path}/$ref`);
    return this.rule(this.merge(rest, target, path), path, hint);
  }

  private resolveRef(ref: string, path: string): string {
    const known = this.refs.get(ref);
    if (known) return known;
    const target = this.lookup(ref, path);
    const name = this.rules.reserve(ref === "#" ? "root-ref" : ref.slice(ref.lastIndexOf("/") + 1));
    this.refs.set(ref, name); // before translating the target: it may refer back to itself
    this.rules.define(name, this.rule(target, ref.slice(1), name));
    return name;
  }

  /** The subschema a local reference ("#", "#/$defs/X", "#/definitions/X", any "#/…" pointer) names. */
  private lookup(ref: string, path: string): unknown {
    if (!ref.startsWith("#")) throw new SchemaError(`only local references ("#/…") are supported, got "${ref}"`, path);
    let node: unknown = this.document;
    for (const raw of ref.slice(1).split("/").slice(1)) {
      const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      if (Array.isArray(node) && /^\d+$/.test(key)) node = node[Number(key)];
      else if (isObject(node) && Object.hasOwn(node, key)) node = node[key];
      else throw new SchemaError(`reference "${ref}" names nothing in the schema`, path);
    }
    return node;
  }

  private union(schema: Schema, key: "anyOf" | "oneOf", path: string, hint: string): string {
    const branches = schema[key];
    if (!Array.isArray(branches) || branches.length === 0)
      throw new SchemaError(`${key} must be a non-empty array of schemas`, `${path}/${key}`);
    const { [key]: _, ...siblings } = schema;
    const constrained = Object.keys(siblings).some((k) => !ANNOTATIONS.has(k) && k !== "$defs" && k !== "definitions");
    // Branches may overlap; oneOf is generated as anyOf (as llama.cpp and Ollama do).
    return branches
      .map((b, i) => {
        const at = `${path}/${key}/${i}`;
        const branch = constrained ? this.merge(siblings, this.deref(b, at), at) : b;
        return constrained ? this.rules.add(`${hint}-${i}`, this.rule(branch, at, `${hint}-${i}`)) : this.ref(branch, at, `${hint}-${i}`);
      })
      .join(" | ");
  }

  private mergeAllOf(schema: Schema, path: string): Schema {
    const { allOf, ...rest } = schema;
    if (!Array.isArray(allOf) || allOf.length === 0) throw new SchemaError("allOf must be a non-empty array of schemas", `${path}/allOf`);
    return allOf.reduce<Schema>((acc, s, i) => this.merge(acc, this.deref(s, `${path}/allOf/${i}`), `${path}/allOf/${i}`), rest);
  }

  private deref(schema: unknown, path: string): Schema {
    if (schema === true) return {};
    if (!isObject(schema)) throw new SchemaError(`a schema must be an object, got ${describe(schema)}`, path);
    if (typeof schema.$ref !== "string") return schema;
    const { $ref, ...rest } = schema;
    return this.merge(rest, this.deref(this.lookup($ref as string, `${path}/$ref`), `${path}/$ref`), path);
  }

  /** Both schemas at once (allOf of two), for the keywords where that has a simple answer. */
  private merge(a: Schema, b0: unknown, path: string): Schema {
    const b = this.deref(b0, path);
    const out: Schema = { ...a };
    for (const [k, v] of Object.entries(b)) {
      if (!(k in out) || ANNOTATIONS.has(k)) {
        out[k] = v;
        continue;
      }
      const u = out[k];
      switch (k) {
        case "type": {
          const t = intersectTypes(typeList(u, path), typeList(v, path));
          if (t.length === 0) throw new SchemaError("allOf of schemas with no type in common", `${path}/type`);
          out.type = t;
          break;
        }
        case "required":
          out.required = [...new Set([...(u as string[]), ...(v as string[])])];
          break;
        case "properties": {
          const props = { ...(u as Schema) };
          for (const [name, s] of Object.entries(v as Schema))
            props[name] = name in props ? this.merge(this.deref(props[name], `${path}/properties/${name}`), s, `${path}/properties/${name}`) : s;
          out.properties = props;
          break;
        }
        case "minimum": case "exclusiveMinimum": case "minLength": case "minItems":
          out[k] = Math.max(u as number, v as number);
          break;
        case "maximum": case "exclusiveMaximum": case "maxLength": case "maxItems":
          out[k] = Math.min(u as number, v as number);
          break;
        case "enum":
          out.enum = (u as unknown[]).filter((x) => (v as unknown[]).some((y) => sameJson(x, y)));
          break;
        default:
          if (!sameJson(u, v)) throw new SchemaError(`cannot combine two different "${k}" (allOf)`, `${path}/${k}`);
      }
    }
    return out;
  }

  // ─── Values ────────────────────────────────────────────────────────────────────────────────

  private types(schema: Schema, path: string): JsonType[] {
    let types: JsonType[];
    if (schema.type !== undefined) types = typeList(schema.type, `${path}/type`);
    else {
      // No type: any value; keywords constrain only their own types, so generate those.
      types = (Object.keys(KEYWORDS_OF) as (keyof typeof KEYWORDS_OF)[]).filter((t) => KEYWORDS_OF[t].some((k) => schema[k] !== undefined));
    }
    if (schema.nullable === true && types.length > 0 && !types.includes("null")) types = [...types, "null"];
    if (types.includes("number") && types.includes("integer")) types = types.filter((t) => t !== "integer");
    return types;
  }

  private typed(type: JsonType, schema: Schema, path: string, hint: string): string {
    switch (type) {
      case "null":
        return '"null"';
      case "boolean":
        return '"true" | "false"';
      case "integer":
      case "number":
        return this.number(type, schema, path);
      case "string":
        return this.string(schema, path);
      case "array":
        return this.array(schema, path, hint);
      case "object":
        return this.object(schema, path, hint);
    }
  }

  private enumeration(schema: Schema, path: string): string {
    let values: unknown[];
    if (schema.const !== undefined) values = [schema.const];
    else if (Array.isArray(schema.enum) && schema.enum.length > 0) values = schema.enum;
    else throw new SchemaError("enum must be a non-empty array", `${path}/enum`);
    if (schema.const !== undefined && Array.isArray(schema.enum)) values = values.filter((v) => (schema.enum as unknown[]).some((e) => sameJson(e, v)));
    const types = schema.type === undefined ? null : this.types(schema, path);
    const fitting = values.filter((v) => (types === null || types.some((t) => hasType(v, t))) && withinBounds(v, schema));
    if (fitting.length === 0) throw new SchemaError("no value of enum/const fits the rest of the schema", `${path}/${schema.const !== undefined ? "const" : "enum"}`);
    return fitting.map((v) => gbnfLiteral(JSON.stringify(v))).join(" | ");
  }

  private number(type: "integer" | "number", schema: Schema, path: string): string {
    const bound = (key: string): number | boolean | undefined => {
      const v = schema[key];
      if (v === undefined) return undefined;
      if (typeof v === "boolean" && key.startsWith("exclusive")) return v; // draft 4
      if (typeof v !== "number" || !Number.isFinite(v)) throw new SchemaError(`${key} must be a number`, `${path}/${key}`);
      return v;
    };
    const [min, max, exMin, exMax] = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"].map(bound);
    let lo = -Infinity;
    let hi = Infinity;
    let openLo = false;
    let openHi = false;
    if (typeof min === "number") [lo, openLo] = [min, exMin === true];
    if (typeof exMin === "number" && exMin >= lo) [lo, openLo] = [exMin, true];
    if (typeof max === "number") [hi, openHi] = [max, exMax === true];
    if (typeof exMax === "number" && exMax <= hi) [hi, openHi] = [exMax, true];
    if (lo === -Infinity && hi === Infinity) return type === "integer" ? INTEGER : NUMBER;
    try {
      if (type === "integer") {
        const a = lo === -Infinity ? lo : openLo ? Math.floor(lo) + 1 : Math.ceil(lo);
        const b = hi === Infinity ? hi : openHi ? Math.ceil(hi) - 1 : Math.floor(hi);
        return integerRange(a, b);
      }
      // Bounds that are not whole numbers are taken inward to the next whole number (the values
      // produced stay valid; a few valid ones are never produced).
      const a = Number.isInteger(lo) || lo === -Infinity ? lo : Math.ceil(lo);
      const b = Number.isInteger(hi) || hi === Infinity ? hi : Math.floor(hi);
      return numberRange(a, b, openLo && a === lo, openHi && b === hi);
    } catch (e) {
      throw new SchemaError(e instanceof Error ? e.message : String(e), `${path}/${typeof max === "number" || typeof exMax === "number" ? "maximum" : "minimum"}`);
    }
  }

  private string(schema: Schema, path: string): string {
    const minLength = count(schema, "minLength", path) ?? 0;
    const maxLength = count(schema, "maxLength", path) ?? Infinity;
    if (minLength > maxLength) throw new SchemaError(`minLength ${minLength} exceeds maxLength ${maxLength}`, `${path}/minLength`);
    const format = schema.format;
    if (format !== undefined) {
      if (typeof format !== "string") throw new SchemaError("format must be a string", `${path}/format`);
      const known = FORMATS[format];
      if (known) {
        if (known.length[0] < minLength || known.length[1] > maxLength)
          throw new SchemaError(`minLength/maxLength cannot be combined with format "${format}"`, `${path}/format`);
        if (format === "ipv4" && !this.rules.has("ipv4-octet")) this.rules.define(this.rules.reserve("ipv4-octet"), integerRange(0, 255));
        return `"\\"" ${this.rules.add(`format-${format}`, known.body)} "\\""`;
      }
      if (STANDARD_FORMATS_UNSUPPORTED.has(format)) throw new SchemaError(`format "${format}" is not supported`, `${path}/format`);
    }
    const char = this.rules.add("char", CHAR);
    const reps = maxLength === Infinity ? (minLength === 0 ? "*" : minLength === 1 ? "+" : `{${minLength},}`) : `{${minLength},${maxLength}}`;
    return `"\\"" ${char}${reps} "\\""`;
  }

  private array(schema: Schema, path: string, hint: string): string {
    const minItems = count(schema, "minItems", path) ?? 0;
    const maxItems = count(schema, "maxItems", path) ?? Infinity;
    if (minItems > maxItems) throw new SchemaError(`minItems ${minItems} exceeds maxItems ${maxItems}`, `${path}/minItems`);
    // Draft 2020-12: prefixItems + items; earlier drafts: items as an array + additionalItems.
    let prefix: unknown[] = [];
    let prefixKey = "prefixItems";
    let rest: unknown = schema.items;
    let restKey = "items";
    if (Array.isArray(schema.items)) {
      [prefix, prefixKey, rest, restKey] = [schema.items, "items", schema.additionalItems, "additionalItems"];
    } else if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) throw new SchemaError("prefixItems must be an array of schemas", `${path}/prefixItems`);
      prefix = schema.prefixItems;
    } else if (schema.additionalItems !== undefined) rest = rest ?? schema.additionalItems;
    const elements = prefix.slice(0, maxItems === Infinity ? prefix.length : maxItems).map((s, i) => this.ref(s, `${path}/${prefixKey}/${i}`, `${hint}-${i}`));
    // No schema for the rest: generate no more items unless minItems needs them (then any value).
    let restRule: string | null = null;
    if (rest !== undefined && rest !== false) restRule = this.ref(rest, `${path}/${restKey}`, `${hint}-item`);
    else if (minItems > elements.length) {
      if (rest === false) throw new SchemaError(`minItems ${minItems} but only ${elements.length} items are allowed`, `${path}/minItems`);
      restRule = this.anyValue();
    }
    if (schema.uniqueItems === true && maxItems > 1) return this.uniqueArray(elements, restRule, rest, minItems, maxItems, path);

    // After the prefix: the rest of the items, as many as minItems/maxItems allow.
    const restMin = Math.max(0, minItems - elements.length);
    const restMax = restRule === null ? 0 : maxItems - elements.length;
    if (elements.length === 0) {
      if (restMax <= 0) return `"[]"`;
      const items = `${restRule} ${repeat(`${this.comma} ${restRule}`, Math.max(0, restMin - 1), restMax - 1)}`.trim();
      return restMin > 0 ? `"[" ${items} "]"` : `"[" (${items})? "]"`;
    }
    // seq: what may follow item i of the prefix, built from the end; item i is there if i < minItems.
    let seq = restMax > 0 ? repeat(`${this.comma} ${restRule}`, restMin, restMax) : "";
    for (let i = elements.length - 1; i >= 0; i--) {
      const item = `${i > 0 ? `${this.comma} ` : ""}${elements[i]}${seq ? ` ${seq}` : ""}`;
      seq = i < minItems ? item : `(${item})?`;
    }
    return `"[" ${seq} "]"`;
  }

  /** uniqueItems over a set of values (an enum, const or boolean): the values in enum order, each at most once. */
  private uniqueArray(elements: string[], restRule: string | null, rest: unknown, minItems: number, maxItems: number, path: string): string {
    const values = isObject(rest) ? finiteValues(this.deref(rest, `${path}/items`)) : null;
    if (elements.length > 0 || restRule === null || values === null || minItems > 1 || maxItems < values.length)
      throw new SchemaError(
        "uniqueItems is supported for items that are an enum, const or boolean, without prefixItems, minItems above 1 or a maxItems below the number of values",
        `${path}/uniqueItems`,
      );
    const literals = values.map((v) => gbnfLiteral(JSON.stringify(v)));
    // pick[i]: value i, then optionally one of the later values (and so on): each value at most once.
    const picks: string[] = [];
    for (let i = literals.length - 1; i >= 0; i--) {
      const later = picks.slice();
      picks.unshift(this.rules.add(`unique-${i}`, later.length ? `${literals[i]} (${this.comma} (${later.join(" | ")}))?` : literals[i]));
    }
    const choice = picks.join(" | ");
    return minItems === 1 ? `"[" (${choice}) "]"` : `"[" (${choice})? "]"`;
  }

  private object(schema: Schema, path: string, hint: string): string {
    const properties = schema.properties ?? {};
    if (!isObject(properties)) throw new SchemaError("properties must be an object", `${path}/properties`);
    const required = schema.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) throw new SchemaError("required must be an array of strings", `${path}/required`);
    // Without additionalProperties no other keys are generated, unless no properties are listed at
    // all ({"type": "object"}: any object).
    const extra = schema.additionalProperties ?? (schema.properties === undefined ? true : undefined);
    const extraSchema = extra === undefined || extra === false ? null : extra;
    const props: { name: string; rule: string; required: boolean }[] = Object.entries(properties).map(([name, s]) => ({
      name,
      rule: this.ref(s, `${path}/properties/${escapePointer(name)}`, `${hint}-${name}`),
      required: required.includes(name),
    }));
    for (const name of required as string[]) {
      if (Object.hasOwn(properties, name)) continue;
      if (extra === false) throw new SchemaError(`required property "${name}" is not allowed by additionalProperties: false`, `${path}/required`);
      props.push({ name, required: true, rule: extraSchema === null ? this.anyValue() : this.ref(extraSchema, `${path}/additionalProperties`, `${hint}-${name}`) });
    }
    const kv = (p: (typeof props)[number]) => `${gbnfLiteral(`${JSON.stringify(p.name)}${this.colon}`)} ${p.rule}`;
    const comma = this.comma;
    let extraKv: string | null = null;
    if (extraSchema !== null) {
      const key = this.keyExcept(props.map((p) => p.name), hint);
      extraKv = this.rules.add(`${hint}-extra`, `${key} ${gbnfLiteral(this.colon)} ${this.ref(extraSchema, `${path}/additionalProperties`, `${hint}-extra-value`)}`);
    }
    // Every property required: one fixed sequence (mostly forced tokens).
    if (props.every((p) => p.required) && extraKv === null) return props.length === 0 ? `"{}"` : `"{" ${props.map(kv).join(` ${comma} `)} "}"`;

    // after: what may follow once a key was written; from: what may come while none was yet (only
    // needed up to the first required property). Built from the last property back.
    const firstRequired = props.findIndex((p) => p.required);
    let after = extraKv ? `(${comma} ${extraKv})*` : "";
    let from = extraKv ? `(${extraKv} (${comma} ${extraKv})*)?` : "";
    for (let i = props.length - 1; i >= 0; i--) {
      const p = props[i];
      const then = after ? ` ${after}` : "";
      if (firstRequired < 0 || i <= firstRequired) {
        if (p.required) from = `${kv(p)}${then}`;
        else from = from ? `${kv(p)}${then} | ${from}` : `(${kv(p)}${then})?`;
        if (i > 0 && from.includes("|")) from = this.rules.add(`${hint}-from-${p.name}`, from);
      }
      after = p.required ? `${comma} ${kv(p)}${then}` : `(${comma} ${kv(p)})?${then}`;
      if (after.length > 200) after = this.rules.add(`${hint}-after-${p.name}`, after);
    }
    return `"{" ${group(from)} "}"`;
  }

  /** A JSON string key that is none of `names`, written without escapes: a trie of the names, left early. */
  private keyExcept(names: string[], hint: string): string {
    const plain = String.raw`[^"\\\x7F\x00-\x1F]`;
    const node = (prefix: string): string => {
      const here = names.filter((n) => n.startsWith(prefix));
      const next = [...new Set(here.filter((n) => n.length > prefix.length).map((n) => Array.from(n.slice(prefix.length))[0]))];
      const alts: string[] = [];
      if (!names.includes(prefix)) alts.push('"\\""');
      for (const c of next) alts.push(`${gbnfLiteral(c)} ${group(node(prefix + c))}`);
      const other = gbnfClass(['"', "\\", ...next, "\x7f"], true).replace(/\]$/, "\\x00-\\x1F]");
      alts.push(`${other} ${this.rules.add("key-char", plain)}* "\\""`);
      return alts.join(" | ");
    };
    return this.rules.add(`${hint}-other-key`, `"\\"" (${node("")})`);
  }

  /** Rules for any JSON value; returns the name of the value rule. */
  private anyValue(): string {
    if (!this.rules.has("value")) {
      const char = this.rules.add("char", CHAR);
      this.rules.define("value", "object | array | string | number | \"true\" | \"false\" | \"null\"");
      this.rules.define("object", `"{" (string ":" value ("," string ":" value)*)? "}"`);
      this.rules.define("array", `"[" (value ("," value)*)? "]"`);
      this.rules.define("string", `"\\"" ${char}* "\\""`);
      this.rules.define("number", NUMBER);
    }
    return "value";
  }
}

// ─── Helpers ───────────────────────────────────────────────────────────────────────────────────

function isObject(v: unknown): v is Schema {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

function escapePointer(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function group(expr: string): string {
  return /\|/.test(expr) ? `(${expr})` : expr;
}

function typeList(v: unknown, path: string): JsonType[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new SchemaError("type must not be an empty list", path);
  for (const t of list) if (!TYPES.includes(t as JsonType)) throw new SchemaError(`unknown type ${JSON.stringify(t)}`, path);
  return [...new Set(list as JsonType[])];
}

function intersectTypes(a: JsonType[], b: JsonType[]): JsonType[] {
  const out = a.filter((t) => b.includes(t));
  // integer is a number: number ∩ integer = integer
  if (a.includes("number") && b.includes("integer") && !out.includes("integer")) out.push("integer");
  if (b.includes("number") && a.includes("integer") && !out.includes("integer")) out.push("integer");
  return out;
}

function count(schema: Schema, key: string, path: string): number | undefined {
  const v = schema[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new SchemaError(`${key} must be a whole number ≥ 0`, `${path}/${key}`);
  return v;
}

/** x{min,max} written for GBNF (max may be Infinity). */
function repeat(x: string, min: number, max: number): string {
  if (max <= 0) return "";
  const g = `(${x})`;
  if (max === Infinity) return min === 0 ? `${g}*` : min === 1 ? `${g}+` : `${g}{${min},}`;
  if (min === 0 && max === 1) return `${g}?`;
  return min === max ? `${g}{${min}}` : `${g}{${min},${max}}`;
}

function hasType(v: unknown, t: JsonType): boolean {
  switch (t) {
    case "null":
      return v === null;
    case "boolean":
      return typeof v === "boolean";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "string":
      return typeof v === "string";
    case "array":
      return Array.isArray(v);
    case "object":
      return isObject(v);
  }
}

/** The simple bounds an enum value must also meet. */
function withinBounds(v: unknown, s: Schema): boolean {
  const n = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : undefined);
  if (typeof v === "string") {
    const len = Array.from(v).length;
    return len >= (n("minLength") ?? 0) && len <= (n("maxLength") ?? Infinity);
  }
  if (typeof v === "number")
    return v >= (n("minimum") ?? -Infinity) && v <= (n("maximum") ?? Infinity) && v > (n("exclusiveMinimum") ?? -Infinity) && v < (n("exclusiveMaximum") ?? Infinity);
  return true;
}

/** The values of a schema that admits finitely many scalars (enum, const, boolean), or null. */
function finiteValues(s: Schema): unknown[] | null {
  if (s.const !== undefined) return [s.const];
  if (Array.isArray(s.enum)) return s.enum.every((v) => v === null || typeof v !== "object") ? [...new Map(s.enum.map((v) => [JSON.stringify(v), v])).values()] : null;
  if (s.type === "boolean") return [true, false];
  return null;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  return v;
}
