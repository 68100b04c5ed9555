"""A local lookup against the same lookup over HTTP to the server on loopback, in one run.

    cargo build --release --bin keyrouter
    cargo test --test integration python_client::   # builds the package into target/tmp
    target/tmp/venv-python-client/bin/python clients/python/bench.py target/release/keyrouter

For 100 and 10 000 nodes, unweighted then weighted (weights 1 to 5), it starts the server
(port 0) on a generated services file, connects a ``Client`` and times, in alternating rounds: ``client.lookup`` (one key, max 3), one key of
``client.lookup_many`` over 10 000 keys, and ``POST /service/{name}`` with the same key on one
kept-alive connection (``http.client``: the cheapest a Python program asks the server) and on
a new connection each (``urllib.request``, what a program without a session does). It prints
the median per-key cost of each and the median of each round's ratio HTTP / local. Medians of alternating
rounds: the machine is shared and noisy, and what runs second must not win by warmth.
"""

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import keyrouter


def start_server(binary, nodes, weighted, directory):
    path = os.path.join(directory, f"services-{nodes}-{weighted}.toml")
    with open(path, "w") as f:
        if weighted:
            listed = ", ".join(f'{{ Node = "node-{i}.example:8080", Weight = {1 + i % 5} }}' for i in range(nodes))
        else:
            listed = ", ".join(f'"node-{i}.example:8080"' for i in range(nodes))
        f.write(f'Algorithm = 2\n[[Services]]\nName = "bench"\nNodes = [{listed}]\n')
    server = subprocess.Popen(
        [binary, "--services", path, "--address", "127.0.0.1:0", "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    for line in server.stderr:
        m = re.search(r"listening on .*:(\d+)", line)
        if m:
            return server, int(m.group(1))
        if time.monotonic() > deadline:
            break
    server.kill()
    raise SystemExit(f"the server did not start: {line}")


def per_key(fn, count):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / count


def bench(binary, nodes, weighted, rounds, directory):
    server, port = start_server(binary, nodes, weighted, directory)
    try:
        client = keyrouter.Client(f"http://127.0.0.1:{port}", refresh=3600)
        keys = [f"user:{i}" for i in range(10_000)]
        conn = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Content-Type": "application/json"}

        def local():
            lookup = client.lookup
            for key in keys:
                lookup("bench", key, 1, 3)

        def many():
            client.lookup_many("bench", keys, 1, 3)

        http_keys = keys[:500]

        def over_http():
            for key in http_keys:
                conn.request("POST", "/service/bench", json.dumps({"key": key, "max": 3}), headers)
                answer = json.loads(conn.getresponse().read())
                assert len(answer) == 3

        fresh_keys = keys[:200]

        def over_http_fresh():
            # What a program with urllib and no session does: a connection per lookup.
            for key in fresh_keys:
                body = json.dumps({"key": key, "max": 3}).encode()
                request = urllib.request.Request(f"http://127.0.0.1:{port}/service/bench", body, headers)
                with urllib.request.urlopen(request) as response:
                    assert len(json.loads(response.read())) == 3

        # The same answers, or the comparison means nothing.
        conn.request("POST", "/service/bench", json.dumps({"key": keys[0], "max": 3}), headers)
        assert json.loads(conn.getresponse().read()) == client.lookup("bench", keys[0], max=3)
        results = {"local": [], "lookup_many": [], "http": [], "http_fresh": []}
        for _ in range(rounds):
            results["local"].append(per_key(local, len(keys)))
            results["http"].append(per_key(over_http, len(http_keys)))
            results["lookup_many"].append(per_key(many, len(keys)))
            results["http_fresh"].append(per_key(over_http_fresh, len(fresh_keys)))
        client.close()
        medians = {name: statistics.median(times) for name, times in results.items()}
        # Each round's own ratio, then their median: a round's two figures share its load.
        for http_name in ("http", "http_fresh"):
            ratios = [h / l for h, l in zip(results[http_name], results["local"])]
            medians[http_name + "_ratio"] = statistics.median(ratios)
        return medians
    finally:
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("keyrouter", help="the server binary (a release build)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.rounds} alternating rounds, medians per key")
    with tempfile.TemporaryDirectory() as directory:
        for weighted in (False, True):
            for nodes in (100, 10_000):
                r = bench(args.keyrouter, nodes, weighted, args.rounds, directory)
                print(
                    f"{'weighted' if weighted else 'unweighted':>10} {nodes:>6} nodes: lookup {r['local'] * 1e6:6.2f} us, lookup_many {r['lookup_many'] * 1e6:6.2f} us/key;"
                    f" HTTP kept alive {r['http'] * 1e6:6.1f} us = {r['http_ratio']:5.1f}x lookup,"
                    f" HTTP new connection {r['http_fresh'] * 1e6:6.1f} us = {r['http_fresh_ratio']:5.1f}x"
                )


if __name__ == "__main__":
    main()
