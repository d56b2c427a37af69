// GBNF for numbers within bounds, as JSON Schema's minimum/maximum ask for them: whole numbers in
// any range, and numbers with a fraction between whole-number bounds. Expressions only; the
// schema translator names them.

/** Digits kept for a bound that is absent (as llama.cpp's json grammar: 16 significant digits). */
const MAX_DIGITS = 16;
const UNBOUNDED = 10n ** BigInt(MAX_DIGITS) - 1n;

/** GBNF for the whole numbers from lo to hi (inclusive; ±Infinity: unbounded), no leading zeros. */
export function integerRange(lo: number, hi: number): string {
  const parts: string[] = [];
  if (lo <= -1) {
    // -k for k in [max(1, -hi), -lo]
    const a = hi >= -1 ? 1n : BigInt(-hi);
    const b = lo === -Infinity ? UNBOUNDED : BigInt(-lo);
    if (a <= b) parts.push(`"-" ${group(naturalRange(a, b))}`);
  }
  if (hi >= 0) {
    const a = lo <= 0 ? 0n : BigInt(lo);
    const b = hi === Infinity ? UNBOUNDED : BigInt(hi);
    if (a <= b) parts.push(naturalRange(a, b));
  }
  if (parts.length === 0) throw new RangeError(`no whole number lies between ${lo} and ${hi}`);
  return alternatives(parts);
}

/**
 * GBNF for numbers from lo to hi where the bounds are whole numbers (±Infinity: unbounded):
 * whole numbers in range, or a whole part and a fraction ending in a non-zero digit (so that
 * "2.0" can never equal an excluded bound). `exclusiveLo/Hi` exclude the bound itself.
 */
export function numberRange(lo: number, hi: number, exclusiveLo = false, exclusiveHi = false): string {
  const fraction = `"." [0-9]{0,${MAX_DIGITS - 1}} [1-9]`;
  const parts: string[] = [];
  const wholeLo = exclusiveLo ? lo + 1 : lo;
  const wholeHi = exclusiveHi ? hi - 1 : hi;
  if (wholeLo <= wholeHi) parts.push(integerRange(wholeLo, wholeHi));
  // Positive with a fraction: i.f with i in [max(lo, 0), hi - 1].
  const posLo = Math.max(lo, 0);
  const posHi = hi - 1;
  if (posLo <= posHi) parts.push(`${group(integerRange(posLo, posHi))} ${fraction}`);
  // Negative with a fraction: -(k.f) with k in [max(0, -hi), -lo - 1].
  const negLo = Math.max(0, -hi);
  const negHi = -lo - 1;
  if (negLo <= negHi) parts.push(`"-" ${group(integerRange(negLo, negHi))} ${fraction}`);
  if (parts.length === 0) throw new RangeError(`no number lies between ${lo} and ${hi}`);
  return alternatives(parts);
}

function alternatives(parts: string[]): string {
  return parts.length === 1 ? parts[0] : parts.map(group).join(" | ");
}

function group(expr: string): string {
  return /^[^ |]+$/.test(expr) ? expr : `(${expr})`;
}

/** Naturals a..b (0 ≤ a ≤ b), split by number of digits. */
function naturalRange(a: bigint, b: bigint): string {
  const parts: string[] = [];
  const la = a.toString().length;
  const lb = b.toString().length;
  for (let len = la; len <= lb; len++) {
    const first = len === 1 ? 0n : 10n ** BigInt(len - 1);
    const last = 10n ** BigInt(len) - 1n;
    const x = a > first ? a : first;
    const y = b < last ? b : last;
    if (x <= y) parts.push(sameLength(x.toString(), y.toString()));
  }
  return alternatives(parts);
}

/** Digit strings of equal length from x to y, as a GBNF expression. */
function sameLength(x: string, y: string): string {
  if (x === y) return `"${x}"`;
  const n = x.length;
  if (n === 1) return digitClass(x, y);
  if (x[0] === y[0]) return `"${x[0]}" ${group(sameLength(x.slice(1), y.slice(1)))}`;
  const rest = n - 1;
  const any = rest === 1 ? "[0-9]" : `[0-9]{${rest}}`;
  const parts: string[] = [];
  let lowDigit = x[0];
  let highDigit = y[0];
  if (!/^0*$/.test(x.slice(1))) {
    parts.push(`"${x[0]}" ${group(sameLength(x.slice(1), "9".repeat(rest)))}`);
    lowDigit = String(Number(x[0]) + 1);
  }
  const highTail = !/^9*$/.test(y.slice(1));
  if (highTail) highDigit = String(Number(y[0]) - 1);
  if (lowDigit <= highDigit) parts.push(`${digitClass(lowDigit, highDigit)} ${any}`);
  if (highTail) parts.push(`"${y[0]}" ${group(sameLength("0".repeat(rest), y.slice(1)))}`);
  return alternatives(parts);
}

function digitClass(lo: string, hi: string): string {
  return lo === hi ? `"${lo}"` : `[${lo}-${hi}]`;
}
