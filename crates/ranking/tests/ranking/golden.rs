//! Golden vectors: the answers keyrouter has always given. If this test fails, keys would move
//! to other nodes for every client: the hash changed (ahash version, CPU features) or the
//! ranking did. Do not regenerate the file to make it pass, unless moving every key is the
//! decision (and it comes as a new `Algorithm`, never as a change to algorithm 1).
//!
//! Regenerate with `KEYROUTER_BLESS=1 cargo test -p keyrouter-ranking --test ranking golden`.

use crate::expected as answer;
use keyrouter_ranking::hash::mix;
use keyrouter_ranking::Algorithm;
use serde::{Deserialize, Serialize};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden.jsonl");

#[derive(Serialize, Deserialize, Debug)]
struct Case {
    nodes: Vec<String>,
    key: String,
    min: u64,
    max: u64,
    /// Per-node weights, for weighted cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights: Option<Vec<f64>>,
    expected: Vec<String>,
}

type Input = (Vec<String>, Option<Vec<f64>>, String, u64, u64);

/// The inputs, generated deterministically: varied sizes, node spellings and keys, then
/// weighted services.
fn inputs() -> Vec<Input> {
    let sizes = [1usize, 2, 3, 4, 5, 7, 10, 16, 33, 100, 257];
    let mut out = Vec::new();
    let mut r = 0x1234_5678u64;
    let mut next = || {
        r = mix(r.wrapping_add(0x9e37_79b9_7f4a_7c15));
        r
    };
    for i in 0..220u64 {
        let n = sizes[(i as usize) % sizes.len()];
        let style = next() % 5;
        let nodes: Vec<String> = (0..n)
            .map(|j| match style {
                0 => format!("bar{j}:8080"),
                1 => format!("10.{}.{}.{}:{}", next() % 256, next() % 256, next() % 256, 8000 + next() % 1000),
                2 => format!("[fd00::{:x}]:443", next() % 65536),
                3 => format!("узел-{j}.example:80"),
                _ => format!("node {j} \"quoted\"\t{}", next() % 1000),
            })
            .collect();
        let key = match next() % 6 {
            0 => "ryans".to_string(),
            1 => format!("user:{}", next() % 1_000_000),
            2 => format!("ключ-{i}"),
            3 => "x".repeat(1 + (next() % 300) as usize),
            4 => format!("{:016x}", next()),
            _ => format!("session {i} 🚀"),
        };
        let min = next() % (n as u64 + 1);
        let max = min + next() % 5;
        out.push((nodes, None, key, min, max));
    }
    // A few fixed, readable cases.
    let bar: Vec<String> = ["bar1:8080", "bar2:8080", "bar3:8080"].map(String::from).to_vec();
    out.push((bar.clone(), None, "ryans".into(), 1, 3));
    out.push((bar.clone(), None, "ryans".into(), 1, 1));
    out.push((vec![], None, "ryans".into(), 0, 3));
    // Weighted services.
    for i in 0..40u64 {
        let n = 2 + (next() % 12) as usize;
        let nodes: Vec<String> = (0..n).map(|j| format!("w{j}.example:{}", 7000 + i)).collect();
        let weights: Vec<f64> = (0..n).map(|_| [0.5, 1.0, 1.0, 2.0, 2.5, 10.0, 0.125][(next() % 7) as usize]).collect();
        let key = format!("weighted-key-{}", next() % 100_000);
        out.push((nodes, Some(weights), key, 1, 1 + next() % 4));
    }
    out
}

#[test]
fn golden_vectors() {
    if std::env::var_os("KEYROUTER_BLESS").is_some() {
        let mut text = String::new();
        for (nodes, weights, key, min, max) in inputs() {
            let expected = answer(&nodes, weights.as_deref(), &key, min, max);
            text += &serde_json::to_string(&Case { nodes, key, min, max, weights, expected }).unwrap();
            text.push('\n');
        }
        std::fs::write(PATH, text).unwrap();
    }
    let text = std::fs::read_to_string(PATH).unwrap();
    let cases: Vec<Case> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(cases.len() >= 200, "only {} golden cases", cases.len());
    assert!(cases.iter().filter(|c| c.weights.is_some()).count() >= 40, "weighted cases are missing");
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let got = answer(&c.nodes, c.weights.as_deref(), &c.key, c.min, c.max);
        if got != c.expected {
            failures.push(format!("line {}: key {:?}: got {got:?}, expected {:?}", i + 1, c.key, c.expected));
        }
        // The answer is also independent of the order of the nodes.
        let mut reversed = c.nodes.clone();
        reversed.reverse();
        let mut weights = c.weights.clone();
        if let Some(w) = &mut weights {
            w.reverse();
        }
        assert_eq!(answer(&reversed, weights.as_deref(), &c.key, c.min, c.max), c.expected, "line {}: reversed", i + 1);
    }
    assert!(failures.is_empty(), "{} golden vectors differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn self_check_vectors_are_golden_or_conformance_vectors() {
    keyrouter_ranking::self_check().expect("this build ranks like every other keyrouter");
    let text = std::fs::read_to_string(PATH).unwrap();
    let cases: Vec<Case> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let v2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(crate::conformance::PATH).unwrap()).unwrap();
    let (mut count, mut weighted, mut second) = (0, 0, 0);
    for (algorithm, nodes, key, k, expected) in keyrouter_ranking::self_check_vectors() {
        count += 1;
        let all_one = nodes.iter().all(|n| n.weight == 1.0);
        weighted += usize::from(!all_one);
        let found = match algorithm {
            Algorithm::V1 => {
                assert!(nodes.iter().all(|n| n.id.is_none()), "algorithm 1 vectors have no Ids");
                let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
                let weights: Option<Vec<f64>> = (!all_one).then(|| nodes.iter().map(|n| n.weight).collect());
                cases.iter().any(|c| {
                    c.nodes == names
                        && c.weights == weights
                        && c.key == key
                        && c.expected.len() == k
                        && c.expected == expected
                })
            }
            Algorithm::V2 => {
                second += 1;
                v2["services"].as_array().unwrap().iter().any(|s| {
                    let same_nodes = s["nodes"].as_array().unwrap().len() == nodes.len()
                        && s["nodes"].as_array().unwrap().iter().zip(&nodes).all(|(j, n)| {
                            j["node"] == n.node.as_str()
                                && j["id"].as_str() == n.id.as_deref()
                                && j["weight"].as_f64().unwrap_or(1.0) == n.weight
                        });
                    same_nodes
                        && s["lookups"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|l| l["key"] == key && l["k"] == k && l["expected"] == serde_json::json!(expected))
                })
            }
        };
        assert!(found, "self-check vector of algorithm {algorithm} for key {key:?} is not a recorded vector");
    }
    assert!(count >= 5, "self_check() should check a handful of vectors, has {count}");
    assert!(weighted >= 2, "self_check() should pin the weighted ranking (and its logarithm) too, has {weighted}");
    assert!(second >= 2, "self_check() should pin algorithm 2 too, has {second}");
}
