//! The immutable service table: everything a lookup needs, computed once per node.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::hash::{fill_scores, hash_str, mix, score, weighted_score, ALGORITHM_VERSION};
use super::topk::{top_k, Candidate, INLINE};
use super::weighted;

/// One node as written in the services file: an opaque string and its weight (1 by default).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub node: String,
    pub weight: f64,
}

impl NodeSpec {
    /// A node of weight 1.
    pub fn new(node: impl Into<String>) -> Self {
        NodeSpec { node: node.into(), weight: 1.0 }
    }
}

/// One service as written in the services file.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
}

impl ServiceSpec {
    /// A service whose nodes all have weight 1.
    pub fn new<N: Into<String>>(name: impl Into<String>, nodes: impl IntoIterator<Item = N>) -> Self {
        ServiceSpec { name: name.into(), nodes: nodes.into_iter().map(NodeSpec::new).collect() }
    }
}

/// Why a set of specs cannot become a table. The config parser reports these with line and
/// column before they get here; the table checks again so that its own API cannot be misused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    #[error("service name is empty")]
    EmptyName,
    #[error("service {0:?} is defined more than once")]
    DuplicateService(String),
    #[error("service {service:?}: node {node:?} has weight {weight}; a weight must be finite and greater than 0")]
    InvalidWeight { service: String, node: String, weight: f64 },
}

/// Why a lookup has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("min ({min}) is greater than max ({max})")]
    MinGreaterThanMax { min: u64, max: u64 },
    #[error("service {service:?} has {available} node(s), fewer than min ({min})")]
    NotEnoughNodes { service: String, available: usize, min: u64 },
}

/// What building a table noticed without failing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Services whose node list had duplicates, and how many were removed (the first is kept).
    pub duplicates_removed: Vec<(String, usize)>,
}

/// A service ready for lookups.
#[derive(Debug, Clone)]
pub struct Service {
    name: String,
    nodes: Vec<String>,
    hashes: Vec<u64>,
    /// Each node's weight, in the order of `nodes`.
    weights: Vec<f64>,
    /// `1 / weight` for each node, for the weighted path's bound (see [`super::weighted`]).
    inv_weights: Vec<f64>,
    /// False when all weights are equal: the unweighted ranking is then exactly the weighted
    /// one, and much cheaper.
    weighted: bool,
    fingerprint: u64,
}

impl Service {
    /// Builds a service, dropping duplicate nodes (the first one wins). Linear in the number of
    /// nodes. Returns the service and how many duplicates were removed.
    pub fn build(spec: ServiceSpec) -> Result<(Service, usize), TableError> {
        if spec.name.is_empty() {
            return Err(TableError::EmptyName);
        }
        let mut seen = HashSet::with_capacity(spec.nodes.len());
        let mut keep = Vec::with_capacity(spec.nodes.len());
        for n in &spec.nodes {
            if !(n.weight.is_finite() && n.weight > 0.0) {
                return Err(TableError::InvalidWeight {
                    service: spec.name.clone(),
                    node: n.node.clone(),
                    weight: n.weight,
                });
            }
            keep.push(seen.insert(n.node.as_str()));
        }
        drop(seen);
        let removed = keep.iter().filter(|k| !**k).count();
        let mut nodes = Vec::with_capacity(spec.nodes.len() - removed);
        let mut weights = Vec::with_capacity(nodes.capacity());
        for (n, keep) in spec.nodes.into_iter().zip(keep) {
            if keep {
                nodes.push(n.node);
                weights.push(n.weight);
            }
        }
        let hashes: Vec<u64> = nodes.iter().map(|n| hash_str(n)).collect();
        let fingerprint = fingerprint(&hashes, &weights);
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        let inv_weights = if uniform { Vec::new() } else { weights.iter().map(|&w| weighted::inverse(w)).collect() };
        Ok((Service { name: spec.name, nodes, hashes, weights, inv_weights, weighted: !uniform, fingerprint }, removed))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The nodes, in file order, without duplicates.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Each node's weight, in the order of [`Service::nodes`].
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Whether the nodes have different weights (and lookups take the weighted path).
    pub fn is_weighted(&self) -> bool {
        self.weighted
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A stable hash of the node set, the weights and the algorithm version, independent of
    /// node order.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// How many nodes a lookup with these bounds answers: `min(max, node count)`, or an error
    /// when `min > max` or the service has fewer than `min` nodes.
    pub fn answer_len(&self, min: u64, max: u64) -> Result<usize, LookupError> {
        if min > max {
            return Err(LookupError::MinGreaterThanMax { min, max });
        }
        let available = self.nodes.len();
        if (available as u64) < min {
            return Err(LookupError::NotEnoughNodes { service: self.name.clone(), available, min });
        }
        Ok(usize::try_from(max).map_or(available, |m| m.min(available)))
    }

    /// The nodes ranked highest for `key`, best first: between `min` and `max` of them, as many
    /// as the service has.
    pub fn lookup(&self, key: &str, min: u64, max: u64) -> Result<Vec<&str>, LookupError> {
        let k = self.answer_len(min, max)?;
        let mut out = Vec::with_capacity(k);
        self.rank_into(key, k, &mut out);
        Ok(out)
    }

    /// Appends the `k` nodes ranked highest for `key` to `out`, best first (fewer if the service
    /// has fewer). Allocates nothing for `k <= 32` beyond what `out` needs.
    pub fn rank_into<'a>(&'a self, key: &str, k: usize, out: &mut Vec<&'a str>) {
        let key_hash = hash_str(key);
        let hashes = &self.hashes[..];
        let nodes = &self.nodes[..];
        let emit = |i: usize| out.push(nodes[i].as_str());
        let weights = &self.weights[..];
        match self.weighted {
            true if k <= INLINE => {
                weighted::top_k(key_hash, hashes, weights, &self.inv_weights, k, weighted_order(nodes), emit)
            }
            false => top_k(
                hashes.len(),
                k,
                |start, out: &mut [u64]| fill_scores(key_hash, &hashes[start..start + out.len()], out),
                unweighted_order(nodes),
                emit,
            ),
            true => top_k(
                hashes.len(),
                k,
                |start, out: &mut [WeightedScore]| {
                    for (i, o) in (start..).zip(out.iter_mut()) {
                        let raw = score(key_hash, hashes[i]);
                        *o = (weighted_score(raw, weights[i]), raw);
                    }
                    // No block skipping: the bound would cost as much as the scan it saves.
                    (f64::INFINITY, u64::MAX)
                },
                weighted_order(nodes),
                emit,
            ),
        }
    }
}

/// The order of an unweighted ranking over `nodes`, as [`top_k`] takes it (`Greater`: `a` ranks
/// before `b`): the higher score first; equal scores (a 64-bit collision) by the node string,
/// the smaller (bytewise) first, so the order is total and does not depend on the order of the
/// nodes in the file.
#[inline(always)]
pub fn unweighted_order(nodes: &[String]) -> impl Fn(&Candidate<u64>, &Candidate<u64>) -> Ordering + '_ {
    move |a, b| a.score.cmp(&b.score).then_with(|| tie(nodes, a.index, b.index))
}

/// A weighted candidate's score: the weighted score, and the raw hash score it came from.
pub type WeightedScore = (f64, u64);

/// The order of a weighted ranking over `nodes`: the higher weighted score first, then the
/// higher raw hash score, then the node string as in [`unweighted_order`].
#[inline(always)]
pub fn weighted_order(
    nodes: &[String],
) -> impl Fn(&Candidate<WeightedScore>, &Candidate<WeightedScore>) -> Ordering + '_ {
    move |a, b| {
        a.score.0.total_cmp(&b.score.0).then(a.score.1.cmp(&b.score.1)).then_with(|| tie(nodes, a.index, b.index))
    }
}

/// `Greater` when node `a`'s string is the smaller one: it ranks first.
#[inline(always)]
fn tie(nodes: &[String], a: u32, b: u32) -> Ordering {
    nodes[b as usize].cmp(&nodes[a as usize])
}

/// Order-independent fingerprint: a sum of per-node mixes, so it is linear to compute and the
/// same for any permutation of the nodes.
fn fingerprint(hashes: &[u64], weights: &[f64]) -> u64 {
    let mut acc = mix(u64::from(ALGORITHM_VERSION) ^ 0x9e37_79b9_7f4a_7c15);
    for (h, w) in hashes.iter().zip(weights) {
        acc = acc.wrapping_add(mix(h ^ mix(w.to_bits())));
    }
    mix(acc ^ hashes.len() as u64)
}

/// All services, by name. Immutable: a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Table {
    /// Sorted by name; a service's position is its stable index in this table.
    services: Vec<Service>,
    /// Name → position, hashed with ahash: several times cheaper than SipHash for the one
    /// lookup every request makes (names come from the operator's file, so a fixed key is
    /// fine; unknown names only miss).
    index: HashMap<String, usize, ahash::RandomState>,
    names: Vec<String>,
    fingerprint: u64,
}

impl Table {
    /// Builds a table from service specs.
    pub fn build(specs: impl IntoIterator<Item = ServiceSpec>) -> Result<(Table, BuildReport), TableError> {
        let mut services = Vec::new();
        let mut report = BuildReport::default();
        let mut seen = HashSet::new();
        for spec in specs {
            let (service, removed) = Service::build(spec)?;
            if removed > 0 {
                report.duplicates_removed.push((service.name.clone(), removed));
            }
            if !seen.insert(service.name.clone()) {
                return Err(TableError::DuplicateService(service.name));
            }
            services.push(service);
        }
        services.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        let mut index = HashMap::with_capacity_and_hasher(names.len(), ahash::RandomState::with_seeds(1, 2, 3, 4));
        index.extend(names.iter().enumerate().map(|(i, n)| (n.clone(), i)));
        let mut acc = mix(u64::from(ALGORITHM_VERSION));
        for service in &services {
            acc = mix(acc ^ hash_str(&service.name)).wrapping_add(service.fingerprint);
        }
        Ok((Table { services, index, names, fingerprint: mix(acc) }, report))
    }

    /// The service called `name`.
    pub fn get(&self, name: &str) -> Option<&Service> {
        self.find(name).map(|(_, s)| s)
    }

    /// The service called `name` and its position in [`Table::services`].
    pub fn find(&self, name: &str) -> Option<(usize, &Service)> {
        self.index.get(name).map(|&i| (i, &self.services[i]))
    }

    /// Service names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Services, sorted by name.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Total number of nodes over all services.
    pub fn node_count(&self) -> usize {
        self.services.iter().map(Service::len).sum()
    }

    /// Fingerprint of the whole table: every service's name and fingerprint.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// Formats a fingerprint the way the API shows it.
pub fn fingerprint_hex(f: u64) -> String {
    format!("{f:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every node scored exactly and sorted: what the weighted path must answer.
    fn reference<'a>(s: &'a Service, key: &str, k: usize) -> Vec<&'a str> {
        let kh = hash_str(key);
        let mut all: Vec<(f64, u64, &str)> = (0..s.len())
            .map(|i| {
                let raw = score(kh, s.hashes[i]);
                (weighted_score(raw, s.weights[i]), raw, s.nodes[i].as_str())
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(b.2)));
        all.into_iter().take(k).map(|c| c.2).collect()
    }

    fn service(weights: &[f64]) -> Service {
        let nodes = weights.iter().enumerate().map(|(i, &weight)| NodeSpec { node: format!("n{i}:80"), weight });
        Service::build(ServiceSpec { name: "w".into(), nodes: nodes.collect() }).unwrap().0
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The bound only skips nodes that lose: every answer equals scoring every node exactly.
        #[test]
        fn the_weighted_fast_path_never_changes_an_answer(
            weights in prop::collection::vec(
                prop_oneof![1e-6f64..1e6, 0.5f64..2.0, Just(1.0), Just(1.0 + f64::EPSILON), 1e-300f64..1e-290],
                1..300,
            ),
            k in 1usize..=INLINE,
            seed in any::<u64>(),
        ) {
            let s = service(&weights);
            prop_assume!(s.is_weighted());
            for i in 0..20u64 {
                let key = format!("key-{}", mix(seed ^ i));
                let mut fast = Vec::new();
                s.rank_into(&key, k, &mut fast);
                prop_assert_eq!(fast, reference(&s, &key, k), "key {}", key);
            }
        }
    }

    #[test]
    fn the_weighted_fast_path_agrees_on_large_services() {
        let weights: Vec<f64> = (0..10_000u64).map(|i| 0.25 + (mix(i) % 1000) as f64 / 100.0).collect();
        let s = service(&weights);
        for i in 0..60 {
            let key = format!("user:{i}");
            for k in [1, 3, 10, 32] {
                let mut fast = Vec::new();
                s.rank_into(&key, k, &mut fast);
                assert_eq!(fast, reference(&s, &key, k), "key {key}, k {k}");
            }
        }
    }
}
