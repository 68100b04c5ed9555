// fdlibm's natural logarithm (e_log.c), bit-identical to the server's (Rust `libm` 0.2.16).
//
// Copied from the spec's reference, tests/independent/ranking_v2.mjs, on purpose rather than
// imported: this package must stand alone (it is installed from clients/js/, which does not
// carry the tests), and the reference must stay an implementation written from the spec alone,
// which client changes never touch. Math.log is not enough: it differs in the last bit for
// some inputs, and the last bit decides some weighted rankings.
//
// JavaScript numbers are binary64 and every operation rounds once (no fused multiply-add), so
// the port gives the server's bits. One shared buffer gives bit access; constants are written
// as bit patterns so that no decimal parsing is involved.

// A float and its two 32-bit words, through one buffer: typed arrays in the platform's byte
// order (DataView calls cost several times more in the hot loop of weighted lookups).
const scratch = new DataView(new ArrayBuffer(8));
const f64 = new Float64Array(1);
const words = new Int32Array(f64.buffer);
f64[0] = 1; // 3ff00000 00000000: the high word is the one that is not 0
const HI = words[1] === 0x3ff00000 ? 1 : 0;
const LO = 1 - HI;

function fromBits(bits) {
  scratch.setBigUint64(0, bits);
  return scratch.getFloat64(0);
}

const highWord = (x) => {
  f64[0] = x;
  return words[HI]; // the C code's int32_t
};

const withHighWord = (x, hi) => {
  f64[0] = x;
  words[HI] = hi;
  return f64[0];
};

const LN2_HI = fromBits(0x3fe62e42fee00000n);
const LN2_LO = fromBits(0x3dea39ef35793c76n);
const TWO54 = fromBits(0x4350000000000000n);
const LG1 = fromBits(0x3fe5555555555593n);
const LG2 = fromBits(0x3fd999999997fa04n);
const LG3 = fromBits(0x3fd2492494229359n);
const LG4 = fromBits(0x3fcc71c51d8e78afn);
const LG5 = fromBits(0x3fc7466496cb03den);
const LG6 = fromBits(0x3fc39a09d078c69fn);
const LG7 = fromBits(0x3fc2f112df3e5244n);

/**
 * Natural logarithm, bit-identical to fdlibm's __ieee754_log (Math.log is not: it may differ
 * in the last bit).
 * @param {number} x
 * @returns {number}
 */
export function fdlibmLog(x) {
  f64[0] = x;
  let hx = words[HI];
  const lx = words[LO];
  let k = 0;
  if (hx < 0x00100000) {
    if (((hx & 0x7fffffff) | lx) === 0) return -Infinity;
    if (hx < 0) return NaN;
    k -= 54; // subnormal: scale up
    x *= TWO54;
    hx = highWord(x);
  }
  if (hx >= 0x7ff00000) return x + x;
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  let i = (hx + 0x95f64) & 0x100000;
  x = withHighWord(x, hx | (i ^ 0x3ff00000)); // normalize x or x/2
  k += i >> 20;
  const f = x - 1.0;
  if ((0x000fffff & (2 + hx)) < 3) {
    // -2**-20 <= f < 2**-20
    if (f === 0) {
      if (k === 0) return 0;
      const dk = k;
      return dk * LN2_HI + dk * LN2_LO;
    }
    const r = f * f * (0.5 - 0.33333333333333333 * f);
    if (k === 0) return f - r;
    const dk = k;
    return dk * LN2_HI - ((r - dk * LN2_LO) - f);
  }
  const s = f / (2.0 + f);
  const dk = k;
  const z = s * s;
  i = hx - 0x6147a;
  const w = z * z;
  const j = 0x6b851 - hx;
  const t1 = w * (LG2 + w * (LG4 + w * LG6));
  const t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
  i |= j;
  const r = t2 + t1;
  if (i > 0) {
    const hfsq = 0.5 * f * f;
    if (k === 0) return f - (hfsq - s * (hfsq + r));
    return dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f);
  }
  if (k === 0) return f - s * (f - r);
  return dk * LN2_HI - ((s * (f - r) - dk * LN2_LO) - f);
}
