// Llama 3.1 / 3.2 tool calls: the whole answer is one JSON object {"name": "…", "parameters": {…}},
// after the `<|python_tag|>` token or without it (3.2's JSON tool calling); several calls may be
// separated by ";". `<|python_tag|>` is a control token: it renders as no text.
import { gbnfLiteral } from "../gbnf-writer.js";
import type { ParsedCall, ToolFormat } from "./format.js";
import { eachTool, jsonEnd, readCall, tryJson } from "./format.js";

const TAG = "<|python_tag|>";

export const llama3: ToolFormat = {
  name: "llama3",
  speaks: (template) => template.includes(TAG) || (template.includes("<|start_header_id|>") && template.includes('"parameters": ')),
  triggers: ['{"name"', TAG],
  triggerTokens: [TAG],

  // One call per answer, as Llama 3.1's prompt asks for.
  grammar(tools, rules) {
    // From the trigger's first byte (the tag, where it renders as text, or `{"name"`), the rest fixed.
    const choice = eachTool(tools, (name, args) => `${gbnfLiteral(`${JSON.stringify(name)}, "parameters": `)} ${args}`);
    return `${gbnfLiteral(TAG)}? ${rules.add("tool-call", `${gbnfLiteral('{"name": ')} (${choice}) "}"`)}`;
  },

  parse(text) {
    let body = text.trimStart();
    const tagged = body.startsWith(TAG);
    if (tagged) body = body.slice(TAG.length).trimStart();
    if (!body.startsWith("{")) {
      if (tagged) return { error: `${TAG} is followed by no JSON tool call` };
      return { content: text, calls: [] };
    }
    const calls: ParsedCall[] = [];
    let at = 0;
    while (at < body.length) {
      const end = jsonEnd(body, at);
      if (end < 0) return tagged || calls.length ? { error: "the tool call is not complete JSON" } : plainOrBroken(text, body);
      const value = tryJson(body.slice(at, end));
      const call = readCall(value, ["parameters", "arguments"]);
      if (typeof call === "string") return tagged || calls.length ? { error: call } : { content: text, calls: [] };
      calls.push(call);
      const sep = body.slice(end).match(/^\s*;?\s*/)![0];
      at = end + sep.length;
    }
    return { content: "", calls };
  },
};

/** An answer that starts like a call but ends early: a broken call if it names one, else plain text. */
function plainOrBroken(text: string, body: string) {
  return /^\{\s*"(name|type)"\s*:/.test(body) ? { error: "the tool call is not complete JSON" } : { content: text, calls: [] };
}
