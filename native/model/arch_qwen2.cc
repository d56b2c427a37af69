// Qwen2 and Qwen2.5 (transformers' Qwen2ForCausalLM; llama.cpp's LLM_ARCH_QWEN2): the LLaMA block
// with biases on the Q, K and V projections (not on the output projection), and RoPE over the two
// halves of each head (transformers' rotate_half; llama.cpp's NEOX type) with the base from the
// file (1,000,000 for Qwen2.5). The small models (0.5B–3B) tie the output to the embedding.
#include "architecture.h"

extern const Architecture kQwen2Architecture = {
    "qwen2",
    "Qwen2, Qwen2.5",
    RopeStyle::NeoxHalves,
    Presence::Required,  // qkvBias
    Presence::Absent,    // qkNorm
    Presence::Absent,    // ropeFreqs
    Presence::Optional,  // output
    nullptr,             // ropeScalings: none (a YaRN file is refused, not run wrong)
};
