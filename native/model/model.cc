#include "model.h"

namespace {
std::string shapeString(const GgufTensor& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.nDims; d++) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

bool listed(const char* const* list, const std::string& value) {
  for (; list && *list; list++)
    if (value == *list) return true;
  return false;
}
}  // namespace

Model::Model(const std::string& path) : file_(std::make_unique<GgufFile>(path)) {
  const GgufFile& f = *file_;
  const std::string& p = f.path();
  hp_.architecture = f.getString("general.architecture", "");
  if (hp_.architecture.empty()) throw GgufError(p + ": general.architecture is missing (a vocabulary-only file has no model)");
  hp_.arch = findArchitecture(hp_.architecture);
  if (!hp_.arch)
    throw GgufError(p + ": unsupported architecture '" + hp_.architecture + "' (supported: " + supportedArchitectures() + ")");
  if (f.tensors().empty()) throw GgufError(p + ": the file has no tensors (a vocabulary-only file has no model)");
  hp_.name = f.getString("general.name", "");
  readHparams();
  vocab_ = Vocab::fromGguf(f);
  bindTensors();
  for (const GgufTensor& t : f.tensors()) weightBytes_ += t.nbytes;
}

// ---- hyperparameters: {arch}.* keys, the same names in every family of the table -------------
void Model::readHparams() {
  const GgufFile& f = *file_;
  const std::string& p = f.path();
  const std::string a = hp_.architecture + ".";
  hp_.nEmbd = f.requireInt(a + "embedding_length");
  hp_.nLayer = f.requireInt(a + "block_count");
  hp_.nFf = f.requireInt(a + "feed_forward_length");
  hp_.nHead = f.requireInt(a + "attention.head_count");
  hp_.nHeadKv = f.getInt(a + "attention.head_count_kv", hp_.nHead);
  hp_.nCtxTrain = f.getInt(a + "context_length", 2048);
  auto positive = [&](const char* what, int64_t v, int64_t max) {
    if (v <= 0 || v > max) throw GgufError(p + ": " + a + what + " = " + std::to_string(v) + " is out of range");
  };
  positive("embedding_length", hp_.nEmbd, 1 << 16);
  positive("block_count", hp_.nLayer, 1024);
  positive("feed_forward_length", hp_.nFf, 1 << 18);
  positive("attention.head_count", hp_.nHead, 1024);
  positive("attention.head_count_kv", hp_.nHeadKv, 1024);
  positive("context_length", hp_.nCtxTrain, 1 << 24);
  if (hp_.nHead % hp_.nHeadKv != 0)
    throw GgufError(p + ": " + std::to_string(hp_.nHead) + " attention heads cannot be shared by " + std::to_string(hp_.nHeadKv) +
                    " KV heads");
  // The head size is its own key where it is not the width over the heads (Qwen3: 128 at width 2560, 32 heads).
  const GgufValue* keyLength = f.find(a + "attention.key_length");
  if (!keyLength && hp_.nEmbd % hp_.nHead != 0)
    throw GgufError(p + ": " + std::to_string(hp_.nHead) + " heads do not divide the embedding length " + std::to_string(hp_.nEmbd) +
                    " and " + a + "attention.key_length is missing");
  hp_.headDim = f.getInt(a + "attention.key_length", hp_.nEmbd / hp_.nHead);
  positive("attention.key_length", hp_.headDim, 4096);
  const int64_t valueLength = f.getInt(a + "attention.value_length", hp_.headDim);
  if (valueLength != hp_.headDim)
    throw GgufError(p + ": " + a + "attention.value_length " + std::to_string(valueLength) + " differs from key_length " +
                    std::to_string(hp_.headDim) + ", which this engine does not support");
  hp_.nRot = f.getInt(a + "rope.dimension_count", hp_.headDim);
  if (hp_.nRot <= 0 || hp_.nRot > hp_.headDim || hp_.nRot % 2 != 0)
    throw GgufError(p + ": " + a + "rope.dimension_count = " + std::to_string(hp_.nRot) + " is out of range");
  hp_.ropeTheta = static_cast<float>(f.getFloat(a + "rope.freq_base", 10000.0));
  if (!(hp_.ropeTheta > 1)) throw GgufError(p + ": " + a + "rope.freq_base must be greater than 1");
  const std::string scaling = f.getString(a + "rope.scaling.type", "none");
  if (scaling != "none" && !listed(hp_.arch->ropeScalings, scaling))
    throw GgufError(p + ": rope scaling '" + scaling + "' is not supported for " + hp_.architecture);
  if (scaling == "linear") {
    const double factor = f.getFloat(a + "rope.scaling.factor", 1.0);
    if (!(factor > 0)) throw GgufError(p + ": " + a + "rope.scaling.factor must be positive");
    hp_.ropeFreqScale = static_cast<float>(1.0 / factor);
  }
  hp_.rmsEps = static_cast<float>(f.getFloat(a + "attention.layer_norm_rms_epsilon", 1e-5));
  if (!(hp_.rmsEps > 0) || hp_.rmsEps > 1) throw GgufError(p + ": layer_norm_rms_epsilon is out of range");
}

// ---- tensors: llama.cpp's names; the architecture says which optional ones to expect ---------
void Model::bindTensors() {
  const Architecture& arch = *hp_.arch;
  const std::string& p = file_->path();
  const int64_t e = hp_.nEmbd, q = hp_.qDim(), kv = hp_.kvDim(), d = hp_.headDim;
  tokEmbd_ = weight("token_embd.weight", e, -1);
  hp_.nVocab = tokEmbd_.rows;
  if (hp_.nVocab < vocab_->size())
    throw GgufError(p + ": token_embd.weight has " + std::to_string(hp_.nVocab) + " rows for " +
                    std::to_string(vocab_->size()) + " tokens");
  outputNorm_ = vector("output_norm.weight", e);
  if (arch.output == Presence::Absent && file_->tensor("output.weight"))
    throw GgufError(p + ": tensor output.weight is not part of a " + hp_.architecture + " model");
  output_ = weight("output.weight", e, hp_.nVocab, arch.output == Presence::Required);
  if (!output_.data) output_ = tokEmbd_;  // tied embeddings
  ropeFreqs_ = vector("rope_freqs.weight", hp_.nRot / 2, arch.ropeFreqs);

  layers_.resize(static_cast<size_t>(hp_.nLayer));
  for (int64_t l = 0; l < hp_.nLayer; l++) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights& L = layers_[static_cast<size_t>(l)];
    L.attnNorm = vector(b + "attn_norm.weight", e);
    L.wq = weight(b + "attn_q.weight", e, q);
    L.wk = weight(b + "attn_k.weight", e, kv);
    L.wv = weight(b + "attn_v.weight", e, kv);
    L.bq = vector(b + "attn_q.bias", q, arch.qkvBias);
    L.bk = vector(b + "attn_k.bias", kv, arch.qkvBias);
    L.bv = vector(b + "attn_v.bias", kv, arch.qkvBias);
    L.qNorm = vector(b + "attn_q_norm.weight", d, arch.qkNorm);
    L.kNorm = vector(b + "attn_k_norm.weight", d, arch.qkNorm);
    L.wo = weight(b + "attn_output.weight", q, e);
    L.ffnNorm = vector(b + "ffn_norm.weight", e);
    L.wGate = weight(b + "ffn_gate.weight", e, hp_.nFf);
    L.wUp = weight(b + "ffn_up.weight", e, hp_.nFf);
    L.wDown = weight(b + "ffn_down.weight", hp_.nFf, e);
  }
}

Weight Model::weight(const std::string& name, int64_t cols, int64_t rows, bool required) {
  const GgufTensor* t = file_->tensor(name);
  if (!t) {
    if (required) throw GgufError(file_->path() + ": tensor " + name + " is missing");
    return {};
  }
  if (t->nDims > 2 || t->ne[0] != cols || (rows >= 0 && t->ne[1] != rows))
    throw GgufError(file_->path() + ": tensor " + name + " has shape " + shapeString(*t) + ", expected [" +
                    std::to_string(cols) + ", " + (rows >= 0 ? std::to_string(rows) : "n_vocab") + "]");
  const TypeTraits& tt = traitsOf(t->type);
  if (!tt.computable)
    throw GgufError(file_->path() + ": tensor " + name + " has type " + tt.name + ", which this engine cannot compute with");
  return Weight{t->data, t->type, t->ne[0], t->ne[1]};
}

const float* Model::vector(const std::string& name, int64_t n, Presence presence) {
  if (presence == Presence::Absent) {
    // A part the forward pass would not apply: refusing beats computing something else.
    if (file_->tensor(name))
      throw GgufError(file_->path() + ": tensor " + name + " is not part of a " + hp_.architecture + " model");
    return nullptr;
  }
  return vector(name, n, presence == Presence::Required);
}

const float* Model::vector(const std::string& name, int64_t n, bool required) {
  const GgufTensor* t = file_->tensor(name);
  if (!t) {
    if (required) throw GgufError(file_->path() + ": tensor " + name + " is missing");
    return nullptr;
  }
  if (t->type != TensorType::F32 || t->elements() != n)
    throw GgufError(file_->path() + ": tensor " + name + " must be " + std::to_string(n) + " f32 values, found " +
                    traitsOf(t->type).name + " " + shapeString(*t));
  // GGUF aligns tensor data (32 bytes by default), so f32 vectors can be read in place.
  if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0)
    throw GgufError(file_->path() + ": tensor " + name + " is not aligned");
  return reinterpret_cast<const float*>(t->data);
}
