// Drives keyrouter-client (clients/js) for tests/integration/js_client.rs, against a real server.
//
//   node driver.mjs answers URL REQUESTS.json OUT.json
//       connects, answers every request {service, keys, min, max, exclude?, spread?} with
//       lookupMany, writes [{fingerprint, engine, answers: [[key, nodes], ...]}] to OUT.json
//   node driver.mjs connect URL
//       connects once; prints {"fingerprint": ...} or {"error": message, "name": ...}
//   node driver.mjs watch URL REFRESH_MS
//       connects, then prints a JSON line per completed poll ({"poll": {started, fingerprint,
//       error}}) and answers JSON lines on stdin: {"lookup": [service, key, opts]} and
//       {"state": true}. Exits when stdin closes.

import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";

import { Client } from "../../../clients/js/src/index.js";

const [mode, url, ...rest] = process.argv.slice(2);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

if (mode === "answers") {
  const [requestsPath, outPath] = rest;
  const requests = JSON.parse(readFileSync(requestsPath, "utf8"));
  const client = await Client.connect(url, { refreshMs: 3_600_000 });
  const out = requests.map((r) => {
    const answers = client.lookupMany(r.service, r.keys, r);
    return { fingerprint: client.fingerprint, engine: client.table.engine, answers: [...answers] };
  });
  client.close();
  writeFileSync(outPath, JSON.stringify(out));
} else if (mode === "connect") {
  try {
    const client = await Client.connect(url);
    client.close();
    print({ fingerprint: client.fingerprint });
  } catch (e) {
    print({ error: e.message, name: e.name, code: e.code ?? null });
  }
} else if (mode === "watch") {
  const refreshMs = Number(rest[0]);
  // Every poll, as the client makes it: when it started, and what the client had after it.
  let started = null;
  const timedFetch = (...args) => {
    started = Date.now();
    return fetch(...args);
  };
  const onRefresh = ({ error, fingerprint }) => print({ poll: { started, fingerprint, error: error?.message ?? null } });
  const client = await Client.connect(url, { refreshMs, jitter: 0.1, fetch: timedFetch, onRefresh });
  print({ connected: client.fingerprint });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const command = JSON.parse(line);
    if (command.lookup) {
      try {
        print({ answer: client.lookup(...command.lookup), fingerprint: client.fingerprint });
      } catch (e) {
        print({ error: e.message });
      }
    } else if (command.state) {
      print({
        state: {
          fingerprint: client.fingerprint,
          lastRefresh: client.lastRefresh?.getTime() ?? null,
          lastError: client.lastError?.message ?? null,
        },
      });
    }
  }
  client.close();
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
