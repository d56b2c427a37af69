// A LLaMA-architecture model bound to the tensors of a mapped GGUF file: hyperparameters from
// metadata, weights used in place (never copied).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../gguf/gguf.h"
#include "../tokenizer/vocab.h"

// A weight matrix [rows][cols] inside the mapping (cols = ne[0] is contiguous).
struct Weight {
  const uint8_t* data = nullptr;
  TensorType type = TensorType::F32;
  int64_t cols = 0;  // ne[0]: input features
  int64_t rows = 0;  // ne[1]: output features
  size_t rowBytes() const { return ::rowBytes(type, cols); }
};

struct LlamaHparams {
  std::string architecture;
  std::string name;
  int64_t nVocab = 0;
  int64_t nCtxTrain = 0;
  int64_t nEmbd = 0;      // dim
  int64_t nLayer = 0;
  int64_t nFf = 0;        // hidden dim of the FFN
  int64_t nHead = 0;
  int64_t nHeadKv = 0;
  int64_t headDim = 0;    // n_embd / n_head unless the file says otherwise
  int64_t nRot = 0;       // rotated dimensions per head
  float ropeTheta = 10000.0f;
  float ropeFreqScale = 1.0f;  // 1 / linear scaling factor
  float rmsEps = 1e-5f;
  int64_t qDim() const { return nHead * headDim; }
  int64_t kvDim() const { return nHeadKv * headDim; }
};

struct LlamaLayer {
  const float* attnNorm = nullptr;  // [nEmbd]
  Weight wq, wk, wv, wo;            // [qDim][nEmbd], [kvDim][nEmbd] ×2, [nEmbd][qDim]
  const float* ffnNorm = nullptr;   // [nEmbd]
  Weight wGate, wUp, wDown;         // [nFf][nEmbd] ×2, [nEmbd][nFf]
};

class LlamaModel {
 public:
  // Throws GgufError naming the file and what is wrong (missing tensor, wrong shape, unsupported
  // architecture or tensor type).
  explicit LlamaModel(const std::string& path);

  const GgufFile& file() const { return *file_; }
  const Vocab& vocab() const { return *vocab_; }
  const LlamaHparams& hparams() const { return hp_; }
  const std::vector<LlamaLayer>& layers() const { return layers_; }
  const Weight& tokenEmbedding() const { return tokEmbd_; }  // [nVocab][nEmbd]
  const float* outputNorm() const { return outputNorm_; }     // [nEmbd]
  const Weight& output() const { return output_; }            // [nVocab][nEmbd], tied to tokEmbd when absent
  const float* ropeFreqFactors() const { return ropeFreqs_; } // [nRot/2] or nullptr
  uint64_t weightBytes() const { return weightBytes_; }

 private:
  Weight weight(const std::string& name, int64_t cols, int64_t rows, bool required = true);
  const float* vector(const std::string& name, int64_t n, bool required = true);

  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Vocab> vocab_;
  LlamaHparams hp_;
  std::vector<LlamaLayer> layers_;
  Weight tokEmbd_, output_;
  const float* outputNorm_ = nullptr;
  const float* ropeFreqs_ = nullptr;
  uint64_t weightBytes_ = 0;
};
