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

  /** `tools` go to the template's `tools` variable, as transformers passes them. */
  render(messages: ChatMessage[], options: { tools?: ToolDefinition[] } = {}): string {
    try {
      // raise_exception and strftime_now come with the Jinja runtime.
      return this.template.render({
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
}
