// kernel_check's fp16 part: the fp16 row conversions and attention's kernels over the fp16 KV
// cache (weighF16, scoresF16 for many query heads at once, roundF16, softmaxF16), each against its
// reference (the scalar one; for the scores, the set's own F16 dot product), bit for bit but for
// the softmax's exponential.
#include <algorithm>
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

// A random fp16 row of d values at `at`.
static void randomHalves(uint8_t* at, int64_t d) {
  auto* x = reinterpret_cast<uint16_t*>(at);
  for (int64_t i = 0; i < d; ++i) x[i] = fp32ToFp16(randomFloat(-4.0f, 4.0f));
}

// Attention's outputs for m heads at once: each head's equals the scalar reference run on that
// head alone, bit for bit (the order p[0]·x_0 + p[1]·x_1 + … from +0), whatever the other heads
// and their row counts. d: every path of the kernels (8-wide columns, 4-wide, single elements);
// m: one head, a group, more than one pass of heads; row counts: none, equal, each its own;
// strides beyond the row (a head inside a KV row); nothing written past a head's d values.
void checkWeighF16(const KernelSet& set) {
  for (int64_t d : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{100}, int64_t{128}, int64_t{133}}) {
    for (int64_t m : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{19}}) {
      for (int lengths = 0; lengths < 3; ++lengths) {  // all 0, all 37, each random in 0..41
        std::vector<int64_t> n(m);
        for (int64_t& x : n) x = lengths == 0 ? 0 : lengths == 1 ? 37 : randomInt(0, 41);
        const int64_t rowCount = *std::max_element(n.begin(), n.end());
        const size_t stride = static_cast<size_t>(d + randomInt(0, 40)) * 2;
        std::vector<uint8_t> rows(rowCount * stride + 2 * d);
        for (int64_t j = 0; j < rowCount; ++j) randomHalves(rows.data() + j * stride, d);
        const size_t pStride = static_cast<size_t>(rowCount + randomInt(0, 5)), outStride = static_cast<size_t>(d + randomInt(0, 3));
        std::vector<float> p(m * pStride + 1);
        for (float& v : p) v = randomFloat(0.0f, 1.0f);
        std::vector<float> got(m * outStride, NAN), want(d, NAN);
        set.weighF16(m, n.data(), p.data(), pStride, rows.data(), stride, d, got.data(), outStride);
        bool ok = true;
        for (int64_t g = 0; g < m; ++g) {
          kernels::scalarKernels().weighF16(1, &n[g], p.data() + g * pStride, pStride, rows.data(), stride, d, want.data(), d);
          for (int64_t i = 0; i < d; ++i) ok = ok && sameFloat(got[g * outStride + i], want[i]);
          for (size_t i = d; i < outStride; ++i) ok = ok && std::isnan(got[g * outStride + i]);
        }
        report(ok, std::string(set.name) + " weigh f16 rows d=" + std::to_string(d) + " heads=" + std::to_string(m) +
                       " rows " + (lengths == 0 ? "none" : lengths == 1 ? "37 each" : "0..41"));
      }
    }
  }
}

// Attention's scores for m queries at once equal the set's own F16 dot product of each query with
// each key row, times the scale, bit for bit, whatever m: heads of 1..264 values (past the
// kernels' widened-key buffers), no key, one, fewer than a block, a context's worth; key rows
// inside wider KV rows; nothing written past the n scores of a query.
void checkScoresF16(const KernelSet& set) {
  if (!set[TensorType::F16].dot) {
    report(false, std::string(set.name) + " scores f16 without an f16 dot product to agree with");
    return;
  }
  for (int64_t d : {int64_t{1}, int64_t{8}, int64_t{64}, int64_t{100}, int64_t{128}, int64_t{133}, int64_t{264}}) {
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{37}}) {
      for (int64_t m : {int64_t{1}, int64_t{8}, int64_t{11}}) {
        const size_t stride = static_cast<size_t>(d + randomInt(0, 40)) * 2;
        std::vector<uint8_t> keys(n * stride + 2 * d);
        for (int64_t j = 0; j < n; ++j) randomHalves(keys.data() + j * stride, d);
        std::vector<uint16_t> qHalves(m * d);  // the queries as the dot product takes them
        randomHalves(reinterpret_cast<uint8_t*>(qHalves.data()), m * d);
        std::vector<float> q(m * d);  // and as the scores do: the same values as floats
        for (int64_t i = 0; i < m * d; ++i) q[i] = fp16ToFp32(qHalves[i]);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
        const size_t outStride = static_cast<size_t>(n + randomInt(1, 3));
        std::vector<float> got(m * outStride, NAN);
        set.scoresF16(n, keys.data(), stride, d, q.data(), m, scale, got.data(), outStride);
        bool ok = true;
        for (int64_t g = 0; g < m; ++g) {
          for (int64_t j = 0; j < n; ++j) {
            const float want = set[TensorType::F16].dot(d, keys.data() + j * stride, qHalves.data() + g * d) * scale;
            ok = ok && sameFloat(got[g * outStride + j], want);
          }
          for (size_t j = n; j < outStride; ++j) ok = ok && std::isnan(got[g * outStride + j]);
        }
        report(ok, std::string(set.name) + " scores f16 d=" + std::to_string(d) + " n=" + std::to_string(n) +
                       " queries=" + std::to_string(m));
      }
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

// The softmax rounded through fp16 is the scalar reference's within one fp16 step of each
// probability (the exponentials may differ in a float's last place and tip a rounding), every
// result is an fp16 value, and they sum to 1: scores of 1 to a long context's worth, spread
// narrow and wide (past e^-80), with ties and one huge outlier.
void checkSoftmaxF16(const KernelSet& set) {
  const KernelSet& scalar = kernels::scalarKernels();
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{9}, int64_t{37}, int64_t{1000}, int64_t{2203}}) {
    for (float spread : {0.01f, 4.0f, 30.0f, 200.0f}) {
      std::vector<float> x(n);
      for (float& v : x) v = randomFloat(-spread, spread);
      if (n > 8) x[n / 2] = x[n / 3];  // a tie
      if (spread == 200.0f) x[n - 1] = 1e4f;
      std::vector<float> got = x, want = x;
      set.softmaxF16(n, got.data());
      scalar.softmaxF16(n, want.data());
      int64_t bad = 0;
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const float w = want[j];
        const float step = w < 6.103515625e-5f ? 5.9604645e-8f : std::ldexp(1.0f, std::ilogb(w) - 10);
        const bool half = sameFloat(got[j], fp16ToFp32(fp32ToFp16(got[j])));
        bad += !(half && std::fabs(got[j] - w) <= step);
        sum += got[j];
      }
      report(bad == 0 && std::fabs(sum - 1.0) < 1e-2, std::string(set.name) + " softmax f16 n=" + std::to_string(n) +
                                                          " spread=" + std::to_string(spread));
    }
  }
}

}  // namespace kernel_check
