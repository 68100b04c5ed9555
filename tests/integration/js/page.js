// The page of js_client::in_a_browser_*: connects a Client to the page's own origin (the test's
// server passes /table to keyrouter), builds the same table with { wasm: false }, looks up every
// key of /keys.json in every service with both, and leaves it all in window.results (or the
// error) for the test to read over WebDriver.

import { Client, Table } from "/src/index.js";

try {
  const { services, keys } = await (await fetch("/keys.json")).json();
  const client = await Client.connect(location.origin, { refreshMs: 3_600_000 });
  const plain = Table.fromJSON(await (await fetch("/table")).json(), { wasm: false });
  const lookups = (t) => Object.fromEntries(services.map((s) => [s, keys.map((k) => t.lookup(s, k, { max: 3 }))]));
  window.results = {
    engine: client.table.engine,
    plainEngine: plain.engine,
    fingerprint: client.fingerprint,
    client: lookups(client),
    plain: lookups(plain),
  };
  client.close();
} catch (e) {
  window.results = { error: String(e?.stack ?? e) };
}
