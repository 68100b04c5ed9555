//! Properties of the ranking: determinism, prefixes, order independence, minimal disruption
//! and balance.

use keyrouter_ranking::topk::{self, top_k, Candidate};
use keyrouter_ranking::{unweighted_order, weighted_order, LookupError, Service, ServiceSpec, Table};
use proptest::prelude::*;

fn service(nodes: &[String]) -> Service {
    Service::build(ServiceSpec::new("s", nodes.iter().cloned())).unwrap().0
}

/// The whole ranking of `nodes` for `key`, best first.
fn ranking(nodes: &[String], key: &str) -> Vec<String> {
    crate::expected(nodes, None, key, 0, u64::MAX)
}

fn node_set() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::hash_set("[a-z0-9.:-]{1,12}", 1..40).prop_map(|s| s.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn deterministic_across_separately_built_tables(nodes in node_set(), key in ".{0,40}", k in 0usize..50) {
        let a = service(&nodes);
        let b = service(&nodes.clone());
        prop_assert_eq!(a.lookup(&key, 0, k as u64).unwrap(), b.lookup(&key, 0, k as u64).unwrap());
    }

    #[test]
    fn top_k_is_a_prefix_of_top_k_plus_one(nodes in node_set(), key in ".{0,40}", k in 0usize..45) {
        let s = service(&nodes);
        let small = s.lookup(&key, 0, k as u64).unwrap();
        let big = s.lookup(&key, 0, k as u64 + 1).unwrap();
        prop_assert_eq!(small.len(), k.min(nodes.len()));
        prop_assert_eq!(&big[..small.len()], &small[..]);
    }

    #[test]
    fn node_order_does_not_matter(nodes in node_set(), key in ".{0,40}", seed in any::<u64>()) {
        let mut shuffled = nodes.clone();
        // Deterministic shuffle from the seed.
        let mut r = seed;
        for i in (1..shuffled.len()).rev() {
            r = keyrouter_ranking::hash::mix(r.wrapping_add(i as u64));
            shuffled.swap(i, (r % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(ranking(&nodes, &key), ranking(&shuffled, &key));
    }

    #[test]
    fn removing_a_node_keeps_the_order_of_the_others(nodes in node_set(), key in ".{0,40}", which in any::<prop::sample::Index>()) {
        let removed = which.get(&nodes).clone();
        let rest: Vec<String> = nodes.iter().filter(|n| **n != removed).cloned().collect();
        let mut before = ranking(&nodes, &key);
        before.retain(|n| *n != removed);
        prop_assert_eq!(before, ranking(&rest, &key));
    }

    #[test]
    fn adding_a_node_only_moves_keys_to_it(nodes in node_set(), key in ".{0,40}", extra in "[A-Z]{1,8}") {
        let before = ranking(&nodes, &key);
        let mut more = nodes.clone();
        more.push(extra.clone());
        let mut after = ranking(&more, &key);
        prop_assert!(after[0] == before[0] || after[0] == extra);
        after.retain(|n| *n != extra);
        prop_assert_eq!(after, before);
    }

    #[test]
    fn answer_size_rules(nodes in proptest::collection::vec("[a-c]{1,2}", 0..12), min in 0u64..15, max in 0u64..15) {
        let s = service(&nodes);
        match s.lookup("key", min, max) {
            Ok(answer) => {
                prop_assert!(min <= max && (s.len() as u64) >= min);
                prop_assert_eq!(answer.len() as u64, max.min(s.len() as u64));
            }
            Err(LookupError::MinGreaterThanMax { .. }) => prop_assert!(min > max),
            Err(LookupError::NotEnoughNodes { available, min: m, .. }) => {
                prop_assert!(min <= max && available < min as usize && m == min);
            }
        }
    }
}

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}.example:8080")).collect()
}

/// Share of keys (out of `keys`) whose ranking at `place` is each node.
fn shares(s: &Service, keys: usize, place: usize) -> Vec<f64> {
    let mut counts = std::collections::HashMap::new();
    let mut out = Vec::new();
    for i in 0..keys {
        out.clear();
        s.rank_into(&format!("key-{i}"), place + 1, &mut out);
        *counts.entry(out[place].to_string()).or_insert(0usize) += 1;
    }
    s.nodes().iter().map(|n| counts.get(n).copied().unwrap_or(0) as f64 / keys as f64).collect()
}

#[test]
fn balance_of_first_and_second_choices() {
    let s = service(&nodes(10));
    for place in [0, 1] {
        for (node, share) in s.nodes().iter().zip(shares(&s, 100_000, place)) {
            assert!((share - 0.1).abs() <= 0.1 * 0.05, "place {place}: {node} has {share}");
        }
    }
}

#[test]
fn adding_a_node_moves_a_fair_share_to_it() {
    let before = service(&nodes(10));
    let mut with = nodes(10);
    with.push("newcomer:8080".into());
    let after = service(&with);
    let mut moved = 0;
    let keys = 100_000;
    for i in 0..keys {
        let key = format!("key-{i}");
        let (b, a) = (before.lookup(&key, 1, 1).unwrap()[0], after.lookup(&key, 1, 1).unwrap()[0]);
        if a != b {
            assert_eq!(a, "newcomer:8080", "{key} moved from {b} to {a}");
            moved += 1;
        }
    }
    let share = moved as f64 / keys as f64;
    let fair = 1.0 / 11.0;
    assert!((share - fair).abs() <= fair * 0.10, "newcomer took {share}, fair is {fair}");
}

#[test]
fn removing_a_node_moves_only_its_keys() {
    let all = nodes(10);
    let before = service(&all);
    let after = service(&all[1..]);
    for i in 0..20_000 {
        let key = format!("key-{i}");
        let b = before.lookup(&key, 1, 1).unwrap()[0];
        let a = after.lookup(&key, 1, 1).unwrap()[0];
        assert!(a == b || b == all[0], "{key} moved from {b} to {a}");
    }
}

/// Runs the ranking's own selection and order over `nodes` with the given scores: node names,
/// best first. Blocks are skipped as the unweighted scorer skips them (no score at least the
/// k-th best's), so equal scores must still be looked at.
fn select<S: Copy + Default + PartialOrd>(
    nodes: &[String],
    scores: &[S],
    k: usize,
    order: impl Fn(&Candidate<S>, &Candidate<S>) -> std::cmp::Ordering,
) -> Vec<String> {
    let mut out = Vec::new();
    top_k(
        nodes.len(),
        k,
        |start, block: &mut [S], threshold: Option<&S>| {
            block.copy_from_slice(&scores[start..start + block.len()]);
            topk::bits_at_least(block, threshold)
        },
        |_, _, _| 0,
        order,
        |i| out.push(nodes[i].clone()),
    );
    out
}

#[test]
fn ties_are_broken_by_node_string_and_tables_list_names_sorted() {
    // A real tie: every candidate has the same score (no 64-bit collision of the hash can be
    // produced on demand, so the selection is driven with the ranking's own order and scores
    // chosen here). The smaller node string ranks first, whatever the file order, for every k,
    // on both sides of the stack-buffer limit.
    for n in [5, topk::INLINE + 8] {
        let mut nodes: Vec<String> = (0..n).map(|i| format!("node-{:02}", (i * 7) % n)).collect();
        nodes.swap(0, n - 1);
        let mut sorted = nodes.clone();
        sorted.sort();
        for k in 0..=n {
            let got = select(&nodes, &vec![42u64; n], k, unweighted_order(&nodes));
            assert_eq!(got, sorted[..k], "{n} tied nodes, k={k}");
        }
        // Ties below a higher score: the higher score first, then the tie by string.
        let scores: Vec<u64> = nodes.iter().map(|s| if s.ends_with('3') { 9 } else { 7 }).collect();
        let (mut high, mut low): (Vec<String>, Vec<String>) = sorted.iter().cloned().partition(|s| s.ends_with('3'));
        high.append(&mut low);
        assert_eq!(select(&nodes, &scores, n, unweighted_order(&nodes)), high, "{n} nodes, two scores");
        // Weighted: equal weighted scores fall back to the raw hash score, then to the string.
        let weighted: Vec<(f64, u64)> = nodes.iter().map(|s| (1.5, if s.ends_with('3') { 2 } else { 1 })).collect();
        assert_eq!(select(&nodes, &weighted, n, weighted_order(&nodes)), high);
    }

    let (t, report) =
        Table::build([ServiceSpec::new("b", ["x", "x", "y"]), ServiceSpec::new("a", Vec::<String>::new())]).unwrap();
    assert_eq!(t.names(), ["a", "b"]);
    assert_eq!(report.duplicates_removed, vec![("b".to_string(), 1)]);
    assert_eq!(t.get("a").unwrap().lookup("k", 0, 3).unwrap(), Vec::<&str>::new());
    assert!(matches!(
        t.get("a").unwrap().lookup("k", 1, 3),
        Err(LookupError::NotEnoughNodes { available: 0, min: 1, .. })
    ));
}

fn weighted(nodes: &[(&str, f64)]) -> Service {
    let spec = ServiceSpec {
        name: "w".into(),
        nodes: nodes.iter().map(|&(n, weight)| keyrouter_ranking::NodeSpec::weighted(n, weight)).collect(),
    };
    Service::build(spec).unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn equal_weights_give_exactly_the_unweighted_ranking(nodes in node_set(), key in ".{0,40}", w in 0.001f64..1000.0) {
        let spec = ServiceSpec {
            name: "w".into(),
            nodes: nodes.iter().map(|n| keyrouter_ranking::NodeSpec::weighted(n.clone(), w)).collect(),
        };
        let same = Service::build(spec).unwrap().0;
        prop_assert!(!same.is_weighted());
        let weights = vec![w; nodes.len()];
        prop_assert_eq!(ranking(&nodes, &key), crate::expected(&nodes, Some(&weights), &key, 0, u64::MAX));
    }
}

#[test]
fn weighted_shares_follow_the_weights() {
    let s = weighted(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0), ("e", 0.5)]);
    assert!(s.is_weighted());
    let total: f64 = s.weights().iter().sum();
    for (node, (share, w)) in s.nodes().iter().zip(shares(&s, 100_000, 0).into_iter().zip(s.weights())) {
        let want = w / total;
        assert!((share - want).abs() <= want * 0.05, "{node}: share {share}, weight share {want}");
    }
}

#[test]
fn changing_one_weight_only_moves_keys_to_or_from_that_node() {
    let base = [("a", 1.0), ("b", 1.0), ("c", 2.0), ("d", 1.0)];
    let mut heavier = base;
    heavier[1].1 = 3.0;
    let mut lighter = base;
    lighter[2].1 = 0.5;
    let (before, up, down) = (weighted(&base), weighted(&heavier), weighted(&lighter));
    let (mut to_b, mut from_c) = (0, 0);
    for i in 0..20_000 {
        let key = format!("key-{i}");
        let first = |s: &Service| s.lookup(&key, 1, 1).unwrap()[0].to_string();
        let (was, now_up, now_down) = (first(&before), first(&up), first(&down));
        if now_up != was {
            assert_eq!(now_up, "b", "{key}: raising b's weight moved it from {was} to {now_up}");
            to_b += 1;
        }
        if now_down != was {
            assert_eq!(was, "c", "{key}: lowering c's weight moved it from {was} to {now_down}");
            from_c += 1;
        }
    }
    assert!(to_b > 1000 && from_c > 1000, "{to_b} keys moved to b, {from_c} from c");
}

/// A service whose nodes have Ids, built with `algorithm`.
fn with_ids(algorithm: keyrouter_ranking::Algorithm, nodes: &[(String, String, f64)]) -> Service {
    let nodes = nodes
        .iter()
        .map(|(node, id, w)| keyrouter_ranking::NodeSpec::weighted(node.clone(), *w).with_id(id.clone()))
        .collect();
    Service::build_with(ServiceSpec { name: "s".into(), nodes }, algorithm).unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// The ranking hashes identities, not addresses: a service whose nodes carry Ids answers, in
    /// addresses, exactly what a service of those Ids as addresses answers in Ids. With both
    /// algorithms, weighted or not.
    #[test]
    fn nodes_with_ids_rank_as_their_ids(
        ids in proptest::collection::btree_set("[a-z]{1,6}", 1..40),
        key in ".{0,40}",
        weights in proptest::collection::vec(prop::sample::select(vec![0.5, 1.0, 2.0, 7.25]), 40),
        weighted in any::<bool>(),
        k in 1usize..45,
    ) {
        for algorithm in keyrouter_ranking::Algorithm::ALL {
            let nodes: Vec<(String, String, f64)> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (format!("10.0.{i}.1:80"), id.clone(), if weighted { weights[i] } else { 1.0 }))
                .collect();
            let by_id = with_ids(algorithm, &nodes);
            let plain: Vec<(String, String, f64)> = nodes.iter().map(|(_, id, w)| (id.clone(), id.clone(), *w)).collect();
            let plain = with_ids(algorithm, &plain);
            let mut got = Vec::new();
            by_id.rank_into(&key, k, &mut got);
            let as_ids: Vec<&str> = got.iter().map(|a| nodes.iter().find(|n| n.0 == *a).unwrap().1.as_str()).collect();
            let mut want = Vec::new();
            plain.rank_into(&key, k, &mut want);
            prop_assert_eq!(as_ids, want, "{:?}", algorithm);
        }
    }
}

/// Services past the small-input path (more than 128 nodes), where the block scan runs and, on
/// a CPU with AVX-512, passes over blocks with premixed hashes: every answer is the definition's
/// (highest `score(key_hash, id_hash)` first, ties by the smaller identity), computed here
/// without the crate's selection, for both algorithms.
#[test]
fn large_services_rank_as_the_definition() {
    use keyrouter_ranking::hash::score;
    use keyrouter_ranking::{Algorithm, NodeSpec};
    for algorithm in Algorithm::ALL {
        for n in [129usize, 1_000, 10_000] {
            let nodes = nodes(n);
            let spec = ServiceSpec { name: "s".into(), nodes: nodes.iter().map(NodeSpec::new).collect() };
            let (table, _) = Table::build_with(algorithm, [spec]).unwrap();
            let s = table.get("s").unwrap();
            for i in 0..40 {
                let key = format!("user:{}", i * 7919);
                let kh = algorithm.hash_key(&key);
                let mut all: Vec<(u64, &str)> =
                    nodes.iter().map(|n| (score(kh, algorithm.hash_id(n)), n.as_str())).collect();
                all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
                for k in [1usize, 2, 3, 5, 10, 32, 33] {
                    let want: Vec<&str> = all[..k].iter().map(|(_, n)| *n).collect();
                    assert_eq!(s.lookup(&key, 1, k as u64).unwrap(), want, "{algorithm:?}: {n} nodes, {key}, top {k}");
                }
            }
        }
    }
}
