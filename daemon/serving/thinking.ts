// Thinking: reasoning models (Qwen3, the DeepSeek-R1 distills) write their reasoning between
// <think> and </think> before the answer. A request's `think` (default false, as Ollama's clients
// such as Home Assistant expect) chooses whether the model reasons at all — the chat template's
// `enable_thinking`, as transformers passes it — and whether the final carries the reasoning as
// `thinking`. Either way the reasoning is kept out of `text` and out of the streamed answer, so
// stop strings and tool-call parsing read the answer only.
//
// The split is on text, not token ids: some templates open the block in the prompt and the model
// writes only the closing tag (promptOpensThinking), and a tag may arrive split across tokens.

export const THINK_OPEN = "<think>";
export const THINK_CLOSE = "</think>";

/** Whether a chat template lets its model think (it writes or reads a <think> block). */
export function templateThinks(templateSource: string): boolean {
  return templateSource.includes(THINK_OPEN);
}

/**
 * The template variables for a request's `think`: transformers passes apply_chat_template's
 * extra arguments to the template, and Qwen3's reads `enable_thinking` (true when undefined).
 */
export function thinkingVariables(think: boolean): { enable_thinking: boolean } {
  return { enable_thinking: think };
}

/** Whether a rendered prompt ends inside an open <think> block (the template started it). */
export function promptOpensThinking(prompt: string): boolean {
  const open = prompt.lastIndexOf(THINK_OPEN);
  return open >= 0 && prompt.indexOf(THINK_CLOSE, open) < 0 && prompt.slice(open + THINK_OPEN.length).trim() === "";
}

export interface ThinkingParts {
  answer: string;
  thinking: string;
}

type State = "start" | "thinking" | "afterThinking" | "answer";

/**
 * Splits streamed text into reasoning and answer. A block counts only at the very start of the
 * output (after blanks), as Qwen3 and R1 write it; a later "<think>" is part of the answer. Text
 * that may still turn out to be a tag is held back. Newlines around the reasoning and before the
 * answer are dropped, as Qwen's own parsing strips them ("</think>\n\n" ends every block).
 */
export class ThinkingSplitter {
  private state: State;
  private held = "";
  private reasoningStarted = false;
  private blankRun = ""; // newlines inside the reasoning not yet known to be followed by more of it

  constructor(startsInside = false) {
    this.state = startsInside ? "thinking" : "start";
  }

  /** True while the output is reasoning (tool-call triggers should not fire there). */
  get inThinking(): boolean {
    return this.state === "thinking";
  }

  push(text: string): ThinkingParts {
    const out: ThinkingParts = { answer: "", thinking: "" };
    let rest = this.held + text;
    this.held = "";
    while (rest) {
      switch (this.state) {
        case "start": {
          const lead = rest.length - rest.trimStart().length;
          const body = rest.slice(lead);
          if (body.startsWith(THINK_OPEN)) {
            this.state = "thinking";
            rest = body.slice(THINK_OPEN.length);
          } else if (THINK_OPEN.startsWith(body)) {
            this.held = rest; // blanks, or the start of a tag
            return out;
          } else {
            this.state = "answer";
          }
          break;
        }
        case "thinking": {
          const close = rest.indexOf(THINK_CLOSE);
          const upTo = close >= 0 ? close : rest.length - partialTail(rest, THINK_CLOSE);
          out.thinking += this.reasoning(rest.slice(0, upTo));
          if (close < 0) {
            this.held = rest.slice(upTo);
            return out;
          }
          this.state = "afterThinking";
          this.blankRun = "";
          rest = rest.slice(close + THINK_CLOSE.length);
          break;
        }
        case "afterThinking": {
          const body = rest.replace(/^\n+/, "");
          if (!body) return out;
          this.state = "answer";
          rest = body;
          break;
        }
        case "answer":
          out.answer += rest;
          return out;
      }
    }
    return out;
  }

  /** The end of the output: what was held back goes where it belongs. */
  finish(): ThinkingParts {
    const held = this.held;
    this.held = "";
    if (this.state === "start") return { answer: held, thinking: "" };
    if (this.state === "thinking") return { answer: "", thinking: this.reasoning(held) };
    return { answer: "", thinking: "" };
  }

  /** Reasoning text without its leading newlines; trailing ones wait until more reasoning follows. */
  private reasoning(text: string): string {
    if (!this.reasoningStarted) {
      text = text.replace(/^\n+/, "");
      if (!text) return "";
      this.reasoningStarted = true;
    }
    const trailing = text.length - text.replace(/\n+$/, "").length;
    if (trailing === text.length) {
      this.blankRun += text;
      return "";
    }
    const shown = this.blankRun + text.slice(0, text.length - trailing);
    this.blankRun = text.slice(text.length - trailing);
    return shown;
  }
}

/** Length of the longest proper prefix of `tag` that `text` ends with. */
function partialTail(text: string, tag: string): number {
  for (let k = Math.min(tag.length - 1, text.length); k > 0; k--) if (text.endsWith(tag.slice(0, k))) return k;
  return 0;
}
