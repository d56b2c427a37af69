// Tensor formats: every dequantizer against an independent float64 reading of the published GGUF
// layouts, every dot product against a float64 dot of the dequantized rows, the quantizers against
// ggml's reference numerics (byte for byte), and fp16 conversion over all 65536 values.
import test from "ava";
import { tensorTypes, rowBytes, TensorType, type TensorTypeInfo } from "../daemon/engine/tensor-types.js";

const tt = tensorTypes();
const infoById = new Map<number, TensorTypeInfo>(tt.types().map((t) => [t.id, t]));
const info = (id: number): TensorTypeInfo => infoById.get(id)!;

// ---------------------------------------------------------------- seeded randomness

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const int = (rand: () => number, lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1)); // [lo, hi]
/** Normal(0, 1) by Box-Muller. */
const normal = (rand: () => number) => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

// ---------------------------------------------------------------- fp16, written independently

/** IEEE half bits to their exact value. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const rest = x - f;
  if (rest > 0.5) return f + 1;
  if (rest < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** A float32 value to half bits, round to nearest even; NaN becomes a quiet NaN. */
function numberToHalf(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (Number.isNaN(v)) return 0x7e00;
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a / 2 ** -24); // may round up to 0x400, the smallest normal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  let mantissa = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (mantissa === 1024) {
    mantissa = 0;
    e += 1;
  }
  return sign | ((e + 15) << 10) | mantissa;
}

/** Half bits of a realistic weight scale: about 2^-11 .. 0.5, random sign. */
const randomScaleHalf = (rand: () => number) => (rand() < 0.5 ? 0x8000 : 0) | (int(rand, 4, 13) << 10) | int(rand, 0, 1023);

// ---------------------------------------------------------------- the formats, read from the layout
// Each reader returns the values of one block and their additive offsets (the min terms of the
// formats that have one), so the dot test can bound rounding by the size of every term.

interface Dequantized {
  values: number[];
  offsets: number[];
}
type BlockReader = (b: DataView) => Dequantized;

const u8 = (b: DataView, at: number) => b.getUint8(at);
const half = (b: DataView, at: number) => halfToNumber(b.getUint16(at, true));
const noOffsets = (values: number[]): Dequantized => ({ values, offsets: values.map(() => 0) });
/** 4-bit element j of a 32-element block whose 16 bytes of nibbles start at `at`. */
const nibble32 = (b: DataView, at: number, j: number) => (j < 16 ? u8(b, at + j) & 15 : u8(b, at + j - 16) >> 4);

/** The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block, scales at byte 4. */
function scaleMinK(b: DataView, j: number): [number, number] {
  const s = (i: number) => u8(b, 4 + i);
  if (j < 4) return [s(j) & 63, s(j + 4) & 63];
  return [(s(j + 4) & 15) | ((s(j - 4) >> 6) << 4), (s(j + 4) >> 4) | ((s(j) >> 6) << 4)];
}

const readers: Record<number, BlockReader> = {
  [TensorType.F32]: (b) => noOffsets([b.getFloat32(0, true)]),
  [TensorType.F16]: (b) => noOffsets([half(b, 0)]),
  [TensorType.BF16]: (b) => {
    const f = new DataView(new ArrayBuffer(4));
    f.setUint16(0, b.getUint16(0, true)); // bf16 is the top half of a float32 (big-endian view)
    return noOffsets([f.getFloat32(0)]);
  },
  [TensorType.Q4_0]: (b) => noOffsets(Array.from({ length: 32 }, (_, j) => half(b, 0) * (nibble32(b, 2, j) - 8))),
  [TensorType.Q4_1]: (b) => ({
    values: Array.from({ length: 32 }, (_, j) => half(b, 0) * nibble32(b, 4, j) + half(b, 2)),
    offsets: Array.from({ length: 32 }, () => half(b, 2)),
  }),
  [TensorType.Q5_0]: (b) => {
    const qh = b.getUint32(2, true);
    return noOffsets(
      Array.from({ length: 32 }, (_, j) => half(b, 0) * ((nibble32(b, 6, j) | (((qh >>> j) & 1) << 4)) - 16)),
    );
  },
  [TensorType.Q5_1]: (b) => {
    const qh = b.getUint32(4, true);
    return {
      values: Array.from({ length: 32 }, (_, j) => half(b, 0) * (nibble32(b, 8, j) | (((qh >>> j) & 1) << 4)) + half(b, 2)),
      offsets: Array.from({ length: 32 }, () => half(b, 2)),
    };
  },
  [TensorType.Q8_0]: (b) => noOffsets(Array.from({ length: 32 }, (_, j) => half(b, 0) * b.getInt8(2 + j))),
  [TensorType.Q8_1]: (b) => noOffsets(Array.from({ length: 32 }, (_, j) => half(b, 0) * b.getInt8(4 + j))),
  // scales[16] @0, qs[64] @16, d @80, dmin @82
  [TensorType.Q2_K]: (b) => {
    const values: number[] = [];
    const offsets: number[] = [];
    for (let e = 0; e < 256; e++) {
      const [h, k, i] = [e >> 7, (e >> 5) & 3, e & 31];
      const q = (u8(b, 16 + 32 * h + i) >> (2 * k)) & 3;
      const sc = u8(b, e >> 4);
      offsets.push(-half(b, 82) * (sc >> 4));
      values.push(half(b, 80) * (sc & 15) * q + offsets[e]);
    }
    return { values, offsets };
  },
  // hmask[32] @0, qs[64] @32, scales[12] @96, d @108
  [TensorType.Q3_K]: (b) =>
    noOffsets(
      Array.from({ length: 256 }, (_, e) => {
        const [h, k, i, g] = [e >> 7, (e >> 5) & 3, e & 31, e >> 4];
        const low2 = (u8(b, 32 + 32 * h + i) >> (2 * k)) & 3;
        const high = (u8(b, i) >> (e >> 5)) & 1;
        const scaleLow = g < 8 ? u8(b, 96 + g) & 15 : u8(b, 96 + g - 8) >> 4;
        const scaleHigh = (u8(b, 96 + 8 + (g % 4)) >> (2 * Math.floor(g / 4))) & 3;
        return half(b, 108) * ((scaleLow | (scaleHigh << 4)) - 32) * (low2 - (high ? 0 : 4));
      }),
    ),
  // d @0, dmin @2, scales[12] @4, qs[128] @16
  [TensorType.Q4_K]: (b) => readScaleMinK(b, 16, -1),
  // d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48
  [TensorType.Q5_K]: (b) => readScaleMinK(b, 48, 16),
  // ql[128] @0, qh[64] @128, scales int8[16] @192, d @208
  [TensorType.Q6_K]: (b) =>
    noOffsets(
      Array.from({ length: 256 }, (_, e) => {
        const [h, k, i] = [e >> 7, (e >> 5) & 3, e & 31];
        const lowByte = u8(b, 64 * h + (k & 1 ? 32 : 0) + i);
        const low4 = k >= 2 ? lowByte >> 4 : lowByte & 15;
        const high2 = (u8(b, 128 + 32 * h + i) >> (2 * k)) & 3;
        return half(b, 208) * b.getInt8(192 + (e >> 4)) * ((low4 | (high2 << 4)) - 32);
      }),
    ),
  // d f32 @0, qs int8[256] @4, bsums int16[16] @260
  [TensorType.Q8_K]: (b) => noOffsets(Array.from({ length: 256 }, (_, e) => b.getFloat32(0, true) * b.getInt8(4 + e))),
};

/** Q4_K/Q5_K: element e is in sub-block e/32; qs chunk e/64 holds it in its low (e%64 < 32) or high nibble. */
function readScaleMinK(b: DataView, qsAt: number, qhAt: number): Dequantized {
  const values: number[] = [];
  const offsets: number[] = [];
  for (let e = 0; e < 256; e++) {
    const j = e >> 5;
    const byte = u8(b, qsAt + 32 * (e >> 6) + (e & 31));
    let q = e & 32 ? byte >> 4 : byte & 15;
    if (qhAt >= 0) q |= ((u8(b, qhAt + (e & 31)) >> j) & 1) << 4;
    const [sc, m] = scaleMinK(b, j);
    offsets.push(-half(b, 2) * m);
    values.push(half(b, 0) * sc * q + offsets[e]);
  }
  return { values, offsets };
}

function dequantizeReference(typeId: number, row: Uint8Array): Dequantized {
  const { blockBytes } = info(typeId);
  const out: Dequantized = { values: [], offsets: [] };
  for (let at = 0; at < row.length; at += blockBytes) {
    const block = readers[typeId](new DataView(row.buffer, row.byteOffset + at, blockBytes));
    out.values.push(...block.values);
    out.offsets.push(...block.offsets);
  }
  return out;
}

// ---------------------------------------------------------------- random rows

/** Byte offsets of the fp16 scales of each format's block, to be given realistic values. */
const scaleFields: Record<number, number[]> = {
  [TensorType.Q4_0]: [0], [TensorType.Q4_1]: [0, 2], [TensorType.Q5_0]: [0], [TensorType.Q5_1]: [0, 2],
  [TensorType.Q8_0]: [0], [TensorType.Q8_1]: [0], [TensorType.Q2_K]: [80, 82], [TensorType.Q3_K]: [108],
  [TensorType.Q4_K]: [0, 2], [TensorType.Q5_K]: [0, 2], [TensorType.Q6_K]: [208],
};

/**
 * A random row of n elements: random quants, realistic scales. Activation formats (asActivation)
 * keep their quants in -127..127, as the quantizers produce them, and their sums consistent.
 */
function randomRow(typeId: number, n: number, rand: () => number, asActivation = false): Uint8Array {
  const { blockSize, blockBytes } = info(typeId);
  const row = new Uint8Array((n / blockSize) * blockBytes);
  const view = new DataView(row.buffer);
  if (typeId === TensorType.F32) {
    for (let i = 0; i < n; i++) view.setFloat32(4 * i, normal(rand), true);
    return row;
  }
  if (typeId === TensorType.F16 || typeId === TensorType.BF16) {
    for (let i = 0; i < n; i++) view.setUint16(2 * i, typeId === TensorType.F16 ? randomScaleHalf(rand) : int(rand, 0, 0xffff), true);
    return row;
  }
  for (let i = 0; i < row.length; i++) row[i] = int(rand, 0, 255);
  for (let at = 0; at < row.length; at += blockBytes) {
    for (const field of scaleFields[typeId] ?? []) view.setUint16(at + field, randomScaleHalf(rand), true);
    const quantAt = typeId === TensorType.Q8_0 ? 2 : typeId === TensorType.Q8_1 ? 4 : typeId === TensorType.Q8_K ? 4 : -1;
    if (asActivation && quantAt >= 0) for (let j = 0; j < blockSize; j++) view.setInt8(at + quantAt + j, int(rand, -127, 127));
    if (typeId === TensorType.Q8_1) {
      // s = d * sum(qs), stored as fp16 as the quantizer does
      let sum = 0;
      for (let j = 0; j < 32; j++) sum += view.getInt8(at + 4 + j);
      view.setUint16(at + 2, numberToHalf(Math.fround(Math.fround(half(view, at)) * sum)), true);
    }
    if (typeId === TensorType.Q8_K) {
      view.setFloat32(at, (rand() < 0.5 ? -1 : 1) * Math.fround(1e-3 + rand() * 0.1), true);
      for (let g = 0; g < 16; g++) {
        let sum = 0;
        for (let i = 0; i < 16; i++) sum += view.getInt8(at + 4 + 16 * g + i);
        view.setInt16(at + 260 + 2 * g, sum, true);
      }
    }
  }
  return row;
}

const allTypes = [...infoById.keys()];
const computableTypes = allTypes.filter((id) => info(id).computable);

// ---------------------------------------------------------------- tests

test("the type table lists every format with ggml's ids, sizes and dot partners", (t) => {
  const rows = tt.types().map((x) => [x.id, x.name, x.blockSize, x.blockBytes, x.computable, x.dotWith]);
  t.deepEqual(rows, [
    [0, "f32", 1, 4, true, 0], [1, "f16", 1, 2, true, 1],
    [2, "q4_0", 32, 18, true, 8], [3, "q4_1", 32, 20, true, 9],
    [6, "q5_0", 32, 22, true, 8], [7, "q5_1", 32, 24, true, 9],
    [8, "q8_0", 32, 34, true, 8], [9, "q8_1", 32, 36, false, 9],
    [10, "q2_K", 256, 84, true, 15], [11, "q3_K", 256, 110, true, 15],
    [12, "q4_K", 256, 144, true, 15], [13, "q5_K", 256, 176, true, 15], [14, "q6_K", 256, 210, true, 15],
    [15, "q8_K", 256, 292, false, 15], [30, "bf16", 1, 2, false, 30],
  ]);
});

test("fp16 to fp32 is exact for all 65536 values", (t) => {
  let wrong = 0;
  for (let h = 0; h < 0x10000; h++) {
    const got = tt.fp16ToFp32(h);
    const want = halfToNumber(h);
    if (!(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)))) wrong++;
  }
  t.is(wrong, 0);
});

test("fp32 to fp16 round-trips every half and rounds ties to even", (t) => {
  let wrong = 0;
  for (let h = 0; h < 0x10000; h++) {
    const v = halfToNumber(h);
    const back = tt.fp32ToFp16(v);
    if (Number.isNaN(v)) {
      if ((back & 0x7c00) !== 0x7c00 || (back & 0x3ff) === 0) wrong++;
    } else if (back !== h) wrong++;
  }
  t.is(wrong, 0, "every half survives a round trip");

  // Between consecutive finite halves of one sign: the midpoint goes to the even one, a float32
  // step to either side goes to the nearer one. (A midpoint has 12 significant bits: exact in float32.)
  const below = (x: number) => { const f = new Float32Array([x]); const u = new Uint32Array(f.buffer); u[0] -= 1; return f[0]; };
  const above = (x: number) => { const f = new Float32Array([x]); const u = new Uint32Array(f.buffer); u[0] += 1; return f[0]; };
  let tieErrors = 0;
  for (const sign of [0, 0x8000]) {
    for (let h = 0; h < 0x7bff; h++) {
      const lo = sign | h, hi = sign | (h + 1);
      const mid = (halfToNumber(lo) + halfToNumber(hi)) / 2;
      const even = (h & 1) === 0 ? lo : hi;
      // one float32 step toward zero (bit pattern - 1) or away from it (+ 1), for either sign
      if (tt.fp32ToFp16(mid) !== even) tieErrors++;
      if (tt.fp32ToFp16(below(mid)) !== lo) tieErrors++;
      if (tt.fp32ToFp16(above(mid)) !== hi) tieErrors++;
    }
  }
  t.is(tieErrors, 0, "ties to even, others to nearest");

  t.is(tt.fp32ToFp16(65519.99), 0x7bff, "just under the overflow threshold: largest finite");
  t.is(tt.fp32ToFp16(65520), 0x7c00, "the overflow threshold is a tie to inf");
  t.is(tt.fp32ToFp16(1e10), 0x7c00);
  t.is(tt.fp32ToFp16(-Infinity), 0xfc00);
  t.is(tt.fp32ToFp16(2 ** -25), 0x0000, "half the smallest subnormal: tie to zero");
  t.is(tt.fp32ToFp16(above(2 ** -25)), 0x0001);
  t.is(tt.fp32ToFp16(3 * 2 ** -25), 0x0002, "1.5 units: tie to 2");
  t.is(tt.fp32ToFp16(1e-30), 0x0000);
  t.is(tt.fp32ToFp16(-0), 0x8000);
  const nan = tt.fp32ToFp16(NaN);
  t.true((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0, "NaN stays NaN");
});

test("fp32 to fp16 agrees with an independent conversion on random float32 patterns", (t) => {
  const rand = mulberry32(1301);
  const bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
  let wrong = 0;
  for (let i = 0; i < 200_000; i++) {
    // exponents around the half range, where rounding, subnormals and overflow happen
    bits[0] = (int(rand, 0, 1) << 31) | (int(rand, 95, 145) << 23) | int(rand, 0, 0x7fffff);
    if (tt.fp32ToFp16(f[0]) !== numberToHalf(f[0])) wrong++;
  }
  t.is(wrong, 0);
});

for (const typeId of allTypes) {
  test(`dequantize ${info(typeId).name} matches the published layout`, (t) => {
    const rand = mulberry32(1000 + typeId);
    const { blockSize } = info(typeId);
    const n = blockSize * (blockSize === 1 ? 4096 : blockSize === 32 ? 64 : 8);
    for (let trial = 0; trial < 10; trial++) {
      const row = randomRow(typeId, n, rand);
      const got = tt.dequantize(typeId, row, n);
      const want = dequantizeReference(typeId, row).values;
      let worst = 0;
      for (let i = 0; i < n; i++) {
        // one float32 rounding of the exact value at most: half an ulp, 2^-24 relative
        if (got[i] === want[i] || (Number.isNaN(got[i]) && Number.isNaN(want[i]))) continue;
        worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]) * 2 ** -24, Number.MIN_VALUE));
      }
      t.true(worst <= 1, `trial ${trial}: error ${worst} half-ulps`);
    }
    // a row at an odd byte offset reads the same
    const row = randomRow(typeId, n, rand);
    const shifted = new Uint8Array(row.length + 1).subarray(1);
    shifted.set(row);
    t.deepEqual(tt.dequantize(typeId, shifted, n), tt.dequantize(typeId, row, n));
  });
}

for (const typeId of computableTypes) {
  const { name, dotWith, blockSize } = info(typeId);
  test(`dot ${name} x ${info(dotWith).name} matches a float64 dot of the dequantized rows`, (t) => {
    const rand = mulberry32(2000 + typeId);
    const n = blockSize === 256 ? 256 * 8 : 32 * 64;
    for (let trial = 0; trial < 20; trial++) {
      const w = randomRow(typeId, n, rand);
      const a = randomRow(dotWith, n, rand, true);
      const wd = dequantizeReference(typeId, w), ad = dequantizeReference(dotWith, a).values;
      let exact = 0, sumAbsTerms = 0;
      for (let i = 0; i < n; i++) {
        exact += wd.values[i] * ad[i];
        sumAbsTerms += (Math.abs(wd.values[i] - wd.offsets[i]) + Math.abs(wd.offsets[i])) * Math.abs(ad[i]);
      }
      // Q8_1 carries s = fp16(d * sum(q)); the kernels use it for the min term, so its own
      // rounding enters the result: |m| * |s - d * sum(q)| per block.
      let storedSumError = 0;
      if (dotWith === TensorType.Q8_1) {
        for (let b = 0; b < n / 32; b++) {
          const blk = new DataView(a.buffer, b * 36, 36);
          let sum = 0;
          for (let j = 0; j < 32; j++) sum += blk.getInt8(4 + j);
          storedSumError += Math.abs(wd.offsets[32 * b]) * Math.abs(half(blk, 2) - half(blk, 0) * sum);
        }
      }
      // Bound: float32 scaling and accumulation over at most 64 blocks cost well under
      // 1e-5 of the sum of |terms| (each step 2^-24 relative, ~70 steps).
      const bound = 1e-5 * sumAbsTerms + 1.001 * storedSumError;
      for (const variant of ["scalar", "best"] as const) {
        const got = tt.dot(typeId, w, a, n, variant);
        t.true(Math.abs(got - exact) <= bound, `${variant} trial ${trial}: ${got} vs ${exact} (bound ${bound})`);
      }
    }
  });
}

test("the Q4_0 and Q8_0 scalar dots follow ggml's float order exactly", (t) => {
  const rand = mulberry32(31);
  const n = 32 * 64;
  for (const typeId of [TensorType.Q4_0, TensorType.Q8_0]) {
    const w = randomRow(typeId, n, rand), a = randomRow(TensorType.Q8_0, n, rand, true);
    const wv = new DataView(w.buffer), av = new DataView(a.buffer);
    const bytes = info(typeId).blockBytes;
    let sumf = 0;
    for (let b = 0; b < n / 32; b++) {
      let sumi = 0;
      for (let j = 0; j < 32; j++) {
        const q = typeId === TensorType.Q4_0 ? nibble32(wv, b * bytes + 2, j) - 8 : wv.getInt8(b * bytes + 2 + j);
        sumi += q * av.getInt8(b * 34 + 2 + j);
      }
      const dw = half(wv, b * bytes), da = half(av, b * 34);
      const f = Math.fround;
      // Q4_0: sumi * dw * da, left to right; Q8_0: sumi * (dw * da)
      sumf = f(sumf + (typeId === TensorType.Q4_0 ? f(f(sumi * dw) * da) : f(sumi * f(dw * da))));
    }
    t.is(tt.dot(typeId, w, a, n, "scalar"), sumf, info(typeId).name);
  }
});

// ---------------------------------------------------------------- quantizers
// ggml's quantize_row_*_ref in float32 arithmetic (Math.fround at every step), to compare bytes.

const f = Math.fround;
const roundAway = (x: number) => Math.sign(x) * Math.floor(Math.abs(x) + 0.5); // C roundf

function ggmlQuantize(typeId: number, x: Float32Array): Uint8Array {
  const { blockSize, blockBytes } = info(typeId);
  const out = new Uint8Array((x.length / blockSize) * blockBytes);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / blockSize; b++) {
    const xs = x.subarray(b * blockSize, (b + 1) * blockSize);
    const at = b * blockBytes;
    if (typeId === TensorType.Q8_0 || typeId === TensorType.Q8_1) {
      const amax = xs.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
      const d = f(amax / 127), id = d ? f(1 / d) : 0;
      const qAt = typeId === TensorType.Q8_0 ? 2 : 4;
      let sum = 0;
      xs.forEach((e, j) => { const q = roundAway(f(e * id)); v.setInt8(at + qAt + j, q); sum += q; });
      v.setUint16(at, numberToHalf(d), true);
      if (typeId === TensorType.Q8_1) v.setUint16(at + 2, numberToHalf(f(sum * d)), true);
    } else if (typeId === TensorType.Q8_K) {
      let amax = 0, max = 0;
      xs.forEach((e) => { if (Math.abs(e) > amax) { amax = Math.abs(e); max = e; } });
      if (amax === 0) continue; // all zero bytes
      const iscale = f(-127 / max);
      xs.forEach((e, j) => v.setInt8(at + 4 + j, Math.min(127, roundHalfEven(Math.abs(f(iscale * e))) * Math.sign(f(iscale * e)))));
      for (let g = 0; g < 16; g++) {
        let sum = 0;
        for (let i = 0; i < 16; i++) sum += v.getInt8(at + 4 + 16 * g + i);
        v.setInt16(at + 260 + 2 * g, sum, true);
      }
      v.setFloat32(at, f(1 / iscale), true);
    } else if (typeId === TensorType.Q4_0) {
      let amax = 0, max = 0;
      xs.forEach((e) => { if (amax < Math.abs(e)) { amax = Math.abs(e); max = e; } });
      const d = f(max / -8), id = d ? f(1 / d) : 0;
      v.setUint16(at, numberToHalf(d), true);
      const q = (e: number) => Math.min(15, Math.trunc(f(f(e * id) + 8.5)));
      for (let j = 0; j < 16; j++) v.setUint8(at + 2 + j, q(xs[j]) | (q(xs[j + 16]) << 4));
    } else if (typeId === TensorType.Q4_1) {
      const min = xs.reduce((m, e) => Math.min(m, e), Infinity), max = xs.reduce((m, e) => Math.max(m, e), -Infinity);
      const d = f(f(max - min) / 15), id = d ? f(1 / d) : 0;
      v.setUint16(at, numberToHalf(d), true);
      v.setUint16(at + 2, numberToHalf(min), true);
      const q = (e: number) => Math.min(15, Math.trunc(f(f(f(e - min) * id) + 0.5)));
      for (let j = 0; j < 16; j++) v.setUint8(at + 4 + j, q(xs[j]) | (q(xs[j + 16]) << 4));
    }
  }
  return out;
}

/** Activation-like rows: normal values with a few outliers, some all-zero blocks, exact ties. */
function randomValues(rand: () => number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = normal(rand) * (rand() < 0.02 ? 20 : 1);
  x.fill(0, 0, 32); // an all-zero block
  for (let i = 256; i < 288; i++) x[i] = (i % 5) - 2; // small integers: many exact .5 quotients
  return x;
}

for (const typeId of [TensorType.Q8_0, TensorType.Q8_1, TensorType.Q8_K, TensorType.Q4_0, TensorType.Q4_1]) {
  test(`quantize ${info(typeId).name} writes the bytes of ggml's reference quantizer`, (t) => {
    const rand = mulberry32(3000 + typeId);
    for (let trial = 0; trial < 10; trial++) {
      const x = randomValues(rand, 256 * 4);
      t.deepEqual(new Uint8Array(tt.quantize(typeId, x)), ggmlQuantize(typeId, x), `trial ${trial}`);
    }
  });
}

for (const typeId of [TensorType.Q8_0, TensorType.Q8_1, TensorType.Q8_K]) {
  test(`quantize ${info(typeId).name} round-trips within half a step`, (t) => {
    const rand = mulberry32(4000 + typeId);
    const { blockSize } = info(typeId);
    const x = randomValues(rand, 256 * 8);
    const q = tt.quantize(typeId, x);
    t.is(q.length, rowBytes(info(typeId), x.length));
    const back = dequantizeReference(typeId, q).values;
    for (let b = 0; b < x.length / blockSize; b++) {
      const xs = x.subarray(b * blockSize, (b + 1) * blockSize);
      const amax = xs.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
      // step d = amax/127; the stored fp16 d adds up to 127 * d * 2^-11 (Q8_K keeps d in float32)
      const step = amax / 127;
      const bound = step * (typeId === TensorType.Q8_K ? 0.5 + 1e-5 : 0.5 + 127 * 2 ** -11) + 1e-30;
      for (let j = 0; j < blockSize; j++) {
        if (Math.abs(back[b * blockSize + j] - xs[j]) > bound) t.fail(`block ${b} element ${j}: ${back[b * blockSize + j]} vs ${xs[j]}`);
      }
    }
    if (typeId === TensorType.Q8_1) {
      // s is the float32 d (amax/127, before its fp16 rounding) times the sum of the quants
      const v = new DataView(q.buffer, q.byteOffset, q.length);
      for (let b = 0; b < x.length / 32; b++) {
        let sum = 0;
        for (let j = 0; j < 32; j++) sum += v.getInt8(b * 36 + 4 + j);
        const d = f(x.subarray(b * 32, b * 32 + 32).reduce((m, e) => Math.max(m, Math.abs(e)), 0) / 127);
        t.is(v.getUint16(b * 36 + 2, true), numberToHalf(f(sum * d)), `block ${b}`);
      }
    }
  });
}

// ---------------------------------------------------------------- argument checks

test("bad arguments throw clear errors", (t) => {
  const q40 = new Uint8Array(18);
  t.throws(() => tt.dequantize(99, q40, 32), { instanceOf: RangeError, message: /not a known tensor type/ });
  t.throws(() => tt.dequantize(TensorType.Q4_0, q40, 31), { instanceOf: RangeError, message: /multiple of 32/ });
  t.throws(() => tt.dequantize(TensorType.Q4_0, q40, 64), { instanceOf: RangeError, message: /takes 36/ });
  t.throws(() => tt.dequantize(TensorType.Q4_0, q40, -32), { instanceOf: RangeError });
  t.throws(() => tt.dequantize(TensorType.Q4_0, "nope" as unknown as Uint8Array, 32), { instanceOf: TypeError });
  t.throws(() => tt.dequantize("q4_0" as unknown as number, q40, 32), { instanceOf: TypeError });
  t.throws(() => tt.quantize(TensorType.Q8_0, [1, 2] as unknown as Float32Array), { instanceOf: TypeError });
  t.throws(() => tt.quantize(TensorType.Q8_0, new Float64Array(32) as unknown as Float32Array), { instanceOf: TypeError });
  t.throws(() => tt.quantize(TensorType.Q8_0, new Float32Array(31)), { instanceOf: RangeError, message: /multiple of 32/ });
  t.throws(() => tt.quantize(TensorType.Q4_K, new Float32Array(256)), { instanceOf: RangeError, message: /cannot quantize/ });
  const a = new Uint8Array(34);
  t.throws(() => tt.dot(TensorType.Q8_K, new Uint8Array(292), new Uint8Array(292), 256), { instanceOf: RangeError, message: /no dot product/ });
  t.throws(() => tt.dot(TensorType.Q4_0, q40, new Uint8Array(36), 32), { instanceOf: RangeError, message: /activations/ });
  t.throws(() => tt.dot(TensorType.Q4_0, q40, a, 32, "fast" as "best"), { instanceOf: RangeError, message: /variant/ });
  t.throws(() => tt.dot(TensorType.Q4_0, q40, undefined as unknown as Uint8Array, 32), { instanceOf: TypeError });
  t.is(tt.dot(TensorType.Q4_0, q40, a, 32), 0);
  t.throws(() => tt.fp16ToFp32(65536), { instanceOf: RangeError });
  t.throws(() => tt.fp16ToFp32(1.5), { instanceOf: RangeError });
  t.throws(() => tt.fp32ToFp16("1" as unknown as number), { instanceOf: TypeError });
});
