// The model catalog: the shipped file is well formed, and the checks catch each kind of mistake.
import test from "ava";
import fs from "node:fs";
import { CATALOG_PATH, catalogProblems, defaultCatalogEntry, findCatalogEntry, loadCatalog, type Catalog } from "../models/catalog.js";

const shipped = () => JSON.parse(fs.readFileSync(CATALOG_PATH(), "utf8")) as Catalog;

test("the shipped catalog has no problems", (t) => {
  t.deepEqual(catalogProblems(shipped()), []);
});

test("every entry: https URL, positive size, unique id, a known template", (t) => {
  const c = loadCatalog();
  t.true(c.models.length >= 3);
  t.is(new Set(c.models.map((m) => m.id)).size, c.models.length);
  for (const m of c.models) {
    t.true(m.url.startsWith("https://"), m.id);
    t.true(m.size > 0 && m.memory > m.size, m.id);
    t.true(["alpaca", "chat", "raw"].includes(m.template), m.id);
    t.true(m.sha256 === null || /^[0-9a-f]{64}$/.test(m.sha256), m.id);
    t.true(m.url.endsWith(m.file), `${m.id}: the URL names the file`);
  }
});

test("exactly one default, and the sizes the brief asks for: 7B, 3B and TinyLlama 1.1B", (t) => {
  const c = loadCatalog();
  t.is(c.models.filter((m) => m.default).length, 1);
  t.truthy(defaultCatalogEntry());
  t.true(c.models.some((m) => m.parameters === "7B" && m.quantization === "q4_0"));
  t.true(c.models.some((m) => m.parameters === "3B"));
  t.truthy(findCatalogEntry("tinyllama-1.1b-chat-q4_0"));
  t.is(findCatalogEntry("TinyLlama-1.1B-Chat-Q4_0")?.id, "tinyllama-1.1b-chat-q4_0");
});

test("an entry without a digest says why and has an exact size", (t) => {
  for (const m of loadCatalog().models.filter((x) => x.sha256 === null)) {
    t.regex(m.notes ?? "", /sha256|digest/i);
    t.true(m.sizeExact);
  }
});

const broken: [string, (c: Catalog) => void, RegExp][] = [
  ["http URL", (c) => { c.models[0]!.url = "http://example.com/x.gguf"; }, /url must be https/],
  ["duplicate id", (c) => { c.models[1]!.id = c.models[0]!.id; }, /not unique/],
  ["two defaults", (c) => { c.models.forEach((m) => { m.default = true; }); }, /exactly one entry must be the default \(found \d+\)/],
  ["no default", (c) => { c.models.forEach((m) => { delete m.default; }); }, /found 0/],
  ["zero size", (c) => { c.models[0]!.size = 0; }, /size must be a positive integer/],
  ["bad digest", (c) => { c.models[0]!.sha256 = "abc"; }, /sha256 must be 64/],
  ["no digest, no note", (c) => { c.models[0]!.sha256 = null; c.models[0]!.notes = ""; }, /must say why/],
  ["unknown template", (c) => { (c.models[0] as { template: string }).template = "vicuna"; }, /template must be one of/],
  ["path in file", (c) => { c.models[0]!.file = "../x.gguf"; }, /plain \*\.gguf name/],
];
for (const [what, breakIt, message] of broken) {
  test(`the checks catch: ${what}`, (t) => {
    const c = shipped();
    breakIt(c);
    const problems = catalogProblems(c);
    t.true(problems.some((p) => message.test(p)), problems.join("\n"));
  });
}
