// The KV cache: one pool of n_seq × n_ctx cells per layer. Sequence s owns cells
// [s·n_ctx, (s+1)·n_ctx); the token at position p of sequence s lives in cell s·n_ctx + p, so a
// prefix already computed for a sequence stays usable by the next request on it.
#pragma once
#include <cstdint>
#include <vector>

#include "../gguf/tensor_types.h"

class KvCache {
 public:
  KvCache(int nLayer, int kvDim, int nCtx, int nSeq, TensorType type);

  int nLayer() const { return nLayer_; }
  int nCtx() const { return nCtx_; }
  int nSeq() const { return nSeq_; }
  int kvDim() const { return kvDim_; }
  TensorType type() const { return type_; }
  size_t bytes() const { return k_.size + v_.size; }

  // Row of one cell of one layer: [kvDim] elements of type().
  uint8_t* keyRow(int layer, int seq, int pos) { return k_.data + rowOffset(layer, seq, pos); }
  uint8_t* valueRow(int layer, int seq, int pos) { return v_.data + rowOffset(layer, seq, pos); }
  const uint8_t* keyRow(int layer, int seq, int pos) const { return k_.data + rowOffset(layer, seq, pos); }
  const uint8_t* valueRow(int layer, int seq, int pos) const { return v_.data + rowOffset(layer, seq, pos); }
  size_t rowBytes() const { return rowBytes_; }

  // Number of leading positions of a sequence that hold valid entries.
  int length(int seq) const { return length_.at(seq); }
  void setLength(int seq, int n) { length_.at(seq) = n; }
  // Faults every page of the cache in now (they are mapped lazily): a daemon takes at start the
  // memory its plan counted, so that a plan that is wrong fails at once, not at a full context.
  void commit();
  // Forgets positions >= from of a sequence (from 0 clears it).
  void truncate(int seq, int from);
  // Copies positions [0, n) of one sequence into another (prefix reuse across slots).
  void copyPrefix(int from, int to, int n);
  int usedCells() const;

 private:
  size_t rowOffset(int layer, int seq, int pos) const {
    return ((static_cast<size_t>(layer) * nSeq_ + seq) * nCtx_ + pos) * rowBytes_;
  }
  int nLayer_, kvDim_, nCtx_, nSeq_;
  TensorType type_;
  size_t rowBytes_;
  // [n_layer][n_seq][n_ctx][kvDim] of type_, anonymous mappings: pages cost memory only once
  // a sequence reaches them.
  struct Pages {
    uint8_t* data = nullptr;
    size_t size = 0;
    ~Pages();
  };
  Pages k_, v_;
  std::vector<int> length_;     // [n_seq]
};
