// Speculative decoding by prompt lookup (docs/speculation.md). Answers to home-automation
// requests copy a lot from their prompt — entity ids, names, JSON keys — so the tokens that
// followed the last few tokens where they appeared before are a good guess of what comes next.
// The guesses are checked in the same engine call as the token before them: decode on a Pi is
// bound by memory bandwidth, and a pass over the weights with 2–9 rows costs little more than
// one. The sampler keeps exactly its distribution (Sampler::sample with a draft), so an answer
// with speculation is the answer without it: token for token when greedy.

/** The longest n-gram first; one token alone is still a useful hint inside copied text. */
const NGRAM_SIZES = [3, 2, 1];
export const MAX_DRAFT = 8;

/** The last `n` tokens of a sequence's history, found earlier in it: the tokens that followed there. */
export function lookupDraft(history: readonly number[], maxTokens: number): number[] {
  const end = history.length;
  if (maxTokens < 1) return [];
  for (const n of NGRAM_SIZES) {
    if (end < n + 1) continue;
    // The most recent earlier occurrence: text being copied is usually copied in order.
    for (let at = end - n - 1; at >= 0; at--) {
      let same = true;
      for (let j = 0; j < n && same; j++) same = history[at + j] === history[end - n + j];
      if (!same) continue;
      const from = at + n;
      const draft = history.slice(from, Math.min(from + maxTokens, end));
      if (draft.length > 0) return draft;
    }
  }
  return [];
}

/**
 * One sequence's drafting: how many tokens to propose adapts to how many were accepted, and after
 * a proposal of which nothing was kept the next few steps propose nothing (1, 2, 4 … 16 steps
 * while that goes on), so a sequence that is not copying stops paying for rows it throws away.
 */
export class Speculator {
  private size = 4;
  private backoff = 0; // steps to wait after the next failed proposal
  private waiting = 0; // steps left before proposing again
  drafted = 0;
  accepted = 0;
  passes = 0; // engine calls that decoded for this sequence
  produced = 0; // tokens those calls produced

  /** Up to `limit` proposed tokens after `history` (its last token is the one about to be fed). */
  propose(history: readonly number[], limit: number): number[] {
    if (this.waiting > 0) {
      this.waiting--;
      return [];
    }
    return lookupDraft(history, Math.min(this.size, limit));
  }

  /** After a check: `proposed` tokens were proposed, `kept` of them accepted. */
  record(proposed: number, kept: number): void {
    this.drafted += proposed;
    this.accepted += kept;
    if (proposed === 0) return;
    this.size = kept === proposed ? Math.min(MAX_DRAFT, this.size * 2) : Math.max(1, kept + 1);
    if (kept > 0) this.backoff = 0;
    else {
      this.backoff = Math.min(16, Math.max(1, this.backoff * 2));
      this.waiting = this.backoff;
    }
  }
}
