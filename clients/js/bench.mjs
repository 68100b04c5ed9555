// Local lookups against the same lookups over HTTP, in one run.
//
//   cargo build --release
//   node clients/js/bench.mjs [path/to/keyrouter]     (default: target/release/keyrouter)
//
// Starts the keyrouter binary on 127.0.0.1 (port 0) with services of 100 and 10 000 nodes
// (algorithm 2), unweighted and weighted, connects a Client, then for each service alternates
// rounds of local lookups (client.lookup: the WebAssembly scan for unweighted services), of the
// same lookups on a table built with `wasm: false` (plain JavaScript), and of the same lookups
// over HTTP (one POST per key with fetch, keep-alive, one at a time), and prints the medians
// per key and the median of the rounds' HTTP/local ratios. This script is Node-only (it spawns
// the server); the package is not.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { Client, Table } from "./src/index.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const binary = process.argv[2] ?? join(repo, "target/release/keyrouter");
const ROUNDS = 7;

const nodes = (prefix, n, weighted) =>
  Array.from({ length: n }, (_, i) =>
    weighted ? `{ Node = "${prefix}${i}:80", Weight = ${1 + (i % 5)} }` : `"${prefix}${i}:80"`,
  ).join(", ");
const services = [
  ["n100", 100, false],
  ["n10000", 10000, false],
  ["w100", 100, true],
  ["w10000", 10000, true],
];
const dir = mkdtempSync(join(tmpdir(), "keyrouter-bench-"));
const file = join(dir, "services.toml");
writeFileSync(
  file,
  `Algorithm = 2\n${services.map(([name, n, w]) => `[[Services]]\nName = "${name}"\nNodes = [${nodes(name, n, w)}]\n`).join("\n")}`,
);

const server = spawn(binary, ["--services", file, "--address", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"] });
const port = await new Promise((resolve, reject) => {
  let log = "";
  server.on("error", reject);
  server.on("exit", (code) => reject(new Error(`keyrouter exited (${code}):\n${log}`)));
  server.stderr.on("data", (chunk) => {
    log += chunk;
    const m = /listening on [^\s,"]*:(\d+)/.exec(log);
    if (m) resolve(Number(m[1]));
  });
});
const url = `http://127.0.0.1:${port}`;

/** The server's answer for one key; once more on a connection the server closed meanwhile. */
async function overHttp(service, key, retry = true) {
  try {
    const r = await fetch(`${url}/service/${service}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key, max: 3 }),
    });
    return await r.json();
  } catch (e) {
    if (!retry) throw e;
    return overHttp(service, key, false);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const keys = Array.from({ length: 20000 }, (_, i) => `user-${i * 7919}`);
let sink = 0;

try {
  const client = await Client.connect(url, { refreshMs: 3_600_000 });
  // The same table ranked in plain JavaScript only, for the WebAssembly scan's gain.
  const plain = Table.fromJSON(await (await fetch(`${url}/table`)).json(), { wasm: false });
  console.log(`keyrouter ${binary} on ${url}; node ${process.version}; engine ${client.table.engine}; medians of ${ROUNDS} alternating rounds`);
  console.log("service   nodes  local/key  (plain JS)   HTTP/key   HTTP/local (median of rounds' ratios)");
  for (const [name, n, weighted] of services) {
    // Rounds well under the server's 5 s keep-alive, so that the connection stays open.
    const localKeys = weighted && n >= 10000 ? 500 : 20000;
    const plainKeys = n >= 10000 ? 500 : 20000;
    const httpKeys = 1000;
    const [local, js, http, ratio] = [[], [], [], []];
    // Warm up every path (JIT, connection).
    for (const k of keys.slice(0, 2000)) sink += client.lookup(name, k, { max: 3 }).length;
    for (const k of keys.slice(0, 500)) sink += plain.lookup(name, k, { max: 3 }).length;
    for (const k of keys.slice(0, 200)) sink += (await overHttp(name, k)).length;
    for (let round = 0; round < ROUNDS; round += 1) {
      let t = performance.now();
      for (let i = 0; i < localKeys; i += 1) sink += client.lookup(name, keys[i], { max: 3 }).length;
      local.push(((performance.now() - t) * 1000) / localKeys);
      t = performance.now();
      for (let i = 0; i < plainKeys; i += 1) sink += plain.lookup(name, keys[i], { max: 3 }).length;
      js.push(((performance.now() - t) * 1000) / plainKeys);
      t = performance.now();
      for (let i = 0; i < httpKeys; i += 1) sink += (await overHttp(name, keys[i])).length;
      http.push(((performance.now() - t) * 1000) / httpKeys);
      ratio.push(http.at(-1) / local.at(-1));
    }
    const us = (x, w) => `${x.toFixed(2).padStart(w)} µs`;
    console.log(
      `${name.padEnd(8)} ${String(n).padStart(6)} ${us(median(local), 8)} ${us(median(js), 9)} ${us(median(http), 8)} ${median(ratio).toFixed(0).padStart(8)}x`,
    );
  }
  client.close();
} finally {
  server.kill();
  rmSync(dir, { recursive: true, force: true });
}
if (sink === 0) console.log("(no answers?)");
