// Keyrouter ranking algorithm 2, written from docs/ranking.md alone, with no dependencies.
//
// An independent implementation: it shows that the specification is enough to reproduce the
// server's answers and fingerprints bit for bit, and it shares no code with the Rust crate or
// the Python twin (XXH64 is written here from the xxHash specification). The functions are
// exported so that client packages can reuse them; run as a script it checks the conformance
// vectors:
//
//     node ranking_v2.mjs crates/ranking/tests/vectors/algorithm2.json

import { readFileSync, realpathSync } from "node:fs";
import { argv, exit } from "node:process";
import { fileURLToPath } from "node:url";

const MASK64 = (1n << 64n) - 1n;

/** XXH64 seed of key hashes ("keyroute"). */
export const KEY_SEED = 0x6b6579726f757465n;
/** XXH64 seed of identity, address and service-name hashes ("r rendez"). */
export const ID_SEED = 0x722072656e64657an;
const ALGORITHM = 2n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const ADDRESS_TAG = 0x6164647265737321n; // "address!"
const ZONE_TAG = 0x7a6f6e6521212121n; // "zone!!!!"

// --- XXH64 -----------------------------------------------------------------------------------

const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

const rotl = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & MASK64;
const mul = (a, b) => (a * b) & MASK64;
const add = (a, b) => (a + b) & MASK64;

function round(acc, lane) {
  return mul(rotl(add(acc, mul(lane, P2)), 31), P1);
}

function mergeRound(acc, val) {
  return add(mul(acc ^ round(0n, val), P1), P4);
}

const encoder = new TextEncoder();

/**
 * XXH64 of a string's UTF-8 bytes (or of a Uint8Array).
 * @param {string | Uint8Array} input
 * @param {bigint} seed unsigned 64-bit seed
 * @returns {bigint} the hash, unsigned 64-bit
 */
export function xxh64(input, seed) {
  const bytes = typeof input === "string" ? encoder.encode(input) : input;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  const lane64 = (at) => view.getBigUint64(at, true);
  let p = 0;
  let acc;
  if (len >= 32) {
    let v1 = add(add(seed, P1), P2);
    let v2 = add(seed, P2);
    let v3 = seed;
    let v4 = (seed - P1) & MASK64;
    for (; p + 32 <= len; p += 32) {
      v1 = round(v1, lane64(p));
      v2 = round(v2, lane64(p + 8));
      v3 = round(v3, lane64(p + 16));
      v4 = round(v4, lane64(p + 24));
    }
    acc = add(add(rotl(v1, 1), rotl(v2, 7)), add(rotl(v3, 12), rotl(v4, 18)));
    acc = mergeRound(acc, v1);
    acc = mergeRound(acc, v2);
    acc = mergeRound(acc, v3);
    acc = mergeRound(acc, v4);
  } else {
    acc = add(seed, P5);
  }
  acc = add(acc, BigInt(len));
  for (; p + 8 <= len; p += 8) {
    acc = add(mul(rotl(acc ^ round(0n, lane64(p)), 27), P1), P4);
  }
  if (p + 4 <= len) {
    acc = add(mul(rotl(acc ^ mul(BigInt(view.getUint32(p, true)), P1), 23), P2), P3);
    p += 4;
  }
  for (; p < len; p += 1) {
    acc = mul(rotl(acc ^ mul(BigInt(bytes[p]), P5), 11), P1);
  }
  acc ^= acc >> 33n;
  acc = mul(acc, P2);
  acc ^= acc >> 29n;
  acc = mul(acc, P3);
  acc ^= acc >> 32n;
  return acc;
}

/**
 * MurmurHash3's 64-bit finalizer.
 * @param {bigint} x unsigned 64-bit
 * @returns {bigint}
 */
export function fmix64(x) {
  x ^= x >> 33n;
  x = mul(x, 0xff51afd7ed558ccdn);
  x ^= x >> 33n;
  x = mul(x, 0xc4ceb9fe1a85ec53n);
  x ^= x >> 33n;
  return x;
}

/**
 * The hash of a lookup key.
 * @param {string} key
 * @returns {bigint}
 */
export const keyHash = (key) => xxh64(key, KEY_SEED);

/**
 * The hash of a node identity.
 * @param {string} identity
 * @returns {bigint}
 */
export const idHash = (identity) => xxh64(identity, ID_SEED);

/**
 * A node's score for a key.
 * @param {bigint} kh the key's hash
 * @param {bigint} ih the node identity's hash
 * @returns {bigint}
 */
export const score = (kh, ih) => fmix64(kh ^ ih);

// --- fdlibm log --------------------------------------------------------------------------------
//
// A port of fdlibm's e_log.c. JavaScript numbers are binary64 and every operation rounds once
// (no fused multiply-add), so the port gives the server's bits. One shared buffer gives bit
// access; constants are written as bit patterns so that no decimal parsing is involved.

const scratch = new DataView(new ArrayBuffer(8));

function fromBits(bits) {
  scratch.setBigUint64(0, bits);
  return scratch.getFloat64(0);
}

/**
 * The IEEE-754 binary64 encoding of a number.
 * @param {number} x
 * @returns {bigint}
 */
export function bitsOf(x) {
  scratch.setFloat64(0, x);
  return scratch.getBigUint64(0);
}

const highWord = (x) => {
  scratch.setFloat64(0, x);
  return scratch.getInt32(0); // the C code's int32_t
};

const withHighWord = (x, hi) => {
  scratch.setFloat64(0, x);
  scratch.setUint32(0, hi >>> 0);
  return scratch.getFloat64(0);
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
  scratch.setFloat64(0, x);
  let hx = scratch.getInt32(0);
  const lx = scratch.getUint32(4);
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

/**
 * A node's weighted score: -weight / log(u), u = ((score >> 12) + 0.5) * 2^-52 (exact).
 * @param {bigint} s the node's score
 * @param {number} weight
 * @returns {number}
 */
export function weightedScore(s, weight) {
  const u = (Number(s >> 12n) + 0.5) * 2 ** -52;
  return -weight / fdlibmLog(u);
}

// --- Services ----------------------------------------------------------------------------------

/**
 * @typedef {object} Node
 * @property {string} address what answers carry
 * @property {string} identity what is hashed (the address when none is given)
 * @property {number} weight
 * @property {bigint} idHash
 * @property {Uint8Array} idBytes the identity's UTF-8 bytes, for ties
 */

/**
 * Makes a node; `identity` defaults to the address and `weight` to 1.
 * @param {string} address
 * @param {string} [identity]
 * @param {number} [weight]
 * @returns {Node}
 */
export function makeNode(address, identity = address, weight = 1, zone = null) {
  return { address, identity, weight, zone, idHash: idHash(identity), idBytes: encoder.encode(identity) };
}

/**
 * Whether a service is weighted (at least two nodes with different weights).
 * @param {Node[]} nodes
 * @returns {boolean}
 */
export const isWeighted = (nodes) => nodes.some((n) => n.weight !== nodes[0].weight);

// JavaScript's string comparison is by UTF-16 code units, which orders some non-BMP characters
// differently from UTF-8 bytes: compare the bytes.
function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

const descending = (a, b) => (a > b ? -1 : a < b ? 1 : 0);

/**
 * All nodes of a service, best first, for a key.
 * @param {Node[]} nodes
 * @param {string} key
 * @returns {Node[]}
 */
export function ranking(nodes, key) {
  const kh = keyHash(key);
  const weighted = isWeighted(nodes);
  const entries = nodes.map((n) => {
    const s = score(kh, n.idHash);
    return { n, s, ws: weighted ? weightedScore(s, n.weight) : 0 };
  });
  entries.sort(
    (a, b) =>
      descending(a.ws, b.ws) || descending(a.s, b.s) || compareBytes(a.n.idBytes, b.n.idBytes),
  );
  return entries.map((e) => e.n);
}

/**
 * The addresses of the min(k, n) best nodes for a key (k plays the spec's `max`).
 * @param {Node[]} nodes
 * @param {string} key
 * @param {number} k
 * @returns {string[]}
 */
export function lookup(nodes, key, k) {
  return ranking(nodes, key)
    .slice(0, k)
    .map((n) => n.address);
}

/**
 * A lookup with options, or null when fewer than `min` nodes are left. `exclude`: the answer of
 * the service without the nodes of those identities. `spread` "zone": each zone's best node in
 * rank order until every zone is represented, then the other nodes in rank order (nodes without
 * a zone form one zone).
 * @param {Node[]} nodes
 * @param {string} key
 * @param {number} min
 * @param {number} max
 * @param {string[]} [exclude]
 * @param {string|null} [spread]
 * @returns {string[]|null}
 */
export function lookupWith(nodes, key, min, max, exclude = [], spread = null) {
  const gone = new Set(exclude);
  const rest = nodes.filter((n) => !gone.has(n.identity));
  if (rest.length < min) return null;
  let ranked = ranking(rest, key);
  if (spread === "zone") {
    const seen = new Set();
    const bests = [];
    const others = [];
    for (const n of ranked) {
      if (seen.has(n.zone)) others.push(n);
      else {
        seen.add(n.zone);
        bests.push(n);
      }
    }
    ranked = bests.concat(others);
  }
  return ranked.slice(0, max).map((n) => n.address);
}

/**
 * A count of comparisons: `expect(what, got, want)` compares as JSON, and `result()` gives the
 * number that matched and a line for each that did not.
 */
function tally() {
  let passed = 0;
  const failures = [];
  const expect = (what, got, want) => {
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    if (g === w) passed += 1;
    else failures.push(`${what}: expected ${w}, got ${g}`);
  };
  return { expect, result: () => ({ passed, failures }) };
}

/** Prints the first failures and the summary line; the exit status. */
function report({ passed, failures }, rest) {
  for (const line of failures.slice(0, 10)) console.log(`FAIL ${line}`);
  if (failures.length > 10) console.log(`... and ${failures.length - 10} more failures`);
  console.log(`javascript: ${passed} passed, ${failures.length} failed${rest}`);
  return failures.length ? 1 : 0;
}

/**
 * Checks the lookup-options vectors (both algorithms; only algorithm 2's can be checked here).
 * @param {object} vectors
 * @returns {{passed: number, skipped: number, failures: string[]}}
 */
export function checkOptions(vectors) {
  const { expect, result } = tally();
  let skipped = 0;
  for (const c of vectors.cases) {
    if (BigInt(c.algorithm) !== ALGORITHM) {
      skipped += 1 + c.lookups.length;
      continue;
    }
    const nodes = c.nodes.map((n) => makeNode(n.node, n.id, n.weight, n.zone));
    expect(`case ${c.name} fingerprint`, hex64(serviceFingerprint(nodes)), c.fingerprint);
    for (const l of c.lookups) {
      const what =
        `case ${c.name} lookup key ${JSON.stringify(l.key)} min=${l.min} max=${l.max} ` +
        `exclude=${JSON.stringify(l.exclude)} spread=${JSON.stringify(l.spread ?? null)}`;
      expect(what, lookupWith(nodes, l.key, l.min, l.max, l.exclude, l.spread ?? null), l.expected);
    }
  }
  return { ...result(), skipped };
}

/**
 * The service fingerprint.
 * @param {Node[]} nodes
 * @returns {bigint}
 */
export function serviceFingerprint(nodes) {
  const weighted = isWeighted(nodes);
  let acc = fmix64(ALGORITHM ^ GOLDEN);
  for (const n of nodes) {
    const w = weighted ? n.weight : 1.0;
    const a = n.identity !== n.address ? fmix64(xxh64(n.address, ID_SEED) ^ ADDRESS_TAG) : 0n;
    const z = n.zone != null ? fmix64(xxh64(n.zone, ID_SEED) ^ ZONE_TAG) : 0n;
    acc = add(acc, fmix64(n.idHash ^ fmix64(bitsOf(w)) ^ a ^ z));
  }
  return fmix64(acc ^ BigInt(nodes.length));
}

/**
 * The table fingerprint; the order of `services` does not matter.
 * @param {{name: string, nodes: Node[]}[]} services
 * @returns {bigint}
 */
export function tableFingerprint(services) {
  const sorted = services
    .map((s) => ({ ...s, nameBytes: encoder.encode(s.name) }))
    .sort((a, b) => compareBytes(a.nameBytes, b.nameBytes));
  let acc = fmix64(ALGORITHM);
  for (const s of sorted) {
    acc = add(fmix64(acc ^ xxh64(s.name, ID_SEED)), serviceFingerprint(s.nodes));
  }
  return fmix64(acc);
}

/**
 * 16 lowercase hex digits.
 * @param {bigint} v
 * @returns {string}
 */
export const hex64 = (v) => v.toString(16).padStart(16, "0");

// --- Vector checker ----------------------------------------------------------------------------

/**
 * Checks every case of a parsed vector file.
 * @param {object} vectors
 * @returns {{passed: number, failures: string[]}}
 */
export function check(vectors) {
  const { expect, result } = tally();

  for (const c of vectors.xxh64) {
    expect(
      `xxh64 ${JSON.stringify(c.input)} seed ${c.seed}`,
      hex64(xxh64(c.input, BigInt(`0x${c.seed}`))),
      c.hash,
    );
  }
  for (const c of vectors.fmix64) {
    expect(`fmix64 ${c.input}`, hex64(fmix64(BigInt(`0x${c.input}`))), c.output);
  }

  const parsed = vectors.services.map((s) => s.nodes.map((n) => makeNode(n.node, n.id, n.weight)));
  vectors.services.forEach((service, idx) => {
    const nodes = parsed[idx];
    const fingerprint = hex64(serviceFingerprint(nodes));
    expect(`service ${service.name} fingerprint`, fingerprint, service.fingerprint);
    for (const c of service.lookups) {
      // One case per lookup: its key hash and its answer must both match.
      const what = `service ${service.name} lookup key ${JSON.stringify(c.key)} k=${c.k}`;
      const kh = hex64(keyHash(c.key));
      if (kh !== c.key_hash) expect(`${what} key_hash`, kh, c.key_hash);
      else expect(what, lookup(nodes, c.key, c.k), c.expected);
    }
  });

  for (const t of vectors.tables) {
    const members = t.services.map((i) => ({ name: vectors.services[i].name, nodes: parsed[i] }));
    const fingerprint = hex64(tableFingerprint(members));
    expect(`table ${JSON.stringify(t.services)} fingerprint`, fingerprint, t.fingerprint);
  }
  return result();
}

function main(args) {
  if (args.length !== 1) {
    console.error("usage: node ranking_v2.mjs VECTORS.json");
    return 2;
  }
  const vectors = JSON.parse(readFileSync(args[0], "utf8"));
  if (Array.isArray(vectors.cases)) {
    const checked = checkOptions(vectors);
    return report(checked, `, ${checked.skipped} skipped (algorithm 1)`);
  }
  if (vectors.algorithm !== 2) {
    console.error("not algorithm 2 vectors");
    return 2;
  }
  return report(check(vectors), "");
}

// Run the checker only when executed, not when imported by a client package. Real paths on
// both sides: import.meta.url has symlinks resolved and argv[1] does not.
if (argv[1] && fileURLToPath(import.meta.url) === realpathSync(argv[1])) {
  exit(main(argv.slice(2)));
}
