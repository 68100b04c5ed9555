// The lookup-options vectors (exclude, spread=zone, zones in fingerprints; issue 26) through
// the package: every algorithm-2 case's fingerprint and lookups. Algorithm-1 cases are not
// this package's.
//
// KEYROUTER_OPTIONS_VECTORS names the file (the Rust test sets it); by default, the
// repository's. The test is skipped while that file does not exist (before issue 26).

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";

import { LookupError, Table } from "../src/index.js";

const path =
  process.env.KEYROUTER_OPTIONS_VECTORS ??
  new URL("../../../crates/ranking/tests/vectors/lookup-options.json", import.meta.url).pathname;

for (const wasm of [true, false])
test(`lookup-options vectors of algorithm 2 (${wasm ? "WebAssembly" : "JavaScript"} scan)`, { skip: !existsSync(path) && `no ${path}` }, () => {
  const { cases } = JSON.parse(readFileSync(path, "utf8"));
  let lookups = 0;
  for (const c of cases.filter((c) => c.algorithm === 2)) {
    const service = {
      name: c.name,
      nodes: c.nodes.map((n) => n.node),
      ids: c.nodes.map((n) => n.id ?? n.node),
      weights: c.nodes.map((n) => n.weight ?? 1),
    };
    if (c.nodes.some((n) => n.zone !== undefined)) service.zones = c.nodes.map((n) => n.zone ?? null);
    const table = Table.fromJSON({ algorithm: 2, services: [{ ...service, fingerprint: c.fingerprint }] }, { wasm });
    for (const l of c.lookups) {
      const opts = { min: l.min, max: l.max, exclude: l.exclude, spread: l.spread ?? null };
      const what = `${c.name}: ${JSON.stringify(l)}`;
      if (l.expected === null) {
        assert.throws(() => table.lookup(c.name, l.key, opts), (e) => e instanceof LookupError && e.code === "not_enough_nodes", what);
      } else {
        assert.deepEqual(table.lookup(c.name, l.key, opts), l.expected, what);
      }
      lookups += 1;
    }
  }
  assert.ok(lookups > 100, `only ${lookups} lookups of algorithm 2`);
});
