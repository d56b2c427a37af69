// What a tool-call format is (one file per format beside this one, listed in tool-calls.ts), and
// the pieces the formats share: reading a call object, finding where a JSON value ends.
import type { GbnfRules } from "../gbnf-writer.js";

/** Calls one answer may hold under the grammar: more than a home's request needs, and a bound on the answer. */
export const MAX_CALLS = 8;

/** One call as the model wrote it: the tool's name and its arguments. */
export interface ParsedCall {
  name: string;
  arguments: Record<string, unknown>;
}

/** What a model's answer holds: free text and calls (none: a plain answer), or why a call is broken. */
export type ParseOutcome = { content: string; calls: ParsedCall[] } | { error: string };

/** A tool as a grammar sees it: its name and the rule of its arguments. */
export interface ToolRule {
  name: string;
  args: string;
}

export interface ToolFormat {
  readonly name: string;
  /** Whether a chat template writes tool calls this way. */
  speaks(templateSource: string): boolean;
  /** Text that starts a call: held back while streaming, and where the arguments' grammar starts. */
  readonly triggers: readonly string[];
  /** Special tokens that start a call (they may render as no text at all). */
  readonly triggerTokens: readonly string[];
  /**
   * The body of the start rule: calls of the given tools from a trigger's first byte — one or more,
   * or exactly one when `parallel` is false (OpenAI's parallel_tool_calls; a format that writes one
   * call per answer ignores it).
   */
  grammar(tools: ToolRule[], rules: GbnfRules, parallel: boolean): string;
  /** The calls in a finished answer. */
  parse(text: string): ParseOutcome;
}

/**
 * The index just past the JSON value that starts at `start` (after whitespace), or -1 when the text
 * ends first or the brackets do not match. Strings and escapes are skipped; the value is not parsed.
 */
export function jsonEnd(text: string, start: number): number {
  let i = start;
  while (i < text.length && /\s/.test(text[i])) i++;
  const open = text[i];
  if (open !== "{" && open !== "[") return -1;
  const stack: string[] = [];
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      if (i >= text.length) return -1;
    } else if (c === "{" || c === "[") stack.push(c === "{" ? "}" : "]");
    else if (c === "}" || c === "]") {
      if (stack.pop() !== c) return -1;
      if (stack.length === 0) return i + 1;
    }
  }
  return -1;
}

/** JSON.parse, or undefined. */
export function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A call object: {"name": "…", "arguments": {…}} (or "parameters", as Llama 3 writes it); arguments
 * given as a JSON string are read too. Returns the call or why it is not one.
 */
export function readCall(value: unknown, argumentKeys: readonly string[] = ["arguments", "parameters"]): ParsedCall | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "a tool call must be a JSON object";
  const o = value as Record<string, unknown>;
  const inner = typeof o.function === "object" && o.function !== null ? (o.function as Record<string, unknown>) : o;
  if (typeof inner.name !== "string" || inner.name === "") return 'a tool call has no "name"';
  const key = argumentKeys.find((k) => inner[k] !== undefined);
  let args: unknown = key === undefined ? {} : inner[key];
  if (typeof args === "string") args = tryJson(args) ?? args;
  if (typeof args !== "object" || args === null || Array.isArray(args)) return `the arguments of "${inner.name}" are not a JSON object`;
  return { name: inner.name, arguments: args as Record<string, unknown> };
}

/** The rule for "one of these tools": each name with its arguments, written by `call`. */
export function eachTool(tools: ToolRule[], call: (name: string, args: string) => string): string {
  return tools.map((t) => call(t.name, t.args)).join(" | ");
}
