// The attention step of the forward pass (InferenceContext::attention). H = n_head, Hkv =
// n_head_kv, group = H / Hkv query heads per kv head, D = head_dim, Q = H·D, C = n_ctx.
//
// One work item is one kv head of one sequence with a run of that sequence's rows in the batch
// and a run of the group's query heads: its m = rows × heads queries go through the cached keys
// once together, then through the values once together, so that with grouped-query attention
// (TinyLlama: eight query heads per kv head) and with several rows of a sequence (a speculative
// verification pass) each cached key and value is read and widened once, not once per query.
// Each query's scores, probabilities and output are computed exactly as they would be alone, so
// a batch of rows gives the logits of the same tokens decoded one at a time, bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "forward.h"
#include "../kernels/kernel_table.h"

namespace {

// Queries of one work item at most: the scratch per thread is kMaxQueries rows of scores.
constexpr int64_t kMaxQueries = 64;

struct AttentionItem {
  int32_t seq, kvHead;
  int32_t firstRow, rowCount;    // a run of rowsBySeq (batch indices of one sequence, in batch order)
  int32_t firstHead, headCount;  // query heads kvHead·group + firstHead .. + headCount - 1
};

}  // namespace

// xb[t][h·D..] = softmax(q_h · K_kvh^T / √D) · V_kvh over the cells 0..pos of row t's sequence
// (causal). Query and probabilities are rounded to the cache's f16 as the reference does when it
// multiplies them with f16 keys and values.
void InferenceContext::attention(int layer, const std::vector<BatchToken>& batch) {
  const Hparams& hp = model_.hparams();
  const int64_t T = static_cast<int64_t>(batch.size());
  const int64_t D = hp.headDim, Q = hp.qDim(), group = hp.nHead / hp.nHeadKv;
  const int64_t C = params_.nCtx;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const TensorType kvType = kv_.type();
  const size_t headBytes = rowBytes(kvType, D);  // one head of a cached key or value row
  const size_t kvStride = kv_.rowBytes();        // one cell's row: [Hkv] heads
  const kernels::KernelSet& best = kernels::bestKernels();
  const bool f16 = kvType == TensorType::F16 && best.scoresF16 && best.weighF16;

  // ---- the work items: rows grouped by sequence, runs of rows × runs of heads per kv head ----
  std::vector<int32_t> rowsBySeq;     // [T] batch indices, those of one sequence together
  std::vector<int32_t> seqStart(params_.nSeq + 1, 0);
  for (const BatchToken& b : batch) seqStart[b.seq + 1]++;
  for (int s = 0; s < params_.nSeq; s++) seqStart[s + 1] += seqStart[s];
  rowsBySeq.resize(T);
  {
    std::vector<int32_t> fill(seqStart.begin(), seqStart.end() - 1);
    for (int32_t t = 0; t < T; t++) rowsBySeq[fill[batch[t].seq]++] = t;
  }
  const int64_t rowsPerItem = std::max<int64_t>(1, kMaxQueries / group);
  // A sequence's rows in runs of equal size (nine rows of eight heads: five and four, not eight
  // and one), so that the threads that take them have equal work.
  const auto runsOf = [&](int s) { return (seqStart[s + 1] - seqStart[s] + rowsPerItem - 1) / rowsPerItem; };
  int64_t runs = 0;  // (sequence, run of rows) pairs
  for (int s = 0; s < params_.nSeq; s++) runs += runsOf(s);
  // fewer items than threads (one sequence, few kv heads): split each group's heads
  const int64_t headParts = std::min<int64_t>(group, std::max<int64_t>(1, (pool_.threads() + runs * hp.nHeadKv - 1) / (runs * hp.nHeadKv)));
  std::vector<AttentionItem> items;
  for (int s = 0; s < params_.nSeq; s++) {
    const int64_t count = seqStart[s + 1] - seqStart[s], parts = runsOf(s);
    for (int64_t k = 0; k < parts; k++) {
      const auto r = static_cast<int32_t>(seqStart[s] + count * k / parts);
      const auto rows = static_cast<int32_t>(seqStart[s] + count * (k + 1) / parts - r);
      for (int32_t kvh = 0; kvh < hp.nHeadKv; kvh++) {
        for (int64_t part = 0; part < headParts; part++) {
          const auto first = static_cast<int32_t>(group * part / headParts), last = static_cast<int32_t>(group * (part + 1) / headParts);
          items.push_back({s, kvh, r, rows, first, last - first});
        }
      }
    }
  }

  // ---- per-thread scratch ---------------------------------------------------------------------
  const int nThreads = pool_.threads();
  scores_.resize(static_cast<size_t>(nThreads) * kMaxQueries * C);  // [threads][kMaxQueries][C] scores, then p
  attnQ_.resize(static_cast<size_t>(nThreads) * kMaxQueries * D);   // [threads][kMaxQueries][D] queries rounded to fp16
  attnOut_.resize(static_cast<size_t>(nThreads) * kMaxQueries * D); // [threads][kMaxQueries][D] outputs
  attnLen_.resize(static_cast<size_t>(nThreads) * kMaxQueries);     // [threads][kMaxQueries] cells each query sees
  const TensorType qType = traitsOf(kvType).dotWith;  // the query's format for the dot product (no f16 kernels)
  const size_t qRowBytes = rowBytes(qType, D);
  qHalf_.resize((static_cast<size_t>(nThreads) * qRowBytes + 1) / 2);  // [threads][one query head in qType]

  pool_.parallelFor(static_cast<int64_t>(items.size()), [&](int64_t begin, int64_t end, int thread) {
    float* scores = &scores_[static_cast<size_t>(thread) * kMaxQueries * C];  // [m][C]
    float* qf = &attnQ_[static_cast<size_t>(thread) * kMaxQueries * D];       // [m][D]
    float* out = &attnOut_[static_cast<size_t>(thread) * kMaxQueries * D];    // [m][D]
    int64_t* len = &attnLen_[static_cast<size_t>(thread) * kMaxQueries];      // [m]
    uint8_t* qh = reinterpret_cast<uint8_t*>(qHalf_.data()) + thread * qRowBytes;
    for (int64_t i = begin; i < end; i++) {
      const AttentionItem& it = items[i];
      const int64_t m = static_cast<int64_t>(it.rowCount) * it.headCount;
      // query g = (row r, head hh): batch row rowsBySeq[firstRow + r], head kvHead·group + firstHead + hh
      const auto rowOf = [&](int64_t g) { return rowsBySeq[it.firstRow + g / it.headCount]; };
      const auto headOf = [&](int64_t g) { return it.kvHead * group + it.firstHead + g % it.headCount; };
      int64_t n = 0;  // cells the item reads: every one of them is written (this batch wrote its own)
      for (int64_t g = 0; g < m; g++) {
        len[g] = batch[rowOf(g)].pos + 1;
        n = std::max(n, len[g]);
      }
      const uint8_t* keys = kv_.keyRow(layer, it.seq, 0) + it.kvHead * headBytes;      // [n] rows kvStride apart, [D] each
      const uint8_t* values = kv_.valueRow(layer, it.seq, 0) + it.kvHead * headBytes;  // likewise

      // scores[g][j] = q_g · k_j / √D for j < n (past len[g] unused)
      if (f16) {
        for (int64_t g = 0; g < m; g++) {
          std::memcpy(qf + g * D, &q_[rowOf(g) * Q + headOf(g) * D], sizeof(float) * D);
          best.roundF16(D, qf + g * D);
        }
        best.scoresF16(n, keys, kvStride, D, qf, m, scale, scores, C);
      } else {
        for (int64_t g = 0; g < m; g++) {
          const float* qg = &q_[rowOf(g) * Q + headOf(g) * D];
          if (best[qType].quantize) best[qType].quantize(qg, qh, D); else quantizeRow(qType, qg, qh, D);
          for (int64_t j = 0; j < len[g]; j++) scores[g * C + j] = best[kvType].dot(D, keys + j * kvStride, qh) * scale;
        }
      }
      for (int64_t g = 0; g < m; g++) best.softmaxF16(len[g], scores + g * C);  // p [m][C]

      // out[g] = Σ_{j < len[g]} p[g][j] · v_j
      if (f16) {
        best.weighF16(m, len, scores, C, values, kvStride, D, out, D);
      } else {
        float* vrow = qf;  // [D] a value row as floats
        for (int64_t g = 0; g < m; g++) {
          float* o = out + g * D;
          std::memset(o, 0, sizeof(float) * D);
          for (int64_t j = 0; j < len[g]; j++) {
            dequantizeRow(kvType, values + j * kvStride, vrow, D);
            for (int64_t d = 0; d < D; d++) o[d] += scores[g * C + j] * vrow[d];
          }
        }
      }
      for (int64_t g = 0; g < m; g++) std::memcpy(&xb_[rowOf(g) * Q + headOf(g) * D], out + g * D, sizeof(float) * D);
    }
  });
}
