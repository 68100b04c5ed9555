// Table: lookups against the spec's independent reference (tests/independent/ranking_v2.mjs),
// the server's error messages, exclude and spread=zone as issue 26's contract defines them,
// fingerprints with zones, verification, and the refusal of algorithm 1.

import assert from "node:assert/strict";
import { test } from "node:test";

import * as reference from "../../../tests/independent/ranking_v2.mjs";
import { LookupError, Table, TableError } from "../src/index.js";

/** A deterministic pseudo-random generator (xorshift32), so failures reproduce. */
function random(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const web = {
  name: "web",
  nodes: ["10.0.0.5:8080", "10.0.0.6:8080", "10.0.0.7:8080"],
  ids: ["web-0", "web-1", "web-2"],
};

test("the worked example of docs/ranking.md", () => {
  const t = Table.fromJSON({ algorithm: 2, fingerprint: "ca2c6c522b29285c", services: [web] });
  assert.equal(t.fingerprint, "ca2c6c522b29285c");
  assert.equal(t.serviceFingerprint("web"), "efdd6fca20e6e053");
  assert.deepEqual(t.lookup("web", "ryans", { min: 1, max: 3 }), ["10.0.0.6:8080", "10.0.0.5:8080", "10.0.0.7:8080"]);
  const w = Table.fromJSON({ algorithm: 2, services: [{ ...web, weights: [1, 1, 4] }] });
  assert.equal(w.serviceFingerprint("web"), "74974792e16a42c3");
  assert.deepEqual(w.lookup("web", "ryans", { max: 3 }), ["10.0.0.7:8080", "10.0.0.6:8080", "10.0.0.5:8080"]);
});

test("random services, weighted or not, rank as the reference does", () => {
  const rnd = random(27);
  for (let round = 0; round < 60; round += 1) {
    const n = 1 + Math.floor(rnd() * (round % 3 === 0 ? 200 : 12));
    const weighted = round % 2 === 1;
    const nodes = Array.from({ length: n }, (_, i) => `n${round}-${i}.example:80`);
    const ids = nodes.map((a, i) => (i % 3 === 0 ? `id-${i}-\u00e9\u{1F600}` : a));
    const weights = nodes.map(() => (weighted ? 2 ** (rnd() * 20 - 10) : 1));
    const table = Table.fromJSON({ algorithm: 2, services: [{ name: "s", nodes, ids, weights }] });
    const ref = nodes.map((a, i) => reference.makeNode(a, ids[i], weights[i]));
    assert.equal(table.serviceFingerprint("s"), reference.hex64(reference.serviceFingerprint(ref)));
    for (let j = 0; j < 40; j += 1) {
      // Keys of every length up to 2 KB, so that the encoding buffer grows mid-run too.
      const key = "k".repeat(Math.floor(rnd() * 2048)) + j;
      const k = 1 + Math.floor(rnd() * (n + 40));
      assert.deepEqual(table.lookup("s", key, { min: 0, max: k }), reference.lookup(ref, key, k), `round ${round} key ${j}`);
    }
  }
});

test("errors carry the server's messages", () => {
  const t = Table.fromJSON({ algorithm: 2, services: [web, { name: "empty", nodes: [] }] });
  const fails = (f, code, message) =>
    assert.throws(f, (e) => e instanceof LookupError && e.code === code && e.message === message);
  fails(() => t.lookup("nope", "k"), "unknown_service", 'unknown service "nope"');
  fails(() => t.lookup('a"b\n', "k"), "unknown_service", 'unknown service "a\\"b\\n"');
  fails(() => t.lookup("web", "k", { min: 3, max: 1 }), "min_greater_than_max", "min (3) is greater than max (1)");
  fails(() => t.lookup("web", "k", { min: 4, max: 5 }), "not_enough_nodes", 'service "web" has 3 node(s), fewer than min (4)');
  fails(() => t.lookup("empty", "k"), "not_enough_nodes", 'service "empty" has 0 node(s), fewer than min (1)');
  fails(() => t.lookupMany("web", ["a"], { min: 2, max: 1 }), "min_greater_than_max", "min (2) is greater than max (1)");
  assert.throws(() => t.lookup("web", "k", { max: 1.5 }), /`max` must be a non-negative integer/);
  assert.throws(() => t.lookup("web", "k", { spread: "rack" }), /`spread` accepts only "zone"/);
  assert.throws(() => t.lookup("web", "k", { exclude: "web-0" }), /`exclude` must be an array of strings/);
  // Defaults as the server's: min 1, max = min; a huge max is capped at the node count.
  assert.equal(t.lookup("web", "k").length, 1);
  assert.equal(t.lookup("web", "k", { min: 2 }).length, 2);
  assert.equal(t.lookup("web", "k", { max: 18446744073709551615n }).length, 3);
  assert.deepEqual(t.lookup("empty", "k", { min: 0, max: 3 }), []);
});

test("a batch answers each distinct key once, in request order, as a Map", () => {
  const t = Table.fromJSON({ algorithm: 2, services: [web] });
  const m = t.lookupMany("web", ["b", "10", "a", "b", "2"], { max: 2 });
  assert.deepEqual([...m.keys()], ["b", "10", "a", "2"]);
  for (const [k, v] of m) assert.deepEqual(v, t.lookup("web", k, { max: 2 }));
});

test("algorithm 1 is refused, saying to switch the file to Algorithm = 2", () => {
  assert.throws(
    () => Table.fromJSON({ algorithm: 1, fingerprint: "56c5c54da53feeb7", services: [] }),
    (e) => e instanceof TableError && e.code === "algorithm" && e.message.includes("`Algorithm = 2`"),
  );
  assert.throws(() => Table.fromJSON({ algorithm: 3, services: [] }), /unknown ranking algorithm 3/);
});

test("a table that does not match its fingerprints is refused, naming what differs", () => {
  const good = Table.fromJSON({ algorithm: 2, services: [web] });
  const json = { algorithm: 2, fingerprint: good.fingerprint, services: [{ ...web, fingerprint: "efdd6fca20e6e053" }] };
  assert.equal(Table.fromJSON(json).fingerprint, good.fingerprint);
  const altered = structuredClone(json);
  altered.services[0].nodes[1] = "10.6.6.6:8080";
  assert.throws(
    () => Table.fromJSON(altered),
    (e) => e instanceof TableError && e.code === "unverified" && e.message.includes('service "web"'),
  );
  const reweighed = structuredClone(json);
  reweighed.services[0].weights = [1, 1, 2];
  assert.throws(() => Table.fromJSON(reweighed), /does not verify/);
  const wrongTable = { ...json, fingerprint: "0000000000000000" };
  assert.throws(() => Table.fromJSON(wrongTable), /the table's fingerprint is/);
  assert.throws(() => Table.fromJSON({ algorithm: 2, services: [{ name: "x", nodes: ["a"], ids: [] }] }), /`ids` has 0 entries/);
  assert.throws(() => Table.fromJSON("[]"), /not a JSON object/);
});

// --- Zones, exclude, spread (issue 26's contract) -------------------------------------------

const ZONE_TAG = 0x7a6f6e6521212121n;

/** The contract's service fingerprint with zones, from the reference's primitives. */
function zonedFingerprint(nodes, ids, weights, zones) {
  const { fmix64, xxh64, ID_SEED, bitsOf, idHash } = reference;
  const mask = (1n << 64n) - 1n;
  const weighted = weights.some((w) => w !== weights[0]);
  let acc = fmix64(2n ^ 0x9e3779b97f4a7c15n);
  nodes.forEach((address, i) => {
    const a = ids[i] !== address ? fmix64(xxh64(address, ID_SEED) ^ 0x6164647265737321n) : 0n;
    const z = zones[i] !== null ? fmix64(xxh64(zones[i], ID_SEED) ^ ZONE_TAG) : 0n;
    const w = bitsOf(weighted ? weights[i] : 1.0);
    acc = (acc + fmix64(idHash(ids[i]) ^ fmix64(w) ^ a ^ z)) & mask;
  });
  return reference.hex64(fmix64(acc ^ BigInt(nodes.length)));
}

const zoned = {
  name: "z",
  nodes: ["a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1"],
  ids: ["a", "b-id", "c", "d", "e", "f", "g-id"],
  weights: [1, 2, 1, 1, 3, 1, 1],
  zones: ["eu-1a", "eu-1a", "eu-1b", null, "eu-1b", "eu-1c", null],
};

test("zones enter the fingerprint as the contract says, and only where given", () => {
  const t = Table.fromJSON({ algorithm: 2, services: [zoned] });
  assert.equal(t.serviceFingerprint("z"), zonedFingerprint(zoned.nodes, zoned.ids, zoned.weights, zoned.zones));
  const { zones, ...plain } = zoned;
  const noZones = Table.fromJSON({ algorithm: 2, services: [plain] });
  const allNull = Table.fromJSON({ algorithm: 2, services: [{ ...plain, zones: zones.map(() => null) }] });
  assert.equal(allNull.serviceFingerprint("z"), noZones.serviceFingerprint("z"));
  assert.notEqual(t.serviceFingerprint("z"), noZones.serviceFingerprint("z"));
  const moved = Table.fromJSON({ algorithm: 2, services: [{ ...zoned, zones: ["eu-1a", "eu-1b", ...zones.slice(2)] }] });
  assert.notEqual(moved.serviceFingerprint("z"), t.serviceFingerprint("z"));
});

test("exclude answers as the service without the excluded nodes", () => {
  const t = Table.fromJSON({ algorithm: 2, services: [zoned] });
  const rnd = random(26);
  for (let j = 0; j < 300; j += 1) {
    const key = `key-${j}`;
    // Ids, unknown entries and duplicates; never an address of a node that has an Id.
    const exclude = ["b-id", "c", "nope", "c"].filter(() => rnd() < 0.5);
    const keep = zoned.ids.map((id) => !exclude.includes(id));
    const pick = (list) => list.filter((_, i) => keep[i]);
    const without = Table.fromJSON({
      algorithm: 2,
      services: [{ name: "z", nodes: pick(zoned.nodes), ids: pick(zoned.ids), weights: pick(zoned.weights) }],
    });
    const max = 1 + Math.floor(rnd() * 8);
    assert.deepEqual(t.lookup("z", key, { max, exclude }), without.lookup("z", key, { max }), `${key} ${exclude}`);
  }
  // "b:1" is the address of a node whose Id is "b-id": not an identity, so ignored.
  assert.deepEqual(t.lookup("z", "k", { max: 7, exclude: ["b:1"] }), t.lookup("z", "k", { max: 7 }));
  assert.throws(
    () => t.lookup("z", "k", { min: 6, max: 6, exclude: ["a", "c"] }),
    (e) => e.code === "not_enough_nodes" && e.message === 'service "z" has 5 node(s), fewer than min (6)',
  );
});

test("spread=zone puts each zone's best node first, in rank order", () => {
  const t = Table.fromJSON({ algorithm: 2, services: [zoned] });
  const zoneOf = new Map(zoned.nodes.map((n, i) => [n, zoned.zones[i]]));
  for (let j = 0; j < 300; j += 1) {
    const key = `key-${j}`;
    const ranked = t.lookup("z", key, { max: 7 });
    const spread = t.lookup("z", key, { max: 7, spread: "zone" });
    // Four zones: eu-1a, eu-1b, eu-1c and "no zone": the first four are one of each, in rank order.
    assert.deepEqual(new Set(spread.slice(0, 4).map((n) => zoneOf.get(n))).size, 4, key);
    const firsts = ranked.filter((n, i) => ranked.findIndex((m) => zoneOf.get(m) === zoneOf.get(n)) === i);
    assert.deepEqual(spread, [...firsts, ...ranked.filter((n) => !firsts.includes(n))], key);
    for (let k = 0; k <= 7; k += 1) assert.deepEqual(t.lookup("z", key, { min: 0, max: k, spread: "zone" }), spread.slice(0, k));
    // With exclude: the spread of the remaining nodes.
    const rest = t.lookup("z", key, { max: 7, exclude: ["c", "f"], spread: "zone" });
    assert.equal(new Set(rest.slice(0, 3).map((n) => zoneOf.get(n))).size, 3, key);
  }
  // No zones at all: spread changes nothing.
  const plain = Table.fromJSON({ algorithm: 2, services: [web] });
  assert.deepEqual(plain.lookup("web", "x", { max: 3, spread: "zone" }), plain.lookup("web", "x", { max: 3 }));
});
