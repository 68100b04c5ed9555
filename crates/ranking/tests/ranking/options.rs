//! Lookup options: `exclude` and `spread=zone`.
//!
//! The properties compare [`Service::lookup_with`] with what its definition says, computed the
//! slow way from plain lookups over random tables (weighted and not, with Ids and zones, both
//! algorithms, sizes around the selection's thresholds):
//!
//! - `exclude` answers exactly what the same service without the excluded nodes answers, errors
//!   included;
//! - `spread=zone` answers a permutation-prefix of the ranking (of the remaining nodes) whose
//!   first `min(k, zones)` nodes are in distinct zones, each its zone's best, in rank order, and
//!   then the other nodes in rank order.
//!
//! The golden vectors (`tests/vectors/lookup-options.json`, format in `docs/ranking.md`) pin
//! both for both algorithms; the independent implementations in `tests/independent/` check the
//! algorithm-2 cases. Regenerate only when the specification changes, with
//! `KEYROUTER_BLESS=1 cargo test -p keyrouter-ranking --test ranking options`.

use std::collections::HashSet;

use keyrouter_ranking::hash::mix;
use keyrouter_ranking::{
    fingerprint_hex, Algorithm, LookupError, LookupOptions, NodeSpec, Service, ServiceSpec, Spread,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/lookup-options.json");

fn build(nodes: &[NodeSpec], algorithm: Algorithm) -> Service {
    Service::build_with(ServiceSpec { name: "s".into(), nodes: nodes.to_vec() }, algorithm).unwrap().0
}

/// The zone a node's `spread=zone` counts it in ("no zone" is one zone of its own).
fn zone_of<'a>(nodes: &'a [NodeSpec], address: &str) -> Option<&'a str> {
    nodes.iter().find(|n| n.node == address).and_then(|n| n.zone.as_deref())
}

/// `spread=zone` by its definition, from the whole ranking of `nodes` (already without the
/// excluded ones): each zone's best in rank order, then the rest in rank order; the first `k`.
fn spread_by_definition(nodes: &[NodeSpec], algorithm: Algorithm, key: &str, k: usize) -> Vec<String> {
    let s = build(nodes, algorithm);
    let ranking = s.lookup(key, 0, u64::MAX).unwrap();
    let mut seen = HashSet::new();
    let (mut bests, mut rest) = (Vec::new(), Vec::new());
    for node in ranking {
        if seen.insert(zone_of(nodes, node)) {
            bests.push(node.to_string());
        } else {
            rest.push(node.to_string());
        }
    }
    bests.into_iter().chain(rest).take(k).collect()
}

/// Random nodes: unique addresses, some with Ids, some with zones out of `zones`, weights when
/// `weighted`.
fn random_nodes(n: usize, seed: u64, weighted: bool, zones: usize, ids: bool) -> Vec<NodeSpec> {
    let mut r = seed;
    let mut next = move || {
        r = mix(r.wrapping_add(0x9e37_79b9_7f4a_7c15));
        r
    };
    (0..n)
        .map(|i| {
            let mut node = NodeSpec::new(format!("10.{}.{}.{}:80", seed % 200, i / 256, i % 256));
            if ids && next() % 2 == 0 {
                node = node.with_id(format!("node-{i}"));
            }
            if weighted {
                node.weight = [0.25, 0.5, 1.0, 2.0, 3.5, 10.0][(next() % 6) as usize];
            }
            // One zone in `zones + 1` of the draws is "no zone".
            let z = next() % (zones as u64 + 1);
            if zones > 0 && z > 0 {
                node = node.with_zone(format!("zone-{z}"));
            }
            node
        })
        .collect()
}

fn identity(n: &NodeSpec) -> &str {
    n.id.as_deref().unwrap_or(&n.node)
}

/// Some identities of `nodes` (by the bits of `pick`), some repeated, and a name of no node.
fn exclusions(nodes: &[NodeSpec], pick: u64, count: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..count)
        .map(|j| identity(&nodes[(mix(pick ^ j as u64) % nodes.len() as u64) as usize]).to_string())
        .collect();
    if pick.is_multiple_of(3) {
        out.push("no-such-node:1".into());
    }
    if let Some(first) = out.first().cloned() {
        out.push(first);
    }
    out
}

fn table_params() -> impl Strategy<Value = (usize, u64, bool, usize, bool, Algorithm)> {
    (
        prop_oneof![1usize..12, 12usize..40, Just(33), Just(129), 100usize..200],
        any::<u64>(),
        any::<bool>(),
        0usize..6,
        any::<bool>(),
        prop_oneof![Just(Algorithm::V1), Just(Algorithm::V2)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// `exclude` is the answer of the service without those nodes, `min`/`max` and errors
    /// included; with and without `spread`.
    #[test]
    fn exclude_answers_as_the_service_without_those_nodes(
        (n, seed, weighted, zones, ids, algorithm) in table_params(),
        excluded in 0usize..40,
        pick in any::<u64>(),
        min in 0u64..6,
        max in prop_oneof![0u64..6, 30u64..40, Just(u64::MAX)],
        key in ".{0,20}",
    ) {
        let nodes = random_nodes(n, seed, weighted, zones, ids);
        let exclude = exclusions(&nodes, pick, excluded.min(n));
        let gone: HashSet<&str> = exclude.iter().map(String::as_str).collect();
        let rest: Vec<NodeSpec> = nodes.iter().filter(|n| !gone.contains(identity(n))).cloned().collect();
        let (all, without) = (build(&nodes, algorithm), build(&rest, algorithm));
        let entries: Vec<&str> = exclude.iter().map(String::as_str).collect();
        for spread in [Spread::None, Spread::Zone] {
            let opts = LookupOptions { exclude: &entries, spread };
            let got = all.lookup_with(&key, min, max, &opts);
            let want = without.lookup_with(&key, min, max, &LookupOptions { spread, ..LookupOptions::default() });
            match (got, want) {
                (Ok(got), Ok(want)) => prop_assert_eq!(got, want, "{:?}", spread),
                (Err(LookupError::NotEnoughNodes { available: a, min: m, .. }),
                 Err(LookupError::NotEnoughNodes { available: b, min: m2, .. })) => prop_assert_eq!((a, m), (b, m2)),
                (got, want) => prop_assert_eq!(got.map_err(|e| e.to_string()), want.map_err(|e| e.to_string())),
            }
        }
    }

    /// `spread=zone` is a permutation-prefix of the ranking in which the first `min(k, zones)`
    /// nodes are in distinct zones, each its zone's best, and the rest follow in rank order.
    #[test]
    fn spread_takes_each_zones_best_then_the_rest_in_rank_order(
        (n, seed, weighted, zones, ids, algorithm) in table_params(),
        excluded in 0usize..5,
        pick in any::<u64>(),
        k in prop_oneof![1usize..8, 30usize..40, Just(usize::MAX)],
        key in ".{0,20}",
    ) {
        let nodes = random_nodes(n, seed, weighted, zones, ids);
        let exclude = exclusions(&nodes, pick, excluded.min(n));
        let gone: HashSet<&str> = exclude.iter().map(String::as_str).collect();
        let rest: Vec<NodeSpec> = nodes.iter().filter(|n| !gone.contains(identity(n))).cloned().collect();
        let entries: Vec<&str> = exclude.iter().map(String::as_str).collect();
        let s = build(&nodes, algorithm);
        let opts = LookupOptions { exclude: &entries, spread: Spread::Zone };
        let got = s.lookup_with(&key, 0, k as u64, &opts).unwrap();
        // The definition, spelled out.
        prop_assert_eq!(&got, &spread_by_definition(&rest, algorithm, &key, k));
        // The property, checked on its own terms.
        let remaining = build(&rest, algorithm);
        let ranking = remaining.lookup(&key, 0, u64::MAX).unwrap();
        prop_assert_eq!(got.len(), k.min(ranking.len()));
        let distinct: HashSet<Option<&str>> = ranking.iter().map(|n| zone_of(&rest, n)).collect();
        let head = k.min(distinct.len());
        let mut zones_seen = HashSet::new();
        for node in &got[..head] {
            let z = zone_of(&rest, node);
            prop_assert!(zones_seen.insert(z), "zone {:?} twice among the first {}", z, head);
            let best = ranking.iter().find(|m| zone_of(&rest, m) == z).unwrap();
            prop_assert_eq!(node, best, "not its zone's best");
        }
        let positions: Vec<usize> = got.iter().map(|g| ranking.iter().position(|r| r == g).unwrap()).collect();
        prop_assert!(positions[..head].windows(2).all(|w| w[0] < w[1]), "zone bests out of rank order");
        prop_assert!(positions[head..].windows(2).all(|w| w[0] < w[1]), "the rest out of rank order");
        // Without zones, or without spread, the plain answer.
        let plain: Vec<NodeSpec> = rest.iter().cloned().map(|n| NodeSpec { zone: None, ..n }).collect();
        let p = build(&plain, algorithm);
        prop_assert_eq!(
            p.lookup_with(&key, 0, k as u64, &LookupOptions { exclude: &[], spread: Spread::Zone }).unwrap(),
            p.lookup(&key, 0, k as u64).unwrap()
        );
    }
}

#[test]
fn default_options_are_a_plain_lookup() {
    for algorithm in Algorithm::ALL {
        let nodes = random_nodes(150, 7, true, 3, true);
        let s = build(&nodes, algorithm);
        for i in 0..200 {
            let key = format!("key-{i}");
            for max in [1, 3, 40] {
                assert_eq!(s.lookup_with(&key, 1, max, &LookupOptions::default()), s.lookup(&key, 1, max));
            }
        }
    }
}

#[test]
fn zones_are_reported_in_node_order_and_only_when_given() {
    let s = build(&[NodeSpec::new("a:1"), NodeSpec::new("b:1").with_zone("eu-1a")], Algorithm::V2);
    assert!(s.has_zones());
    assert_eq!(s.zones().unwrap(), [None, Some("eu-1a".to_string())]);
    let s = build(&[NodeSpec::new("a:1"), NodeSpec::new("b:1")], Algorithm::V2);
    assert!(!s.has_zones() && s.zones().is_none());
}

#[test]
fn zones_change_fingerprints_and_tables_without_zones_keep_theirs() {
    for algorithm in Algorithm::ALL {
        let plain = [NodeSpec::new("a:1"), NodeSpec::new("b:1").with_id("web-b"), NodeSpec::weighted("c:1", 2.0)];
        let fp = |nodes: &[NodeSpec]| build(nodes, algorithm).fingerprint();
        let base = fp(&plain);
        let mut zoned = plain.clone();
        zoned[1].zone = Some("eu-1a".into());
        let mut moved = zoned.clone();
        moved[1].zone = Some("eu-1b".into());
        let mut elsewhere = plain.clone();
        elsewhere[0].zone = Some("eu-1a".into());
        let all = [base, fp(&zoned), fp(&moved), fp(&elsewhere)];
        let distinct: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(distinct.len(), 4, "{algorithm:?}: {all:x?}");
    }
    // Pinned in docs/http-api.md and the unit tests: the same value as before zones existed.
    let s = build(&[NodeSpec::new("bar1:8080"), NodeSpec::new("bar2:8080"), NodeSpec::new("bar3:8080")], Algorithm::V1);
    assert_eq!(fingerprint_hex(s.fingerprint()), "8f291893d6c42466");
}

/// A retry that excludes the first answer gets the old second choice first, for every key.
#[test]
fn excluding_the_first_choice_promotes_the_second() {
    for algorithm in Algorithm::ALL {
        for weighted in [false, true] {
            let nodes = random_nodes(60, 11, weighted, 3, true);
            let s = build(&nodes, algorithm);
            for i in 0..2000 {
                let key = format!("user:{i}");
                let before = s.lookup(&key, 1, 2).unwrap();
                let first = nodes.iter().find(|n| n.node == before[0]).map(identity).unwrap();
                let after = s.lookup_with(&key, 1, 1, &LookupOptions { exclude: &[first], spread: Spread::None });
                assert_eq!(after.unwrap(), [before[1]], "{algorithm:?}, weighted {weighted}, key {key}");
            }
        }
    }
}

#[test]
fn a_batch_resolves_its_options_once() {
    let nodes = random_nodes(300, 5, false, 4, true);
    let s = build(&nodes, Algorithm::V2);
    let exclude: Vec<&str> = nodes.iter().take(20).map(identity).collect();
    let opts = LookupOptions { exclude: &exclude, spread: Spread::Zone };
    let resolved = s.resolve(&opts);
    assert_eq!(resolved.excluded(), 20);
    let k = s.answer_len_with(1, 5, &resolved).unwrap();
    for i in 0..100 {
        let key = format!("k{i}");
        let mut each = Vec::new();
        s.rank_with_each(&key, k, &resolved, |n| each.push(n));
        assert_eq!(each, s.lookup_with(&key, 1, 5, &opts).unwrap());
    }
    let err = s.answer_len_with(281, 300, &resolved).unwrap_err();
    assert!(matches!(err, LookupError::NotEnoughNodes { available: 280, min: 281, .. }), "{err}");
}

// The golden vectors.

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Vectors {
    about: String,
    cases: Vec<Case>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Node {
    node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Case {
    algorithm: u32,
    name: String,
    nodes: Vec<Node>,
    fingerprint: String,
    lookups: Vec<Lookup>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Lookup {
    key: String,
    min: u64,
    max: u64,
    exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spread: Option<String>,
    /// The answer, or `null` when the nodes left are fewer than `min`.
    expected: Option<Vec<String>>,
}

fn to_spec(n: &Node) -> NodeSpec {
    NodeSpec { node: n.node.clone(), id: n.id.clone(), weight: n.weight.unwrap_or(1.0), zone: n.zone.clone() }
}

fn generate() -> Vectors {
    let mut cases = Vec::new();
    let plain =
        |node: &str, zone: Option<&str>| Node { node: node.into(), id: None, weight: None, zone: zone.map(Into::into) };
    // Hand-written: zones with and without "no zone", Ids, weights, one-node zones.
    let handmade: Vec<(&str, Vec<Node>)> = vec![
        (
            "contract-example",
            vec![
                plain("a:1", None),
                plain("b:1", Some("eu-1a")),
                Node { node: "c:1".into(), id: Some("c".into()), weight: Some(2.0), zone: Some("eu-1b".into()) },
            ],
        ),
        (
            "three-zones",
            (0..9)
                .map(|i| Node {
                    node: format!("10.0.0.{i}:8080"),
                    id: Some(format!("web-{i}")),
                    weight: None,
                    zone: Some(["eu-1a", "eu-1b", "eu-1c"][i % 3].into()),
                })
                .collect(),
        ),
        (
            "one-zone-of-one",
            (0..6).map(|i| plain(&format!("n{i}:80"), Some(if i == 5 { "small" } else { "big" }))).collect(),
        ),
        (
            "weighted-zones",
            (0..8)
                .map(|i| Node {
                    node: format!("w{i}:80"),
                    id: None,
                    weight: Some([0.5, 1.0, 2.0, 4.0][i % 4]),
                    zone: (i % 3 != 0).then(|| format!("z{}", i % 2)),
                })
                .collect(),
        ),
        ("no-zones", (0..5).map(|i| plain(&format!("p{i}:80"), None)).collect()),
    ];
    let keys = ["", "ryans", "ключ 🚀"];
    for algorithm in Algorithm::ALL {
        let mut services = handmade.clone();
        // Random services around the selection's thresholds.
        for (i, n) in [20usize, 40, 140].into_iter().enumerate() {
            let weighted = i == 1;
            let nodes = random_nodes(n, 100 + i as u64, weighted, 4, true)
                .into_iter()
                .map(|s| Node { weight: weighted.then_some(s.weight), node: s.node, id: s.id, zone: s.zone })
                .collect();
            services.push((["random-20", "random-40-weighted", "random-140"][i], nodes));
        }
        for (name, nodes) in services {
            let specs: Vec<NodeSpec> = nodes.iter().map(to_spec).collect();
            let s = build(&specs, algorithm);
            let ids: Vec<String> = specs.iter().map(|n| identity(n).to_string()).collect();
            let mut lookups = Vec::new();
            for (j, key) in keys.iter().enumerate() {
                let mut excludes: Vec<Vec<String>> = vec![
                    vec![],
                    vec![ids[j % ids.len()].clone()],
                    vec![ids[0].clone(), "unknown:1".into(), ids[0].clone()],
                    ids.iter().skip(1).step_by(2).take(12).cloned().collect(),
                ];
                // Every node: nothing is left (kept small: one line per lookup).
                if ids.len() <= 20 {
                    excludes.push(ids.clone());
                }
                for exclude in excludes {
                    for spread in [None, Some("zone")] {
                        for (min, max) in [(1u64, 3u64), (0, 100), (3, 3)] {
                            let entries: Vec<&str> = exclude.iter().map(String::as_str).collect();
                            let opts = LookupOptions {
                                exclude: &entries,
                                spread: if spread.is_some() { Spread::Zone } else { Spread::None },
                            };
                            let expected = match s.lookup_with(key, min, max, &opts) {
                                Ok(a) => Some(a.into_iter().map(String::from).collect()),
                                Err(LookupError::NotEnoughNodes { .. }) => None,
                                Err(e) => panic!("{e}"),
                            };
                            lookups.push(Lookup {
                                key: key.to_string(),
                                min,
                                max,
                                exclude: exclude.clone(),
                                spread: spread.map(String::from),
                                expected,
                            });
                        }
                    }
                }
            }
            cases.push(Case {
                algorithm: algorithm.number(),
                name: name.into(),
                nodes,
                fingerprint: fingerprint_hex(s.fingerprint()),
                lookups,
            });
        }
    }
    Vectors {
        about: "keyrouter lookup options (exclude, spread=zone) vectors for both algorithms; see docs/ranking.md. \
                A node without `id` is its own id, without `weight` weighs 1, without `zone` is in the zone of \
                nodes without one. `expected` is the answer, or null when fewer than `min` nodes are left."
            .into(),
        cases,
    }
}

/// One lookup per line, so that a change shows as a readable diff.
fn render(v: &Vectors) -> String {
    let mut out = format!("{{\n\"about\": {},\n\"cases\": [\n", serde_json::to_string(&v.about).unwrap());
    for (i, c) in v.cases.iter().enumerate() {
        out += &format!(
            "{{\"algorithm\": {}, \"name\": {}, \"fingerprint\": {},\n \"nodes\": {},\n \"lookups\": [\n",
            c.algorithm,
            serde_json::to_string(&c.name).unwrap(),
            serde_json::to_string(&c.fingerprint).unwrap(),
            serde_json::to_string(&c.nodes).unwrap()
        );
        let lines: Vec<String> = c.lookups.iter().map(|l| format!("  {}", serde_json::to_string(l).unwrap())).collect();
        out += &lines.join(",\n");
        out += if i + 1 < v.cases.len() { "\n]},\n" } else { "\n]}\n" };
    }
    out + "]\n}\n"
}

#[test]
fn lookup_option_vectors() {
    let generated = generate();
    if std::env::var_os("KEYROUTER_BLESS").is_some() {
        std::fs::write(PATH, render(&generated)).unwrap();
    }
    let text = std::fs::read_to_string(PATH).expect("tests/vectors/lookup-options.json (bless it, see the module doc)");
    let recorded: Vectors = serde_json::from_str(&text).unwrap();
    assert_eq!(recorded.cases.len(), generated.cases.len(), "number of cases");
    for (r, g) in recorded.cases.iter().zip(&generated.cases) {
        assert_eq!(r.fingerprint, g.fingerprint, "algorithm {}, {:?}: fingerprint", r.algorithm, r.name);
        for (rl, gl) in r.lookups.iter().zip(&g.lookups) {
            assert_eq!(rl, gl, "algorithm {}, {:?}", r.algorithm, r.name);
        }
        assert_eq!(r, g);
    }
    let with_spread = recorded.cases.iter().flat_map(|c| &c.lookups).filter(|l| l.spread.is_some()).count();
    assert!(with_spread > 500, "{with_spread} spread lookups");
    assert!(text.len() < 1 << 20, "the vector file is {} bytes", text.len());
}

/// The worked example of docs/ranking.md ("Worked example", with zones): its fingerprints and
/// answers, so that the specification's figures are this code's.
#[test]
fn the_specifications_worked_example_with_zones() {
    let nodes = [
        NodeSpec::new("10.0.0.5:8080").with_id("web-0").with_zone("eu-1a"),
        NodeSpec::new("10.0.0.6:8080").with_id("web-1").with_zone("eu-1a"),
        NodeSpec::new("10.0.0.7:8080").with_id("web-2").with_zone("eu-1b"),
    ];
    let s = build(&nodes, Algorithm::V2);
    assert_eq!(fingerprint_hex(s.fingerprint()), "a1d016c256b40918");
    let spec = ServiceSpec { name: "web".into(), nodes: nodes.to_vec() };
    let (table, _) = keyrouter_ranking::Table::build_with(Algorithm::V2, [spec]).unwrap();
    assert_eq!(fingerprint_hex(table.fingerprint()), "bf850328d7d784ef");
    let with = |exclude: &[&str], spread| s.lookup_with("ryans", 1, 3, &LookupOptions { exclude, spread }).unwrap();
    assert_eq!(with(&[], Spread::None), ["10.0.0.6:8080", "10.0.0.5:8080", "10.0.0.7:8080"]);
    assert_eq!(with(&[], Spread::Zone), ["10.0.0.6:8080", "10.0.0.7:8080", "10.0.0.5:8080"]);
    assert_eq!(with(&["web-1"], Spread::None), ["10.0.0.5:8080", "10.0.0.7:8080"]);
    assert_eq!(with(&["web-1"], Spread::Zone), ["10.0.0.5:8080", "10.0.0.7:8080"]);
}
