// Mistral tool calls: `[TOOL_CALLS][{"name": "…", "arguments": {…}}, …]` (v3 tokenizers), or
// `[TOOL_CALLS]name[ARGS]{…}` per call (v11 and later). `[TOOL_CALLS]` is a control token and may
// render as no text; the JSON list is recognised without it.
import { gbnfLiteral } from "../gbnf-writer.js";
import type { ParsedCall, ParseOutcome, ToolFormat } from "./format.js";
import { eachTool, jsonEnd, MAX_CALLS, readCall, tryJson } from "./format.js";

const TAG = "[TOOL_CALLS]";
const ARGS = "[ARGS]";

export const mistral: ToolFormat = {
  name: "mistral",
  speaks: (template) => template.includes(TAG) || template.includes("[AVAILABLE_TOOLS]"),
  triggers: [TAG, '[{"name"'],
  triggerTokens: [TAG],

  grammar(tools, rules, parallel) {
    const choice = eachTool(tools, (name, args) => `${gbnfLiteral(`{"name": ${JSON.stringify(name)}, "arguments": `)} ${args} "}"`);
    const call = rules.add("tool-call", `(${choice})`);
    return `${gbnfLiteral(TAG)}? "[" ${call} ${parallel ? `(", " ${call}){0,${MAX_CALLS - 1}} ` : ""}"]"`;
  },

  parse(text) {
    const at = text.indexOf(TAG);
    const head = at >= 0 ? text.slice(0, at) : "";
    const body = (at >= 0 ? text.slice(at + TAG.length) : text).trimStart();
    if (at < 0 && !/^\[\s*\{\s*"name"/.test(body)) return { content: text, calls: [] };
    const outcome = body.startsWith("[") ? jsonList(body) : namedCalls(body);
    return "error" in outcome ? outcome : { content: head.trim(), calls: outcome.calls };
  },
};

function jsonList(body: string): ParseOutcome {
  const end = jsonEnd(body, 0);
  if (end < 0) return { error: "the tool calls are not a complete JSON list" };
  const list = tryJson(body.slice(0, end));
  if (!Array.isArray(list) || list.length === 0) return { error: "the tool calls are not a JSON list of calls" };
  const calls: ParsedCall[] = [];
  for (const item of list) {
    const call = readCall(item);
    if (typeof call === "string") return { error: call };
    calls.push(call);
  }
  if (body.slice(end).trim() !== "") return { error: "text follows the tool calls" };
  return { content: "", calls };
}

/** `name[ARGS]{…}`, repeated (with [TOOL_CALLS] between calls where it renders). */
function namedCalls(body: string): ParseOutcome {
  const calls: ParsedCall[] = [];
  let rest = body;
  while (rest.trim() !== "") {
    const m = rest.match(/^\s*(?:\[TOOL_CALLS\])?\s*([^[\s]+)\[ARGS\]/);
    if (!m) return { error: `a tool call after ${TAG} is neither a JSON list nor name${ARGS}{…}` };
    const start = m[0].length;
    const end = jsonEnd(rest, start);
    if (end < 0) return { error: `the arguments of "${m[1]}" are not complete JSON` };
    const call = readCall({ name: m[1], arguments: tryJson(rest.slice(start, end)) });
    if (typeof call === "string") return { error: call };
    calls.push(call);
    rest = rest.slice(end);
  }
  return { content: "", calls };
}
