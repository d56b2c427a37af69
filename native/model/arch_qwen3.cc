// Qwen3 (transformers' Qwen3ForCausalLM; llama.cpp's LLM_ARCH_QWEN3): Qwen2 without the Q/K/V
// biases, and with an RMSNorm over every head of q and k (one [head_dim] weight each, shared by
// the heads) between the projection and RoPE. The head size is set apart from the width
// (qwen3.attention.key_length: 128 in the 4B model, whose width 2560 over 32 heads would give 80),
// so q is wider than the residual stream and the output projection maps it back.
#include "architecture.h"

extern const Architecture kQwen3Architecture = {
    "qwen3",
    "Qwen3",
    RopeStyle::NeoxHalves,
    Presence::Absent,    // qkvBias
    Presence::Required,  // qkNorm
    Presence::Absent,    // ropeFreqs
    Presence::Optional,  // output
    nullptr,             // ropeScalings: none (a YaRN file is refused, not run wrong)
};
