// Prompt templates: the Stanford Alpaca instruction format, and chat templates read from the GGUF
// file (tokenizer.chat_template, Jinja) rendered with @huggingface/jinja as transformers does.
import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "./protocol.js";
import type { ToolDefinition } from "./tool-calls.js";
import { ProtocolError } from "./protocol.js";

const ALPACA_PREAMBLE =
  "Below is an instruction that describes a task. Write a response that appropriately completes the request.";
const ALPACA_PREAMBLE_WITH_INPUT =
  "Below is an instruction that describes a task, paired with an input that provides further context. " +
  "Write a response that appropriately completes the request.";

/** The prompt the Alpaca models were fine-tuned on (tatsu-lab/stanford_alpaca, PROMPT_DICT). */
export function alpacaPrompt(instruction: string, input?: string): string {
  if (input !== undefined && input !== "")
    return `${ALPACA_PREAMBLE_WITH_INPUT}\n\n### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`;
  return `${ALPACA_PREAMBLE}\n\n### Instruction:\n${instruction}\n\n### Response:\n`;
}

export interface SpecialTokenTexts {
  bos: string; // e.g. "<s>", as the template expects to write it
  eos: string;
}

export interface RenderOptions {
  /** Go to the template's `tools` variable, as transformers passes them. */
  tools?: ToolDefinition[];
  /** Extra template variables, as transformers passes apply_chat_template's keyword arguments (enable_thinking). */
  variables?: Record<string, unknown>;
}

/** A rendered prompt for the tokenizer: the text, and where special-token text typed by the client sits. */
export interface RenderedPrompt {
  text: string;
  /** [begin, end) UTF-8 byte offsets, ascending: special tokens must not be matched there. */
  textOnly: Uint32Array;
}

/**
 * A chat template compiled once at start. Rendering errors raised by the template itself
 * (raise_exception("Conversation roles must alternate …")) are the client's fault: bad_request.
 */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    private readonly special: SpecialTokenTexts,
  ) {
    this.template = new Template(source);
  }

  /** The prompt as transformers' apply_chat_template(..., add_generation_prompt=True) writes it. */
  render(messages: ChatMessage[], options: RenderOptions = {}): string {
    try {
      // raise_exception and strftime_now come with the Jinja runtime.
      return this.template.render({
        ...options.variables,
        messages,
        ...(options.tools ? { tools: options.tools } : {}),
        add_generation_prompt: true,
        bos_token: this.special.bos,
        eos_token: this.special.eos,
      });
    } catch (e) {
      // The template refused the conversation ("roles must alternate") or could not run on it.
      throw new ProtocolError("bad_request", `chat template: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * The prompt to tokenize with special tokens parsed — except inside what the client wrote: a
   * user who types "<|im_end|>" or "<tool_call>" gets text, never the token that ends a turn or
   * calls a tool. Every such text in the messages (but the assistant's own turns) and the tools is
   * rendered with a mark after its first character; the marks come out again and say where the
   * tokenizer must read text. (A template that tests a message for such text, as Qwen3's does for
   * "<tool_response>", sees the marked text: typed markup does not count as the real thing.)
   */
  renderPrompt(messages: ChatMessage[], options: RenderOptions & { specialTexts: readonly string[] }): RenderedPrompt {
    const { specialTexts, ...rest } = options;
    const marker = new SpecialTextMarker(specialTexts, [this.source, JSON.stringify(messages), JSON.stringify(options.tools ?? [])]);
    const marked = messages.map((m) => (m.role === "assistant" ? m : marker.markDeep(m)));
    const tools = options.tools ? marker.markDeep(options.tools) : undefined;
    return marker.unmark(this.render(marked, { ...rest, ...(tools ? { tools } : {}) }));
  }
}

/** Inserts, and later takes out, a private-use character after the first character of special-token texts. */
class SpecialTextMarker {
  private readonly mark: string;
  private readonly byFirst = new Map<string, string[]>(); // first character -> texts, longest first

  constructor(texts: readonly string[], seen: string[]) {
    let cp = 0xe000;
    while (cp < 0xf8ff && seen.some((s) => s.includes(String.fromCodePoint(cp)))) cp++;
    this.mark = String.fromCodePoint(cp);
    for (const t of [...texts].sort((a, b) => b.length - a.length)) {
      const first = String.fromCodePoint(t.codePointAt(0) ?? 0);
      if (!t || t.length <= first.length) continue; // one character cannot be split
      const list = this.byFirst.get(first) ?? [];
      list.push(t);
      this.byFirst.set(first, list);
    }
  }

  /** A copy of a JSON value with every string marked (object keys and message roles left alone). */
  markDeep<T>(value: T, key = ""): T {
    if (typeof value === "string") return (key === "role" ? value : this.markString(value)) as T;
    if (Array.isArray(value)) return value.map((v) => this.markDeep(v)) as T;
    if (typeof value === "object" && value !== null)
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.markDeep(v, k)])) as T;
    return value;
  }

  private markString(s: string): string {
    if (this.byFirst.size === 0) return s;
    let out = "";
    for (let i = 0; i < s.length; ) {
      const first = String.fromCodePoint(s.codePointAt(i)!);
      const hit = this.byFirst.get(first)?.find((t) => s.startsWith(t, i));
      if (hit) {
        out += first + this.mark + hit.slice(first.length);
        i += hit.length;
      } else {
        out += first;
        i += first.length;
      }
    }
    return out;
  }

  /** The rendered text without marks, and the UTF-8 ranges of the characters each mark followed. */
  unmark(rendered: string): RenderedPrompt {
    const parts = rendered.split(this.mark);
    if (parts.length === 1) return { text: rendered, textOnly: new Uint32Array(0) };
    const ranges: number[] = [];
    let bytes = 0;
    let text = "";
    parts.forEach((part, i) => {
      text += part;
      bytes += Buffer.byteLength(part);
      if (i === parts.length - 1 || part === "") return;
      const last = String.fromCodePoint(part.codePointAt(part.length - (isLowSurrogate(part, part.length - 1) ? 2 : 1))!);
      const width = Buffer.byteLength(last);
      if (ranges.length === 0 || ranges[ranges.length - 1] <= bytes - width) ranges.push(bytes - width, bytes);
    });
    return { text, textOnly: Uint32Array.from(ranges) };
  }
}

function isLowSurrogate(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0xdc00 && c <= 0xdfff && i > 0;
}
