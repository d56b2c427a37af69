// Speculative decoding by prompt lookup (docs/speculation.md). Answers to home-automation
// requests copy a lot from their prompt — entity ids, names, JSON keys — so the tokens that
// followed the last few tokens where they appeared before are a good guess of what comes next.
// The guesses are checked in the same engine call as the token before them: decode on a Pi is
// bound by memory bandwidth, and a pass over the weights with 2–9 rows costs little more than
// one. The sampler keeps exactly its distribution (Sampler::sample with a draft), so an answer
// with speculation is the answer without it: token for token when greedy.

export const MAX_DRAFT = 8;
/** How far back a match is compared: past this, a longer match says nothing more. */
const MAX_MATCH = 32;
/** A match at least this long is proposed even while proposals pause after a miss. */
const STRONG_MATCH = 4;

/** Where the history's end last occurred earlier: `from` is the token after that occurrence, `length` how many tokens matched. */
export interface PromptMatch {
  from: number;
  length: number;
}

/**
 * The earlier occurrence of the longest suffix of `history` (up to MAX_MATCH tokens), the most
 * recent of equally long ones: text being copied is usually copied in order, and the longer the
 * match, the likelier the text after it is what comes next (an entity's name after its id, not
 * after another entity's). Null when the last token never occurred before.
 */
export function findMatch(history: readonly number[]): PromptMatch | null {
  const end = history.length;
  if (end < 2) return null;
  const last = history[end - 1];
  let best: PromptMatch | null = null;
  for (let at = end - 2; at >= 0; at--) {
    if (history[at] !== last) continue;
    let length = 1;
    while (length < MAX_MATCH && at - length >= 0 && history[at - length] === history[end - 1 - length]) length++;
    if (!best || length > best.length) {
      best = { from: at + 1, length };
      if (length === MAX_MATCH) break;
    }
  }
  return best;
}

/** Up to `count` tokens of `history` after a match (fewer where the history ends). */
const tokensAfter = (history: readonly number[], match: PromptMatch, count: number) =>
  history.slice(match.from, Math.min(match.from + count, history.length));

/** Up to `maxTokens` tokens that followed the longest earlier match of the history's end. */
export function lookupDraft(history: readonly number[], maxTokens: number): number[] {
  const match = maxTokens < 1 ? null : findMatch(history);
  return match ? tokensAfter(history, match, maxTokens) : [];
}

/**
 * One sequence's drafting. A match of n tokens backs a proposal of at most n − 1 (a lone
 * repeated token, kept about a third of the time, is not worth a row); within that, how many
 * tokens to propose adapts to how many were accepted: doubling while all are kept, back to what
 * was kept (at least 2) when one is not. After a proposal of which nothing was kept, the next
 * few steps (1, 2, 4 … 16 while that goes on) propose only from matches of STRONG_MATCH tokens
 * or more, so a sequence that is not copying stops paying for rows it throws away.
 */
export class Speculator {
  private size = 4;
  private backoff = 0; // steps to wait after the next failed proposal
  private waiting = 0; // steps left before proposing from short matches again
  drafted = 0;
  accepted = 0;
  passes = 0; // engine calls that decoded for this sequence
  produced = 0; // tokens those calls produced

  /** Up to `limit` proposed tokens after `history` (its last token is the one about to be fed). */
  propose(history: readonly number[], limit: number): number[] {
    const paused = this.waiting > 0;
    if (paused) this.waiting--;
    if (limit < 1) return [];
    const match = findMatch(history);
    if (!match || (paused && match.length < STRONG_MATCH)) return [];
    const count = Math.min(this.size, limit, match.length - 1);
    return count > 0 ? tokensAfter(history, match, count) : [];
  }

  /** After a check: `proposed` tokens were proposed, `kept` of them accepted. */
  record(proposed: number, kept: number): void {
    this.drafted += proposed;
    this.accepted += kept;
    if (proposed === 0) return;
    this.size = kept === proposed ? Math.min(MAX_DRAFT, this.size * 2) : Math.max(2, kept + 1);
    if (kept > 0) this.backoff = 0;
    else {
      this.backoff = Math.min(16, Math.max(1, this.backoff * 2));
      this.waiting = this.backoff;
    }
  }
}
