// The 32-bit-halves arithmetic of src/hash.js against the reference's BigInt (exact by
// construction): XXH64 at every length around its 4-, 8- and 32-byte steps, and fmix64 and the
// inlined score loop on edge values (0, 2^31 - 1, 2^31, 2^32 - 1, ...) where a carry or the
// float-product trick could slip.

import assert from "node:assert/strict";
import { test } from "node:test";

import * as reference from "../../../tests/independent/ranking_v2.mjs";
import { R, fmix64, scores, xxh64 } from "../src/hash.js";

const big = () => (BigInt(R[0]) << 32n) | BigInt(R[1]);
const halves = (x) => [Number(x >> 32n), Number(x & 0xffffffffn)];
const EDGES = [0, 1, 2, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff, 0x9e3779b9];

/** xorshift32, so failures reproduce. */
function random(seed) {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

test("xxh64 at every length up to 300 bytes, with edge seeds", () => {
  const rnd = random(64);
  const seeds = [0n, reference.KEY_SEED, reference.ID_SEED, (1n << 64n) - 1n, 1n << 63n];
  for (let len = 0; len <= 300; len += 1) {
    const bytes = Uint8Array.from({ length: len }, () => rnd() & 0xff);
    for (const seed of seeds) {
      xxh64(bytes, len, ...halves(seed));
      assert.equal(big(), reference.xxh64(bytes, seed), `length ${len} seed ${seed}`);
    }
  }
});

test("fmix64 and the score loop on edge and random values", () => {
  const rnd = random(33);
  const n = 2000;
  const [idH, idL, sh, sl] = [0, 1, 2, 3].map(() => new Uint32Array(n));
  for (let round = 0; round < 40; round += 1) {
    for (let i = 0; i < n; i += 1) {
      idH[i] = i < 81 ? EDGES[i % 9] : rnd();
      idL[i] = i < 81 ? EDGES[Math.floor(i / 9)] : rnd();
    }
    const kh = round < 9 ? EDGES[round] : rnd();
    const kl = round < 9 ? EDGES[8 - round] : rnd();
    scores(kh, kl, idH, idL, sh, sl, n);
    for (let i = 0; i < n; i += 1) {
      const x = (BigInt((kh ^ idH[i]) >>> 0) << 32n) | BigInt((kl ^ idL[i]) >>> 0);
      const want = reference.fmix64(x);
      assert.equal((BigInt(sh[i]) << 32n) | BigInt(sl[i]), want, `score of ${x.toString(16)}`);
      fmix64(...halves(x));
      assert.equal(big(), want, `fmix64 of ${x.toString(16)}`);
    }
  }
});

test("fdlibm's log, bit for bit as the reference's, over the weighted scores' inputs and edges", async () => {
  const { fdlibmLog } = await import("../src/log.js");
  const rnd = random(12);
  const inputs = [1, 2, 0.5, Number.MIN_VALUE, 2 ** -1022, 2 ** -1074 * 3, 1 - 2 ** -53, 1 + 2 ** -52, 1e300, 0.9999];
  // The u of weighted scores: ((score >> 12) + 0.5) * 2^-52, every magnitude.
  for (let i = 0; i < 100000; i += 1) inputs.push(((rnd() * 2 ** 20 + (rnd() >>> 12)) + 0.5) * 2 ** -52 * 2 ** -(i % 40));
  for (const x of inputs) {
    assert.equal(reference.bitsOf(fdlibmLog(x)), reference.bitsOf(reference.fdlibmLog(x)), `log ${x}`);
  }
  assert.equal(fdlibmLog(0), -Infinity);
  assert.ok(Number.isNaN(fdlibmLog(-1)));
});
