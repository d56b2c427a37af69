// Prompt templates: the Alpaca instruction format and GGUF chat templates through Jinja.
import test from "ava";
import { ProtocolError } from "../daemon/serving/protocol.js";
import { alpacaPrompt, ChatTemplate } from "../daemon/serving/templates.js";

test("the Alpaca template without and with input", (t) => {
  t.is(
    alpacaPrompt("Name three colors."),
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
      "### Instruction:\nName three colors.\n\n### Response:\n",
  );
  t.is(
    alpacaPrompt("Translate.", "Hallo"),
    "Below is an instruction that describes a task, paired with an input that provides further context. " +
      "Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate.\n\n### Input:\nHallo\n\n### Response:\n",
  );
  t.is(alpacaPrompt("x", ""), alpacaPrompt("x"));
});

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// The Llama 2 chat template as shipped in GGUF files (abridged: system prompt folded into the first turn).
const LLAMA2 =
  "{{ bos_token }}{% for message in messages %}" +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

test("a ChatML template renders the conversation and the generation prompt", (t) => {
  const tpl = new ChatTemplate(CHATML, { bos: "<s>", eos: "</s>" });
  t.is(
    tpl.render([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
    ]),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("the Llama 2 template uses bos/eos and its raise_exception is a bad_request", (t) => {
  const tpl = new ChatTemplate(LLAMA2, { bos: "<s>", eos: "</s>" });
  t.is(
    tpl.render([
      { role: "user", content: " Hello " },
      { role: "assistant", content: "Hi." },
      { role: "user", content: "Bye" },
    ]),
    "<s>[INST] Hello [/INST] Hi. </s>[INST] Bye [/INST]",
  );
  const e = t.throws(() => tpl.render([{ role: "assistant", content: "x" }]), { instanceOf: ProtocolError });
  t.is(e?.code, "bad_request");
  t.regex(e?.message ?? "", /roles must alternate/);
});

test("a template that cannot run on the messages is a bad_request", (t) => {
  const tpl = new ChatTemplate("{{ messages[0]['content'].nosuchmethod() }}", { bos: "", eos: "" });
  const e = t.throws(() => tpl.render([{ role: "user", content: "x" }]), { instanceOf: ProtocolError });
  t.is(e?.code, "bad_request");
  t.regex(e?.message ?? "", /^chat template: /);
});
