"""Drives the keyrouter package for tests/integration/python_client.rs: one JSON request per line
on stdin, one JSON answer per line on stdout. The Rust test owns the server (starts it, sends it
SIGHUP, stops it) and compares; this process only does what a program using the package does.

Answers: {"ok": ...} or {"error": "ExceptionClass", "message": "..."}.
"""

import json
import sys
import time

import keyrouter

client = None


def state():
    return {
        "fingerprint": client.fingerprint,
        "last_refresh": client.last_refresh,
        "last_error": client.last_error,
        "refreshes": client.refreshes,
    }


def wait_until(predicate, timeout):
    """Polls ``predicate`` every 5 ms for up to ``timeout`` seconds; returns the seconds it took,
    or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.005)
    return None


def vectors(path):
    """Every service, lookup and table of the algorithm-2 conformance vectors, through the
    package; returns how many checks passed, or raises at the first that does not."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    checked = 0
    for s in doc["services"]:
        table = keyrouter.Table.from_services([{"name": s["name"], "nodes": s["nodes"]}], algorithm=doc["algorithm"])
        got = table.service_fingerprint(s["name"])
        assert got == s["fingerprint"], f"{s['name']}: fingerprint {got}, expected {s['fingerprint']}"
        checked += 1
        for case in s["lookups"]:
            got = table.rank(s["name"], case["key"], case["k"])
            assert got == case["expected"], f"{s['name']} {case['key']!r} k={case['k']}: {got} != {case['expected']}"
            checked += 1
    for t in doc["tables"]:
        services = [doc["services"][i] for i in t["services"]]
        table = keyrouter.Table.from_services(
            [{"name": s["name"], "nodes": s["nodes"]} for s in services], algorithm=doc["algorithm"]
        )
        assert table.fingerprint == t["fingerprint"], f"table {t['services']}: {table.fingerprint} != {t['fingerprint']}"
        checked += 1
    return checked


def option_vectors(path):
    """The lookup-options vectors (exclude, spread=zone, zones; both algorithms) through the
    package: fingerprints, and every lookup through ``lookup`` (``rank`` for the empty key,
    which a lookup refuses as the server does)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    checked = 0
    for case in doc["cases"]:
        table = keyrouter.Table.from_services([{"name": case["name"], "nodes": case["nodes"]}], algorithm=case["algorithm"])
        assert table.service_fingerprint(case["name"]) == case["fingerprint"], case["name"]
        checked += 1
        for look in case["lookups"]:
            args = dict(exclude=look["exclude"], spread=look.get("spread"))
            where = f"{case['name']} {look}"
            if look["key"] == "":
                if look["expected"] is not None:
                    got = table.rank(case["name"], "", look["max"], **args)
                    assert got == look["expected"], f"{where}: {got}"
                    checked += 1
                continue
            try:
                got = table.lookup(case["name"], look["key"], min=look["min"], max=look["max"], **args)
            except keyrouter.NotEnoughNodesError:
                got = None
            assert got == look["expected"], f"{where}: {got}"
            checked += 1
    return checked


def handle(req):
    global client
    op = req["op"]
    if op == "connect":
        client = keyrouter.Client(req["url"], refresh=req["refresh"])
        return state()
    if op == "state":
        return state()
    if op == "lookup_many":
        return client.lookup_many(
            req["service"], req["keys"], min=req.get("min", 1), max=req.get("max"),
            exclude=req.get("exclude", ()), spread=req.get("spread"),
        )
    if op == "lookup":
        return client.lookup(
            req["service"], req["key"], min=req.get("min", 1), max=req.get("max"),
            exclude=req.get("exclude", ()), spread=req.get("spread"),
        )
    if op == "wait_fingerprint":
        took = wait_until(lambda: client.fingerprint == req["fingerprint"], req["timeout"])
        return {"seconds": took, **state()}
    if op == "wait_refreshes":
        took = wait_until(lambda: client.refreshes >= req["count"], req["timeout"])
        return {"seconds": took, **state()}
    if op == "from_file":
        return keyrouter.Table.from_file(req["path"]).fingerprint
    if op == "vectors":
        return vectors(req["path"])
    if op == "option_vectors":
        return option_vectors(req["path"])
    raise ValueError(f"unknown op {op!r}")


def main():
    for line in sys.stdin:
        req = json.loads(line)
        try:
            answer = {"ok": handle(req)}
        except Exception as e:  # every error goes back to the test, named
            answer = {"error": type(e).__name__, "message": str(e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
