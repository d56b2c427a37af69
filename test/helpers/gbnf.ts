// A test-only GBNF reader, recogniser and sampler, written apart from the native grammar engine so
// that the two can check each other. It reads grammars as llama.cpp's grammars/README.md defines
// them (rules, alternation, grouping, * + ? {m} {m,} {m,n}, literals and character classes with
// escapes and ranges, negation, `.`), rewrites repetition into plain BNF, and decides membership
// with an Earley parser over code points — slow, simple and able to take any context-free grammar
// (ambiguity, nullable repetition such as home-llm's `(ws tosay)+`).
import { seededRandom } from "../../daemon/engine/bench.js";

/** One code point matched against ranges (inclusive); `negated` inverts the test. */
export interface CharClass {
  kind: "chars";
  ranges: [number, number][];
  negated: boolean;
}
export interface RuleRef {
  kind: "rule";
  name: string;
}
export type Symbol = CharClass | RuleRef;
/** Rule name → alternatives, each a sequence of symbols (empty: ε). */
export type Rules = Map<string, Symbol[][]>;

export class GbnfSyntaxError extends Error {
  override name = "GbnfSyntaxError";
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${message} at line ${line}, column ${column}`);
  }
}

export class Grammar {
  readonly nullable: Set<string>;
  /** Fewest code points each rule can derive (Infinity: no finite derivation). */
  readonly minLength: Map<string, number>;

  constructor(
    readonly rules: Rules,
    readonly root = "root",
  ) {
    this.nullable = nullableRules(rules);
    this.minLength = minLengths(rules);
  }
}

// ─── Reading GBNF ────────────────────────────────────────────────────────────────────────────────

const isWordChar = (c: string) => /[a-zA-Z0-9-]/.test(c);

/** Parses GBNF text; every rule named is defined, `root` exists. Throws GbnfSyntaxError. */
export function parseGbnf(text: string, root = "root"): Grammar {
  const rules: Rules = new Map();
  const src = Array.from(text); // code points, so that a UTF-8 literal is one terminal per character
  let pos = 0;
  let generated = 0;
  const referenced = new Map<string, number>(); // name → position of its first use

  const where = (p: number) => {
    let line = 1;
    let column = 1;
    for (let i = 0; i < p && i < src.length; i++) {
      if (src[i] === "\n") {
        line++;
        column = 1;
      } else column++;
    }
    return [line, column] as const;
  };
  const fail = (message: string, p = pos): never => {
    const [line, column] = where(p);
    throw new GbnfSyntaxError(message, line, column);
  };

  const skipSpace = (newlineOk: boolean) => {
    while (pos < src.length) {
      const c = src[pos];
      if (c === "#") {
        while (pos < src.length && src[pos] !== "\n" && src[pos] !== "\r") pos++;
      } else if (c === " " || c === "\t" || ((c === "\n" || c === "\r") && newlineOk)) pos++;
      else break;
    }
  };

  const parseName = (): string => {
    const start = pos;
    while (pos < src.length && isWordChar(src[pos])) pos++;
    if (pos === start) fail(`expected a rule name, found ${JSON.stringify(src[pos] ?? "end of input")}`);
    return src.slice(start, pos).join("");
  };

  const hex = (digits: number): number => {
    let v = 0;
    for (let i = 0; i < digits; i++) {
      const c = src[pos];
      if (c === undefined || !/[0-9a-fA-F]/.test(c)) fail(`expected ${digits} hex digits in an escape`);
      v = v * 16 + parseInt(c, 16);
      pos++;
    }
    return v;
  };

  /** One character of a literal or class, escapes decoded; returns its code point. */
  const parseChar = (): number => {
    const c = src[pos];
    if (c === undefined) fail("unexpected end of input");
    if (c !== "\\") {
      pos++;
      return c.codePointAt(0)!;
    }
    pos++;
    const e = src[pos++];
    switch (e) {
      case "x":
        return hex(2);
      case "u":
        return hex(4);
      case "U":
        return hex(8);
      case "t":
        return 9;
      case "r":
        return 13;
      case "n":
        return 10;
      case "\\":
      case '"':
      case "[":
      case "]":
        return e.codePointAt(0)!;
      default:
        return fail(`unknown escape \\${e ?? ""}`, pos - 1);
    }
  };

  const newRule = (base: string, alternatives: Symbol[][]): RuleRef => {
    const name = `${base}~${++generated}`; // "~" cannot occur in a GBNF name: no clash
    rules.set(name, alternatives);
    return { kind: "rule", name };
  };

  /** x{min,max} (max Infinity: unbounded) as plain BNF over fresh rules. */
  const repeat = (base: string, x: Symbol[], min: number, max: number): Symbol[] => {
    const out: Symbol[] = [];
    for (let i = 0; i < min; i++) out.push(...x);
    if (max === Infinity) {
      const star: RuleRef = { kind: "rule", name: `${base}~${++generated}` };
      rules.set(star.name, [[...x, star], []]);
      out.push(star);
    } else {
      let tail: Symbol[] = [];
      for (let i = min; i < max; i++) tail = [newRule(base, [[...x, ...tail], []])];
      out.push(...tail);
    }
    return out;
  };

  const parseSequence = (ruleName: string, nested: boolean): Symbol[] => {
    const seq: Symbol[] = [];
    let last: Symbol[] | null = null; // the last element, for a postfix operator
    while (pos < src.length) {
      const c = src[pos];
      if (c === '"') {
        pos++;
        const chars: Symbol[] = [];
        while (src[pos] !== '"') {
          if (pos >= src.length) fail("unterminated literal");
          const cp = parseChar();
          chars.push({ kind: "chars", ranges: [[cp, cp]], negated: false });
        }
        pos++;
        // A postfix operator applies to the whole literal, as in llama.cpp.
        last = chars;
        seq.push(...chars);
      } else if (c === "[") {
        pos++;
        const negated = src[pos] === "^";
        if (negated) pos++;
        const ranges: [number, number][] = [];
        while (src[pos] !== "]") {
          if (pos >= src.length) fail("unterminated character class");
          const lo = parseChar();
          let hi = lo;
          if (src[pos] === "-" && src[pos + 1] !== "]" && pos + 1 < src.length) {
            pos++;
            hi = parseChar();
          }
          if (hi < lo) fail("a character range runs backwards", pos - 1);
          ranges.push([lo, hi]);
        }
        pos++;
        last = [{ kind: "chars", ranges, negated }];
        seq.push(...last);
      } else if (c === ".") {
        pos++;
        last = [{ kind: "chars", ranges: [], negated: true }];
        seq.push(...last);
      } else if (isWordChar(c)) {
        const at = pos;
        const name = parseName();
        if (!referenced.has(name)) referenced.set(name, at);
        last = [{ kind: "rule", name }];
        seq.push(...last);
      } else if (c === "(") {
        pos++;
        skipSpace(true);
        const alts = parseAlternates(ruleName, true);
        if (src[pos] !== ")") fail("expected ')'");
        pos++;
        last = [newRule(ruleName, alts)];
        seq.push(...last);
      } else if (c === "*" || c === "+" || c === "?" || c === "{") {
        if (last === null) return fail(`'${c}' follows nothing`);
        const operand: Symbol[] = last;
        let min: number;
        let max: number;
        if (c === "{") {
          pos++;
          skipSpace(true);
          const readInt = () => {
            const s = pos;
            while (/[0-9]/.test(src[pos] ?? "")) pos++;
            if (s === pos) fail("expected a number in {m,n}");
            return Number(src.slice(s, pos).join(""));
          };
          min = readInt();
          skipSpace(true);
          max = min;
          if (src[pos] === ",") {
            pos++;
            skipSpace(true);
            max = src[pos] === "}" ? Infinity : readInt();
            skipSpace(true);
          }
          if (src[pos] !== "}") fail("expected '}'");
          if (max < min) fail("{m,n} with n < m");
        } else [min, max] = c === "*" ? [0, Infinity] : c === "+" ? [1, Infinity] : [0, 1];
        pos++;
        seq.splice(seq.length - operand.length, operand.length);
        const element: Symbol[] = operand.length === 1 ? operand : [newRule(ruleName, [operand])];
        seq.push(...repeat(ruleName, element, min, max));
        last = null;
      } else if (c === "<") {
        fail("token references (<[id]>, <|token|>) are not supported by this recogniser");
      } else break;
      skipSpace(nested);
    }
    return seq;
  };

  const parseAlternates = (ruleName: string, nested: boolean): Symbol[][] => {
    const alts = [parseSequence(ruleName, nested)];
    while (src[pos] === "|") {
      pos++;
      skipSpace(true);
      alts.push(parseSequence(ruleName, nested));
    }
    return alts;
  };

  skipSpace(true);
  while (pos < src.length) {
    const at = pos;
    const name = parseName();
    skipSpace(false);
    if (!(src[pos] === ":" && src[pos + 1] === ":" && src[pos + 2] === "=")) fail("expected '::='");
    pos += 3;
    skipSpace(true);
    const alts = parseAlternates(name, false);
    if (rules.has(name) && !name.includes("~")) {
      // llama.cpp lets a later definition replace an earlier one; keep that.
    }
    rules.set(name, alts);
    if (pos < src.length && src[pos] !== "\n" && src[pos] !== "\r") fail(`unexpected ${JSON.stringify(src[pos])}`);
    skipSpace(true);
    void at;
  }
  for (const [name, at] of referenced) if (!rules.has(name)) fail(`undefined rule "${name}"`, at);
  if (!rules.has(root)) fail(`the grammar has no "${root}" rule`, 0);
  return new Grammar(rules, root);
}

// ─── Facts about rules ───────────────────────────────────────────────────────────────────────────

function nullableRules(rules: Rules): Set<string> {
  const nullable = new Set<string>();
  let changed = true;
  while (changed) {
    changed = false;
    for (const [name, alts] of rules) {
      if (nullable.has(name)) continue;
      if (alts.some((seq) => seq.every((s) => s.kind === "rule" && nullable.has(s.name)))) {
        nullable.add(name);
        changed = true;
      }
    }
  }
  return nullable;
}

function minLengths(rules: Rules): Map<string, number> {
  const min = new Map<string, number>();
  for (const name of rules.keys()) min.set(name, Infinity);
  let changed = true;
  while (changed) {
    changed = false;
    for (const [name, alts] of rules) {
      for (const seq of alts) {
        const n = seq.reduce((a, s) => a + (s.kind === "chars" ? 1 : min.get(s.name)!), 0);
        if (n < min.get(name)!) {
          min.set(name, n);
          changed = true;
        }
      }
    }
  }
  return min;
}

export function matches(c: CharClass, cp: number): boolean {
  let inside = false;
  for (const [lo, hi] of c.ranges) if (cp >= lo && cp <= hi) inside = true;
  return inside !== c.negated;
}

// ─── Recognising (Earley) ────────────────────────────────────────────────────────────────────────

export type Verdict = "complete" | "prefix" | "reject";

interface Item {
  rule: string;
  alt: number;
  dot: number;
  origin: number;
}

/**
 * Whether `input` is a sentence of the grammar ("complete"), could still become one ("prefix"), or
 * neither ("reject"). Earley with the nullable fix of Aycock and Horspool.
 */
export function recognise(g: Grammar, input: string): Verdict {
  const text = Array.from(input, (c) => c.codePointAt(0)!);
  const sets: Item[][] = [];
  const seen: Set<string>[] = [];
  const add = (k: number, item: Item) => {
    const key = `${item.rule}\u0000${item.alt}\u0000${item.dot}\u0000${item.origin}`;
    if (seen[k].has(key)) return;
    seen[k].add(key);
    sets[k].push(item);
  };
  for (let k = 0; k <= text.length; k++) {
    sets.push([]);
    seen.push(new Set());
  }
  g.rules.get(g.root)!.forEach((_, alt) => add(0, { rule: g.root, alt, dot: 0, origin: 0 }));

  for (let k = 0; k <= text.length; k++) {
    const set = sets[k];
    if (set.length === 0) return "reject";
    for (let i = 0; i < set.length; i++) {
      const it = set[i];
      const seq = g.rules.get(it.rule)![it.alt];
      if (it.dot === seq.length) {
        // complete: advance every item of set[origin] waiting for this rule
        for (const w of sets[it.origin]) {
          const ws = g.rules.get(w.rule)![w.alt];
          const next = ws[w.dot];
          if (next && next.kind === "rule" && next.name === it.rule) add(k, { ...w, dot: w.dot + 1 });
        }
        continue;
      }
      const next = seq[it.dot];
      if (next.kind === "rule") {
        g.rules.get(next.name)!.forEach((_, alt) => add(k, { rule: next.name, alt, dot: 0, origin: k }));
        if (g.nullable.has(next.name)) add(k, { ...it, dot: it.dot + 1 });
      } else if (k < text.length && matches(next, text[k])) add(k + 1, { ...it, dot: it.dot + 1 });
    }
  }
  const last = sets[text.length];
  const done = last.some(
    (it) => it.rule === g.root && it.origin === 0 && it.dot === g.rules.get(it.rule)![it.alt].length,
  );
  return done ? "complete" : "prefix";
}

// ─── Sampling sentences ──────────────────────────────────────────────────────────────────────────

/** A small deterministic generator, so that failures can be replayed by seed. */
export const rng = seededRandom;

// Characters a negated class or `.` draws from: ASCII, JSON's specials, controls, and some multi-byte
// characters (2, 3 and 4 bytes in UTF-8).
const POOL = [
  ...Array.from({ length: 95 }, (_, i) => 32 + i),
  0, 9, 10, 13, 0x1f, 0x7f, 0xe9, 0xdf, 0x20ac, 0x2028, 0x4e2d, 0x1f600, 0x10ffff,
];

function pickChar(c: CharClass, random: () => number): number {
  if (!c.negated) {
    const total = c.ranges.reduce((a, [lo, hi]) => a + (hi - lo + 1), 0);
    // Prefer printable ASCII where a class spans far more (e.g. [\x20-\U0010FFFF]).
    const ascii = POOL.filter((cp) => cp >= 32 && cp < 127 && matches(c, cp));
    if (total > 200 && ascii.length > 0 && random() < 0.9) return ascii[Math.floor(random() * ascii.length)];
    let r = Math.floor(random() * total);
    for (const [lo, hi] of c.ranges) {
      if (r <= hi - lo) return lo + r;
      r -= hi - lo + 1;
    }
  }
  const allowed = POOL.filter((cp) => matches(c, cp));
  if (allowed.length === 0) throw new Error("a character class that matches nothing in the sample pool");
  return allowed[Math.floor(random() * allowed.length)];
}

/**
 * A random sentence of the grammar. Alternatives are drawn at random until `budget` code points
 * have been produced; after that every rule takes its shortest way out, so sampling ends.
 */
export function sample(g: Grammar, random: () => number, budget = 200): string {
  const out: number[] = [];
  const expand = (rule: string, depth: number) => {
    const alts = g.rules.get(rule)!;
    const cost = (seq: Symbol[]) => seq.reduce((a, s) => a + (s.kind === "chars" ? 1 : g.minLength.get(s.name)!), 0);
    let seq: Symbol[];
    const finite = alts.filter((s) => cost(s) < Infinity);
    if (out.length >= budget || depth > 200) seq = finite.reduce((a, b) => (cost(b) < cost(a) ? b : a));
    else seq = finite[Math.floor(random() * finite.length)];
    for (const s of seq) {
      if (s.kind === "chars") out.push(pickChar(s, random));
      else expand(s.name, depth + 1);
    }
  };
  expand(g.root, 0);
  return String.fromCodePoint(...out);
}
