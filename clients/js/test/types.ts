// Compile-only check of the TypeScript declarations (src/index.d.ts), run by
// tests/integration/js_client.rs with `tsc --noEmit --strict`: correct uses compile, and each
// `@ts-expect-error` line must be an error, or tsc fails on the unused directive.

import { ALGORITHM, Client, LookupError, Table, TableError, type LookupOptions, type RefreshEvent } from "../src/index.js";

const client: Client = await Client.connect("http://127.0.0.1:8080", {
  refreshMs: 5000,
  jitter: 0.1,
  timeoutMs: 1000,
  wasm: true,
  onRefresh: (e: RefreshEvent) => void (e.changed && e.error === null && e.fingerprint?.length),
});
const nodes: string[] = client.lookup("bar", "ryans", { min: 1, max: 3, exclude: ["web-0"], spread: "zone" });
const many: Map<string, string[]> = client.lookupMany("bar", ["a", "b"], { max: 2n });
const fingerprint: string = client.fingerprint;
const refreshed: Date | null = client.lastRefresh;
const error: Error | null = await client.refresh();
client.close();

const table: Table = Table.fromJSON({ algorithm: 2, services: [{ name: "s", nodes: ["a:1"], zones: [null] }] });
const names: string[] = table.services;
const engine: "wasm" | "js" = Table.fromJSON("{}", { wasm: false }).engine;
const algorithm: 2 = ALGORITHM;
const options: LookupOptions = { spread: null };
try {
  table.lookup("s", "k", options);
} catch (e) {
  if (e instanceof LookupError) {
    const code: "unknown_service" | "min_greater_than_max" | "not_enough_nodes" | "invalid" = e.code;
    void code;
  }
  if (e instanceof TableError) void e.code;
}

// @ts-expect-error: spread takes only "zone"
client.lookup("bar", "k", { spread: "rack" });
// @ts-expect-error: exclude is an array of Ids
client.lookup("bar", "k", { exclude: "web-0" });
// @ts-expect-error: a Table is built by fromJSON
new Table();
// @ts-expect-error: the fingerprint is read-only
client.fingerprint = "x";
// @ts-expect-error: wasm is a boolean
Table.fromJSON("{}", { wasm: "no" });
// @ts-expect-error: refreshMs is a number
await Client.connect("http://127.0.0.1:8080", { refreshMs: "5s" });

void [nodes, many, fingerprint, refreshed, error, names, engine, algorithm];
