// The architecture table: what sets one decoder-only transformer family apart from another, as
// far as this engine's forward pass is concerned. Every family here shares the LLaMA block
// (RMSNorm → attention with RoPE → residual, RMSNorm → SwiGLU → residual) and llama.cpp's tensor
// names; an entry says which optional parts its files carry and how its RoPE rotates.
//
// Adding a family is one file (arch_<name>.cc: its entry, with why each choice is what it is),
// one line in architecture.cc's table, and its golden fixture. A family that needs a new kind of
// part (Gemma's post-norms and GELU, Phi-3's fused QKV) adds a field here, defaulted so that the
// existing entries do not change, and the lines in model.cc / forward.cc that use it.
#pragma once
#include <string>

// How RoPE pairs up the dimensions of a head it rotates (nRot of them).
enum class RopeStyle {
  Pairs,       // (x[2i], x[2i+1]): LLaMA as Meta wrote it; llama.cpp's LLAMA_ROPE_TYPE_NORM
  NeoxHalves,  // (x[i], x[i + nRot/2]): GPT-NeoX and transformers' rotate_half; LLAMA_ROPE_TYPE_NEOX
};

// Whether a family's files carry a tensor.
enum class Presence { Absent, Optional, Required };

struct Architecture {
  const char* name;     // general.architecture, also the prefix of the family's metadata keys
  const char* family;   // the models it covers, for messages and `alpaca info`
  RopeStyle rope;
  // blk.N.attn_{q,k,v}.bias: [qDim], [kvDim], [kvDim] f32, added to the projections.
  Presence qkvBias;
  // blk.N.attn_{q,k}_norm.weight: [headDim] f32, an RMSNorm over every head of q and k, before RoPE.
  Presence qkNorm;
  // rope_freqs.weight: [nRot/2] f32, each rotation's wavelength multiplied by its factor (Llama 3.1+).
  Presence ropeFreqs;
  // output.weight: [nVocab][nEmbd]; when absent the token embedding doubles as the output (tied).
  Presence output;
  // {arch}.rope.scaling.type values the family's files may carry besides "none" (a nullptr-terminated
  // list, or nullptr for none).
  const char* const* ropeScalings;
};

// The entry for general.architecture = name, or nullptr.
const Architecture* findArchitecture(const std::string& name);
// "llama, qwen2, qwen3": for the message that refuses any other.
std::string supportedArchitectures();
