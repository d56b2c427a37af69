// The whole forward pass, top to bottom, for every architecture of the table (architecture.h):
// their differences are parts a layer has or lacks (Q/K/V biases, per-head Q/K norms) and how
// RoPE pairs dimensions. T = tokens in the batch, E = n_embd, F = n_ff, H = n_head,
// Hkv = n_head_kv, D = head_dim (may differ from E / H), V = n_vocab, C = n_ctx.
#include "forward.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "../kernels/kernel_table.h"
#include "../kernels/matmul.h"

namespace {

// ---- elementwise helpers (numerics follow ggml's CPU backend) -------------------------------

// out = x / sqrt(mean(x²) + eps) · weight; the sum of squares accumulates in double.
void rmsNorm(float* out, const float* x, const float* weight, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * weight[i];
}

// Rotates each head's first nRot dimensions by pos · theta^(-2i/nRot) for the i-th pair — pairs
// (x[2i], x[2i+1]) or, NEOX style, (x[i], x[i + nRot/2]) (architecture.h). The angle is built by
// repeated multiplication, as ggml does, so that its rounding matches.
void rope(float* x, int64_t nHeads, int64_t headDim, int32_t pos, const Hparams& hp, const float* freqFactors) {
  const int64_t nRot = hp.nRot;
  const bool halves = hp.arch->rope == RopeStyle::NeoxHalves;
  const float thetaScale = std::pow(hp.ropeTheta, -2.0f / static_cast<float>(nRot));
  float theta = static_cast<float>(pos);
  for (int64_t i = 0; i < nRot / 2; i++) {
    const float ff = freqFactors ? freqFactors[i] : 1.0f;
    const float angle = hp.ropeFreqScale * (theta / ff);
    const float c = std::cos(angle), s = std::sin(angle);
    const int64_t first = halves ? i : 2 * i, second = halves ? i + nRot / 2 : 2 * i + 1;
    for (int64_t h = 0; h < nHeads; h++) {
      float* v = x + h * headDim;
      const float x0 = v[first], x1 = v[second];
      v[first] = x0 * c - x1 * s;
      v[second] = x0 * s + x1 * c;
    }
    theta *= thetaScale;
  }
}

// x[t][..n) += bias[..n) for every row; a no-op for a projection without bias.
void addBias(float* x, const float* bias, int64_t rows, int64_t n) {
  if (!bias) return;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < n; i++) x[r * n + i] += bias[i];
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// A row into the KV cache's type (or a query head into the type its dot product takes): through
// the fastest quantizer of the kernel table, bit-identical to quantizeRow.
void convertRow(TensorType type, const float* src, void* dst, int64_t n) {
  if (const kernels::QuantizeRowFn quantize = kernels::bestKernels()[type].quantize) {
    quantize(src, dst, n);
  } else {
    quantizeRow(type, src, dst, n);
  }
}

}  // namespace

InferenceContext::InferenceContext(const Model& model, const ContextParams& params)
    : model_(model),
      params_(params),
      kv_(static_cast<int>(model.hparams().nLayer), static_cast<int>(model.hparams().kvDim()), params.nCtx, params.nSeq,
          params.kvType),
      pool_(params.threads) {
  const int64_t block = traitsOf(params.kvType).blockSize;
  if (model.hparams().headDim % block != 0)
    throw std::invalid_argument(std::string("a ") + traitsOf(params.kvType).name + " KV cache needs a head size that is a multiple of " +
                                std::to_string(block) + " (this model's is " + std::to_string(model.hparams().headDim) + ")");
}

void InferenceContext::validate(const std::vector<BatchToken>& batch) const {
  if (batch.empty()) throw std::invalid_argument("empty batch");
  std::vector<int> next(static_cast<size_t>(params_.nSeq));
  for (int s = 0; s < params_.nSeq; s++) next[s] = kv_.length(s);
  const int64_t nVocab = model_.hparams().nVocab;
  for (const BatchToken& b : batch) {
    if (b.seq < 0 || b.seq >= params_.nSeq)
      throw std::invalid_argument("sequence " + std::to_string(b.seq) + " is out of range (0.." + std::to_string(params_.nSeq - 1) + ")");
    if (b.token < 0 || b.token >= nVocab)
      throw std::invalid_argument("token " + std::to_string(b.token) + " is out of range (0.." + std::to_string(nVocab - 1) + ")");
    if (b.pos != next[b.seq])
      throw std::invalid_argument("sequence " + std::to_string(b.seq) + " expects position " + std::to_string(next[b.seq]) +
                                  ", got " + std::to_string(b.pos));
    if (b.pos >= params_.nCtx)
      throw std::invalid_argument("position " + std::to_string(b.pos) + " is past the context size " + std::to_string(params_.nCtx));
    next[b.seq]++;
  }
}

const std::vector<float>& InferenceContext::decode(const std::vector<BatchToken>& batch) {
  validate(batch);
  const Hparams& hp = model_.hparams();
  const int64_t T = static_cast<int64_t>(batch.size());
  const int64_t E = hp.nEmbd, F = hp.nFf, D = hp.headDim, Q = hp.qDim(), KV = hp.kvDim(), V = hp.nVocab;

  x_.resize(T * E);        // [T][E] the residual stream
  xb_.resize(T * std::max(E, Q));  // [T][E] normed input of a block, then [T][Q] attention output
  q_.resize(T * Q);        // [T][H·D]
  k_.resize(T * KV);       // [T][Hkv·D]
  v_.resize(T * KV);       // [T][Hkv·D]
  att_.resize(T * E);      // [T][E] a block's output before the residual add
  gate_.resize(T * F);     // [T][F]
  up_.resize(T * F);       // [T][F]

  // ---- token embeddings: x[t] = token_embd[token_t] --------------------------------------
  const Weight& emb = model_.tokenEmbedding();
  for (int64_t t = 0; t < T; t++)
    dequantizeRow(emb.type, emb.data + batch[t].token * emb.rowBytes(), &x_[t * E], E);

  for (int64_t l = 0; l < hp.nLayer; l++) {
    const LayerWeights& L = model_.layers()[l];

    // ---- attention block -----------------------------------------------------------------
    for (int64_t t = 0; t < T; t++) rmsNorm(&xb_[t * E], &x_[t * E], L.attnNorm, E, hp.rmsEps);  // xb [T][E]
    const MatmulTarget qkv[] = {{L.wq.data, L.wq.type, Q, q_.data()},     // q [T][H·D]
                                {L.wk.data, L.wk.type, KV, k_.data()},    // k [T][Hkv·D]
                                {L.wv.data, L.wv.type, KV, v_.data()}};   // v [T][Hkv·D]
    matmulGroup(pool_, qkv, 3, E, xb_.data(), T);
    addBias(q_.data(), L.bq, T, Q);    // q [T][H·D]   + bq (Qwen2)
    addBias(k_.data(), L.bk, T, KV);   // k [T][Hkv·D] + bk
    addBias(v_.data(), L.bv, T, KV);   // v [T][Hkv·D] + bv
    for (int64_t t = 0; t < T; t++) {
      float* qt = &q_[t * Q];          // [H][D]
      float* kt = &k_[t * KV];         // [Hkv][D]
      // Qwen3: each head RMS-normed on its own (one [D] weight for all heads), before RoPE
      if (L.qNorm) for (int64_t h = 0; h < hp.nHead; h++) rmsNorm(qt + h * D, qt + h * D, L.qNorm, D, hp.rmsEps);
      if (L.kNorm) for (int64_t h = 0; h < hp.nHeadKv; h++) rmsNorm(kt + h * D, kt + h * D, L.kNorm, D, hp.rmsEps);
      rope(qt, hp.nHead, D, batch[t].pos, hp, model_.ropeFreqFactors());
      rope(kt, hp.nHeadKv, D, batch[t].pos, hp, model_.ropeFreqFactors());
      // the cache keeps k and v in its own type (f16 by default), as the reference does
      convertRow(kv_.type(), kt, kv_.keyRow(l, batch[t].seq, batch[t].pos), KV);
      convertRow(kv_.type(), &v_[t * KV], kv_.valueRow(l, batch[t].seq, batch[t].pos), KV);
    }
    attention(static_cast<int>(l), batch);  // xb [T][H·D] (attention.cc)
    matmul(pool_, L.wo.data, L.wo.type, E, Q, xb_.data(), T, att_.data());  // att [T][E]
    for (int64_t i = 0; i < T * E; i++) x_[i] += att_[i];

    // ---- feed-forward block (SwiGLU) -----------------------------------------------------
    for (int64_t t = 0; t < T; t++) rmsNorm(&xb_[t * E], &x_[t * E], L.ffnNorm, E, hp.rmsEps);     // xb [T][E]
    const MatmulTarget gateUp[] = {{L.wGate.data, L.wGate.type, F, gate_.data()},  // gate [T][F]
                                   {L.wUp.data, L.wUp.type, F, up_.data()}};       // up [T][F]
    matmulGroup(pool_, gateUp, 2, E, xb_.data(), T);
    pool_.parallelFor(T * F, [&](int64_t begin, int64_t end, int) {  // an exp per element: both cores
      for (int64_t i = begin; i < end; i++) gate_[i] = silu(gate_[i]) * up_[i];   // gate [T][F]
    }, 2048);
    matmul(pool_, L.wDown.data, L.wDown.type, E, F, gate_.data(), T, att_.data()); // att [T][E]
    for (int64_t i = 0; i < T * E; i++) x_[i] += att_[i];
    // a streamed layer is released now and the next streamed one read ahead behind our compute
    if (residency_) residency_->afterLayer(static_cast<int>(l));
  }

  // ---- sequence lengths now include the batch -------------------------------------------
  for (const BatchToken& b : batch) kv_.setLength(b.seq, b.pos + 1);

  // ---- output: logits for the marked tokens ---------------------------------------------
  int64_t nOut = 0;
  for (int64_t t = 0; t < T; t++) {
    if (!batch[t].wantLogits) continue;
    rmsNorm(&xb_[nOut * E], &x_[t * E], model_.outputNorm(), E, hp.rmsEps);  // xb [nOut][E]
    nOut++;
  }
  logits_.resize(nOut * V);  // [nOut][V]
  if (nOut > 0) {
    const Weight& out = model_.output();
    matmul(pool_, out.data, out.type, V, E, xb_.data(), nOut, logits_.data());
  }
  return logits_;
}
