// `alpaca bench --speculate`: decode with and without speculation by prompt lookup on a
// copy-heavy task — a Home Assistant-style prompt listing entities, answered with tool calls
// that name some of them and a JSON object repeating their values.
//
// As in the rest of `alpaca bench`, what is measured must not depend on the weights: the answer
// is fixed text (the one a model that copies well would give), fed teacher-forced. Without
// speculation each answer token costs one engine call; with it, each call feeds the last token
// and the proposals of daemon/serving/speculation.ts, asks logits for every row and samples each
// (greedy, as a real check would), and keeps the proposals that match the answer — exactly the
// tokens the scheduler would keep from a model that gives this answer.
import { seededRandom, spread, type Spread } from "./bench.js";
import type { NativeModel } from "./engine.js";
import { createSampler, sequenceBatch } from "./engine.js";
import { Speculator } from "../serving/speculation.js";

export interface SpeculationBenchResult {
  promptTokens: number;
  answerTokens: number;
  plain: { passes: number; ms: Spread };
  speculative: { passes: number; drafted: number; accepted: number; ms: Spread };
  /** Answer tokens per engine call with speculation (1 without). */
  tokensPerPass: number;
  /** Median time per answer token without / with speculation. */
  speedup: number;
}

const ROOMS = ["Kitchen", "Living Room", "Bedroom", "Office", "Hallway", "Garage", "Garden", "Bathroom", "Nursery", "Attic"];
const THINGS: [string, string][] = [
  ["light", "Ceiling Light"], ["light", "Lamp"], ["switch", "Fan"], ["cover", "Blinds"], ["sensor", "Temperature"],
  ["climate", "Thermostat"], ["media_player", "Speaker"], ["lock", "Door Lock"],
];
const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "_");

/** A system prompt with `n` entities and a user request; an answer of tool calls and JSON copying from it. */
export function copyHeavyTask(n = 80, seed = 1): { prompt: string; answer: string } {
  const random = seededRandom(seed);
  const entities: { id: string; name: string; area: string; state: string }[] = [];
  for (let i = 0; entities.length < n; i++) {
    const area = ROOMS[i % ROOMS.length];
    const [domain, thing] = THINGS[Math.floor(i / ROOMS.length) % THINGS.length];
    const name = `${area} ${thing}`;
    const state = domain === "sensor" ? `${(18 + random() * 6).toFixed(1)} °C` : random() < 0.5 ? "on" : "off";
    entities.push({ id: `${domain}.${slug(name)}`, name, area, state });
  }
  const lines = entities.map((e) => `- names: ${e.name}\n  domain: ${e.id.split(".")[0]}\n  state: '${e.state}'\n  areas: ${e.area}\n  entity_id: ${e.id}`);
  // The tools as Qwen's template lists them: one JSON object per line inside <tools></tools>.
  const tool = (name: string, description: string) =>
    JSON.stringify({
      type: "function",
      function: {
        name, description,
        parameters: { type: "object", properties: { name: { type: "string" }, area: { type: "string" }, domain: { type: "string" } } },
      },
    });
  // What the user asks about: four entities spread over the list, the last one's state reported.
  const picks = [0.1, 0.4, 0.7, 0.95].map((f) => entities[Math.min(n - 1, Math.floor(f * n))]);
  const call = (tool: string, e: { name: string; id: string }) =>
    `<tool_call>\n{"name": "${tool}", "arguments": {"name": "${e.name}", "domain": "${e.id.split(".")[0]}"}}\n</tool_call>`;
  const prompt =
    "You are a voice assistant for Home Assistant. Answer questions about the world truthfully. " +
    "Answer in plain text. Keep it simple and to the point.\nStatic Context: An overview of the areas and the devices in this smart home:\n" +
    lines.join("\n") +
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n<tools>\n" +
    [tool("HassTurnOn", "Turns on/opens a device or entity"), tool("HassTurnOff", "Turns off/closes a device or entity"),
      tool("HassSetPosition", "Sets the position of a device or entity"), tool("GetLiveContext", "Provides real-time information")].join("\n") +
    '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' +
    `\nUser: turn on the ${picks[0].name.toLowerCase()}, the ${picks[1].name.toLowerCase()} and the ${picks[2].name.toLowerCase()}, ` +
    `and tell me about the ${picks[3].name.toLowerCase()}.`;
  const answer = [
    ...picks.slice(0, 3).map((e) => call("HassTurnOn", e)),
    JSON.stringify({ entity_id: picks[3].id, name: picks[3].name, area: picks[3].area, state: picks[3].state }),
  ].join("\n");
  return { prompt, answer };
}

function timeAnswer(model: NativeModel, prompt: number[], answer: number[], speculate: boolean) {
  const sampler = createSampler({ temperature: 0 });
  const spec = new Speculator();
  const P = prompt.length;
  model.kvTruncate(0, P); // the prompt stays: both ways start right after it
  const history = prompt.concat(answer.slice(0, 1)); // answer[0] came from the prompt's logits
  let passes = 0;
  const t0 = performance.now();
  for (let i = 1; i < answer.length; passes++) {
    const pos = P + i - 1; // where the last produced token answer[i - 1] goes
    const draft = speculate ? spec.propose(history, answer.length - i - 1) : [];
    const fed = [answer[i - 1], ...draft];
    const logits = model.decode(sequenceBatch(fed, pos, 0, true));
    const nVocab = logits.length / fed.length;
    let kept = 0;
    for (let r = 0; r < fed.length; r++) {
      sampler.sample(logits, r * nVocab, nVocab, r < draft.length ? draft[r] : -1);
      if (r < draft.length && draft[r] === answer[i + r]) kept++;
      else break;
    }
    spec.record(draft.length, kept);
    if (kept < draft.length) model.kvTruncate(0, pos + 1 + kept);
    const produced = answer.slice(i, i + kept + 1);
    history.push(...produced);
    i += produced.length;
  }
  return { ms: performance.now() - t0, passes, drafted: spec.drafted, accepted: spec.accepted };
}

/** The task as the model's token ids. */
export function copyHeavyTaskTokens(model: NativeModel, task = copyHeavyTask()): { prompt: number[]; answer: number[] } {
  return { prompt: Array.from(model.tokenize(task.prompt, model.info().addBos)), answer: Array.from(model.tokenize(task.answer, false)) };
}

/** Which ways to decode: both (the comparison), or one alone / none (the prefill only) to count instructions. */
export type SpeculationRuns = "both" | "plain" | "speculative" | "none";

export function benchSpeculation(model: NativeModel, reps: number, task = copyHeavyTaskTokens(model), runs: SpeculationRuns = "both"): SpeculationBenchResult {
  const info = model.info();
  const { prompt, answer } = task;
  if (prompt.length + answer.length > info.nCtx)
    throw new RangeError(`the task needs ${prompt.length + answer.length} tokens of context, the model is opened with ${info.nCtx}`);
  model.kvTruncate(0, 0);
  for (let i = 0; i < prompt.length; i += 512) model.decode(sequenceBatch(prompt.slice(i, i + 512), i, 0));
  const plain: number[] = [], fast: number[] = [];
  let p = { passes: 0, ms: 0 }, s = { passes: 0, ms: 0, drafted: 0, accepted: 0 };
  for (let r = 0; r < reps; r++) {
    if (runs === "both" || runs === "plain") {
      p = timeAnswer(model, prompt, answer, false);
      plain.push(p.ms / (answer.length - 1));
    }
    if (runs === "both" || runs === "speculative") {
      s = timeAnswer(model, prompt, answer, true);
      fast.push(s.ms / (answer.length - 1));
    }
  }
  const plainMs = spread(plain), fastMs = spread(fast);
  return {
    promptTokens: prompt.length,
    answerTokens: answer.length,
    plain: { passes: p.passes, ms: plainMs },
    speculative: { passes: s.passes, drafted: s.drafted, accepted: s.accepted, ms: fastMs },
    tokensPerPass: s.passes > 0 ? (answer.length - 1) / s.passes : NaN,
    speedup: plainMs.median / fastMs.median,
  };
}
