// The conformance vectors of ranking algorithm 2 through the package: hashes, every lookup,
// every service and table fingerprint.
//
// KEYROUTER_VECTORS names the vector file (the Rust test sets it); by default, the repository's.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { R, fmix64, xxh64 } from "../src/hash.js";
import { Table } from "../src/index.js";

const path =
  process.env.KEYROUTER_VECTORS ??
  new URL("../../../crates/ranking/tests/vectors/algorithm2.json", import.meta.url).pathname;
const vectors = JSON.parse(readFileSync(path, "utf8"));
const hex = () => R[0].toString(16).padStart(8, "0") + R[1].toString(16).padStart(8, "0");
const halves = (h) => [parseInt(h.slice(0, 8), 16), parseInt(h.slice(8), 16)];

/** A /table-like service of a vector service. */
const asTableService = (s) => ({
  name: s.name,
  nodes: s.nodes.map((n) => n.node),
  ids: s.nodes.map((n) => n.id ?? n.node),
  weights: s.nodes.map((n) => n.weight ?? 1),
});

test("xxh64 and fmix64 vectors", () => {
  assert.equal(vectors.algorithm, 2);
  for (const c of vectors.xxh64) {
    const bytes = new TextEncoder().encode(c.input);
    xxh64(bytes, bytes.length, ...halves(c.seed));
    assert.equal(hex(), c.hash, `xxh64 ${JSON.stringify(c.input)} seed ${c.seed}`);
  }
  for (const c of vectors.fmix64) {
    fmix64(...halves(c.input));
    assert.equal(hex(), c.output, `fmix64 ${c.input}`);
  }
});

for (const wasm of [true, false]) test(`every service's fingerprint and lookups (${wasm ? "WebAssembly" : "JavaScript"} scan)`, () => {
  let lookups = 0;
  for (const s of vectors.services) {
    const table = Table.fromJSON({ algorithm: 2, services: [{ ...asTableService(s), fingerprint: s.fingerprint }] }, { wasm });
    // The WebAssembly scan ranks unless asked not to (Node has it).
    assert.equal(table.engine, wasm && s.nodes.length > 0 ? "wasm" : "js", `${s.name}: engine`);
    assert.equal(table.serviceFingerprint(s.name), s.fingerprint, `service ${s.name} fingerprint`);
    for (const c of s.lookups) {
      assert.deepEqual(table.lookup(s.name, c.key, { min: 0, max: c.k }), c.expected, `${s.name} ${JSON.stringify(c.key)} k=${c.k}`);
      lookups += 1;
    }
    // A batch gives each key's single answer.
    const batch = table.lookupMany(s.name, s.lookups.map((c) => c.key), { min: 0, max: s.nodes.length });
    for (const c of s.lookups) assert.deepEqual(batch.get(c.key).slice(0, c.k), c.expected);
  }
  assert.ok(lookups > 1000, `only ${lookups} lookups`);
});

test("every table fingerprint, verified", () => {
  for (const t of vectors.tables) {
    const services = t.services.map((i) => {
      const s = vectors.services[i];
      return { ...asTableService(s), fingerprint: s.fingerprint };
    });
    const table = Table.fromJSON({ algorithm: 2, fingerprint: t.fingerprint, services });
    assert.equal(table.fingerprint, t.fingerprint);
    // Reversed order: the table fingerprint does not depend on it.
    assert.equal(Table.fromJSON({ algorithm: 2, services: services.reverse() }).fingerprint, t.fingerprint);
  }
});
