// A client that keeps a verified copy of a keyrouter server's table and ranks locally.
//
// It polls `GET /table` with `If-None-Match` (a 304 costs no body), verifies every table it
// receives by recomputing its fingerprints, and swaps the whole table in at once. When the
// server cannot be reached, or sends a table that does not verify (or of algorithm 1), it keeps
// the last good table and records the error. Only `fetch`, timers and `AbortSignal` are used:
// Node >= 18 and browsers alike.

import { prepareScan } from "./scan.js";
import { Table, TableError } from "./table.js";

const DEFAULTS = { refreshMs: 5000, jitter: 0.1, timeoutMs: 10000 };

/** Refresh delays are kept at or above this, whatever the options say. */
const MIN_DELAY_MS = 10;

export class Client {
  /** @type {Table} */
  #table;
  #etag = null;
  #url;
  #options;
  #timer = null;
  #closed = false;
  /** The refresh under way, if any: concurrent refresh() calls share it. */
  #inFlight = null;
  #lastRefresh = null;
  #lastChange = null;
  #lastError = null;

  constructor(url, options) {
    this.#url = url;
    this.#options = options;
  }

  /**
   * Fetches and verifies the table of the server at `url` (e.g. "http://127.0.0.1:8080"), then
   * refreshes it in the background every `refreshMs` (± `jitter` × refreshMs, at random, so
   * that many clients do not poll in step). Rejects if the first table cannot be had.
   * @param {string} url
   * `onRefresh({changed, error, fingerprint})` is called after every poll.
   * @param {{refreshMs?: number, jitter?: number, timeoutMs?: number, fetch?: typeof fetch,
   *   onRefresh?: (event: {changed: boolean, error: Error | null, fingerprint: string | null}) => void}} [options]
   * @returns {Promise<Client>}
   */
  static async connect(url, options = {}) {
    const o = { ...DEFAULTS, fetch: globalThis.fetch, ...options };
    if (!(o.refreshMs > 0)) throw new RangeError("refreshMs must be a positive number of milliseconds");
    if (!(o.jitter >= 0 && o.jitter <= 1)) throw new RangeError("jitter must be between 0 and 1");
    if (typeof o.fetch !== "function") throw new TypeError("no fetch: pass one in options.fetch");
    if (o.wasm !== false) await prepareScan();
    const client = new Client(`${String(url).replace(/\/+$/, "")}/table`, o);
    const error = await client.refresh();
    if (error) throw error;
    client.#schedule();
    return client;
  }

  /** The table in use (immutable; replaced whole by a refresh). */
  get table() {
    return this.#table;
  }

  /** The fingerprint of the table in use, as the server's `/table` shows it. */
  get fingerprint() {
    return this.#table.fingerprint;
  }

  /** When the server last answered a poll with a good table or a 304 (a Date). */
  get lastRefresh() {
    return this.#lastRefresh;
  }

  /** When the table in use was received (a Date). */
  get lastChange() {
    return this.#lastChange;
  }

  /** What went wrong with the last poll (an Error), or null if it went well. */
  get lastError() {
    return this.#lastError;
  }

  /**
   * The nodes ranked highest for `key`: what the server answers, computed locally. Throws a
   * LookupError with the server's message when the server would answer 400 or 404.
   * @param {string} service
   * @param {string} key
   * @param {{min?: number, max?: number, exclude?: string[], spread?: "zone" | null}} [opts]
   */
  lookup(service, key, opts) {
    return this.#table.lookup(service, key, opts);
  }

  /**
   * A batch lookup: each distinct key's nodes, in the order of `keys`, all from one table.
   * @param {string} service
   * @param {Iterable<string>} keys
   * @param {{min?: number, max?: number, exclude?: string[], spread?: "zone" | null}} [opts]
   * @returns {Map<string, string[]>}
   */
  lookupMany(service, keys, opts) {
    return this.#table.lookupMany(service, keys, opts);
  }

  /**
   * Polls the server now. Resolves to null when the client has the server's table (new or
   * unchanged), or to the error that kept the old one (also in `lastError`); never rejects.
   * @returns {Promise<Error | null>}
   */
  refresh() {
    if (!this.#inFlight) {
      this.#inFlight = this.#poll().finally(() => {
        this.#inFlight = null;
      });
    }
    return this.#inFlight;
  }

  /** Stops the background refresh. Lookups go on answering from the last table. */
  close() {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async #poll() {
    let changed = false;
    try {
      const table = await this.#fetchTable();
      const now = new Date();
      if (table) {
        changed = table.fingerprint !== this.#table?.fingerprint;
        this.#table = table;
        this.#lastChange = now;
      }
      this.#lastRefresh = now;
      this.#lastError = null;
    } catch (e) {
      this.#lastError = e instanceof Error ? e : new Error(String(e));
    }
    const { onRefresh } = this.#options;
    if (onRefresh) {
      try {
        onRefresh({ changed, error: this.#lastError, fingerprint: this.#table?.fingerprint ?? null });
      } catch {
        // A failing callback must not stop the refresh.
      }
    }
    return this.#lastError;
  }

  /** The new table, or null on a 304; throws on any failure. */
  async #fetchTable() {
    const headers = this.#etag && this.#table ? { "If-None-Match": this.#etag } : {};
    // Called as a plain function: a browser's fetch throws "Illegal invocation" when called as
    // a method of another object (the options), which Node's does not.
    const { fetch } = this.#options;
    const response = await fetch(this.#url, {
      headers,
      signal: AbortSignal.timeout(this.#options.timeoutMs),
      cache: "no-store",
    });
    if (response.status === 304 && this.#table) return null;
    if (!response.ok) {
      const text = await response.text().catch(() => "");
      throw new Error(`GET ${this.#url}: HTTP ${response.status} ${text.slice(0, 200)}`.trim());
    }
    const json = await response.json();
    if (typeof json?.fingerprint !== "string" || !Array.isArray(json?.services)) {
      throw new TableError("table does not verify: the server's table carries no fingerprint", "unverified");
    }
    if (json.services.some((s) => typeof s?.fingerprint !== "string")) {
      throw new TableError("table does not verify: a service carries no fingerprint", "unverified");
    }
    const table = Table.fromJSON(json, { wasm: this.#options.wasm });
    this.#etag = response.headers.get("ETag");
    return table;
  }

  #schedule() {
    if (this.#closed) return;
    const { refreshMs, jitter } = this.#options;
    const delay = Math.max(MIN_DELAY_MS, refreshMs * (1 + jitter * (2 * Math.random() - 1)));
    this.#timer = setTimeout(async () => {
      await this.refresh();
      this.#schedule();
    }, delay);
    // In Node, a client alone does not keep the process alive; browsers have no unref.
    this.#timer?.unref?.();
  }
}
