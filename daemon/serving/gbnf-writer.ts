// Writing GBNF (llama.cpp's grammar format) from code: literals with their escapes, character
// classes, and a rule table that names rules readably and shares identical bodies, so that the
// grammars built from JSON Schemas and tool definitions stay small and legible.

/** A GBNF literal ("…") for `text`: quotes, backslashes and control characters escaped. */
export function gbnfLiteral(text: string): string {
  let out = '"';
  for (const ch of text) out += escapeChar(ch, '"');
  return out + '"';
}

/** One character inside a literal or a class, escaped where GBNF needs it. */
function escapeChar(ch: string, quote: string): string {
  const cp = ch.codePointAt(0)!;
  if (ch === "\\" || ch === quote || (quote === "]" && (ch === "[" || ch === "^" || ch === "-"))) return `\\${ch}`;
  if (ch === "\n") return "\\n";
  if (ch === "\r") return "\\r";
  if (ch === "\t") return "\\t";
  if (cp < 0x20 || cp === 0x7f || cp === 0x2028 || cp === 0x2029)
    return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, "0")}` : `\\u${cp.toString(16).padStart(4, "0")}`;
  return ch;
}

/** A class of the given characters, e.g. `[^"\\abc]` for negated. */
export function gbnfClass(chars: Iterable<string>, negated = false): string {
  let out = negated ? "[^" : "[";
  for (const ch of chars) out += escapeChar(ch, "]");
  return out + "]";
}

/**
 * The rules of one grammar under construction. `add` names a body and returns the name to refer to
 * it by (an existing rule with the same body is reused); `reserve`/`define` name a rule before its
 * body is known, for recursion ($ref cycles).
 */
export class GbnfRules {
  private readonly bodies = new Map<string, string>(); // name → body, in order of definition
  private readonly byBody = new Map<string, string>();
  private readonly taken = new Set<string>();

  add(hint: string, body: string): string {
    const known = this.byBody.get(body);
    if (known) return known;
    const name = this.reserve(hint);
    this.define(name, body);
    return name;
  }

  reserve(hint: string): string {
    const base = ruleName(hint);
    let name = base;
    for (let i = 2; this.taken.has(name); i++) name = `${base}-${i}`;
    this.taken.add(name);
    return name;
  }

  define(name: string, body: string): void {
    this.bodies.set(name, body);
    if (!this.byBody.has(body)) this.byBody.set(body, name);
  }

  has(name: string): boolean {
    return this.bodies.has(name);
  }

  /** The grammar text: `root` first, the others in order of definition. */
  toString(root = "root"): string {
    const lines: string[] = [];
    const body = this.bodies.get(root);
    if (body !== undefined) lines.push(`${root} ::= ${body}`);
    for (const [name, b] of this.bodies) if (name !== root) lines.push(`${name} ::= ${b}`);
    return lines.join("\n") + "\n";
  }
}

/** A GBNF rule name (letters, digits, dashes) made from any text. */
export function ruleName(hint: string): string {
  const name = hint
    .replace(/[^a-zA-Z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .toLowerCase()
    .slice(0, 48)
    .replace(/-+$/, "");
  return name || "r";
}
