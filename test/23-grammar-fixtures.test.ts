// The published grammars (llama.cpp's json.gbnf and list.gbnf, home-llm's output.gbnf) compiled by
// the native engine and sampled by the model at temperature 1.0: 200 outputs each, every one read
// by the test-only Earley recogniser (test/helpers/gbnf.ts), which shares no code with the engine.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import { openModel } from "../daemon/engine/engine.js";
import { compileGrammar } from "../daemon/engine/grammar.js";
import type { GenerateResult } from "../daemon/serving/protocol.js";
import { DEFAULT_SAMPLING } from "../daemon/serving/protocol.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { parseGbnf, recognise } from "./helpers/gbnf.js";
import { STORIES } from "./helpers/daemon.js";
import { needShared, ROOT, testNeeding } from "./helpers/shared.js";

const FIXTURES = path.join(ROOT, "test", "fixtures", "grammars");
const OUTPUTS = 200;

for (const name of ["json.gbnf", "list.gbnf", "output.gbnf"])
  testNeeding(test, needShared, `${name}: ${OUTPUTS} sampled outputs, each accepted by the separate recogniser`, async (t) => {
    const text = fs.readFileSync(path.join(FIXTURES, name), "utf8");
    const model = openModel(STORIES(), { nCtx: 128, nSeq: 4, threads: 1 });
    t.teardown(() => model.close());
    const grammar = compileGrammar(model, text);
    const reference = parseGbnf(text);
    const scheduler = new Scheduler(model, { maxQueue: OUTPUTS });
    scheduler.start();
    t.teardown(() => scheduler.stop(0));
    const prompt = Array.from(model.tokenize("Once upon a time"));
    const results = await Promise.all(
      Array.from(
        { length: OUTPUTS },
        (_, seed) =>
          new Promise<GenerateResult>((resolve, reject) =>
            scheduler.submit(
              { promptTokens: prompt, maxTokens: 48, sampling: { ...DEFAULT_SAMPLING, temperature: 1, seed }, stop: [], priority: 0, grammar },
              { delta: () => {}, done: resolve, fail: (_c, m) => reject(new Error(m)) },
            ),
          ),
      ),
    );
    let complete = 0;
    for (const r of results) {
      if (r.stop_reason === "eos") {
        complete++;
        t.is(recognise(reference, r.text), "complete", JSON.stringify(r.text));
      } else {
        t.is(r.stop_reason, "length");
        // cut short, perhaps inside a character: what was whole must still lead somewhere
        t.not(recognise(reference, r.text.replace(/\uFFFD+$/, "")), "reject", JSON.stringify(r.text));
      }
    }
    t.log(`${complete} of ${OUTPUTS} ended where the grammar may end, the rest at 48 tokens`);
  });
