#include "stream_probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct Range {
  const uint8_t* data;
  size_t size;
};

// Pieces small enough that both threads stay busy to the end, large enough to be a stream.
constexpr size_t kPiece = size_t{256} << 10;

uint64_t sumWords(const uint8_t* p, size_t n) {
  // Four independent sums of 64-bit words; the compiler vectorizes it with the baseline ISA,
  // which reads far faster than memory delivers.
  uint64_t s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    for (int k = 0; k < 4; ++k) s[k] += w[k];
  }
  for (; i < n; ++i) s[0] += p[i];
  return s[0] ^ s[1] ^ s[2] ^ s[3];
}

}  // namespace

StreamProbe streamDecodeWeights(ThreadPool& pool, const Model& model) {
  std::vector<Range> pieces;
  StreamProbe probe;
  auto add = [&](const Weight& w) {
    const size_t size = static_cast<size_t>(w.rows) * w.rowBytes();
    for (size_t off = 0; off < size; off += kPiece) pieces.push_back({w.data + off, std::min(kPiece, size - off)});
    probe.bytes += size;
  };
  for (const LayerWeights& l : model.layers()) {
    for (const Weight* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.wGate, &l.wUp, &l.wDown}) add(*w);
  }
  add(model.output());
  std::atomic<uint64_t> sink{0};  // the sums go somewhere observable, so the reads stay
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallelFor(static_cast<int64_t>(pieces.size()), [&](int64_t begin, int64_t end, int) {
    uint64_t s = 0;
    for (int64_t i = begin; i < end; ++i) s ^= sumWords(pieces[i].data, pieces[i].size);
    sink.fetch_xor(s, std::memory_order_relaxed);
  });
  probe.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return probe;
}
