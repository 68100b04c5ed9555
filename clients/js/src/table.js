// A keyrouter table, ranked locally: ranking algorithm 2 as docs/ranking.md specifies it, with
// `exclude` and `spread=zone` (issue 26's contract), and the fingerprints that prove a table
// is the server's.
//
// A Table is immutable once built: the Client swaps whole tables, and a lookup reads one table
// from start to end, so no lookup ever sees two.

import { R, fmix64, scores, xxh64 } from "./hash.js";
import { fdlibmLog } from "./log.js";
import { SCAN_K, Scanner } from "./scan.js";

/** The one ranking algorithm this package implements. */
export const ALGORITHM = 2;

const KEY_SEED_H = 0x6b657972; // "keyroute"
const KEY_SEED_L = 0x6f757465;
const ID_SEED_H = 0x72207265; // "r rendez"
const ID_SEED_L = 0x6e64657a;
const ADDRESS_TAG_H = 0x61646472; // "address!"
const ADDRESS_TAG_L = 0x65737321;
const ZONE_TAG_H = 0x7a6f6e65; // "zone!!!!"
const ZONE_TAG_L = 0x21212121;
const GOLDEN_H = 0x9e3779b9;
const GOLDEN_L = 0x7f4a7c15;
const TWO32 = 4294967296;
const TWO_MINUS_52 = 2 ** -52;

/**
 * A node's weighted score: -weight / log(u), u = ((score >> 12) + 0.5) * 2^-52 (exact, since
 * score >> 12 < 2^52).
 */
function weightedScore(h, l, weight) {
  return -weight / fdlibmLog((h * 1048576 + (l >>> 12) + 0.5) * TWO_MINUS_52);
}

/** Above this many nodes wanted, a lookup sorts every node instead of keeping a sorted buffer. */
const SMALL_K = 32;

/** A lookup the server would refuse: the same message as the server's `{"error": ...}`. */
export class LookupError extends Error {
  /**
   * @param {string} message
   * @param {"unknown_service" | "min_greater_than_max" | "not_enough_nodes" | "invalid"} code
   */
  constructor(message, code) {
    super(message);
    this.name = "LookupError";
    this.code = code;
  }
}

/** A table that cannot be used: malformed, of algorithm 1, or not verified by its fingerprints. */
export class TableError extends Error {
  /**
   * @param {string} message
   * @param {"invalid" | "algorithm" | "unverified"} code
   */
  constructor(message, code) {
    super(message);
    this.name = "TableError";
    this.code = code;
  }
}

// --- UTF-8 and hashing helpers -----------------------------------------------------------------

const encoder = new TextEncoder();
let buffer = new Uint8Array(256);

/** The UTF-8 bytes of `s` in the shared buffer; returns their count. */
function encode(s) {
  // A UTF-16 code unit takes at most 3 UTF-8 bytes.
  if (s.length * 3 > buffer.length) buffer = new Uint8Array(s.length * 3 + 64);
  return encoder.encodeInto(s, buffer).written;
}

/** XXH64(s, seed) into R[0] and R[1]. */
function hashString(s, seedH, seedL) {
  const len = encode(s); // first: it may replace the buffer
  xxh64(buffer, len, seedH, seedL);
}

const hex32 = (x) => (x >>> 0).toString(16).padStart(8, "0");

const bitsView = new DataView(new ArrayBuffer(8));

/** Unsigned comparison of two byte strings; a proper prefix is smaller. */
function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** A string as Rust's `{:?}` writes it, for messages that match the server's. */
export function quote(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\0") out += "\\0";
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

// --- Services --------------------------------------------------------------------------------

/** One service of a table, ready for lookups. */
class Service {
  /**
   * @param {string} name
   * @param {string[]} nodes addresses
   * @param {string[]} ids identities, in the order of `nodes`
   * @param {number[]} weights
   * @param {(string | null)[] | null} zones
   */
  constructor(name, nodes, ids, weights, zones) {
    const n = nodes.length;
    this.name = name;
    this.nodes = nodes;
    this.ids = ids;
    this.weights = weights;
    this.zones = zones;
    this.weighted = weights.some((w) => w !== weights[0]);
    this.idH = new Uint32Array(n);
    this.idL = new Uint32Array(n);
    /** @type {Map<string, number>} identity -> node index, for `exclude` */
    this.byId = new Map();
    for (let i = 0; i < n; i += 1) {
      hashString(ids[i], ID_SEED_H, ID_SEED_L);
      this.idH[i] = R[0];
      this.idL[i] = R[1];
      this.byId.set(ids[i], i);
    }
    // Zone numbers: 0 for "no zone", then one per distinct zone name.
    this.zoneOf = new Int32Array(n);
    this.zoneCount = 1;
    if (zones) {
      const numbers = new Map();
      zones.forEach((z, i) => {
        if (z === null) return;
        if (!numbers.has(z)) numbers.set(z, numbers.size + 1);
        this.zoneOf[i] = numbers.get(z);
      });
      this.zoneCount = numbers.size + 1;
    }
    this.idBytes = null; // encoded on the first tie
    // Per-lookup scratch: lookups are synchronous, so one set per service serves them all.
    this.sh = new Uint32Array(n);
    this.sl = new Uint32Array(n);
    this.ws = new Float64Array(n);
    /** Where the WebAssembly scan holds this service's hashes (`Table.fromJSON` sets it), or null. */
    this.slot = null;
    this.fingerprint = this.computeFingerprint();
  }

  /** The service fingerprint (docs/ranking.md, "Fingerprints"), as 16 hex digits. */
  computeFingerprint() {
    fmix64(GOLDEN_H, (GOLDEN_L ^ 2) >>> 0); // fmix64(2 ^ 9e3779b97f4a7c15)
    let accH = R[0];
    let accL = R[1];
    const n = this.nodes.length;
    for (let i = 0; i < n; i += 1) {
      bitsView.setFloat64(0, this.weighted ? this.weights[i] : 1.0);
      fmix64(bitsView.getUint32(0), bitsView.getUint32(4));
      let th = this.idH[i] ^ R[0];
      let tl = this.idL[i] ^ R[1];
      if (this.ids[i] !== this.nodes[i]) {
        hashString(this.nodes[i], ID_SEED_H, ID_SEED_L);
        fmix64(R[0] ^ ADDRESS_TAG_H, R[1] ^ ADDRESS_TAG_L);
        th ^= R[0];
        tl ^= R[1];
      }
      const zone = this.zones ? this.zones[i] : null;
      if (zone !== null) {
        hashString(zone, ID_SEED_H, ID_SEED_L);
        fmix64(R[0] ^ ZONE_TAG_H, R[1] ^ ZONE_TAG_L);
        th ^= R[0];
        tl ^= R[1];
      }
      fmix64(th >>> 0, tl >>> 0);
      const low = accL + R[1];
      accH = (accH + R[0] + (low >= TWO32 ? 1 : 0)) >>> 0;
      accL = low >>> 0;
    }
    fmix64(accH ^ Math.floor(n / TWO32), (accL ^ n) >>> 0);
    return { h: R[0], l: R[1] };
  }

  /** Whether node a ranks before node b (scores in the scratch arrays). */
  before(a, b) {
    if (this.weighted && this.ws[a] !== this.ws[b]) return this.ws[a] > this.ws[b];
    if (this.sh[a] !== this.sh[b]) return this.sh[a] > this.sh[b];
    if (this.sl[a] !== this.sl[b]) return this.sl[a] > this.sl[b];
    if (!this.idBytes) this.idBytes = this.ids.map((id) => encoder.encode(id));
    return compareBytes(this.idBytes[a], this.idBytes[b]) < 0;
  }

  /**
   * The indexes of the `k` best nodes for `key` among those `skip` does not mark, best first.
   * @param {string} key
   * @param {number} k at most the number of eligible nodes
   * @param {Uint8Array | null} skip 1 for an excluded node
   * @returns {number[]}
   */
  rank(key, k, skip) {
    const n = this.nodes.length;
    if (k === 0) return [];
    if (!this.slot?.scanner.hashKey(key)) hashString(key, KEY_SEED_H, KEY_SEED_L);
    const kh = R[0];
    const kl = R[1];
    const { idH, idL, sh, sl, ws, weights, weighted } = this;
    if (this.slot && k <= SCAN_K) {
      const best = this.slot.top(kh, kl, k, skip);
      if (best) return best;
      // Two scores tied: rank below, which orders them by identity.
    }
    scores(kh, kl, idH, idL, sh, sl, n);
    if (k > SMALL_K) {
      if (weighted) for (let i = 0; i < n; i += 1) ws[i] = weightedScore(sh[i], sl[i], weights[i]);
      const all = [];
      for (let i = 0; i < n; i += 1) if (!skip || !skip[i]) all.push(i);
      all.sort((a, b) => (this.before(a, b) ? -1 : 1));
      return all.slice(0, k);
    }
    // A sorted buffer of the k best seen so far.
    const best = [];
    for (let i = 0; i < n; i += 1) {
      if (skip && skip[i]) continue;
      if (weighted) {
        const u = (sh[i] * 1048576 + (sl[i] >>> 12) + 0.5) * TWO_MINUS_52;
        // -ln(u) >= 1 - u, so w / (1 - u) bounds the weighted score from above: a node whose
        // bound is below the k-th best (with a margin far wider than rounding) cannot enter,
        // and most nodes are skipped without their logarithm.
        if (best.length === k && (weights[i] / (1 - u)) * (1 + 1e-9) < ws[best[k - 1]]) continue;
        ws[i] = -weights[i] / fdlibmLog(u);
      }
      if (best.length === k) {
        // Most nodes fall below the k-th best on the first comparison.
        const last = best[k - 1];
        if (weighted ? ws[i] < ws[last] : sh[i] < sh[last]) continue;
        if (!this.before(i, last)) continue;
      }
      let at = best.length === k ? k - 1 : best.length;
      while (at > 0 && this.before(i, best[at - 1])) {
        best[at] = best[at - 1];
        at -= 1;
      }
      best[at] = i;
    }
    return best;
  }

  /**
   * The lookup, as the server answers it.
   * @returns {string[]}
   */
  lookup(key, min, max, exclude, spread) {
    let skip = null;
    let available = this.nodes.length;
    if (exclude.length > 0) {
      skip = new Uint8Array(this.nodes.length);
      for (const id of exclude) {
        const i = this.byId.get(id);
        if (i !== undefined && !skip[i]) {
          skip[i] = 1;
          available -= 1;
        }
      }
    }
    if (min > max) {
      throw new LookupError(`min (${min}) is greater than max (${max})`, "min_greater_than_max");
    }
    if (available < min) {
      throw new LookupError(
        `service ${quote(this.name)} has ${available} node(s), fewer than min (${min})`,
        "not_enough_nodes",
      );
    }
    const k = Math.min(max, available);
    if (!spread || this.zoneCount === 1 || !this.zones) {
      return this.rank(key, k, skip).map((i) => this.nodes[i]);
    }
    // spread=zone: the best node of each zone not yet represented, in rank order, until every
    // zone is; then the others in rank order.
    const ranked = this.rank(key, available, skip);
    const seen = new Uint8Array(this.zoneCount);
    const first = [];
    const rest = [];
    for (const i of ranked) {
      if (seen[this.zoneOf[i]]) rest.push(i);
      else {
        seen[this.zoneOf[i]] = 1;
        first.push(i);
      }
    }
    return first
      .concat(rest)
      .slice(0, k)
      .map((i) => this.nodes[i]);
  }
}

// --- Options -----------------------------------------------------------------------------------

/** A count as the server reads it: a non-negative integer. */
function count(value, name, fallback) {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "bigint" && value >= 0n) return value > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(value);
  if (typeof value === "number" && (Number.isInteger(value) || value === Infinity) && value >= 0) return value;
  throw new LookupError(`\`${name}\` must be a non-negative integer, got ${String(value)}`, "invalid");
}

/** The validated options of a lookup. */
function options(opts) {
  const o = opts ?? {};
  const min = count(o.min, "min", 1);
  const max = count(o.max, "max", min);
  const exclude = o.exclude ?? [];
  if (!Array.isArray(exclude) || exclude.some((e) => typeof e !== "string")) {
    throw new LookupError("`exclude` must be an array of strings", "invalid");
  }
  const spread = o.spread ?? null;
  if (spread !== null && spread !== "zone") {
    throw new LookupError(`\`spread\` accepts only "zone", got ${JSON.stringify(spread)}`, "invalid");
  }
  return { min, max, exclude, spread: spread === "zone" };
}

// --- Tables ------------------------------------------------------------------------------------

function invalid(message) {
  return new TableError(`invalid table: ${message}`, "invalid");
}

function stringArray(value, what, length) {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw invalid(`${what} must be an array of strings`);
  }
  if (length !== undefined && value.length !== length) {
    throw invalid(`${what} has ${value.length} entries for ${length} nodes`);
  }
  return value;
}

const fingerprintHex = ({ h, l }) => hex32(h) + hex32(l);

/** A table as `GET /table` serves it, verified, ready for lookups. */
export class Table {
  /**
   * @param {Map<string, Service>} services
   * @param {string} fingerprint
   * @param {"wasm" | "js"} engine
   */
  constructor(services, fingerprint, engine) {
    this.#services = services;
    /** The table fingerprint: 16 hex digits, as the server shows it. */
    this.fingerprint = fingerprint;
    /** The ranking algorithm (always 2). */
    this.algorithm = ALGORITHM;
    /**
     * What ranks: "wasm" (the WebAssembly scan) or "js" (plain JavaScript: asked for, or
     * WebAssembly unavailable here, or no service with nodes). `max` above 32 and tied scores
     * rank in JavaScript either way.
     */
    this.engine = engine;
    Object.freeze(this);
  }

  #services;

  /**
   * Builds a table from `GET /table`'s JSON (parsed, or as text) and verifies it: every service
   * fingerprint and the table fingerprint are recomputed and must equal those the JSON carries.
   * A fingerprint the JSON leaves out is not checked (a table written by hand needs none; the
   * Client refuses a fetched table without them).
   *
   * `options.wasm: false` ranks in plain JavaScript only; by default lookups rank by a
   * WebAssembly scan wherever the runtime allows it (same answers), and in JavaScript elsewhere
   * (e.g. a page whose Content-Security-Policy forbids WebAssembly).
   * @param {object | string} json
   * @param {{wasm?: boolean}} [options]
   * @returns {Table}
   */
  static fromJSON(json, options = {}) {
    const t = typeof json === "string" ? JSON.parse(json) : json;
    if (t === null || typeof t !== "object" || Array.isArray(t)) throw invalid("not a JSON object");
    if (t.algorithm === 1) {
      throw new TableError(
        "this table ranks with algorithm 1, which keyrouter-client does not implement (its hash is " +
          "specified only by its Rust source); switch the services file to `Algorithm = 2` (see " +
          'docs/ranking.md, "Choosing an algorithm": it moves nearly every key once)',
        "algorithm",
      );
    }
    if (t.algorithm !== ALGORITHM) {
      throw new TableError(`unknown ranking algorithm ${JSON.stringify(t.algorithm)}; keyrouter-client implements 2`, "algorithm");
    }
    if (t.fingerprint != null && typeof t.fingerprint !== "string") throw invalid("`fingerprint` must be a string");
    if (!Array.isArray(t.services)) throw invalid("`services` must be an array");
    const services = new Map();
    const unverified = [];
    for (const s of t.services) {
      if (s === null || typeof s !== "object" || typeof s.name !== "string") {
        throw invalid("every service must be an object with a string `name`");
      }
      const where = `service ${quote(s.name)}`;
      if (services.has(s.name)) throw invalid(`${where} appears twice`);
      const nodes = stringArray(s.nodes, `${where}: \`nodes\``);
      const ids = s.ids == null ? nodes : stringArray(s.ids, `${where}: \`ids\``, nodes.length);
      let weights = nodes.map(() => 1);
      if (s.weights != null) {
        if (!Array.isArray(s.weights) || s.weights.length !== nodes.length) {
          throw invalid(`${where}: \`weights\` must be an array of one number per node`);
        }
        if (s.weights.some((w) => typeof w !== "number" || !(w > 0) || !Number.isFinite(w))) {
          throw invalid(`${where}: \`weights\` must be positive finite numbers`);
        }
        weights = s.weights;
      }
      let zones = null;
      if (s.zones != null) {
        if (
          !Array.isArray(s.zones) ||
          s.zones.length !== nodes.length ||
          s.zones.some((z) => z !== null && typeof z !== "string")
        ) {
          throw invalid(`${where}: \`zones\` must be an array of one string or null per node`);
        }
        zones = s.zones;
      }
      const service = new Service(s.name, [...nodes], [...ids], [...weights], zones && [...zones]);
      const computed = fingerprintHex(service.fingerprint);
      if (s.fingerprint != null && computed !== s.fingerprint) {
        unverified.push(`${where}: its fingerprint is ${computed}, the table says ${JSON.stringify(s.fingerprint)}`);
      }
      services.set(s.name, service);
    }
    const computed = fingerprintHex(tableFingerprint([...services.values()]));
    if (t.fingerprint != null && computed !== t.fingerprint) {
      unverified.push(`the table's fingerprint is ${computed}, the table says ${JSON.stringify(t.fingerprint)}`);
    }
    if (unverified.length > 0) {
      throw new TableError(`table does not verify (altered or corrupted?): ${unverified.join("; ")}`, "unverified");
    }
    // Services rank by the WebAssembly scan where it runs (the same answers, ~20x faster at
    // 10 000 nodes).
    const scanned = [...services.values()].filter((s) => s.nodes.length > 0);
    const scanner = options.wasm === false || scanned.length === 0 ? null : Scanner.create(scanned);
    if (scanner) scanned.forEach((s, i) => (s.slot = scanner.slots[i]));
    return new Table(services, computed, scanner ? "wasm" : "js");
  }

  /** The service names, sorted as the server sorts them. */
  get services() {
    return [...this.#services.keys()].sort((a, b) => compareBytes(encoder.encode(a), encoder.encode(b)));
  }

  /**
   * The service fingerprint of `name` (16 hex digits), or undefined if the table has no such
   * service.
   * @param {string} name
   */
  serviceFingerprint(name) {
    const s = this.#services.get(name);
    return s && fingerprintHex(s.fingerprint);
  }

  #service(name) {
    const s = this.#services.get(name);
    if (!s) throw new LookupError(`unknown service ${quote(name)}`, "unknown_service");
    return s;
  }

  /**
   * The nodes ranked highest for `key`, best first: what `POST /service/{service}` answers.
   * @param {string} service
   * @param {string} key
   * @param {{min?: number, max?: number, exclude?: string[], spread?: "zone" | null}} [opts]
   * @returns {string[]}
   */
  lookup(service, key, opts) {
    const s = this.#service(service);
    if (typeof key !== "string") throw new LookupError("`key` must be a string", "invalid");
    const o = options(opts);
    return s.lookup(key, o.min, o.max, o.exclude, o.spread);
  }

  /**
   * Each distinct key's nodes, in the order of `keys`: what a batch lookup (`keys`) answers. A
   * Map, since an object would reorder keys that look like integers.
   * @param {string} service
   * @param {Iterable<string>} keys
   * @param {{min?: number, max?: number, exclude?: string[], spread?: "zone" | null}} [opts]
   * @returns {Map<string, string[]>}
   */
  lookupMany(service, keys, opts) {
    const s = this.#service(service);
    const o = options(opts);
    const out = new Map();
    for (const key of keys) {
      if (typeof key !== "string") throw new LookupError("`keys` must be strings", "invalid");
      if (!out.has(key)) out.set(key, s.lookup(key, o.min, o.max, o.exclude, o.spread));
    }
    return out;
  }
}

/** The table fingerprint of `services` (any order), as {h, l}. */
function tableFingerprint(services) {
  const sorted = services
    .map((s) => ({ s, bytes: encoder.encode(s.name) }))
    .sort((a, b) => compareBytes(a.bytes, b.bytes));
  fmix64(0, 2);
  let accH = R[0];
  let accL = R[1];
  for (const { s } of sorted) {
    hashString(s.name, ID_SEED_H, ID_SEED_L);
    fmix64((accH ^ R[0]) >>> 0, (accL ^ R[1]) >>> 0);
    const low = R[1] + s.fingerprint.l;
    accH = (R[0] + s.fingerprint.h + (low >= TWO32 ? 1 : 0)) >>> 0;
    accL = low >>> 0;
  }
  fmix64(accH, accL);
  return { h: R[0], l: R[1] };
}
