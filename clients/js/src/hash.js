// XXH64 and fmix64 on 64-bit integers held as two unsigned 32-bit halves (hi, lo).
//
// The spec's reference (tests/independent/ranking_v2.mjs) uses BigInt, which is exact and
// simple but allocates on every operation: a lookup over 100 nodes costs tens of microseconds
// that way, about what an HTTP round trip on loopback costs. Here the same functions work on
// plain numbers (no allocation), which makes local ranking some hundred times faster than
// asking the server. Results come back through `H` and `L` below (the high and low halves),
// again to avoid allocating a pair per call; JavaScript is single-threaded, so this shared
// state is never seen half-written.

/** High half of the last result. */
export let H = 0;
/** Low half of the last result. */
export let L = 0;

// 2^32 as a float, to split and join 64-bit values held in doubles.
const TWO32 = 4294967296;

/**
 * (ah, al) * (bh, bl) modulo 2^64, into H and L. The low halves' product is exact through
 * 16-bit limbs (every partial product stays below 2^53); the cross terms only matter modulo
 * 2^32, which Math.imul gives.
 */
function mul(ah, al, bh, bl) {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33
  const low = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  const carry = Math.floor(low / TWO32);
  H = (a1 * b1 + Math.floor(mid / 65536) + carry + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
  L = low >>> 0;
}

/** (ah, al) + (bh, bl) modulo 2^64, into H and L. */
function add(ah, al, bh, bl) {
  const low = (al >>> 0) + (bl >>> 0);
  H = ((ah >>> 0) + (bh >>> 0) + (low >= TWO32 ? 1 : 0)) >>> 0;
  L = low >>> 0;
}

/** (h, l) rotated left by r bits (0 < r < 64), into H and L. */
function rotl(h, l, r) {
  if (r >= 32) {
    const t = h;
    h = l;
    l = t;
    r -= 32;
  }
  if (r === 0) {
    H = h >>> 0;
    L = l >>> 0;
    return;
  }
  H = ((h << r) | (l >>> (32 - r))) >>> 0;
  L = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/**
 * MurmurHash3's 64-bit finalizer of (h, l), into H and L.
 * @param {number} h
 * @param {number} l
 */
export function fmix64(h, l) {
  l = (l ^ (h >>> 1)) >>> 0; // x ^= x >> 33
  mul(h, l, 0xff51afd7, 0xed558ccd);
  h = H;
  l = (L ^ (H >>> 1)) >>> 0;
  mul(h, l, 0xc4ceb9fe, 0x1a85ec53);
  L = (L ^ (H >>> 1)) >>> 0;
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

/** XXH64's round(acc, lane), into H and L. */
function round(ah, al, lh, ll) {
  mul(lh, ll, P2H, P2L);
  add(ah, al, H, L);
  rotl(H, L, 31);
  mul(H, L, P1H, P1L);
}

const le32 = (b, p) => (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;

/**
 * XXH64 of `len` bytes of `b` with the seed (sh, sl), into H and L; as the xxHash
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
    add(H, L, P2H, P2L);
    let v1h = H;
    let v1l = L;
    add(sh, sl, P2H, P2L);
    let v2h = H;
    let v2l = L;
    let v3h = sh;
    let v3l = sl;
    // seed - P1 = seed + (2^64 - P1)
    add(sh, sl, ~P1H >>> 0, ((~P1L >>> 0) + 1) >>> 0);
    let v4h = H;
    let v4l = L;
    for (; p + 32 <= len; p += 32) {
      round(v1h, v1l, le32(b, p + 4), le32(b, p));
      v1h = H;
      v1l = L;
      round(v2h, v2l, le32(b, p + 12), le32(b, p + 8));
      v2h = H;
      v2l = L;
      round(v3h, v3l, le32(b, p + 20), le32(b, p + 16));
      v3h = H;
      v3l = L;
      round(v4h, v4l, le32(b, p + 28), le32(b, p + 24));
      v4h = H;
      v4l = L;
    }
    rotl(v1h, v1l, 1);
    ah = H;
    al = L;
    rotl(v2h, v2l, 7);
    add(ah, al, H, L);
    ah = H;
    al = L;
    rotl(v3h, v3l, 12);
    add(ah, al, H, L);
    ah = H;
    al = L;
    rotl(v4h, v4l, 18);
    add(ah, al, H, L);
    ah = H;
    al = L;
    for (const [vh, vl] of [
      [v1h, v1l],
      [v2h, v2l],
      [v3h, v3l],
      [v4h, v4l],
    ]) {
      round(0, 0, vh, vl); // mergeRound
      mul((ah ^ H) >>> 0, (al ^ L) >>> 0, P1H, P1L);
      add(H, L, P4H, P4L);
      ah = H;
      al = L;
    }
  } else {
    add(sh, sl, P5H, P5L);
    ah = H;
    al = L;
  }
  add(ah, al, Math.floor(len / TWO32), len >>> 0);
  ah = H;
  al = L;
  for (; p + 8 <= len; p += 8) {
    round(0, 0, le32(b, p + 4), le32(b, p));
    rotl(ah ^ H, al ^ L, 27);
    mul(H, L, P1H, P1L);
    add(H, L, P4H, P4L);
    ah = H;
    al = L;
  }
  if (p + 4 <= len) {
    mul(0, le32(b, p), P1H, P1L);
    rotl(ah ^ H, al ^ L, 23);
    mul(H, L, P2H, P2L);
    add(H, L, P3H, P3L);
    ah = H;
    al = L;
    p += 4;
  }
  for (; p < len; p += 1) {
    mul(0, b[p], P5H, P5L);
    rotl(ah ^ H, al ^ L, 11);
    mul(H, L, P1H, P1L);
    ah = H;
    al = L;
  }
  // avalanche
  xorShift(ah, al, 33);
  mul(H, L, P2H, P2L);
  xorShift(H, L, 29);
  mul(H, L, P3H, P3L);
  xorShift(H, L, 32);
}

/** x ^ (x >> s) for (h, l) and 0 < s < 64, into H and L. */
function xorShift(h, l, s) {
  if (s >= 32) {
    H = h >>> 0;
    L = (l ^ (h >>> (s - 32))) >>> 0;
  } else {
    H = (h ^ (h >>> s)) >>> 0;
    L = (l ^ ((l >>> s) | (h << (32 - s)))) >>> 0;
  }
}
