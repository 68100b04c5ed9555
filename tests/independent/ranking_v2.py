"""Keyrouter ranking algorithm 2, written from docs/ranking.md alone.

This is an independent implementation: it exists to show that the
specification is enough to reproduce the server's answers and fingerprints bit
for bit. It deliberately shares no code with the Rust crate. Run it as a
checker over the conformance vectors:

    python3 ranking_v2.py crates/ranking/tests/vectors/algorithm2.json
    python3 ranking_v2.py crates/ranking/tests/vectors/lookup-options.json

The second file holds lookups with options (exclude, spread=zone) for both
algorithms; only algorithm 2's cases can be checked here (algorithm 1 is ahash,
specified by its Rust source only), and the others are counted as skipped.

It needs Python 3.9+ and the `xxhash` package from PyPI (XXH64 itself is not
the point here; the JavaScript twin implements it from the xxHash
specification).
"""

import json
import struct
import sys

import xxhash

MASK64 = (1 << 64) - 1

KEY_SEED = 0x6B6579726F757465  # "keyroute"
ID_SEED = 0x722072656E64657A  # "r rendez"
ALGORITHM = 2
GOLDEN = 0x9E3779B97F4A7C15
ADDRESS_TAG = 0x6164647265737321  # "address!"
ZONE_TAG = 0x7A6F6E6521212121  # "zone!!!!"


# --- Hashes ------------------------------------------------------------------


def xxh64(text, seed):
    """XXH64 of the UTF-8 bytes of `text`."""
    return xxhash.xxh64_intdigest(text.encode("utf-8"), seed=seed)


def fmix64(x):
    """MurmurHash3's 64-bit finalizer; products wrap modulo 2^64."""
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    x ^= x >> 33
    return x


def key_hash(key):
    return xxh64(key, KEY_SEED)


def id_hash(identity):
    return xxh64(identity, ID_SEED)


def score(khash, ihash):
    return fmix64(khash ^ ihash)


# --- fdlibm log --------------------------------------------------------------
#
# A port of fdlibm's e_log.c. Python floats are binary64 and CPython rounds
# each operation once (no fused multiply-add), which is what makes a
# line-by-line port give the same bits as the server. The constants are given
# by their bit patterns so that no decimal parsing is involved.


def _f64(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _signed32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


_LN2_HI = _f64(0x3FE62E42FEE00000)
_LN2_LO = _f64(0x3DEA39EF35793C76)
_TWO54 = _f64(0x4350000000000000)
_LG1 = _f64(0x3FE5555555555593)
_LG2 = _f64(0x3FD999999997FA04)
_LG3 = _f64(0x3FD2492494229359)
_LG4 = _f64(0x3FCC71C51D8E78AF)
_LG5 = _f64(0x3FC7466496CB03DE)
_LG6 = _f64(0x3FC39A09D078C69F)
_LG7 = _f64(0x3FC2F112DF3E5244)


def fdlibm_log(x):
    """Natural logarithm, bit-identical to fdlibm's __ieee754_log."""
    b = _bits(x)
    hx = _signed32(b >> 32)  # the C code's int32_t high word
    lx = b & 0xFFFFFFFF
    k = 0
    if hx < 0x00100000:  # zero, negative or subnormal
        if ((hx & 0x7FFFFFFF) | lx) == 0:
            return float("-inf")
        if hx < 0:
            return float("nan")
        k -= 54
        x *= _TWO54
        hx = _signed32(_bits(x) >> 32)
    if hx >= 0x7FF00000:
        return x + x
    k += (hx >> 20) - 1023
    hx &= 0x000FFFFF
    i = (hx + 0x95F64) & 0x100000
    # Normalize x or x/2 into [sqrt(2)/2, sqrt(2)) by replacing the high word.
    high = (hx | (i ^ 0x3FF00000)) & 0xFFFFFFFF
    x = _f64((high << 32) | (_bits(x) & 0xFFFFFFFF))
    k += i >> 20
    f = x - 1.0
    if (0x000FFFFF & (2 + hx)) < 3:  # -2**-20 <= f < 2**-20
        if f == 0.0:
            if k == 0:
                return 0.0
            dk = float(k)
            return dk * _LN2_HI + dk * _LN2_LO
        r = f * f * (0.5 - 0.33333333333333333 * f)
        if k == 0:
            return f - r
        dk = float(k)
        return dk * _LN2_HI - ((r - dk * _LN2_LO) - f)
    s = f / (2.0 + f)
    dk = float(k)
    z = s * s
    i = hx - 0x6147A
    w = z * z
    j = 0x6B851 - hx
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    i |= j
    r = t2 + t1
    if i > 0:
        hfsq = 0.5 * f * f
        if k == 0:
            return f - (hfsq - s * (hfsq + r))
        return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
    if k == 0:
        return f - s * (f - r)
    return dk * _LN2_HI - ((s * (f - r) - dk * _LN2_LO) - f)


def weighted_score(s, weight):
    """ws = -weight / log(u), u = ((s >> 12) + 0.5) * 2^-52.

    Only the log and the division round: u is exact.
    """
    u = (float(s >> 12) + 0.5) * 2.0 ** -52
    return -weight / fdlibm_log(u)


# --- Services ----------------------------------------------------------------


class Node:
    __slots__ = ("address", "identity", "weight", "zone", "id_hash", "id_bytes")

    def __init__(self, address, identity=None, weight=1.0, zone=None):
        self.address = address
        self.identity = address if identity is None else identity
        self.weight = float(weight)
        # None: the zone of the nodes without one.
        self.zone = zone
        self.id_hash = id_hash(self.identity)
        # Ties are broken on the UTF-8 bytes; Python compares bytes as
        # unsigned, a proper prefix first, as the spec wants.
        self.id_bytes = self.identity.encode("utf-8")


def is_weighted(nodes):
    """Whether at least two nodes have different weights."""
    return len({n.weight for n in nodes}) > 1


def ranking(nodes, key):
    """All nodes of a service, best first, for `key`."""
    kh = key_hash(key)
    if is_weighted(nodes):
        def order(n):
            s = score(kh, n.id_hash)
            return (-weighted_score(s, n.weight), -s, n.id_bytes)
    else:
        def order(n):
            return (-score(kh, n.id_hash), n.id_bytes)
    return sorted(nodes, key=order)


def lookup(nodes, key, k):
    """The addresses of the min(k, n) best nodes (k plays the spec's `max`)."""
    return [n.address for n in ranking(nodes, key)[:k]]


def lookup_with(nodes, key, min_, max_, exclude=(), spread=None):
    """A lookup with options: None when fewer than `min_` nodes are left.

    exclude: the answer of the service without the nodes of those identities.
    spread "zone": each zone's best node in rank order until every zone is
    represented, then the other nodes in rank order.
    """
    gone = set(exclude)
    rest = [n for n in nodes if n.identity not in gone]
    if len(rest) < min_:
        return None
    ranked = ranking(rest, key)
    if spread == "zone":
        seen = set()
        bests, others = [], []
        for n in ranked:
            if n.zone in seen:
                others.append(n)
            else:
                seen.add(n.zone)
                bests.append(n)
        ranked = bests + others
    return [n.address for n in ranked[:max_]]


def service_fingerprint(nodes):
    weighted = is_weighted(nodes)
    acc = fmix64(ALGORITHM ^ GOLDEN)
    for n in nodes:
        w = n.weight if weighted else 1.0
        if n.identity != n.address:
            a = fmix64(xxh64(n.address, ID_SEED) ^ ADDRESS_TAG)
        else:
            a = 0
        z = fmix64(xxh64(n.zone, ID_SEED) ^ ZONE_TAG) if n.zone is not None else 0
        acc = (acc + fmix64(n.id_hash ^ fmix64(_bits(w)) ^ a ^ z)) & MASK64
    return fmix64(acc ^ len(nodes))


def table_fingerprint(services):
    """`services` is a list of (name, nodes); its order does not matter."""
    acc = fmix64(ALGORITHM)
    for name, nodes in sorted(services, key=lambda s: s[0].encode("utf-8")):
        acc = fmix64(acc ^ xxh64(name, ID_SEED))
        acc = (acc + service_fingerprint(nodes)) & MASK64
    return fmix64(acc)


# --- Vector checker ----------------------------------------------------------


def hex64(v):
    return "%016x" % v


def quoted(value):
    # JSON, as the JavaScript checker prints keys and values: one spelling.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def nodes_of(service):
    return [Node(n["node"], n.get("id"), n.get("weight", 1.0), n.get("zone"))
            for n in service["nodes"]]


def check_options(vectors):
    """The lookup-options vectors: returns (passed, skipped, failures)."""
    passed, skipped = 0, 0
    failures = []
    for case in vectors["cases"]:
        if case["algorithm"] != ALGORITHM:
            skipped += 1 + len(case["lookups"])
            continue
        nodes = nodes_of(case)
        name = case["name"]
        got = hex64(service_fingerprint(nodes))
        if got == case["fingerprint"]:
            passed += 1
        else:
            failures.append("case %s fingerprint: expected %s, got %s"
                            % (name, quoted(case["fingerprint"]), quoted(got)))
        for c in case["lookups"]:
            what = "case %s lookup key %s min=%d max=%d exclude=%s spread=%s" % (
                name, quoted(c["key"]), c["min"], c["max"],
                quoted(c["exclude"]), quoted(c.get("spread")))
            got = lookup_with(nodes, c["key"], c["min"], c["max"],
                              c["exclude"], c.get("spread"))
            if got == c["expected"]:
                passed += 1
            else:
                failures.append("%s: expected %s, got %s"
                                % (what, quoted(c["expected"]), quoted(got)))
    return passed, skipped, failures


def check(vectors):
    """Returns (number of cases passed, list of failure descriptions)."""
    passed = 0
    failures = []

    def expect(case, got, want):
        nonlocal passed
        if got == want:
            passed += 1
        else:
            failures.append("%s: expected %s, got %s"
                            % (case, quoted(want), quoted(got)))

    for c in vectors["xxh64"]:
        expect("xxh64 %s seed %s" % (quoted(c["input"]), c["seed"]),
               hex64(xxh64(c["input"], int(c["seed"], 16))), c["hash"])
    for c in vectors["fmix64"]:
        expect("fmix64 %s" % c["input"],
               hex64(fmix64(int(c["input"], 16))), c["output"])

    parsed = [nodes_of(s) for s in vectors["services"]]
    for service, nodes in zip(vectors["services"], parsed):
        name = service["name"]
        expect("service %s fingerprint" % name,
               hex64(service_fingerprint(nodes)), service["fingerprint"])
        for c in service["lookups"]:
            # One case per lookup: its key hash and its answer must both match.
            case = "service %s lookup key %s k=%d" % (
                name, quoted(c["key"]), c["k"])
            got_hash = hex64(key_hash(c["key"]))
            if got_hash != c["key_hash"]:
                expect(case + " key_hash", got_hash, c["key_hash"])
                continue
            expect(case, lookup(nodes, c["key"], c["k"]), c["expected"])

    for t in vectors["tables"]:
        members = [(vectors["services"][i]["name"], parsed[i])
                   for i in t["services"]]
        expect("table %s fingerprint" % quoted(t["services"]),
               hex64(table_fingerprint(members)), t["fingerprint"])
    return passed, failures


def main(argv):
    if len(argv) != 2:
        print("usage: ranking_v2.py VECTORS.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        vectors = json.load(f)
    if "cases" in vectors:
        passed, skipped, failures = check_options(vectors)
        for line in failures[:10]:
            print("FAIL " + line)
        if len(failures) > 10:
            print("... and %d more failures" % (len(failures) - 10))
        print("python: %d passed, %d failed, %d skipped (algorithm 1)"
              % (passed, len(failures), skipped))
        return 1 if failures else 0
    if vectors.get("algorithm") != ALGORITHM:
        print("not algorithm %d vectors" % ALGORITHM, file=sys.stderr)
        return 2
    passed, failures = check(vectors)
    for line in failures[:10]:
        print("FAIL " + line)
    if len(failures) > 10:
        print("... and %d more failures" % (len(failures) - 10))
    print("python: %d passed, %d failed" % (passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
