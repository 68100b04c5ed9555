// Type declarations of keyrouter-client.

/** What a lookup asks for, as the server's `min`, `max`, `exclude` and `spread`. */
export interface LookupOptions {
  /** Fewest nodes acceptable; fewer (after `exclude`) is a LookupError. Default 1. */
  min?: number | bigint;
  /** Most nodes wanted. Default `min`. */
  max?: number | bigint;
  /** Node Ids (addresses for nodes without an Id) to leave out; unknown ones are ignored. */
  exclude?: readonly string[];
  /** "zone": one node of each zone first, in rank order. */
  spread?: "zone" | null;
}

/** The ranking algorithm this package implements. */
export declare const ALGORITHM: 2;

/** A lookup the server would refuse, with the server's message. */
export declare class LookupError extends Error {
  readonly name: "LookupError";
  readonly code: "unknown_service" | "min_greater_than_max" | "not_enough_nodes" | "invalid";
}

/** A table that cannot be used: malformed, of algorithm 1, or not verified by its fingerprints. */
export declare class TableError extends Error {
  readonly name: "TableError";
  readonly code: "invalid" | "algorithm" | "unverified";
}

/** `GET /table`'s JSON. */
export interface TableJSON {
  algorithm: number;
  fingerprint?: string;
  services: Array<{
    name: string;
    nodes: string[];
    ids?: string[];
    weights?: number[];
    zones?: Array<string | null>;
    fingerprint?: string;
    [other: string]: unknown;
  }>;
}

/** A verified table, ranked locally; immutable. */
export declare class Table {
  private constructor();
  /** Builds and verifies a table from `GET /table`'s JSON (parsed or as text). */
  static fromJSON(json: TableJSON | string, options?: TableOptions): Table;
  /** The table fingerprint, 16 hex digits. */
  readonly fingerprint: string;
  readonly algorithm: 2;
  /**
   * What ranks: "wasm" (a WebAssembly scan) or "js" (plain JavaScript: asked for,
   * WebAssembly unavailable here, or no service with nodes).
   */
  readonly engine: "wasm" | "js";
  /** The service names, sorted. */
  readonly services: string[];
  /** A service's fingerprint, or undefined for an unknown service. */
  serviceFingerprint(name: string): string | undefined;
  /** The nodes ranked highest for `key`, best first. */
  lookup(service: string, key: string, opts?: LookupOptions): string[];
  /** Each distinct key's nodes, in the order of `keys`. */
  lookupMany(service: string, keys: Iterable<string>, opts?: LookupOptions): Map<string, string[]>;
}

export interface TableOptions {
  /**
   * false: rank in plain JavaScript only. Default: lookups rank by a WebAssembly scan (the
   * same answers, ~20x faster at 10 000 nodes) wherever the runtime allows it.
   */
  wasm?: boolean;
}

export interface ClientOptions extends TableOptions {
  /** Milliseconds between polls of `GET /table`. Default 5000. */
  refreshMs?: number;
  /** Each delay is refreshMs × (1 ± jitter), at random. Default 0.1. */
  jitter?: number;
  /** Milliseconds a poll may take. Default 10000. */
  timeoutMs?: number;
  /** The fetch to use. Default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Called after every poll (the first one, in connect, included). */
  onRefresh?: (event: RefreshEvent) => void;
}

/** What a poll did. */
export interface RefreshEvent {
  /** Whether the poll brought a table with another fingerprint. */
  changed: boolean;
  /** Why the poll kept the old table, or null. */
  error: Error | null;
  /** The fingerprint of the table in use after the poll (null if none yet). */
  fingerprint: string | null;
}

/** A verified copy of a server's table, refreshed in the background. */
export declare class Client {
  private constructor();
  /** Fetches and verifies the server's table; rejects if it cannot. */
  static connect(url: string, options?: ClientOptions): Promise<Client>;
  readonly table: Table;
  readonly fingerprint: string;
  /** When the server last answered a poll with a good table or a 304. */
  readonly lastRefresh: Date | null;
  /** When the table in use was received. */
  readonly lastChange: Date | null;
  /** What went wrong with the last poll, or null. */
  readonly lastError: Error | null;
  lookup(service: string, key: string, opts?: LookupOptions): string[];
  lookupMany(service: string, keys: Iterable<string>, opts?: LookupOptions): Map<string, string[]>;
  /** Polls now; resolves to null, or to the error that kept the old table. Never rejects. */
  refresh(): Promise<Error | null>;
  /** Stops the background refresh. */
  close(): void;
}
