// A model bound to the tensors of a mapped GGUF file: its architecture's entry in the table
// (architecture.h), hyperparameters from metadata, weights used in place (never copied).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "architecture.h"
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

struct Hparams {
  std::string architecture;            // general.architecture
  const Architecture* arch = nullptr;  // its entry in the table
  std::string name;
  int64_t nVocab = 0;
  int64_t nCtxTrain = 0;
  int64_t nEmbd = 0;      // dim
  int64_t nLayer = 0;
  int64_t nFf = 0;        // hidden dim of the FFN
  int64_t nHead = 0;
  int64_t nHeadKv = 0;
  int64_t headDim = 0;    // {arch}.attention.key_length, else n_embd / n_head
  int64_t nRot = 0;       // rotated dimensions per head
  float ropeTheta = 10000.0f;
  float ropeFreqScale = 1.0f;  // 1 / linear scaling factor
  float rmsEps = 1e-5f;
  int64_t qDim() const { return nHead * headDim; }
  int64_t kvDim() const { return nHeadKv * headDim; }
};

// One transformer block's weights; optional parts are nullptr when the file has none.
struct LayerWeights {
  const float* attnNorm = nullptr;  // [nEmbd]
  Weight wq, wk, wv, wo;            // [qDim][nEmbd], [kvDim][nEmbd] ×2, [nEmbd][qDim]
  const float* bq = nullptr;        // [qDim]  (Qwen2)
  const float* bk = nullptr;        // [kvDim]
  const float* bv = nullptr;        // [kvDim]
  const float* qNorm = nullptr;     // [headDim], one RMSNorm weight for every query head (Qwen3)
  const float* kNorm = nullptr;     // [headDim]
  const float* ffnNorm = nullptr;   // [nEmbd]
  Weight wGate, wUp, wDown;         // [nFf][nEmbd] ×2, [nEmbd][nFf]
};

class Model {
 public:
  // Throws GgufError naming the file and what is wrong (missing tensor, wrong shape, unsupported
  // architecture or tensor type).
  explicit Model(const std::string& path);

  const GgufFile& file() const { return *file_; }
  const Vocab& vocab() const { return *vocab_; }
  const Hparams& hparams() const { return hp_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const Weight& tokenEmbedding() const { return tokEmbd_; }  // [nVocab][nEmbd]
  const float* outputNorm() const { return outputNorm_; }     // [nEmbd]
  const Weight& output() const { return output_; }            // [nVocab][nEmbd], tied to tokEmbd when absent
  const float* ropeFreqFactors() const { return ropeFreqs_; } // [nRot/2] or nullptr
  uint64_t weightBytes() const { return weightBytes_; }

 private:
  Weight weight(const std::string& name, int64_t cols, int64_t rows, bool required = true);
  const float* vector(const std::string& name, int64_t n, bool required = true);
  // A tensor the architecture marks Absent / Optional / Required (architecture.h).
  const float* vector(const std::string& name, int64_t n, Presence presence);
  void readHparams();
  void bindTensors();

  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Vocab> vocab_;
  Hparams hp_;
  std::vector<LayerWeights> layers_;
  Weight tokEmbd_, output_;
  const float* outputNorm_ = nullptr;
  const float* ropeFreqs_ = nullptr;
  uint64_t weightBytes_ = 0;
};
