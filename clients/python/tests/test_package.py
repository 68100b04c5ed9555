"""The package's own behaviour, without a keyrouter server: run by
tests/integration/python_client.rs (``python -m unittest discover -s clients/python/tests``);
the comparisons with the real server are there."""

import http.server
import json
import os
import tempfile
import threading
import unittest

import keyrouter
from keyrouter import Client, Table

SERVICES = [
    {"name": "bar", "nodes": [{"node": "bar1:8080"}, {"node": "bar2:8080"}, {"node": "bar3:8080"}]},
    {"name": "ids", "nodes": [{"node": "10.0.0.1:80", "id": "web-0"}, {"node": "10.0.0.2:80", "id": "web-1", "weight": 2.0}]},
]


def table_document(table):
    """The ``/table`` document the server would serve for ``table`` (built from SERVICES)."""
    services = []
    for s in SERVICES:
        doc = {"name": s["name"], "nodes": [n["node"] for n in s["nodes"]]}
        if any("id" in n for n in s["nodes"]):
            doc["ids"] = [n.get("id", n["node"]) for n in s["nodes"]]
        if any("weight" in n for n in s["nodes"]):
            doc["weights"] = [n.get("weight", 1.0) for n in s["nodes"]]
        doc["fingerprint"] = table.service_fingerprint(s["name"])
        services.append(doc)
    return {"fingerprint": table.fingerprint, "algorithm": table.algorithm, "services": services}


class TableTest(unittest.TestCase):
    def setUp(self):
        self.table = Table.from_services(SERVICES, algorithm=2)

    def test_the_documented_answer(self):
        # docs/ranking.md's first vector: algorithm 2, "ryans" over bar1..3.
        self.assertEqual(self.table.lookup("bar", "ryans", min=1, max=3), ["bar3:8080", "bar1:8080", "bar2:8080"])

    def test_rank_takes_any_key_and_lookup_refuses_an_empty_one(self):
        self.assertEqual(self.table.rank("bar", "ryans", 5), self.table.lookup("bar", "ryans", max=5))
        self.assertEqual(len(self.table.rank("bar", "", 2)), 2)
        with self.assertRaises(keyrouter.InvalidLookupError) as e:
            self.table.lookup("bar", "")
        self.assertEqual(str(e.exception), "`key` must not be empty")
        with self.assertRaises(keyrouter.InvalidLookupError):
            self.table.lookup_many("bar", ["a", ""])
        # No keys: the server's 400 to an empty batch, from a list or an exhausted iterator.
        for keys in ([], iter([])):
            with self.assertRaises(keyrouter.InvalidLookupError) as e:
                self.table.lookup_many("bar", keys)
            self.assertEqual(str(e.exception), "`keys` must not be empty")

    def test_max_defaults_to_min(self):
        self.assertEqual(len(self.table.lookup("bar", "k")), 1)
        self.assertEqual(len(self.table.lookup("bar", "k", min=2)), 2)
        self.assertEqual(len(self.table.lookup("bar", "k", min=0, max=100)), 3)

    def test_lookup_many_keeps_the_first_order_of_distinct_keys(self):
        got = self.table.lookup_many("bar", ["b", "a", "b", "c"], max=2)
        self.assertEqual(list(got), ["b", "a", "c"])
        for key, answer in got.items():
            self.assertEqual(answer, self.table.lookup("bar", key, max=2))
        self.assertEqual(self.table.lookup_many("bar", iter(["x"])), {"x": self.table.lookup("bar", "x")})

    def test_errors_are_exceptions_with_the_servers_messages(self):
        with self.assertRaises(keyrouter.UnknownServiceError) as e:
            self.table.lookup("nope", "k")
        self.assertEqual(str(e.exception), 'unknown service "nope"')
        with self.assertRaises(keyrouter.InvalidLookupError) as e:
            self.table.lookup("bar", "k", min=3, max=2)
        self.assertEqual(str(e.exception), "min (3) is greater than max (2)")
        with self.assertRaises(keyrouter.NotEnoughNodesError) as e:
            self.table.lookup("bar", "k", min=4, max=4)
        self.assertEqual(str(e.exception), 'service "bar" has 3 node(s), fewer than min (4)')
        for cls in (keyrouter.UnknownServiceError, keyrouter.InvalidLookupError, keyrouter.NotEnoughNodesError):
            self.assertTrue(issubclass(cls, keyrouter.KeyrouterError))

    def test_exclude_leaves_nodes_out_by_identity(self):
        full = self.table.lookup("ids", "k", max=2)
        first_id = {"10.0.0.1:80": "web-0", "10.0.0.2:80": "web-1"}[full[0]]
        self.assertEqual(self.table.lookup("ids", "k", max=2, exclude=[first_id]), full[1:])
        # An address is not an identity when the node has an Id: nothing is left out.
        self.assertEqual(self.table.lookup("ids", "k", max=2, exclude=[full[0]]), full)
        with self.assertRaises(keyrouter.NotEnoughNodesError):
            self.table.lookup("ids", "k", min=2, max=2, exclude=["web-0"])

    def test_spread_accepts_zone_only(self):
        self.assertEqual(self.table.lookup("bar", "k", max=3, spread="zone"), self.table.lookup("bar", "k", max=3))
        with self.assertRaises(keyrouter.InvalidLookupError) as e:
            self.table.lookup("bar", "k", spread="rack")
        self.assertEqual(str(e.exception), '`spread` must be "zone" (the one spread there is), got "rack"')
        with self.assertRaises(keyrouter.InvalidLookupError) as e:
            self.table.lookup("bar", "k", min=3, max=2, spread="r" * 50)
        self.assertTrue(str(e.exception).endswith('got "' + "r" * 40 + '\u2026"'), str(e.exception))

    def test_the_table_describes_itself(self):
        self.assertEqual(self.table.services, ["bar", "ids"])
        self.assertEqual(len(self.table), 2)
        self.assertIn("bar", self.table)
        self.assertEqual(self.table.nodes("ids"), ["10.0.0.1:80", "10.0.0.2:80"])
        self.assertEqual(self.table.algorithm, 2)
        self.assertRegex(self.table.fingerprint, "^[0-9a-f]{16}$")

    def test_a_document_verifies_and_an_altered_one_does_not(self):
        doc = table_document(self.table)
        self.assertEqual(Table.from_json(json.dumps(doc)).fingerprint, self.table.fingerprint)
        alterations = [
            lambda d: d["services"][0]["nodes"].__setitem__(0, "bar9:8080"),
            lambda d: d["services"][1]["ids"].__setitem__(0, "web-9"),
            lambda d: d["services"][1]["weights"].__setitem__(1, 3.0),
            lambda d: d.__setitem__("algorithm", 1),
            lambda d: d["services"].pop(),
            lambda d: d["services"][0]["nodes"].pop(),
            lambda d: d["services"][1].pop("weights"),
            lambda d: d["services"][1]["ids"].pop(),
        ]
        for i, alter in enumerate(alterations):
            altered = json.loads(json.dumps(doc))
            alter(altered)
            with self.assertRaises(keyrouter.UnverifiedTableError, msg=f"alteration {i}"):
                Table.from_json(json.dumps(altered))
        for text in ["", "[]", '{"fingerprint": "0", "algorithm": 2}', json.dumps(doc)[:-5]]:
            with self.assertRaises(keyrouter.UnverifiedTableError):
                Table.from_json(text)

    def test_zones_count_in_the_fingerprint_and_spread_the_answer(self):
        nodes = [{"node": f"n{i}:1", "zone": ["a", "b"][i % 2]} for i in range(6)] + [{"node": "x:1"}]
        table = Table.from_services([{"name": "z", "nodes": nodes}])
        self.assertEqual(table.zones("z"), ["a", "b", "a", "b", "a", "b", None])
        self.assertIsNone(self.table.zones("bar"))
        plain = Table.from_services([{"name": "z", "nodes": [{"node": n["node"]} for n in nodes]}])
        self.assertNotEqual(table.fingerprint, plain.fingerprint)
        for key in ("k1", "k2", "k3"):
            spread = table.lookup("z", key, max=3, spread="zone")
            zones = {dict((n["node"], n.get("zone")) for n in nodes)[node] for node in spread}
            self.assertEqual(zones, {"a", "b", None}, spread)
        doc = {
            "fingerprint": table.fingerprint,
            "algorithm": 2,
            "services": [
                {
                    "name": "z",
                    "nodes": [n["node"] for n in nodes],
                    "zones": [n.get("zone") for n in nodes],
                    "fingerprint": table.service_fingerprint("z"),
                }
            ],
        }
        self.assertEqual(Table.from_json(json.dumps(doc)).fingerprint, table.fingerprint)
        doc["services"][0]["zones"][0] = "b"
        with self.assertRaises(keyrouter.UnverifiedTableError):
            Table.from_json(json.dumps(doc))

    def test_from_file_raises_config_error_with_line_and_column(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.toml")
            with open(path, "w") as f:
                f.write('[[Services]]\nName = "a"\nNodes = [{ Node = "x:1", Weight = 0 }]\n')
            with self.assertRaises(keyrouter.ConfigError) as e:
                Table.from_file(path)
            self.assertTrue(str(e.exception).startswith(f"{path}:3:"), str(e.exception))
            with open(path, "w") as f:
                f.write('Algorithm = 2\n[[Services]]\nName = "bar"\nNodes = ["bar1:8080", "bar2:8080", "bar3:8080"]\n')
            table = Table.from_file(path)
            self.assertEqual(table.lookup("bar", "ryans", max=3), self.table.lookup("bar", "ryans", max=3))
            with self.assertRaises(keyrouter.ConfigError) as e:
                Table.from_file(path, max_bytes=10)
            self.assertIn("services file too large", str(e.exception))


class Server:
    """A stand-in for keyrouter's ``/table`` on 127.0.0.1: serves ``self.body`` and counts
    requests; ``status`` other than 200 answers an error."""

    def __init__(self, body):
        self.body = body
        self.status = 200
        self.not_modified = False  # answer a matching If-None-Match with 304
        self.requests = 0
        self.if_none_match = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                outer.if_none_match.append(self.headers.get("If-None-Match"))
                if outer.not_modified and self.headers.get("If-None-Match") == '"etag-1"':
                    self.send_response(304)
                    self.send_header("ETag", '"etag-1"')
                    self.end_headers()
                    return
                body = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", '"etag-1"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.table = Table.from_services(SERVICES, algorithm=2)
        self.server = Server(json.dumps(table_document(self.table)))

    def tearDown(self):
        self.server.close()

    def test_client_answers_from_the_fetched_table(self):
        with Client(self.server.url, refresh=60) as client:
            self.assertEqual(client.fingerprint, self.table.fingerprint)
            self.assertEqual(client.lookup("bar", "ryans", max=3), self.table.lookup("bar", "ryans", max=3))
            self.assertEqual(client.lookup_many("ids", ["a", "b"], max=2), self.table.lookup_many("ids", ["a", "b"], max=2))
            self.assertIsNone(client.last_error)
            self.assertIsNotNone(client.last_refresh)

    def test_exclude_takes_any_iterable_of_identities_but_not_a_string(self):
        with Client(self.server.url, refresh=60, start=False) as client:
            first = client.lookup("bar", "k")[0]
            for make in (lambda: [first], lambda: (first,), lambda: {first}, lambda: iter([first])):
                self.assertNotIn(first, client.lookup("bar", "k", max=3, exclude=make()))
                self.assertNotIn(first, client.lookup_many("bar", ["k"], max=3, exclude=make())["k"])
            with self.assertRaises(TypeError) as e:
                client.lookup("bar", "k", exclude=first)
            self.assertEqual(str(e.exception), f"exclude takes a list of node identities, not a string: [{first!r}]?")
            with self.assertRaises(TypeError) as e:
                client.lookup_many("bar", ["k"], exclude=first)
            self.assertEqual(str(e.exception), f"exclude takes a list of node identities, not a string: [{first!r}]?")
            with self.assertRaises(TypeError):
                self.table.lookup("bar", "k", exclude=first)
            # Anything else fails as `list(exclude)` and then `Table.lookup` fail (`Client.lookup`
            # is in Rust, and converts `exclude` as the Python client did).
            for bad in (None, 5, [1], (first, 2)):
                try:
                    self.table.lookup("bar", "k", exclude=bad if isinstance(bad, list) else list(bad))
                except TypeError as e:
                    want = e
                with self.assertRaises(TypeError) as got:
                    client.lookup("bar", "k", exclude=bad)
                self.assertEqual(str(got.exception), str(want), bad)
            # The client reads its table once a lookup, and answers from the one it has.
            self.assertIs(client.table, client._table)
            self.assertEqual(client.lookup("bar", "k", 1, 2, (), None), self.table.lookup("bar", "k", max=2))

    def test_the_etag_is_sent_back(self):
        with Client(self.server.url, refresh=60, start=False) as client:
            self.assertIsNone(client.refresh())
            self.assertEqual(self.server.if_none_match, [None, '"etag-1"'])

    def test_not_modified_keeps_the_table_and_counts_as_a_good_refresh(self):
        with Client(self.server.url, refresh=60, start=False) as client:
            table = client.table
            self.server.not_modified = True
            self.server.status = 503  # what a 304 must not be mistaken for
            client.last_refresh = 0.0
            self.assertIsNone(client.refresh())
            self.assertIs(client.table, table)
            self.assertIsNone(client.last_error)
            self.assertGreater(client.last_refresh, 0.0)

    def test_a_failed_refresh_keeps_the_table_and_says_why(self):
        with Client(self.server.url, refresh=60, start=False) as client:
            before = client.last_refresh
            self.server.status = 503
            error = client.refresh()
            self.assertIsInstance(error, keyrouter.FetchError)
            self.assertIn("503", client.last_error)
            self.assertEqual(client.last_refresh, before)
            self.server.status = 200
            self.server.body = self.server.body.replace("bar1:8080", "bar7:8080")
            self.assertIsInstance(client.refresh(), keyrouter.UnverifiedTableError)
            self.assertIn("does not verify", client.last_error)
            self.assertEqual(client.fingerprint, self.table.fingerprint)
            self.assertEqual(client.lookup("bar", "k", max=3), self.table.lookup("bar", "k", max=3))

    def test_a_client_without_a_first_table_raises(self):
        self.server.status = 500
        with self.assertRaises(keyrouter.FetchError):
            Client(self.server.url)
        self.server.close()
        with self.assertRaises(keyrouter.FetchError) as e:
            Client(self.server.url, timeout=2)
        self.assertIn("cannot fetch", str(e.exception))
        self.server = Server("{}")
        with self.assertRaises(keyrouter.UnverifiedTableError):
            Client(self.server.url)

    def test_a_document_over_the_limit_is_refused(self):
        with self.assertRaises(keyrouter.FetchError) as e:
            Client(self.server.url, max_bytes=100)
        self.assertIn("larger than the limit of 100 bytes", str(e.exception))

    def test_the_background_refresh_polls_within_the_interval(self):
        with Client(self.server.url, refresh=0.05, jitter=0.5) as client:
            done = threading.Event()
            # Bounded: a few refreshes, or 30 s.
            for _ in range(3000):
                if client.refreshes >= 4:
                    done.set()
                    break
                threading.Event().wait(0.01)
            self.assertTrue(done.is_set(), f"only {client.refreshes} refreshes")
        stopped = client.refreshes
        threading.Event().wait(0.2)
        self.assertLessEqual(client.refreshes, stopped + 1, "close() stops the refresh")

    def test_a_lookup_never_mixes_two_tables(self):
        other = Table.from_services([{"name": "bar", "nodes": [{"node": "bar1:8080"}, {"node": "bar9:8080"}]}])
        doc_a = self.server.body
        doc_b = json.dumps(
            {
                "fingerprint": other.fingerprint,
                "algorithm": 2,
                "services": [{"name": "bar", "nodes": ["bar1:8080", "bar9:8080"], "fingerprint": other.service_fingerprint("bar")}],
            }
        )
        keys = [f"key-{i}" for i in range(20_000)]
        answers = {self.table.fingerprint: self.table.lookup_many("bar", keys), other.fingerprint: other.lookup_many("bar", keys)}
        with Client(self.server.url, refresh=60, start=False) as client:
            stop = threading.Event()

            def swap():
                # Bounded: 10 000 swaps at most.
                for i in range(10_000):
                    if stop.is_set():
                        return
                    self.server.body = doc_b if i % 2 else doc_a
                    client.refresh()

            swapper = threading.Thread(target=swap)
            swapper.start()
            seen = set()
            try:
                # At least 40 lookups, until both tables were seen (bounded).
                for i in range(2_000):
                    got = client.lookup_many("bar", keys)
                    matches = [f for f, answer in answers.items() if answer == got]
                    self.assertEqual(len(matches), 1, "an answer from neither table: two tables mixed")
                    seen.add(matches[0])
                    if i >= 40 and len(seen) == 2:
                        break
            finally:
                stop.set()
                swapper.join()
            self.assertIsNone(client.last_error)
            self.assertEqual(len(seen), 2, "the table never changed during the lookups: the test proved nothing")

    def test_bad_settings_are_refused(self):
        for kwargs in [{"refresh": 0}, {"refresh": -1}, {"jitter": 1}, {"jitter": -0.1}]:
            with self.assertRaises(ValueError, msg=str(kwargs)):
                Client(self.server.url, **kwargs)


if __name__ == "__main__":
    unittest.main()
