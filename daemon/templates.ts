// Prompt templates: the Stanford Alpaca instruction format, and chat templates read from the GGUF
// file (tokenizer.chat_template, Jinja) rendered with @huggingface/jinja as transformers does.
import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "./protocol.js";
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

  render(messages: ChatMessage[]): string {
    try {
      return this.template.render({
        messages,
        add_generation_prompt: true,
        bos_token: this.special.bos,
        eos_token: this.special.eos,
        raise_exception: (message: unknown) => {
          throw new TemplateError(String(message));
        },
        // Llama 3.1+ templates print today's date in the system prompt.
        strftime_now: (format: unknown) => strftime(new Date(), String(format)),
      });
    } catch (e) {
      if (e instanceof TemplateError) throw new ProtocolError("bad_request", `chat template: ${e.message}`);
      throw new ProtocolError("bad_request", `chat template failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

class TemplateError extends Error {}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** The few strftime fields chat templates use (%d %b %Y and friends). */
export function strftime(d: Date, format: string): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  const fields: Record<string, string> = {
    d: pad(d.getDate()),
    m: pad(d.getMonth() + 1),
    Y: String(d.getFullYear()),
    y: pad(d.getFullYear() % 100),
    b: MONTHS[d.getMonth()].slice(0, 3),
    B: MONTHS[d.getMonth()],
    a: DAYS[d.getDay()].slice(0, 3),
    A: DAYS[d.getDay()],
    H: pad(d.getHours()),
    M: pad(d.getMinutes()),
    S: pad(d.getSeconds()),
    "%": "%",
  };
  return format.replace(/%([a-zA-Z%])/g, (m, c: string) => fields[c] ?? m);
}
