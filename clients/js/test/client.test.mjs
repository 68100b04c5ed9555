// Client: polling with If-None-Match, keeping the last good table, never rejecting a refresh,
// against a fake fetch (the Rust test drives it against the real server).

import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, Table, TableError } from "../src/index.js";

const tableOf = (nodes) => {
  const t = Table.fromJSON({ algorithm: 2, services: [{ name: "s", nodes }] });
  return { algorithm: 2, fingerprint: t.fingerprint, services: [{ name: "s", nodes, fingerprint: t.serviceFingerprint("s") }] };
};

/** A fake server: answers with `state.body` (a /table JSON), or throws `state.down`. */
function fakeFetch(state) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url, ifNoneMatch: init.headers["If-None-Match"] });
    if (state.down) throw state.down;
    const etag = `W/"${state.body.fingerprint}"`;
    const match = init.headers["If-None-Match"] === etag;
    return {
      status: match ? 304 : 200,
      ok: !match,
      headers: new Map([["ETag", etag]]),
      json: async () => structuredClone(state.body),
      text: async () => JSON.stringify(state.body),
    };
  };
  return { fetch, requests };
}

test("connect, 304s, a new table, then the last good one through failures", async () => {
  const state = { body: tableOf(["a:1", "b:1", "c:1"]) };
  const { fetch, requests } = fakeFetch(state);
  const events = [];
  const onRefresh = (e) => events.push(e);
  const client = await Client.connect("http://server:1/", { fetch, refreshMs: 3_600_000, onRefresh });
  try {
    assert.equal(requests[0].url, "http://server:1/table");
    assert.equal(requests[0].ifNoneMatch, undefined);
    assert.equal(client.fingerprint, state.body.fingerprint);
    assert.ok(client.lastRefresh instanceof Date);
    const first = client.table;

    assert.equal(await client.refresh(), null);
    assert.equal(requests[1].ifNoneMatch, `W/"${state.body.fingerprint}"`);
    assert.equal(client.table, first, "a 304 keeps the very same table");

    state.body = tableOf(["a:1", "b:1"]);
    assert.equal(await client.refresh(), null);
    assert.equal(client.fingerprint, state.body.fingerprint);
    const good = client.fingerprint;

    state.down = new TypeError("fetch failed");
    assert.equal(await client.refresh(), state.down);
    assert.equal(client.lastError, state.down);
    assert.equal(client.fingerprint, good);
    assert.equal(client.lookup("s", "k", { max: 2 }).length, 2);

    state.down = null;
    const altered = tableOf(["a:1", "b:1", "x:1"]);
    altered.services[0].nodes[2] = "y:1";
    state.body = altered;
    const error = await client.refresh();
    assert.ok(error instanceof TableError && error.code === "unverified", String(error));
    assert.equal(client.fingerprint, good);

    state.body = { ...tableOf(["a:1"]), algorithm: 1 };
    assert.match(String(await client.refresh()), /`Algorithm = 2`/);
    assert.equal(client.fingerprint, good);

    const stripped = tableOf(["q:1"]);
    delete stripped.services[0].fingerprint;
    state.body = stripped;
    assert.match(String(await client.refresh()), /carries no fingerprint/);
    assert.equal(client.fingerprint, good);
    assert.deepEqual(
      events.map((e) => [e.changed, e.error === null, e.fingerprint]),
      [
        [true, true, first.fingerprint],
        [false, true, first.fingerprint],
        [true, true, good],
        [false, false, good],
        [false, false, good],
        [false, false, good],
        [false, false, good],
      ],
    );
  } finally {
    client.close();
  }
});

test("connect rejects when the first table cannot be had", async () => {
  const { fetch } = fakeFetch({ down: new TypeError("fetch failed") });
  await assert.rejects(Client.connect("http://server:1", { fetch }), /fetch failed/);
  const alg1 = fakeFetch({ body: { ...tableOf(["a:1"]), algorithm: 1 } });
  await assert.rejects(Client.connect("http://server:1", { fetch: alg1.fetch }), /`Algorithm = 2`/);
  await assert.rejects(Client.connect("http://server:1", { fetch, refreshMs: 0 }), RangeError);
});

test("the background refresh polls with jitter, and close() stops it", async () => {
  const state = { body: tableOf(["a:1", "b:1"]) };
  const { fetch, requests } = fakeFetch(state);
  const client = await Client.connect("http://server:1", { fetch, refreshMs: 20, jitter: 0.5 });
  state.body = tableOf(["a:1", "b:1", "c:1"]);
  const deadline = Date.now() + 10_000;
  while (client.fingerprint !== state.body.fingerprint && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(client.fingerprint, state.body.fingerprint);
  client.close();
  const seen = requests.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(requests.length <= seen + 1, "at most the poll under way finishes after close()");
});
