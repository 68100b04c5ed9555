//! Change impact: how many keys move when a service goes from one node set to another.
//!
//! Pure code over [`crate::ranking`]: no I/O, no logging. Used by `keyrouter diff` and by every
//! reload.
//!
//! Nodes are compared by identity (their Id, or their address when they have none): a node
//! whose address changes under the same Id is re-addressed, and its keys stay with it. When the
//! two sides rank with different algorithms, every score changes: the share is then sampled.
//!
//! A key keeps its first choice exactly when the best-scoring node of `A ∪ B` is in both `A`
//! and `B`. When every kept node keeps its weight, the moved share of first choices is exactly
//! `1 − W(A ∩ B) / W(A ∪ B)` (W: sum of weights; a service whose weights are all equal ranks like
//! one without weights, so its nodes count 1 each). Otherwise (a kept node is re-weighted), and
//! for top-k answers, the share is estimated from a fixed set of synthetic keys
//! (`impact-key-0`, `impact-key-1`, ...) ranked by the same code as lookups
//! ([`Service::rank_into`]), with a 99.9 % Hoeffding bound: the true share over all keys is
//! within `±sqrt(ln(2 / 0.001) / (2 N))` of the estimate (N sampled keys) with probability
//! 99.9 %, whatever the share is.

use std::collections::HashMap;

use crate::ranking::Service;

/// Synthetic keys `keyrouter diff` samples.
pub const DEFAULT_SAMPLES: usize = 100_000;

/// Synthetic keys a reload samples (it runs on the reload thread, and must stay cheap).
pub const RELOAD_SAMPLES: usize = 10_000;

/// The probability that the truth is outside an estimate's bound.
const FAILURE_PROBABILITY: f64 = 0.001;

/// The synthetic key number `i` of the sample.
pub fn sample_key(i: usize) -> String {
    format!("impact-key-{i}")
}

/// A share of keys (0 to 1), exact or estimated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub value: f64,
    /// `None`: exact. `Some(b)`: an estimate, within `±b` of the truth with probability 99.9 %.
    pub bound: Option<f64>,
}

impl Share {
    fn exact(value: f64) -> Share {
        Share { value, bound: None }
    }

    /// Whether it is the exact value.
    pub fn is_exact(&self) -> bool {
        self.bound.is_none()
    }
}

impl std::fmt::Display for Share {
    /// `10.0 %` when exact, `9.97 % ± 0.61 %` when estimated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.bound {
            None => write!(f, "{} %", percent(self.value)),
            Some(b) => write!(f, "{} % ± {} %", percent(self.value), percent(b)),
        }
    }
}

/// A share as a percentage with up to 2 decimals, without trailing zeros beyond one.
fn percent(share: f64) -> String {
    let s = format!("{:.2}", share * 100.0);
    match s.strip_suffix('0') {
        Some(t) => t.to_string(),
        None => s,
    }
}

/// The 99.9 % Hoeffding bound of a mean of `n` samples in `[0, range]`.
pub fn hoeffding_bound(n: usize, range: f64) -> f64 {
    range * ((2.0 / FAILURE_PROBABILITY).ln() / (2.0 * n.max(1) as f64)).sqrt()
}

/// What changes for top-k answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaImpact {
    pub k: usize,
    /// Share of keys whose set of k nodes changes.
    pub set_changed: Share,
    /// Expected number of the k slots whose node changes (0 to k).
    pub slots_changed: Share,
}

/// What a service's change does.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceImpact {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Nodes in both whose weight changes: `(node, old, new)`.
    pub reweighted: Vec<(String, f64, f64)>,
    /// Nodes in both (same Id) whose address changes: `(id, old address, new address)`. They
    /// keep their keys.
    pub readdressed: Vec<(String, String, String)>,
    /// The two sides rank with different algorithms (both exist): nearly every key moves.
    pub algorithm_changed: bool,
    /// Share of keys whose first choice changes.
    pub moved: Share,
    pub replicas: Option<ReplicaImpact>,
}

/// The impact of a service going from `old` to `new` (`None`: the service does not exist on
/// that side). `replicas`: also the top-k impact. `samples`: synthetic keys for estimates.
pub fn service_impact(
    old: Option<&Service>,
    new: Option<&Service>,
    replicas: Option<usize>,
    samples: usize,
) -> ServiceImpact {
    let old_nodes = node_weights(old);
    let new_nodes = node_weights(new);
    let mut impact = ServiceImpact {
        added: Vec::new(),
        removed: Vec::new(),
        reweighted: Vec::new(),
        readdressed: Vec::new(),
        algorithm_changed: matches!((old, new), (Some(a), Some(b)) if a.algorithm() != b.algorithm()),
        moved: Share::exact(0.0),
        replicas: None,
    };
    // W(A ∩ B), W(A ∪ B) with the weights the ranking uses; `exact` while kept nodes keep them.
    let (mut kept, mut union, mut exact) = (0.0, 0.0, !impact.algorithm_changed);
    for (id, &(address_old, raw_old, eff_old)) in &old_nodes {
        union += eff_old;
        match new_nodes.get(id) {
            None => impact.removed.push(address_old.to_string()),
            Some(&(address_new, raw_new, eff_new)) => {
                kept += eff_old;
                if raw_old != raw_new {
                    impact.reweighted.push((address_new.to_string(), raw_old, raw_new));
                }
                if address_old != address_new {
                    impact.readdressed.push((id.to_string(), address_old.to_string(), address_new.to_string()));
                }
                exact &= eff_old == eff_new;
            }
        }
    }
    for (id, &(address_new, _, eff_new)) in &new_nodes {
        if !old_nodes.contains_key(id) {
            impact.added.push(address_new.to_string());
            union += eff_new;
        }
    }
    impact.added.sort();
    impact.removed.sort();
    impact.reweighted.sort_by(|a, b| a.0.cmp(&b.0));
    impact.readdressed.sort();
    let whole = old.is_none() || new.is_none();
    impact.moved = match exact {
        true if union > 0.0 => Share::exact((union - kept) / union),
        true => Share::exact(0.0),
        false => sampled(old, new, 1, samples).0,
    };
    impact.replicas = replicas.map(|k| {
        let k = k.max(1);
        let (set_changed, slots_changed) = match whole {
            // Every key's set appears or disappears: all its slots change.
            true => {
                let n = old.or(new).map_or(0, |s| s.len()).min(k);
                (Share::exact(if n > 0 { 1.0 } else { 0.0 }), Share::exact(n as f64))
            }
            false if impact.added.is_empty() && impact.removed.is_empty() && exact => {
                (Share::exact(0.0), Share::exact(0.0))
            }
            false => sampled(old, new, k, samples),
        };
        ReplicaImpact { k, set_changed, slots_changed }
    });
    impact
}

/// Each node's identity → `(address, weight as written, weight the ranking uses)`: all-equal
/// weights rank like no weights, so they count 1 each.
fn node_weights(service: Option<&Service>) -> HashMap<&str, (&str, f64, f64)> {
    let Some(s) = service else { return HashMap::new() };
    let weighted = s.is_weighted();
    let nodes = s.ids().iter().zip(s.nodes()).zip(s.weights());
    nodes.map(|((id, n), &w)| (id.as_str(), (n.as_str(), w, if weighted { w } else { 1.0 }))).collect()
}

/// Replaces each address of `answer` with its identity (`ids`: address → identity).
fn to_ids<'a>(answer: &mut [&'a str], ids: Option<&HashMap<&'a str, &'a str>>) {
    if let Some(ids) = ids {
        answer.iter_mut().for_each(|n| *n = ids.get(n).copied().unwrap_or(n));
    }
}

/// Address → identity, for a service whose nodes have Ids (addresses are unique in a service).
fn identities(service: Option<&Service>) -> Option<HashMap<&str, &str>> {
    let s = service.filter(|s| s.has_ids())?;
    Some(s.nodes().iter().map(String::as_str).zip(s.ids().iter().map(String::as_str)).collect())
}

/// Over `samples` synthetic keys: the share whose top-k set changes and the mean number of
/// slots (of k) whose node changes. For `k = 1` both are the moved share of first choices.
fn sampled(old: Option<&Service>, new: Option<&Service>, k: usize, samples: usize) -> (Share, Share) {
    let (mut changed, mut slots) = (0usize, 0usize);
    let most = old.map_or(0, Service::len).max(new.map_or(0, Service::len)).min(k);
    let (mut a, mut b) = (Vec::with_capacity(most), Vec::with_capacity(most));
    // Answers are compared by identity: a re-addressed node is the same node.
    let (old_ids, new_ids) = (identities(old), identities(new));
    for i in 0..samples {
        let key = sample_key(i);
        a.clear();
        b.clear();
        if let Some(s) = old {
            s.rank_into(&key, k, &mut a);
        }
        if let Some(s) = new {
            s.rank_into(&key, k, &mut b);
        }
        to_ids(&mut a, old_ids.as_ref());
        to_ids(&mut b, new_ids.as_ref());
        let common = a.iter().filter(|n| b.contains(n)).count();
        let moved_slots = a.len().max(b.len()) - common;
        changed += usize::from(moved_slots > 0);
        slots += moved_slots;
    }
    let n = samples.max(1) as f64;
    (
        Share { value: changed as f64 / n, bound: Some(hoeffding_bound(samples, 1.0)) },
        Share { value: slots as f64 / n, bound: Some(hoeffding_bound(samples, k as f64)) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::{NodeSpec, ServiceSpec};

    fn service(nodes: &[(&str, f64)]) -> Service {
        let nodes = nodes.iter().map(|&(n, weight)| NodeSpec::weighted(n, weight)).collect();
        Service::build(ServiceSpec { name: "s".into(), nodes }).unwrap().0
    }

    fn unweighted(names: impl IntoIterator<Item = String>) -> Service {
        Service::build(ServiceSpec::new("s", names)).unwrap().0
    }

    fn nodes(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("node-{i}:80")).collect()
    }

    fn with_ids(addresses: &[&str], ids: &[&str], algorithm: crate::ranking::Algorithm) -> Service {
        let nodes = addresses.iter().zip(ids).map(|(a, id)| NodeSpec::new(*a).with_id(*id)).collect();
        Service::build_with(ServiceSpec { name: "s".into(), nodes }, algorithm).unwrap().0
    }

    #[test]
    fn a_readdressed_node_keeps_its_keys_and_a_new_id_is_a_new_node() {
        use crate::ranking::Algorithm;
        let ids = ["i0", "i1", "i2", "i3"];
        let old = with_ids(&["a:1", "b:1", "c:1", "d:1"], &ids, Algorithm::V2);
        let new = with_ids(&["a:1", "b:1", "c:1", "z:9"], &ids, Algorithm::V2);
        let i = service_impact(Some(&old), Some(&new), Some(2), 2000);
        assert_eq!(i.readdressed, [("i3".to_string(), "d:1".to_string(), "z:9".to_string())]);
        assert!(i.added.is_empty() && i.removed.is_empty(), "{i:?}");
        assert_eq!(i.moved, Share::exact(0.0));
        // Sampled (by identity) it is 0 too.
        assert_eq!(sampled(Some(&old), Some(&new), 2, 2000).0.value, 0.0);
        let renamed = with_ids(&["a:1", "b:1", "c:1", "d:1"], &["i0", "i1", "i2", "i9"], Algorithm::V2);
        let i = service_impact(Some(&old), Some(&renamed), None, 2000);
        assert_eq!((i.added.clone(), i.removed.clone()), (vec!["d:1".to_string()], vec!["d:1".to_string()]));
        assert!((i.moved.value - 0.4).abs() < 1e-12, "{i:?}");
    }

    #[test]
    fn an_algorithm_switch_is_sampled_and_moves_nearly_every_key() {
        use crate::ranking::Algorithm;
        let addresses: Vec<String> = nodes(0..10);
        let a: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let (v1, v2) = (with_ids(&a, &a, Algorithm::V1), with_ids(&a, &a, Algorithm::V2));
        let i = service_impact(Some(&v1), Some(&v2), Some(3), 20_000);
        assert!(i.algorithm_changed && !i.moved.is_exact(), "{i:?}");
        // About 9 in 10 keys with 10 equal nodes.
        assert!((i.moved.value - 0.9).abs() < 0.03, "{i:?}");
        assert!(i.replicas.unwrap().set_changed.value > 0.9, "{i:?}");
    }

    /// The exact share agrees with the sampled truth, within the stated bound.
    fn check(old: &Service, new: &Service, expected: f64) {
        let impact = service_impact(Some(old), Some(new), None, DEFAULT_SAMPLES);
        assert!(impact.moved.is_exact(), "{impact:?}");
        assert!((impact.moved.value - expected).abs() < 1e-12, "{impact:?} vs {expected}");
        let (truth, _) = sampled(Some(old), Some(new), 1, DEFAULT_SAMPLES);
        let bound = truth.bound.unwrap();
        assert!(bound < 0.0062, "{bound}");
        assert!((truth.value - expected).abs() <= bound, "sampled {truth:?} vs exact {expected}");
    }

    #[test]
    fn removing_one_of_ten_moves_a_tenth() {
        check(&unweighted(nodes(0..10)), &unweighted(nodes(0..9)), 0.1);
    }

    #[test]
    fn adding_one_to_ten_moves_one_eleventh() {
        check(&unweighted(nodes(0..10)), &unweighted(nodes(0..11)), 1.0 / 11.0);
    }

    #[test]
    fn adding_and_removing_at_once() {
        // A = 0..10, B = 3..15: kept 7, union 15.
        check(&unweighted(nodes(0..10)), &unweighted(nodes(3..15)), 1.0 - 7.0 / 15.0);
    }

    #[test]
    fn weighted_tables_use_weights() {
        let old = service(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
        let new = service(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("e", 0.5), ("f", 6.0)]);
        // Kept a, b, c = 6; union = 10 + 0.5 + 6 = 16.5.
        check(&old, &new, 1.0 - 6.0 / 16.5);
    }

    #[test]
    fn all_equal_weights_count_as_no_weights() {
        // Weights 3 everywhere rank like weight 1, so the newcomer of weight 1 is one of five.
        let old = service(&[("a", 3.0), ("b", 3.0), ("c", 3.0), ("d", 3.0)]);
        let new = unweighted(["a", "b", "c", "d", "e"].map(String::from));
        let impact = service_impact(Some(&old), Some(&new), None, DEFAULT_SAMPLES);
        assert_eq!(impact.reweighted.len(), 4);
        check(&old, &new, 0.2);
    }

    #[test]
    fn reweighting_is_estimated_within_its_bound() {
        let old = service(&[("a", 1.0), ("b", 1.0), ("c", 2.0)]);
        let new = service(&[("a", 1.0), ("b", 1.0), ("c", 4.0)]);
        let impact = service_impact(Some(&old), Some(&new), Some(2), DEFAULT_SAMPLES);
        assert_eq!(impact.reweighted, vec![("c".to_string(), 2.0, 4.0)]);
        assert!(!impact.moved.is_exact());
        // Exponential race: P(c first) goes from 2/4 to 4/6, and only keys that go to c move
        // (a and b keep their relative order), so the moved share is 4/6 - 2/4 = 1/6.
        let bound = impact.moved.bound.unwrap();
        assert!((impact.moved.value - 1.0 / 6.0).abs() <= bound, "{impact:?}");
        let replicas = impact.replicas.unwrap();
        assert!(replicas.set_changed.value > 0.0 && replicas.set_changed.value < 1.0, "{replicas:?}");
    }

    #[test]
    fn top_k_sets_only_change_for_keys_that_had_the_removed_node() {
        // Removing 1 of 10: a key's 3-set changes exactly when it held the node: 3/10.
        let impact = service_impact(Some(&unweighted(nodes(0..10))), Some(&unweighted(nodes(0..9))), Some(3), 20_000);
        let r = impact.replicas.unwrap();
        assert!((r.set_changed.value - 0.3).abs() <= r.set_changed.bound.unwrap(), "{r:?}");
        // And then exactly one slot changes: 0.3 slots per key on average.
        assert!((r.slots_changed.value - 0.3).abs() <= r.slots_changed.bound.unwrap(), "{r:?}");
    }

    #[test]
    fn same_service_moves_nothing_and_whole_services_move_everything() {
        let s = unweighted(nodes(0..5));
        let same = service_impact(Some(&s), Some(&s.clone()), Some(2), 1000);
        assert_eq!(same.moved, Share::exact(0.0));
        assert_eq!(same.replicas.unwrap().set_changed, Share::exact(0.0));
        let added = service_impact(None, Some(&s), Some(2), 1000);
        assert_eq!(added.added.len(), 5);
        assert_eq!(added.moved, Share::exact(1.0));
        assert_eq!(added.replicas.unwrap().slots_changed, Share::exact(2.0));
        assert_eq!(service_impact(Some(&s), None, None, 1000).removed.len(), 5);
    }

    #[test]
    fn shares_print_as_percentages() {
        assert_eq!(Share::exact(0.1).to_string(), "10.0 %");
        assert_eq!(Share::exact(1.0 / 11.0).to_string(), "9.09 %");
        assert_eq!(Share { value: 0.1667, bound: Some(0.0062) }.to_string(), "16.67 % ± 0.62 %");
    }
}
