// The scheduler on the real engine: batched sequences give what each gives alone, prefixes are
// reused, stop strings, limits, cancellation, timeouts and shutdown end requests as documented.
import test from "ava";
import type { NativeModel } from "../daemon/engine/engine.js";
import { createSampler, openModel } from "../daemon/engine/engine.js";
import { generate } from "../daemon/engine/generate.js";
import type { ErrorCode, GenerateResult } from "../daemon/serving/protocol.js";
import { DEFAULT_SAMPLING, ProtocolError } from "../daemon/serving/protocol.js";
import type { GenerationJob, SchedulerOptions } from "../daemon/serving/scheduler.js";
import { Scheduler } from "../daemon/serving/scheduler.js";
import { StopStringFilter } from "../daemon/serving/stop-strings.js";
import { STORIES, waitFor } from "./helpers/daemon.js";
import { needShared, testNeeding } from "./helpers/shared.js";

const GREEDY = { ...DEFAULT_SAMPLING, temperature: 0 };

interface Outcome {
  deltas: string[];
  result?: GenerateResult;
  error?: { code: ErrorCode; message: string };
  settled: Promise<void>;
}

function collect(): { sink: Parameters<Scheduler["submit"]>[1]; out: Outcome } {
  let settle!: () => void;
  const out: Outcome = { deltas: [], settled: new Promise((r) => (settle = r)) };
  let calls = 0;
  return {
    out,
    sink: {
      delta: (s) => out.deltas.push(s),
      done: (r) => {
        if (calls++) throw new Error("second terminal event");
        out.result = r;
        settle();
      },
      fail: (code, message) => {
        if (calls++) throw new Error("second terminal event");
        out.error = { code, message };
        settle();
      },
    },
  };
}

function withScheduler(nSeq: number, options: SchedulerOptions, fn: (s: Scheduler, m: NativeModel) => Promise<void>) {
  return async () => {
    const model = openModel(STORIES(), { nCtx: 128, nSeq, threads: 1 });
    const s = new Scheduler(model, options);
    s.start();
    try {
      await fn(s, model);
    } finally {
      await s.stop(0);
      model.close();
    }
  };
}

function job(model: NativeModel, prompt: string, extra: Partial<GenerationJob> = {}): GenerationJob {
  return { promptTokens: Array.from(model.tokenize(prompt)), maxTokens: 40, sampling: GREEDY, stop: [], priority: 0, ...extra };
}

/** The single-sequence loop of `alpaca run`, on its own model. */
function alone(prompt: string, n: number): string {
  const model = openModel(STORIES(), { nCtx: 128, threads: 1 });
  try {
    const sampler = createSampler({ temperature: 0 });
    return generate(model, sampler, Array.from(model.tokenize(prompt)), { maxTokens: n }).text;
  } finally {
    model.close();
  }
}

const PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a bird", "Tom had a red ball", "The sun was"];

// ─── Stop strings ────────────────────────────────────────────────────────────────────────────

test("stop strings: a possible start is held back, the text before a stop is the last output", (t) => {
  const f = new StopStringFilter(["\n\n", "User:"]);
  t.deepEqual(f.push("Hello Us"), { emit: "Hello ", stopped: false });
  t.deepEqual(f.push("e"), { emit: "", stopped: false });
  t.deepEqual(f.push("d it\n"), { emit: "Used it", stopped: false });
  t.deepEqual(f.push("\nmore"), { emit: "", stopped: true });
  const g = new StopStringFilter(["END"]);
  t.deepEqual(g.push("the EN"), { emit: "the ", stopped: false });
  t.is(g.flush(), "EN");
  const h = new StopStringFilter([]);
  t.deepEqual(h.push("x"), { emit: "x", stopped: false });
  const k = new StopStringFilter(["ab", "b"]);
  t.deepEqual(k.push("cab"), { emit: "c", stopped: true }, "the earliest stop wins");
});

// ─── Batching ────────────────────────────────────────────────────────────────────────────────

testNeeding(test, needShared, "sequences batched together give each the text it gives alone", async (t) => {
  const expected = PROMPTS.map((p) => alone(p, 40));
  await withScheduler(4, {}, async (s, model) => {
    const runs = PROMPTS.map((p) => {
      const c = collect();
      s.submit(job(model, p), c.sink);
      return c.out;
    });
    await Promise.all(runs.map((r) => r.settled));
    runs.forEach((r, i) => {
      t.is(r.result?.text, expected[i], PROMPTS[i]);
      t.is(r.deltas.join(""), r.result?.text ?? "");
      t.is(r.result?.usage.completion_tokens, 40);
      t.is(r.result?.stop_reason, "length");
    });
  })();
});

testNeeding(test, needShared, "a small token budget splits prompts into chunks without changing the text", async (t) => {
  const prompt = "Lily and Ben went to the park to play with the big red ball and the little dog";
  const expected = alone(prompt, 30);
  await withScheduler(2, { maxBatchTokens: 3 }, async (s, model) => {
    const a = collect();
    const b = collect();
    s.submit(job(model, prompt, { maxTokens: 30 }), a.sink);
    s.submit(job(model, "Once upon a time", { maxTokens: 30 }), b.sink);
    await Promise.all([a.out.settled, b.out.settled]);
    t.is(a.out.result?.text, expected);
    t.is(b.out.result?.text, alone("Once upon a time", 30));
  })();
});

// ─── Prefix reuse ────────────────────────────────────────────────────────────────────────────

testNeeding(test, needShared, "a prompt sharing a cached prefix reads only the rest", async (t) => {
  const base = "Lily and Ben went to the park. They saw a big tree";
  const longer = `${base} and a little bird`;
  await withScheduler(2, {}, async (s, model) => {
    const first = collect();
    s.submit(job(model, base, { maxTokens: 8 }), first.sink);
    await first.out.settled;
    t.is(first.out.result?.usage.cached_tokens, 0);

    const again = collect();
    s.submit(job(model, longer, { maxTokens: 20 }), again.sink);
    await again.out.settled;
    const nBase = model.tokenize(base).length;
    t.true(again.out.result!.usage.cached_tokens >= nBase - 1, `${again.out.result!.usage.cached_tokens} of ${nBase}`);
    t.is(again.out.result?.text, alone(longer, 20));
  })();
});

testNeeding(test, needShared, "a prefix is copied from a busy slot", async (t) => {
  const shared = "Once upon a time, there was a little girl named Lily. She loved to play outside";
  await withScheduler(2, { maxBatchTokens: 8 }, async (s, model) => {
    const a = collect();
    s.submit(job(model, shared, { maxTokens: 60 }), a.sink);
    await waitFor(() => a.out.deltas.length > 0, 5000, "the first request to start generating");
    const b = collect();
    s.submit(job(model, `${shared} in the park`, { maxTokens: 20 }), b.sink);
    await Promise.all([a.out.settled, b.out.settled]);
    t.true(b.out.result!.usage.cached_tokens >= model.tokenize(shared).length - 1);
    t.is(b.out.result?.text, alone(`${shared} in the park`, 20));
  })();
});

// ─── Limits and ends ─────────────────────────────────────────────────────────────────────────

testNeeding(test, needShared, "stop strings end the text before the stop", async (t) => {
  const full = alone("Once upon a time", 40); // ", there was a little girl named Lily. She loved …"
  await withScheduler(1, {}, async (s, model) => {
    const c = collect();
    s.submit(job(model, "Once upon a time", { stop: ["Lily"] }), c.sink);
    await c.out.settled;
    t.is(c.out.result?.stop_reason, "stop");
    t.is(c.out.result?.text, full.slice(0, full.indexOf("Lily")));
    t.is(c.out.deltas.join(""), c.out.result?.text ?? "");
  })();
});

testNeeding(test, needShared, "prompt + max_tokens beyond the context is too_long; no max_tokens fits what is left", async (t) => {
  await withScheduler(1, {}, async (s, model) => {
    const long = Array(130).fill(1);
    const e1 = t.throws(() => s.submit({ ...job(model, "x"), promptTokens: long }, collect().sink), { instanceOf: ProtocolError });
    t.is(e1?.code, "too_long");
    const e2 = t.throws(() => s.submit({ ...job(model, "x"), promptTokens: Array(100).fill(1), maxTokens: 29 }, collect().sink), {
      instanceOf: ProtocolError,
    });
    t.is(e2?.code, "too_long");
    t.regex(e2?.message ?? "", /100 tokens.*29.*128/);
    const c = collect();
    s.submit({ ...job(model, "x"), promptTokens: [1, ...Array(119).fill(300)], maxTokens: undefined }, c.sink);
    await c.out.settled;
    t.true(c.out.result!.usage.completion_tokens <= 8);
  })();
});

testNeeding(test, needShared, "a full queue answers busy at once", async (t) => {
  await withScheduler(1, { maxQueue: 2 }, async (s, model) => {
    const runs = [collect(), collect(), collect()];
    for (const r of runs) s.submit(job(model, "Once upon a time"), r.sink);
    const e = t.throws(() => s.submit(job(model, "Once upon a time"), collect().sink), { instanceOf: ProtocolError });
    t.is(e?.code, "busy");
    await Promise.all(runs.map((r) => r.out.settled));
    t.true(runs.every((r) => r.out.result?.stop_reason === "length"));
  })();
});

testNeeding(test, needShared, "higher priority is admitted first", async (t) => {
  await withScheduler(1, {}, async (s, model) => {
    const order: string[] = [];
    const track = (name: string) => {
      const c = collect();
      void c.out.settled.then(() => order.push(name));
      return c;
    };
    const first = track("first");
    s.submit(job(model, "Once upon a time"), first.sink);
    await waitFor(() => s.stats().running === 1);
    const low = track("low");
    const high = track("high");
    s.submit(job(model, "The sun was", { priority: -1 }), low.sink);
    s.submit(job(model, "The sun was", { priority: 5 }), high.sink);
    await Promise.all([first.out.settled, low.out.settled, high.out.settled]);
    t.deepEqual(order, ["first", "high", "low"]);
  })();
});

testNeeding(test, needShared, "cancel: a running request stops and its KV cells go back to the baseline", async (t) => {
  await withScheduler(2, { maxBatchTokens: 1 }, async (s, model) => {
    const done = collect();
    s.submit(job(model, "The sun was", { maxTokens: 5 }), done.sink);
    await done.out.settled;
    const baseline = s.stats().kvUsedCells;
    t.true(baseline > 0, "a finished request keeps its cache for reuse");

    const running = collect();
    const h = s.submit(job(model, "Once upon a time", { maxTokens: 100 }), running.sink);
    await waitFor(() => running.out.deltas.length > 2, 5000, "generation");
    h.cancel();
    await running.out.settled;
    t.is(running.out.result?.stop_reason, "cancelled");
    t.is(running.out.result?.text, running.out.deltas.join(""));
    await waitFor(() => s.stats().running === 0);
    t.is(model.kvUsedCells(), baseline);
    t.is(s.stats().kvUsedCells, baseline);
    t.is(s.stats().slots.find((x) => x.cachedTokens > 0)?.cachedTokens, baseline, "the other slot's cache is kept");
  })();
});

testNeeding(test, needShared, "cancel: a queued request fails cancelled at once", async (t) => {
  await withScheduler(1, { maxBatchTokens: 1 }, async (s, model) => {
    const running = collect();
    s.submit(job(model, "Once upon a time", { maxTokens: 60 }), running.sink);
    const queued = collect();
    const h = s.submit(job(model, "Tom had a red ball"), queued.sink);
    h.cancel();
    await queued.out.settled;
    t.is(queued.out.error?.code, "cancelled");
    t.deepEqual(queued.out.deltas, []);
    h.cancel(); // twice is harmless
    await running.out.settled;
    t.is(running.out.result?.stop_reason, "length");
  })();
});

testNeeding(test, needShared, "a deadline ends a running request with stop_reason timeout, a queued one with error timeout", async (t) => {
  await withScheduler(1, { maxBatchTokens: 1 }, async (s, model) => {
    const running = collect();
    s.submit(job(model, "Once upon a time, there was a little girl named Lily", { maxTokens: 60, timeoutMs: 15 }), running.sink);
    const queued = collect();
    s.submit(job(model, "The sun was", { timeoutMs: 1 }), queued.sink);
    await Promise.all([running.out.settled, queued.out.settled]);
    t.is(queued.out.error?.code, "timeout");
    // stories260K is fast: it may finish 60 tokens before 15 ms on a fast machine
    t.true(["timeout", "length"].includes(running.out.result!.stop_reason));
  })();
});

testNeeding(test, needShared, "stop: queued requests get shutting_down at once, running ones at the end of the grace period", async (t) => {
  const model = openModel(STORIES(), { nCtx: 128, nSeq: 1, threads: 1 });
  const s = new Scheduler(model, { maxBatchTokens: 1 });
  s.start();
  const running = collect();
  s.submit(job(model, "Once upon a time", { maxTokens: 120 }), running.sink);
  const queued = collect();
  s.submit(job(model, "The sun was"), queued.sink);
  await waitFor(() => running.out.deltas.length > 0);
  await s.stop(0);
  t.is(queued.out.error?.code, "shutting_down");
  t.true(running.out.error?.code === "shutting_down" || running.out.result?.stop_reason === "length");
  const e = t.throws(() => s.submit(job(model, "x"), collect().sink), { instanceOf: ProtocolError });
  t.is(e?.code, "shutting_down");
  model.close();
});

testNeeding(test, needShared, "under memory pressure queued requests run one at a time, and all again when it eases", async (t) => {
  await withScheduler(4, {}, async (s, model) => {
    s.setAdmitting(false, "memory stalls");
    const runs = [collect(), collect(), collect()];
    let most = 0;
    for (const r of runs) {
      s.submit(job(model, "Once upon a time", { maxTokens: 30 }), r.sink);
      r.sink.delta = ((orig) => (text: string) => {
        most = Math.max(most, s.stats().running);
        orig(text);
      })(r.sink.delta);
    }
    t.like(s.stats(), { admitting: false, admissionNote: "memory stalls" });
    await Promise.all(runs.map((r) => r.out.settled));
    t.is(most, 1);
    s.setAdmitting(true);
    const again = [collect(), collect()];
    let together = 0;
    for (const r of again) {
      s.submit(job(model, "The sun was", { maxTokens: 30 }), r.sink);
      const orig = r.sink.delta;
      r.sink.delta = (text) => {
        together = Math.max(together, s.stats().running);
        orig(text);
      };
    }
    await Promise.all(again.map((r) => r.out.settled));
    t.is(together, 2);
  })();
});
