// LLaMA 1/2/3 and the families that kept its block and its GGUF layout: Alpaca, Vicuna, Mistral,
// TinyLlama, Llama 3.x. RoPE rotates adjacent pairs, as Meta's original code did (the converter
// permutes the Q/K rows of Hugging Face checkpoints back into that order). Llama 3.1+ files add
// rope_freqs.weight for their long-context frequency scaling; Llama 3.2 1B/3B tie the output to
// the embedding. llama.cpp loads Q/K/V biases when a llama file has them, so do we.
#include "architecture.h"

namespace {
const char* const kScalings[] = {"linear", "llama3", nullptr};
}  // namespace

extern const Architecture kLlamaArchitecture = {
    "llama",
    "LLaMA 1/2/3, Mistral, TinyLlama",
    RopeStyle::Pairs,
    Presence::Optional,  // qkvBias
    Presence::Absent,    // qkNorm
    Presence::Optional,  // ropeFreqs
    Presence::Optional,  // output
    kScalings,
};
