// Sampling: greedy ties, the filters narrowing the choice, repetition penalty, seeds.
import test from "ava";
import { createSampler } from "../daemon/engine/engine.js";

const logits = Float32Array.from([1, 5, 5, 2, 4.9, -3]);

function draws(opts: Parameters<typeof createSampler>[0], n = 400): Set<number> {
  const s = createSampler({ repeatLastN: 0, ...opts });
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) seen.add(s.sample(logits));
  return seen;
}

test("temperature 0 is greedy with ties to the lowest id", (t) => {
  t.deepEqual([...draws({ temperature: 0 }, 5)], [1]);
});

test("top-k keeps the k best", (t) => {
  t.deepEqual([...draws({ temperature: 1, topK: 1, topP: 1, minP: 0 })], [1]);
  const two = draws({ temperature: 1, topK: 2, topP: 1, minP: 0 });
  t.deepEqual([...two].sort(), [1, 2]);
});

test("top-p keeps the smallest set reaching the mass", (t) => {
  const seen = draws({ temperature: 1, topK: 0, topP: 0.5, minP: 0 });
  t.deepEqual([...seen].sort(), [1, 2]); // each holds ~0.35 of the mass
});

test("min-p drops tokens far below the best", (t) => {
  const seen = draws({ temperature: 1, topK: 0, topP: 1, minP: 0.5 });
  t.deepEqual([...seen].sort(), [1, 2, 4]); // e^-0.1 ≈ 0.9 stays, e^-1 ≈ 0.37 goes
  t.false(seen.has(3));
});

test("high temperature reaches every token; the same seed repeats the same draws", (t) => {
  const all = draws({ temperature: 50, topK: 0, topP: 1, minP: 0 }, 2000);
  t.is(all.size, logits.length);
  const run = (seed: number) => {
    const s = createSampler({ temperature: 1.5, topK: 0, topP: 1, minP: 0, seed });
    return Array.from({ length: 50 }, () => s.sample(logits));
  };
  t.deepEqual(run(7), run(7));
  t.notDeepEqual(run(7), run(8));
});

test("repetition penalty steers greedy away from recent tokens", (t) => {
  const s = createSampler({ temperature: 0, repeatPenalty: 1.5, repeatLastN: 8 });
  s.accept(1);
  s.accept(2);
  t.is(s.sample(logits), 4); // 5/1.5 < 4.9
});

test("bad settings throw RangeError / TypeError", (t) => {
  t.throws(() => createSampler({ temperature: -1 }), { instanceOf: RangeError });
  t.throws(() => createSampler({ topP: 0 }), { instanceOf: RangeError });
  t.throws(() => createSampler({ topK: 1.5 }), { instanceOf: RangeError });
  const s = createSampler({});
  t.throws(() => s.sample(new Float32Array(0)), { instanceOf: RangeError });
  t.throws(() => s.sample([1, 2] as unknown as Float32Array), { instanceOf: TypeError });
});
