// Hermes / Qwen tool calls: `<tool_call>\n{"name": "…", "arguments": {…}}\n</tool_call>`, one block
// per call (Qwen2.5, Qwen3, Hermes 2 Pro and their templates). In Qwen's vocabulary `<tool_call>` is
// one token whose text is the tag itself.
import { gbnfLiteral } from "../gbnf-writer.js";
import type { ParsedCall, ToolFormat } from "./format.js";
import { eachTool, jsonEnd, MAX_CALLS, readCall, tryJson } from "./format.js";

const OPEN = "<tool_call>";
const CLOSE = "</tool_call>";

export const hermes: ToolFormat = {
  name: "hermes",
  speaks: (template) => template.includes(OPEN),
  triggers: [OPEN],
  triggerTokens: [],

  grammar(tools, rules, parallel) {
    const choice = eachTool(tools, (name, args) => `${gbnfLiteral(`${JSON.stringify(name)}, "arguments": `)} ${args}`);
    const call = rules.add("tool-call", `${gbnfLiteral(`${OPEN}\n{"name": `)} (${choice}) ${gbnfLiteral(`}\n${CLOSE}`)}`);
    return parallel ? `${call} ("\\n" ${call}){0,${MAX_CALLS - 1}}` : call;
  },

  parse(text) {
    const calls: ParsedCall[] = [];
    let content = "";
    let at = 0;
    for (;;) {
      const open = text.indexOf(OPEN, at);
      if (open < 0) break;
      content += text.slice(at, open);
      const start = open + OPEN.length;
      const end = jsonEnd(text, start);
      if (end < 0) return { error: `the tool call at character ${open} is not complete JSON` };
      const call = readCall(tryJson(text.slice(start, end)));
      if (typeof call === "string") return { error: call };
      calls.push(call);
      const rest = text.slice(end);
      const close = rest.match(/^\s*<\/tool_call>/);
      // A model that ends right after the JSON has still made its call.
      if (close) at = end + close[0].length;
      else if (rest.trim() === "") at = text.length;
      else return { error: `the tool call at character ${open} is not closed with ${CLOSE}` };
    }
    content += text.slice(at);
    return { content: calls.length ? content.trim() : content, calls };
  },
};
