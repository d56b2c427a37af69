#include "kv_cache.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

KvCache::KvCache(int nLayer, int kvDim, int nCtx, int nSeq, TensorType type)
    : nLayer_(nLayer), kvDim_(kvDim), nCtx_(nCtx), nSeq_(nSeq), type_(type), rowBytes_(::rowBytes(type, kvDim)) {
  if (type != TensorType::F16 && type != TensorType::F32 && type != TensorType::Q8_0)
    throw std::invalid_argument("KV cache type must be f16, f32 or q8_0");
  size_t total = static_cast<size_t>(nLayer) * nSeq * nCtx * rowBytes_;
  for (Pages* p : {&k_, &v_}) {
    void* m = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("cannot reserve " + std::to_string(total >> 20) + " MiB for the KV cache");
    p->data = static_cast<uint8_t*>(m);
    p->size = total;
  }
  length_.assign(static_cast<size_t>(nSeq), 0);
}

KvCache::Pages::~Pages() {
  if (data) ::munmap(data, size);
}

void KvCache::commit() {
  long ps = ::sysconf(_SC_PAGESIZE);
  const size_t page = ps > 0 ? static_cast<size_t>(ps) : 4096;
  for (Pages* p : {&k_, &v_}) {
    volatile uint8_t* b = p->data;
    for (size_t i = 0; i < p->size; i += page) b[i] = 0;
  }
}

void KvCache::truncate(int seq, int from) {
  if (from < 0) from = 0;
  if (length_.at(seq) > from) length_[seq] = from;
}

void KvCache::copyPrefix(int from, int to, int n) {
  if (from == to || n <= 0) return;
  if (n > length_.at(from)) throw std::out_of_range("copyPrefix: source sequence is shorter than the prefix");
  for (int l = 0; l < nLayer_; l++) {
    std::memcpy(keyRow(l, to, 0), keyRow(l, from, 0), rowBytes_ * n);
    std::memcpy(valueRow(l, to, 0), valueRow(l, from, 0), rowBytes_ * n);
  }
  length_.at(to) = n;
}

int KvCache::usedCells() const {
  int n = 0;
  for (int len : length_) n += len;
  return n;
}
