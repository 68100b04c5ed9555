// The WebAssembly scan (src/scan.js) against the plain-JavaScript ranking: the same answers
// for every table, size and option, and its fallback on tied scores.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Table } from "../src/index.js";
import { R, xxh64 } from "../src/hash.js";
import { fdlibmLog } from "../src/log.js";
import { SCAN_K, Scanner } from "../src/scan.js";

/** A deterministic generator (xorshift32), so that a failure can be replayed. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

test("Node runs the WebAssembly scan, and wasm: false turns it off", () => {
  const doc = { algorithm: 2, services: [{ name: "s", nodes: ["a:1", "b:1", "c:1"] }] };
  assert.equal(Table.fromJSON(doc).engine, "wasm");
  assert.equal(Table.fromJSON(doc, { wasm: false }).engine, "js");
  // A table without a node has nothing to scan.
  assert.equal(Table.fromJSON({ algorithm: 2, services: [{ name: "empty", nodes: [] }] }).engine, "js");
});

test("the scan and JavaScript give the same answers: sizes around the 10-node loop, weights, exclude, spread, k past the buffer", () => {
  const random = rng(20261203);
  const sizes = [1, 2, 3, 8, 9, 10, 11, 19, 20, 21, 31, 33, 99, 100, 101, 257, 1000, 2003];
  let compared = 0;
  for (const n of sizes) {
    const nodes = Array.from({ length: n }, (_, i) => `node-${i}.example:${8000 + random(1000)}`);
    const zones = nodes.map(() => ["a", "b", "c", null][random(4)]);
    // Several services in one memory: unweighted, weighted (a few weights, or all different
    // across the whole range), with Ids and zones.
    const services = [
      { name: "main", nodes, zones },
      { name: "half", nodes: nodes.slice(0, Math.ceil(n / 2)) },
      { name: "weighted", nodes, weights: nodes.map((_, i) => [1, 2, 3, 0.5, 8][i % 5]), zones },
      { name: "wide", nodes, weights: nodes.map(() => 10 ** (random(1201) / 100 - 6)) },
      { name: "ids", nodes: nodes.map((x) => `addr/${x}`), ids: nodes },
    ];
    const scan = Table.fromJSON({ algorithm: 2, services });
    const js = Table.fromJSON({ algorithm: 2, services }, { wasm: false });
    assert.equal(scan.engine, "wasm");
    for (let i = 0; i < 400; i += 1) {
      const service = ["main", "half", "weighted", "wide", "ids"][random(5)];
      const key = `key-${random(1 << 30)}`;
      const exclude = Array.from({ length: random(4) === 0 ? random(Math.min(n, 40)) + 1 : 0 }, () => nodes[random(n)]);
      const opts = { min: 0, max: 1 + random(i % 10 === 0 ? 40 : SCAN_K), exclude, spread: random(8) === 0 ? "zone" : null };
      assert.deepEqual(scan.lookup(service, key, opts), js.lookup(service, key, opts), `n=${n} ${service} ${key} ${JSON.stringify(opts)}`);
      compared += 1;
    }
  }
  assert.equal(compared, sizes.length * 400);
});

test("two equal scores stop the scan, so that JavaScript orders them by identity", () => {
  // Nodes 0 and 1 have the same hash, so the same score for every key; node 2 another.
  const scanner = Scanner.create([
    { idH: Uint32Array.of(0x12345678, 0x12345678, 7), idL: Uint32Array.of(0x9abcdef0, 0x9abcdef0, 9), weighted: false, weights: [] },
  ]);
  assert.ok(scanner, "WebAssembly runs here");
  const [slot] = scanner.slots;
  for (let key = 0; key < 50; key += 1) {
    assert.equal(slot.top(key, key * 31, 3, null), null, `key ${key}: all three wanted, two tied`);
  }
  // Without the tied pair there is nothing to stop for: node 2 alone.
  assert.deepEqual(slot.top(1, 2, 1, Uint8Array.of(1, 1, 0)), [2]);
  // Weighted: the same two nodes of the same weight tie on weighted score and score.
  const weighted = Scanner.create([
    { idH: Uint32Array.of(0x12345678, 0x12345678, 7), idL: Uint32Array.of(0x9abcdef0, 0x9abcdef0, 9), weighted: true, weights: [2, 2, 1] },
  ]);
  const [w] = weighted.slots;
  for (let key = 0; key < 50; key += 1) assert.equal(w.top(key, key * 31, 3, null), null, `weighted, key ${key}`);
  assert.deepEqual(w.top(1, 2, 1, Uint8Array.of(1, 1, 0)), [2]);
});

test("the scan's logarithm is fdlibm's, bit for bit, on every u a score can give", () => {
  const scanner = Scanner.create([{ idH: Uint32Array.of(1), idL: Uint32Array.of(2), weighted: false, weights: [1] }]);
  assert.ok(scanner, "WebAssembly runs here");
  const random = rng(7);
  const us = [2 ** -53, 0.5 * 2 ** -52, 1.5 * 2 ** -52, 0.5, 1 - 2 ** -53, 1 - 3 * 2 ** -53, 0.75, 0.7071067811865476];
  // Around every branch: |f| < 2^-20 (u just below 1 and just above 1/2), k = 0 and not.
  for (let e = 1; e <= 52; e += 1) us.push(1 - 2 ** -e, 0.5 + 2 ** -e, 2 ** -e);
  for (let i = 0; i < 200_000; i += 1) {
    const v = random(1 << 26) * 2 ** 26 + random(1 << 26); // 52 random bits
    us.push((v + 0.5) * 2 ** -52);
  }
  for (const u of us) {
    assert.ok(Object.is(scanner.log(u), fdlibmLog(u)), `log(${u}): ${scanner.log(u)} against fdlibm's ${fdlibmLog(u)}`);
  }
});

test("the scan answers weighted and unweighted lookups by itself, not by falling back", () => {
  const random = rng(99);
  const n = 1234;
  const nodes = Array.from({ length: n }, (_, i) => `n${i}`);
  const encoder = new TextEncoder();
  const hash = (s, seedH, seedL) => {
    const bytes = encoder.encode(s);
    xxh64(bytes, bytes.length, seedH, seedL);
    return [R[0], R[1]];
  };
  const ids = nodes.map((id) => hash(id, 0x72207265, 0x6e64657a)); // ID_SEED
  const idH = Uint32Array.from(ids, ([h]) => h);
  const idL = Uint32Array.from(ids, ([, l]) => l);
  for (const weights of [nodes.map(() => 1), nodes.map((_, i) => 1 + (i % 7))]) {
    const weighted = weights.some((w) => w !== 1);
    const [slot] = Scanner.create([{ idH, idL, weighted, weights }]).slots;
    const js = Table.fromJSON({ algorithm: 2, services: [{ name: "s", nodes, weights }] }, { wasm: false });
    for (let i = 0; i < 300; i += 1) {
      const key = `k${random(1 << 30)}`;
      const k = 1 + random(SCAN_K);
      const [kh, kl] = hash(key, 0x6b657972, 0x6f757465); // KEY_SEED
      const indexes = slot.top(kh, kl, k, null);
      assert.ok(indexes, `${key}: the scan gave up`);
      assert.deepEqual(indexes.map((j) => nodes[j]), js.lookup("s", key, { max: k }), `weighted ${weighted}, ${key}, k=${k}`);
    }
  }
});

test("the scan's XXH64 is hash.js's, for every length around its 32-, 8- and 4-byte steps, and keys hash alike", () => {
  const scanner = Scanner.create([{ idH: Uint32Array.of(1), idL: Uint32Array.of(2), weighted: false, weights: [1] }]);
  assert.ok(scanner, "WebAssembly runs here");
  const random = rng(5);
  const encoder = new TextEncoder();
  for (let len = 0; len <= 200; len += 1) {
    for (let trial = 0; trial < 5; trial += 1) {
      const bytes = Uint8Array.from({ length: len }, () => random(256));
      const seedH = random(2 ** 32);
      const seedL = random(2 ** 32);
      xxh64(bytes, len, seedH, seedL);
      const want = (BigInt(R[0]) << 32n) | BigInt(R[1]);
      scanner.bytes.set(bytes, scanner.key);
      const got = BigInt.asUintN(64, scanner.xxh64(scanner.key, len, BigInt.asIntN(64, (BigInt(seedH) << 32n) | BigInt(seedL))));
      assert.equal(got, want, `length ${len}`);
    }
  }
  for (const key of ["", "a", "ryans", "é€🚀 key", "x".repeat(31), "y".repeat(4096), "z".repeat(4097)]) {
    const bytes = encoder.encode(key);
    xxh64(bytes, bytes.length, 0x6b657972, 0x6f757465); // KEY_SEED
    const want = [R[0], R[1]];
    R[0] = R[1] = 0;
    const hashed = scanner.hashKey(key);
    assert.equal(hashed, bytes.length <= 4096, `${key.length} characters`);
    if (hashed) assert.deepEqual([R[0], R[1]], want, JSON.stringify(key.slice(0, 20)));
  }
});
