// kernel_check's fp16 part: the fp16 row conversions and attention's kernels over the fp16 KV
// cache (weighF16, scoresF16, roundF16), each against its scalar reference, bit for bit.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernel_check.h"

namespace kernel_check {

using kernels::KernelSet;

// fp16 to float: every one of the 65536 halves converts to the reference's float (NaNs: to a NaN).
void checkDequantizeF16(const KernelSet& set) {
  const int64_t all = 65536 + 3;  // a length with a tail after the last vector
  std::vector<uint16_t> halves(all);
  for (int64_t i = 0; i < all; ++i) halves[i] = static_cast<uint16_t>(i);
  std::vector<float> want(all), got(all);
  dequantizeRow(TensorType::F16, halves.data(), want.data(), all);
  set[TensorType::F16].dequantize(halves.data(), got.data(), all);
  int64_t bad = 0;
  for (int64_t i = 0; i < all; ++i) bad += !sameFloat(want[i], got[i]);
  report(bad == 0, std::string(set.name) + " f16 -> f32, all 65536 halves");
}

// Float to fp16: floats of every kind (each half, halfway cases, subnormal halves, overflow, ±0,
// inf, NaN) round to the reference's half.
void checkQuantizeF16(const KernelSet& set) {
  std::vector<float> floats;
  for (int64_t i = 0; i < 65536; ++i) {
    // each half, the midpoints to its neighbour and the floats one ulp either side of them
    const float lo = fp16ToFp32(static_cast<uint16_t>(i)), hi = fp16ToFp32(static_cast<uint16_t>((i + 1) & 0xFFFF));
    if (!std::isfinite(lo) || !std::isfinite(hi)) continue;
    const float mid = lo + (hi - lo) / 2;
    for (float f : {lo, mid, std::nextafter(mid, lo), std::nextafter(mid, hi)}) floats.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, 1e30f, -1e30f, 1e-30f, 5.96e-8f, 2.98e-8f, 2.99e-8f,
                  INFINITY, -INFINITY, NAN, -NAN})
    floats.push_back(f);
  for (int i = 0; i < 4096; ++i) floats.push_back(randomFloat(-3.0f, 3.0f) * std::pow(10.0f, randomFloat(-9.0f, 5.0f)));
  const int64_t nf = static_cast<int64_t>(floats.size());
  std::vector<uint16_t> wantH(nf), gotH(nf);
  quantizeRow(TensorType::F16, floats.data(), wantH.data(), nf);
  set[TensorType::F16].quantize(floats.data(), gotH.data(), nf);
  int64_t bad = 0;
  for (int64_t i = 0; i < nf; ++i) {
    const bool nan = (wantH[i] & 0x7C00) == 0x7C00 && (wantH[i] & 0x3FF);
    bad += nan ? !((gotH[i] & 0x7C00) == 0x7C00 && (gotH[i] & 0x3FF)) : wantH[i] != gotH[i];
  }
  report(bad == 0, std::string(set.name) + " f32 -> f16, " + std::to_string(nf) + " floats");
}

// Attention over fp16 rows sums p[j]·x_j exactly as the reference's loop does. d: every path of
// the kernels (64- and 32-wide blocks, 8- and 4-wide, single elements); rows: none, one, a
// context's worth; strides beyond the row (a head inside a KV row).
void checkWeighF16(const KernelSet& set) {
  for (int64_t d : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{100}, int64_t{128}, int64_t{133}}) {
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{37}}) {
      const size_t stride = static_cast<size_t>(d + randomInt(0, 40)) * 2;
      std::vector<uint8_t> rows(n * stride + 2 * d);
      for (int64_t j = 0; j < n; ++j) {
        auto* x = reinterpret_cast<uint16_t*>(rows.data() + j * stride);
        for (int64_t i = 0; i < d; ++i) x[i] = fp32ToFp16(randomFloat(-4.0f, 4.0f));
      }
      std::vector<float> p(n + 1), got(d, NAN), want(d, NAN);
      for (float& v : p) v = randomFloat(0.0f, 1.0f);
      kernels::scalarKernels().weighF16(n, p.data(), rows.data(), stride, d, want.data());
      set.weighF16(n, p.data(), rows.data(), stride, d, got.data());
      bool ok = true;
      for (int64_t i = 0; i < d; ++i) ok = ok && sameFloat(got[i], want[i]);
      report(ok, std::string(set.name) + " weigh f16 rows d=" + std::to_string(d) + " n=" + std::to_string(n));
    }
  }
}

// Attention's scores equal the set's own F16 dot product per key row, times the scale, bit for
// bit: heads of 1..133 values, no key, one, a context's worth, key rows inside wider KV rows.
void checkScoresF16(const KernelSet& set) {
  if (!set[TensorType::F16].dot) {
    report(false, std::string(set.name) + " scores f16 without an f16 dot product to agree with");
    return;
  }
  for (int64_t d : {int64_t{1}, int64_t{8}, int64_t{64}, int64_t{100}, int64_t{128}, int64_t{133}}) {
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{37}}) {
      const size_t stride = static_cast<size_t>(d + randomInt(0, 40)) * 2;
      std::vector<uint8_t> keys(n * stride + 2 * d);
      for (int64_t j = 0; j < n; ++j) {
        auto* k = reinterpret_cast<uint16_t*>(keys.data() + j * stride);
        for (int64_t i = 0; i < d; ++i) k[i] = fp32ToFp16(randomFloat(-4.0f, 4.0f));
      }
      std::vector<uint16_t> q(d);
      for (uint16_t& h : q) h = fp32ToFp16(randomFloat(-4.0f, 4.0f));
      const float scale = 1.0f / std::sqrt(static_cast<float>(d));
      std::vector<float> got(n + 1, NAN), want(n + 1, NAN);
      for (int64_t j = 0; j < n; ++j) want[j] = set[TensorType::F16].dot(d, keys.data() + j * stride, q.data()) * scale;
      set.scoresF16(n, q.data(), keys.data(), stride, d, scale, got.data());
      bool ok = true;
      for (int64_t j = 0; j <= n; ++j) ok = ok && sameFloat(got[j], want[j]);
      report(ok, std::string(set.name) + " scores f16 d=" + std::to_string(d) + " n=" + std::to_string(n));
    }
  }
}

// Rounding through fp16 equals fp32ToFp16 then fp16ToFp32 on every kind of float: normal halves,
// ties, subnormal halves, values that round to zero or overflow to infinity, zeros and infinities.
void checkRoundF16(const KernelSet& set) {
  std::vector<float> x;
  for (int i = 0; i < 4000; ++i) {
    const float magnitude = std::ldexp(randomFloat(1.0f, 2.0f), randomInt(-30, 17));
    x.push_back(randomInt(0, 1) ? magnitude : -magnitude);
  }
  for (float v : {0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 1e9f, 5.9604645e-8f, 2.9802322e-8f, 1e-12f, INFINITY, -INFINITY}) {
    x.push_back(v);
  }
  for (uint16_t h = 0; h < 0x7C00; h += 7) {  // exactly halfway between neighbouring halves
    x.push_back((fp16ToFp32(h) + fp16ToFp32(static_cast<uint16_t>(h + 1))) / 2.0f);
  }
  std::vector<float> got = x;
  set.roundF16(static_cast<int64_t>(got.size()), got.data());
  int64_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i) bad += !sameFloat(got[i], fp16ToFp32(fp32ToFp16(x[i])));
  report(bad == 0, std::string(set.name) + " round through f16, " + std::to_string(x.size()) + " floats");
}

}  // namespace kernel_check
