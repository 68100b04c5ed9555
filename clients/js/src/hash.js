// XXH64 and fmix64 on 64-bit integers held as two unsigned 32-bit halves (hi, lo).
//
// The spec's reference (tests/independent/ranking_v2.mjs) uses BigInt, which is exact and
// simple but allocates on every operation: a lookup over 100 nodes costs tens of microseconds
// that way, about what an HTTP round trip on loopback costs. Here the same functions work on
// 32-bit halves in plain numbers, and results come back through `R` (R[0] the high half, R[1]
// the low one): a typed array, because numbers above 2^31 stored in ordinary variables are
// boxed, one allocation per store. JavaScript is single-threaded, so this shared state is never
// seen half-written.

/** The last result: R[0] its high half, R[1] its low half. */
export const R = new Uint32Array(2);

// 2^32 as a float, to carry between halves, and its inverse.
const TWO32 = 4294967296;
const TWO_MINUS_32 = 1 / TWO32;

/**
 * (ah, al) * (bh, bl) modulo 2^64, into R. The cross terms only matter modulo 2^32, which
 * Math.imul gives; the high half of al * bl comes from the float product (see `scores`).
 */
function mul(ah, al, bh, bl) {
  al >>>= 0;
  bl >>>= 0;
  const lo = Math.imul(al, bl) >>> 0;
  R[0] = Math.round((al * bl - lo) * TWO_MINUS_32) + Math.imul(ah, bl) + Math.imul(al, bh);
  R[1] = lo;
}

/** (ah, al) + (bh, bl) modulo 2^64, into R. */
function add(ah, al, bh, bl) {
  const low = (al >>> 0) + (bl >>> 0);
  R[0] = ((ah >>> 0) + (bh >>> 0) + (low >= TWO32 ? 1 : 0)) >>> 0;
  R[1] = low >>> 0;
}

/** (h, l) rotated left by r bits (0 < r < 64), into R. */
function rotl(h, l, r) {
  if (r >= 32) {
    const t = h;
    h = l;
    l = t;
    r -= 32;
  }
  if (r === 0) {
    R[0] = h >>> 0;
    R[1] = l >>> 0;
    return;
  }
  R[0] = ((h << r) | (l >>> (32 - r))) >>> 0;
  R[1] = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/**
 * MurmurHash3's 64-bit finalizer of (h, l), into R.
 * @param {number} h
 * @param {number} l
 */
export function fmix64(h, l) {
  l = (l ^ (h >>> 1)) >>> 0; // x ^= x >> 33
  mul(h, l, 0xff51afd7, 0xed558ccd);
  h = R[0];
  l = (R[1] ^ (R[0] >>> 1)) >>> 0;
  mul(h, l, 0xc4ceb9fe, 0x1a85ec53);
  R[1] = (R[1] ^ (R[0] >>> 1)) >>> 0;
}

const P1H = 0x9e3779b1;
const P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d;
const P2L = 0x27d4eb4f;
const P3H = 0x165667b1;
const P3L = 0x9e3779f9;
const P4H = 0x85ebca77;
const P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f;
const P5L = 0x165667c5;

/** XXH64's round(acc, lane), into R. */
function round(ah, al, lh, ll) {
  mul(lh, ll, P2H, P2L);
  add(ah, al, R[0], R[1]);
  rotl(R[0], R[1], 31);
  mul(R[0], R[1], P1H, P1L);
}

const le32 = (b, p) => (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;

/**
 * XXH64 of `len` bytes of `b` with the seed (sh, sl), into R; as the xxHash
 * specification defines it.
 * @param {Uint8Array} b
 * @param {number} len
 * @param {number} sh
 * @param {number} sl
 */
export function xxh64(b, len, sh, sl) {
  let p = 0;
  let ah;
  let al;
  if (len >= 32) {
    add(sh, sl, P1H, P1L);
    add(R[0], R[1], P2H, P2L);
    let v1h = R[0];
    let v1l = R[1];
    add(sh, sl, P2H, P2L);
    let v2h = R[0];
    let v2l = R[1];
    let v3h = sh;
    let v3l = sl;
    // seed - P1 = seed + (2^64 - P1)
    add(sh, sl, ~P1H >>> 0, ((~P1L >>> 0) + 1) >>> 0);
    let v4h = R[0];
    let v4l = R[1];
    for (; p + 32 <= len; p += 32) {
      round(v1h, v1l, le32(b, p + 4), le32(b, p));
      v1h = R[0];
      v1l = R[1];
      round(v2h, v2l, le32(b, p + 12), le32(b, p + 8));
      v2h = R[0];
      v2l = R[1];
      round(v3h, v3l, le32(b, p + 20), le32(b, p + 16));
      v3h = R[0];
      v3l = R[1];
      round(v4h, v4l, le32(b, p + 28), le32(b, p + 24));
      v4h = R[0];
      v4l = R[1];
    }
    rotl(v1h, v1l, 1);
    ah = R[0];
    al = R[1];
    rotl(v2h, v2l, 7);
    add(ah, al, R[0], R[1]);
    ah = R[0];
    al = R[1];
    rotl(v3h, v3l, 12);
    add(ah, al, R[0], R[1]);
    ah = R[0];
    al = R[1];
    rotl(v4h, v4l, 18);
    add(ah, al, R[0], R[1]);
    ah = R[0];
    al = R[1];
    for (const [vh, vl] of [
      [v1h, v1l],
      [v2h, v2l],
      [v3h, v3l],
      [v4h, v4l],
    ]) {
      round(0, 0, vh, vl); // mergeRound
      mul((ah ^ R[0]) >>> 0, (al ^ R[1]) >>> 0, P1H, P1L);
      add(R[0], R[1], P4H, P4L);
      ah = R[0];
      al = R[1];
    }
  } else {
    add(sh, sl, P5H, P5L);
    ah = R[0];
    al = R[1];
  }
  add(ah, al, Math.floor(len / TWO32), len >>> 0);
  ah = R[0];
  al = R[1];
  for (; p + 8 <= len; p += 8) {
    round(0, 0, le32(b, p + 4), le32(b, p));
    rotl(ah ^ R[0], al ^ R[1], 27);
    mul(R[0], R[1], P1H, P1L);
    add(R[0], R[1], P4H, P4L);
    ah = R[0];
    al = R[1];
  }
  if (p + 4 <= len) {
    mul(0, le32(b, p), P1H, P1L);
    rotl(ah ^ R[0], al ^ R[1], 23);
    mul(R[0], R[1], P2H, P2L);
    add(R[0], R[1], P3H, P3L);
    ah = R[0];
    al = R[1];
    p += 4;
  }
  for (; p < len; p += 1) {
    mul(0, b[p], P5H, P5L);
    rotl(ah ^ R[0], al ^ R[1], 11);
    mul(R[0], R[1], P1H, P1L);
    ah = R[0];
    al = R[1];
  }
  // avalanche
  xorShift(ah, al, 33);
  mul(R[0], R[1], P2H, P2L);
  xorShift(R[0], R[1], 29);
  mul(R[0], R[1], P3H, P3L);
  xorShift(R[0], R[1], 32);
}

/** x ^ (x >> s) for (h, l) and 0 < s < 64, into R. */
function xorShift(h, l, s) {
  if (s >= 32) {
    R[0] = h >>> 0;
    R[1] = (l ^ (h >>> (s - 32))) >>> 0;
  } else {
    R[0] = (h ^ (h >>> s)) >>> 0;
    R[1] = (l ^ ((l >>> s) | (h << (32 - s)))) >>> 0;
  }
}

/**
 * Every node's score for a key: (sh[i], sl[i]) = fmix64((kh, kl) ^ (idH[i], idL[i])) for i < n.
 * fmix64 written out with every value in a local: the inner loop of every lookup. The high half
 * of a 32 x 32-bit product comes from the float product: a*b rounds by at most 2^11, so
 * (a*b - lo) / 2^32, with lo the exact low half (Math.imul), is within 2^-20 of the high half,
 * which Math.round recovers exactly; three times faster than 16-bit limbs.
 * @param {number} kh
 * @param {number} kl
 * @param {Uint32Array} idH
 * @param {Uint32Array} idL
 * @param {Uint32Array} sh
 * @param {Uint32Array} sl
 * @param {number} n
 */
export function scores(kh, kl, idH, idL, sh, sl, n) {
  for (let i = 0; i < n; i += 1) {
    const h = kh ^ idH[i];
    let l = (kl ^ idL[i] ^ (h >>> 1)) >>> 0; // x ^= x >> 33
    // x *= ff51afd7ed558ccd
    let lo = Math.imul(l, 0xed558ccd) >>> 0;
    const hi = (Math.round((l * 0xed558ccd - lo) * TWO_MINUS_32) + Math.imul(h, 0xed558ccd) + Math.imul(l, 0xff51afd7)) >>> 0;
    l = (lo ^ (hi >>> 1)) >>> 0; // x ^= x >> 33
    // x *= c4ceb9fe1a85ec53
    lo = Math.imul(l, 0x1a85ec53) >>> 0;
    const h2 = (Math.round((l * 0x1a85ec53 - lo) * TWO_MINUS_32) + Math.imul(hi, 0x1a85ec53) + Math.imul(l, 0xc4ceb9fe)) >>> 0;
    sh[i] = h2;
    sl[i] = lo ^ (h2 >>> 1); // x ^= x >> 33; the store makes it unsigned
  }
}
