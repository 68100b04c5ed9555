// The WebAssembly scan (src/scan.js) against the plain-JavaScript ranking: the same answers
// for every table, size and option, and its fallback on tied scores.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Table } from "../src/index.js";
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
  // Weighted services rank in JavaScript: a table of only those has nothing to scan.
  assert.equal(Table.fromJSON({ algorithm: 2, services: [{ name: "w", nodes: ["a", "b"], weights: [1, 2] }] }).engine, "js");
});

test("the scan and JavaScript give the same answers: sizes around the 10-node loop, exclude, spread, k past the buffer", () => {
  const random = rng(20261203);
  const sizes = [1, 2, 3, 8, 9, 10, 11, 19, 20, 21, 31, 33, 99, 100, 101, 257, 1000, 2003];
  let compared = 0;
  for (const n of sizes) {
    const nodes = Array.from({ length: n }, (_, i) => `node-${i}.example:${8000 + random(1000)}`);
    const zones = nodes.map(() => ["a", "b", "c", null][random(4)]);
    // Several services in one memory, a weighted one among them (which stays in JavaScript).
    const services = [
      { name: "main", nodes, zones },
      { name: "half", nodes: nodes.slice(0, Math.ceil(n / 2)) },
      { name: "weighted", nodes: ["w1", "w2", "w3"], weights: [1, 2, 3] },
      { name: "ids", nodes: nodes.map((x) => `addr/${x}`), ids: nodes },
    ];
    const scan = Table.fromJSON({ algorithm: 2, services });
    const js = Table.fromJSON({ algorithm: 2, services }, { wasm: false });
    assert.equal(scan.engine, "wasm");
    for (let i = 0; i < 400; i += 1) {
      const service = ["main", "half", "ids"][random(3)];
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
  const scanner = Scanner.create([{ idH: Uint32Array.of(0x12345678, 0x12345678, 7), idL: Uint32Array.of(0x9abcdef0, 0x9abcdef0, 9) }]);
  assert.ok(scanner, "WebAssembly runs here");
  const [slot] = scanner.slots;
  for (let key = 0; key < 50; key += 1) {
    assert.equal(slot.top(key, key * 31, 3, null), null, `key ${key}: all three wanted, two tied`);
  }
  // Without the tied pair there is nothing to stop for: node 2 alone.
  assert.deepEqual(slot.top(1, 2, 1, Uint8Array.of(1, 1, 0)), [2]);
});
