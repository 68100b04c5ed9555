//! The ranking core: rendezvous (highest-random-weight) hashing over an immutable table.
//!
//! Pure code: no I/O, no logging, no async. It could be published as its own crate.
//!
//! Every node gets a score from a seeded hash of the key and the node ([`hash`]); the answer is
//! the nodes with the highest scores, best first ([`topk`]). Removing a node moves only the keys
//! it owned, adding one takes a fair share from every other node, and the answer does not depend
//! on the order of the nodes in the file.
//!
//! ```
//! use keyrouter_ranking::{ServiceSpec, Table};
//! let (table, _) = Table::build([ServiceSpec::new("bar", ["bar1:8080", "bar2:8080"])]).unwrap();
//! let answer = table.get("bar").unwrap().lookup("ryans", 1, 3).unwrap();
//! assert_eq!(answer.len(), 2);
//! ```

pub mod hash;
pub mod small;
mod table;
pub mod topk;
pub mod weighted;

pub use hash::{Algorithm, MAX_WEIGHT, MIN_WEIGHT, V2_ID_SEED, V2_KEY_SEED};
pub use table::{
    fingerprint_hex, unweighted_order, weighted_order, BuildReport, LookupError, LookupOptions, NodeSpec, Resolved,
    Service, ServiceSpec, Spread, Table, TableError,
};

/// Known answers, copied from `tests/golden.jsonl`: `(nodes, key, k, expected)`.
const SELF_CHECK: &[(&[&str], &str, usize, &[&str])] = &[
    (&["bar1:8080", "bar2:8080", "bar3:8080"], "ryans", 3, &["bar2:8080", "bar1:8080", "bar3:8080"]),
    (&["bar1:8080", "bar2:8080", "bar3:8080"], "ryans", 1, &["bar2:8080"]),
    (
        &["узел-0.example:80", "узел-1.example:80", "узел-2.example:80"],
        "user:406766",
        3,
        &["узел-2.example:80", "узел-0.example:80", "узел-1.example:80"],
    ),
    (
        &["10.218.76.205:8152", "10.121.25.33:8906", "10.117.3.69:8404", "10.165.4.196:8207"],
        "user:349759",
        4,
        &["10.121.25.33:8906", "10.218.76.205:8152", "10.117.3.69:8404", "10.165.4.196:8207"],
    ),
    (
        &[
            "node 0 \"quoted\"\t127",
            "node 1 \"quoted\"\t699",
            "node 2 \"quoted\"\t409",
            "node 3 \"quoted\"\t156",
            "node 4 \"quoted\"\t729",
        ],
        "ryans",
        2,
        &["node 0 \"quoted\"\t127", "node 4 \"quoted\"\t729"],
    ),
    (
        &["[fd00::9f44]:443", "[fd00::850]:443", "[fd00::83f0]:443"],
        "session 13 🚀",
        3,
        &["[fd00::83f0]:443", "[fd00::9f44]:443", "[fd00::850]:443"],
    ),
    (&["bar0:8080", "bar1:8080", "bar2:8080", "bar3:8080"], "ключ-25", 3, &["bar3:8080", "bar0:8080", "bar2:8080"]),
];

/// Known weighted answers (they also pin the logarithm), from `tests/golden.jsonl`.
#[allow(clippy::type_complexity)]
const SELF_CHECK_WEIGHTED: &[(&[(&str, f64)], &str, usize, &[&str])] = &[
    (
        &[("w0.example:7007", 0.125), ("w1.example:7007", 0.125), ("w2.example:7007", 10.0), ("w3.example:7007", 2.0)],
        "weighted-key-61263",
        1,
        &["w2.example:7007"],
    ),
    (
        &[
            ("w0.example:7008", 0.5),
            ("w1.example:7008", 0.5),
            ("w2.example:7008", 1.0),
            ("w3.example:7008", 2.5),
            ("w4.example:7008", 0.5),
            ("w5.example:7008", 10.0),
        ],
        "weighted-key-43829",
        1,
        &["w0.example:7008"],
    ),
];

/// Known answers of algorithm 2, from `tests/vectors/algorithm2.json`: `(nodes as (address, Id,
/// weight), key, k, expected)`. They pin XXH64, the Ids and the logarithm.
#[allow(clippy::type_complexity)]
const SELF_CHECK_V2: &[(&[(&str, Option<&str>, f64)], &str, usize, &[&str])] = &[
    (
        &[("bar1:8080", None, 1.0), ("bar2:8080", None, 1.0), ("bar3:8080", None, 1.0)],
        "ryans",
        3,
        &["bar3:8080", "bar1:8080", "bar2:8080"],
    ),
    (
        &[("a:1", None, 1.0), ("10.0.0.5:8080", Some("web-0"), 1.0), ("b:1", Some("web-1"), 2.0)],
        "ключ",
        3,
        &["10.0.0.5:8080", "b:1", "a:1"],
    ),
    (
        &[("a:1", None, 1.0), ("10.0.0.5:8080", Some("web-0"), 1.0), ("b:1", Some("web-1"), 2.0)],
        "session 🚀",
        3,
        &["a:1", "b:1", "10.0.0.5:8080"],
    ),
];

/// The ranking of this build differs from the pinned one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "hash self-check failed: algorithm {algorithm}, key {key:?} ranks {got:?}, expected {expected:?}. This \
     build hashes differently from every other keyrouter (another ahash or xxhash version, or CPU-specific \
     code such as AES enabled by target-cpu flags); it would send keys to the wrong nodes, so it must not serve"
)]
pub struct SelfCheckError {
    pub algorithm: u32,
    pub key: String,
    pub got: Vec<String>,
    pub expected: Vec<String>,
}

/// One self-check vector: the algorithm, the nodes, key, k and the answer.
pub type SelfCheckVector = (Algorithm, Vec<NodeSpec>, &'static str, usize, Vec<&'static str>);

/// Every vector [`self_check`] recomputes, for both algorithms and weighted ones included, so
/// that the tests can prove each is a golden or conformance vector.
#[doc(hidden)]
pub fn self_check_vectors() -> impl Iterator<Item = SelfCheckVector> {
    let unweighted = SELF_CHECK
        .iter()
        .map(|(n, key, k, e)| (Algorithm::V1, n.iter().map(|n| NodeSpec::new(*n)).collect(), *key, *k, e.to_vec()));
    let weighted = SELF_CHECK_WEIGHTED.iter().map(|(n, key, k, e)| {
        let nodes = n.iter().map(|&(node, weight)| NodeSpec::weighted(node, weight)).collect();
        (Algorithm::V1, nodes, *key, *k, e.to_vec())
    });
    let v2 = SELF_CHECK_V2.iter().map(|(n, key, k, e)| {
        let nodes = n
            .iter()
            .map(|&(node, id, weight)| NodeSpec { node: node.into(), id: id.map(String::from), weight, zone: None })
            .collect();
        (Algorithm::V2, nodes, *key, *k, e.to_vec())
    });
    unweighted.chain(weighted).chain(v2)
}

/// Recomputes known answers of every algorithm; an error means this build would disagree with
/// other replicas (and, for algorithm 2, with every other implementation).
pub fn self_check() -> Result<(), SelfCheckError> {
    for (algorithm, nodes, key, k, expected) in self_check_vectors() {
        let spec = ServiceSpec { name: "self-check".into(), nodes };
        let (service, _) = Service::build_with(spec, algorithm).expect("self-check nodes are valid");
        let mut got = Vec::new();
        service.rank_into(key, k, &mut got);
        if got != expected {
            return Err(SelfCheckError {
                algorithm: algorithm.number(),
                key: key.to_string(),
                got: got.iter().map(|s| s.to_string()).collect(),
                expected: expected.iter().map(|s| s.to_string()).collect(),
            });
        }
    }
    Ok(())
}

/// Tells, on the test output whatever the harness captures, that a test could not check a code
/// path on this CPU: a path that was not checked must show, not pass quietly.
#[cfg(test)]
pub(crate) fn say_not_tested(test: &str, why: &str) {
    use std::io::Write;
    // Straight to the stderr handle: `eprintln!` output is captured and shown only on failure.
    let _ = writeln!(std::io::stderr(), "NOT TESTED in {test}: {why}");
}
