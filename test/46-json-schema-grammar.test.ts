// JSON Schema → GBNF (daemon/serving/json-schema-grammar.ts), checked without the engine: the test
// recogniser (test/helpers/gbnf.ts) reads every grammar, random sentences of it must parse as JSON
// and validate with ajv, hand-written valid and invalid instances are accepted and rejected, and a
// keyword the grammar cannot honour is an error that names it.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import { formatToGbnf, SchemaError, schemaToGbnf } from "../daemon/serving/json-schema-grammar.js";
import { errorsText, validator } from "./helpers/ajv.js";
import { parseGbnf, recognise, rng, sample } from "./helpers/gbnf.js";
import { ROOT } from "./helpers/shared.js";

interface SchemaCase {
  name: string;
  source?: string;
  schema: unknown;
}
const fixtures = path.join(ROOT, "test", "fixtures", "schemas");
const schemas: SchemaCase[] = JSON.parse(fs.readFileSync(path.join(fixtures, "schemas.json"), "utf8"));
const tools: { function: { name: string; parameters: unknown } }[] = JSON.parse(fs.readFileSync(path.join(fixtures, "tools.json"), "utf8"));
const cases: SchemaCase[] = [
  ...schemas,
  ...tools.map((t) => ({ name: `tool ${t.function.name}`, schema: t.function.parameters })),
];

test("there are at least 30 schemas, Home Assistant's AI Task shape among them", (t) => {
  t.true(schemas.length >= 30, `${schemas.length} schemas`);
  t.true(schemas.some((s) => s.name.startsWith("ha-ai-task")));
});

for (const c of cases) {
  test(`${c.name}: 300 random sentences of its grammar are JSON that validates`, (t) => {
    const gbnf = schemaToGbnf(c.schema);
    const grammar = parseGbnf(gbnf);
    const validate = validator(c.schema);
    const random = rng(0x5eed + c.name.length);
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const text = sample(grammar, random, 1 + (i % 60));
      seen.add(text);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        return t.fail(`not JSON: ${text}\n${gbnf}`);
      }
      if (!validate(value)) return t.fail(`${text} does not validate: ${errorsText(validate)}\n${gbnf}`);
      if (recognise(grammar, text) !== "complete") return t.fail(`the recogniser rejects its own sample ${text}`);
    }
    if (!["null", "const-object", "tool GetLiveContext"].includes(c.name)) t.true(seen.size > 1, "sampling found only one sentence");
    else t.pass();
  });
}

/** The verdicts of the recogniser on a schema's grammar. */
function verdicts(schema: unknown, texts: string[]) {
  const g = parseGbnf(schemaToGbnf(schema));
  return texts.map((s) => recognise(g, s));
}

test("the grammar follows the schema: keys in order, required ones present, no others", (t) => {
  const light = schemas.find((s) => s.name === "light-command")!.schema;
  t.deepEqual(
    verdicts(light, [
      '{"action":"turn_on","entity":"light.kitchen"}',
      '{"action":"toggle","entity":"switch.tv_2","brightness":100}',
      '{"action":"turn_on","entity":"light.kitchen","brightness":101}',
      '{"entity":"light.kitchen","action":"turn_on"}',
      '{"action":"dim","entity":"light.kitchen"}',
      '{"action":"turn_on"}',
      '{"action":"turn_on","entity":"light.kitchen","extra":1}',
      '{"action":"turn_on","entity":"Light.Kitchen"}',
      '{"action":"turn_on","entity":"light.kitchen","brightness":07}',
      '{"action":"turn_on","entity":"light.kit',
    ]),
    ["complete", "complete", "reject", "reject", "reject", "reject", "reject", "reject", "reject", "prefix"],
  );
});

test("optional properties may be left out in any combination, still in order", (t) => {
  const s = schemas.find((x) => x.name === "all-optional")!.schema;
  t.deepEqual(
    verdicts(s, ["{}", '{"a":true}', '{"b":null}', '{"c":3}', '{"a":false,"c":3}', '{"a":true,"b":null,"c":3}', '{"c":3,"a":true}', '{,"a":true}', '{"a":true,}']),
    ["complete", "complete", "complete", "complete", "complete", "complete", "reject", "reject", "reject"],
  );
});

test("additionalProperties: other keys with the given value schema, never a listed key twice", (t) => {
  const s = schemas.find((x) => x.name === "additional-properties-schema")!.schema;
  t.deepEqual(
    verdicts(s, ['{"room":"hall"}', '{"room":"hall","temp":21.5}', '{"room":"hall","rooms":1,"ro":-3}', '{"room":"hall","room":1}', '{"room":"hall","x":61}', '{"room":"hall","":0}']),
    ["complete", "complete", "complete", "reject", "reject", "complete"],
  );
});

test("integer and number ranges are exact at their bounds", (t) => {
  const int = (min: number, max: number) => ({ type: "integer", minimum: min, maximum: max });
  t.deepEqual(verdicts(int(-12, 14), ["-12", "-13", "14", "15", "0", "-0", "-1", "09"]), ["complete", "reject", "complete", "reject", "complete", "reject", "complete", "reject"]);
  t.deepEqual(verdicts(int(2000, 6500), ["2000", "1999", "6500", "6501", "4000", "20000"]), ["complete", "reject", "complete", "reject", "complete", "reject"]);
  t.deepEqual(verdicts({ type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 10 }, ["0", "1", "9", "10"]), ["reject", "complete", "complete", "reject"]);
  t.deepEqual(verdicts({ type: "integer", minimum: 1 }, ["0", "1", "123456789"]), ["reject", "complete", "complete"]);
  const num = { type: "number", minimum: -10, maximum: 35 };
  t.deepEqual(
    verdicts(num, ["-10", "-10.5", "-9.5", "35", "35.5", "34.99", "0.5", "-0.5", "1e3"]),
    ["complete", "reject", "complete", "complete", "reject", "complete", "complete", "complete", "reject"],
  );
  t.deepEqual(verdicts({ type: "number", exclusiveMinimum: 0, maximum: 1 }, ["0", "0.0", "0.25", "1", "1.5", "-0.5"]), ["prefix", "prefix", "complete", "complete", "reject", "reject"]);
});

test("formats: real calendar dates, RFC 3339 times with an offset, uuids", (t) => {
  t.deepEqual(verdicts({ type: "string", format: "date" }, ['"2024-06-30"', '"2024-06-31"', '"2024-02-28"', '"2024-02-30"', '"2024-13-01"']), [
    "complete", "reject", "complete", "reject", "reject",
  ]);
  t.deepEqual(verdicts({ type: "string", format: "time" }, ['"23:59:59Z"', '"24:00:00Z"', '"07:30:00+02:00"', '"07:30:00"']), ["complete", "reject", "complete", "reject"]);
  t.deepEqual(verdicts({ type: "string", format: "uuid" }, ['"123e4567-e89b-12d3-a456-426614174000"', '"123e4567e89b12d3a456426614174000"']), ["complete", "reject"]);
});

test("strings count code points and never escape a lone surrogate", (t) => {
  const s = { type: "string", minLength: 2, maxLength: 3 };
  t.deepEqual(verdicts(s, ['"ab"', '"a"', '"abcd"', '"grü"', '"\\n\\u00e9"', '"😀😀"', '"\\ud83d\\ude00"', '"a"b"']), [
    "complete", "reject", "reject", "complete", "complete", "complete", "reject", "reject",
  ]);
});

test("uniqueItems over an enum: each value at most once, in enum order", (t) => {
  const s = schemas.find((x) => x.name === "unique-enum")!.schema;
  t.deepEqual(verdicts(s, ["[]", '["hall"]', '["kitchen","garden"]', '["kitchen","hall","garden"]', '["hall","hall"]', '["garden","kitchen"]']), [
    "complete", "complete", "complete", "complete", "reject", "reject",
  ]);
});

test("$ref to a recursive definition, prefixItems and minItems/maxItems", (t) => {
  const tree = schemas.find((x) => x.name === "recursive-tree")!.schema;
  t.deepEqual(verdicts(tree, ['{"v":1}', '{"v":1,"kids":[{"v":2,"kids":[{"v":3}]}]}', '{"v":1,"kids":[{"v":2},{"v":3},{"v":4}]}']), ["complete", "complete", "reject"]);
  const prefix = schemas.find((x) => x.name === "prefix-items")!.schema;
  t.deepEqual(verdicts(prefix, ['["2024-01-01",31]', '["2024-01-01"]', "[]", '["2024-01-01",31,1]']), ["complete", "complete", "complete", "reject"]);
  const rgb = schemas.find((x) => x.name === "prefix-and-rest")!.schema;
  t.deepEqual(verdicts(rgb, ['["rgb",255,0,10]', '["rgb",255,0]', '["rgb",1,2,3,4]', '["rgb",256,0,0]']), ["complete", "reject", "reject", "reject"]);
});

test('format "json" is any JSON object', (t) => {
  const g = parseGbnf(formatToGbnf("json"));
  t.deepEqual(
    ['{}', '{"a":[1,{"b":null}],"c":"d"}', "[]", '"x"', "{"].map((s) => recognise(g, s)),
    ["complete", "complete", "reject", "reject", "prefix"],
  );
});

test("a keyword the grammar cannot honour is an error naming it and where it is", (t) => {
  const cases: [unknown, string, RegExp][] = [
    [{ type: "string", pattern: "^a+$" }, "/pattern", /unsupported keyword "pattern"/],
    [{ type: "object", properties: { n: { type: "integer", multipleOf: 5 } } }, "/properties/n/multipleOf", /multipleOf/],
    [{ not: { type: "null" } }, "/not", /"not"/],
    [{ type: "object", minProperties: 1 }, "/minProperties", /minProperties/],
    [{ type: "string", format: "email" }, "/format", /format "email" is not supported/],
    [{ type: "array", items: { type: "integer" }, uniqueItems: true }, "/uniqueItems", /uniqueItems/],
    [{ $ref: "https://example.com/schema.json" }, "/$ref", /local references/],
    [{ $ref: "#/$defs/missing" }, "/$ref", /names nothing/],
    [{ type: "integer", minimum: 5, maximum: 4 }, "/maximum", /no whole number/],
    [{ type: "strnig" }, "/type", /unknown type "strnig"/],
    [{ type: "string", minLength: -1 }, "/minLength", /whole number/],
    [{ type: "object", properties: { a: { type: "string" } }, required: ["b"], additionalProperties: false }, "/required", /"b"/],
    [false, "", /admits no value/],
    ["string", "", /must be an object/],
  ];
  for (const [schema, where, message] of cases) {
    const e = t.throws(() => schemaToGbnf(schema), { instanceOf: SchemaError }, JSON.stringify(schema));
    t.is(e?.path, where, JSON.stringify(schema));
    t.regex(e?.message ?? "", message);
  }
});

test("annotations, custom formats and OpenAPI's nullable are accepted", (t) => {
  const gbnf = schemaToGbnf({
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "T",
    description: "d",
    examples: [{}],
    type: "object",
    properties: { c: { type: "string", format: "jinja2", default: "x", deprecated: true, "x-order": 1 }, n: { type: "integer", nullable: true } },
    required: ["c", "n"],
  });
  t.is(recognise(parseGbnf(gbnf), '{"c":"{{ x }}","n":null}'), "complete");
});
