//! The immutable service table: everything a lookup needs, computed once per node. Building a
//! service and ranking its nodes share the precomputed hashes and weights, so they live together.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::hash::{
    mix, premix, score, top_k_unweighted, top_k_unweighted_masked, weight_in_range, weighted_score, zone_maxima,
    Algorithm, Simd, MAX_WEIGHT, MIN_WEIGHT,
};
use super::small::SMALL_N;
use super::topk::{top_k, Candidate, INLINE};
use super::weighted;

/// One node as written in the services file: an opaque address string (what answers carry), an
/// optional identity (what the ranking hashes; the address when `None`), its weight (1 by
/// default) and an optional zone (what `spread=zone` spreads answers over).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub node: String,
    pub id: Option<String>,
    pub weight: f64,
    pub zone: Option<String>,
}

impl NodeSpec {
    /// A node of weight 1 whose identity is its address.
    pub fn new(node: impl Into<String>) -> Self {
        NodeSpec { node: node.into(), id: None, weight: 1.0, zone: None }
    }

    /// A node of weight `weight` whose identity is its address.
    pub fn weighted(node: impl Into<String>, weight: f64) -> Self {
        NodeSpec { node: node.into(), id: None, weight, zone: None }
    }

    /// The same node with the identity `id`.
    pub fn with_id(self, id: impl Into<String>) -> Self {
        NodeSpec { id: Some(id.into()), ..self }
    }

    /// The same node in zone `zone`.
    pub fn with_zone(self, zone: impl Into<String>) -> Self {
        NodeSpec { zone: Some(zone.into()), ..self }
    }

    /// What the ranking hashes: the Id, or the address when there is none.
    pub fn identity(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.node)
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
    #[error(
        "service {service:?}: node {node:?} has weight {weight}; a weight must be from {MIN_WEIGHT:e} to {MAX_WEIGHT:e}"
    )]
    InvalidWeight { service: String, node: String, weight: f64 },
    #[error("service {service:?}: Id {id:?} is given to two nodes, {first:?} and {second:?}")]
    DuplicateId { service: String, id: String, first: String, second: String },
    #[error("service {service:?}: node {node:?} has two Ids, {first:?} and {second:?}")]
    SharedAddress { service: String, node: String, first: String, second: String },
}

/// Why a lookup has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("min ({min}) is greater than max ({max})")]
    MinGreaterThanMax { min: u64, max: u64 },
    #[error("service {service:?} has {available} node(s), fewer than min ({min})")]
    NotEnoughNodes { service: String, available: usize, min: u64 },
}

/// How a lookup orders the nodes it answers beyond the ranking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Spread {
    /// The ranking's order.
    #[default]
    None,
    /// The best node of each zone first, in rank order, until every zone is represented; then
    /// the other nodes in rank order. Nodes without a zone form one zone of their own.
    Zone,
}

/// What a lookup may ask beyond key, `min` and `max` (see [`Service::lookup_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupOptions<'a> {
    /// Identities of nodes to leave out: the answer is the one of the service without them.
    /// Entries that name no node are ignored, and duplicates count once.
    pub exclude: &'a [&'a str],
    pub spread: Spread,
}

/// [`LookupOptions`] resolved against one service ([`Service::resolve`]): what a batch of
/// lookups shares, so that the entries are matched once, not once per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The excluded nodes' positions in [`Service::nodes`], sorted, without duplicates.
    excluded: Vec<u32>,
    /// `spread=zone` on a service with zones (on one without, it changes nothing).
    spread: bool,
}

impl Resolved {
    /// How many of the service's nodes the options leave out.
    pub fn excluded(&self) -> usize {
        self.excluded.len()
    }

    /// Whether lookups with these options are plain ones.
    pub fn is_plain(&self) -> bool {
        self.excluded.is_empty() && !self.spread
    }
}

/// Whether node `i` is in `excluded` (sorted).
#[inline]
pub(crate) fn is_excluded(excluded: &[u32], i: usize) -> bool {
    !excluded.is_empty() && excluded.binary_search(&(i as u32)).is_ok()
}

/// Moves the distinct values of sorted `v` to its front; returns how many there are.
fn dedup(v: &mut [u32]) -> usize {
    let mut kept = 0;
    for i in 0..v.len() {
        if kept == 0 || v[i] != v[kept - 1] {
            v[kept] = v[i];
            kept += 1;
        }
    }
    kept
}

/// Up to this many `exclude` entries, [`Service::lookup_with`] matches them on the stack.
const FEW: usize = 8;

/// Up to this many zones, `spread=zone` keeps their best nodes on the stack.
const FEW_ZONES: usize = 16;

/// What building a table noticed without failing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Services whose node list had duplicates (same Id and address), and how many were removed
    /// (the first is kept).
    pub duplicates_removed: Vec<(String, usize)>,
}

/// A service ready for lookups.
#[derive(Debug, Clone)]
pub struct Service {
    name: String,
    algorithm: Algorithm,
    /// The addresses: what answers carry.
    nodes: Vec<String>,
    /// The identities, in the order of `nodes`; empty when every node's identity is its
    /// address (the usual case, which then stores no second copy of the strings).
    ids: Vec<String>,
    /// The hash of each node's identity.
    hashes: Vec<u64>,
    /// `hashes` through [`premix`], for the AVX-512 build's pass over blocks: only for an
    /// unweighted service of more than [`SMALL_N`] nodes on a CPU with AVX-512, else empty.
    premixed: Vec<u64>,
    /// Each node's weight, in the order of `nodes`.
    weights: Vec<f64>,
    /// `1 / weight` for each node, for the weighted path's bound (see [`super::weighted`]).
    inv_weights: Vec<f64>,
    /// False when all weights are equal: the unweighted ranking is then exactly the weighted
    /// one, and much cheaper.
    weighted: bool,
    fingerprint: u64,
    /// Node positions by identity hash ([`index_of`]), for services of more than [`INDEXED`]
    /// nodes: finds an `exclude` entry's node without comparing every identity.
    by_hash: Vec<u32>,
    /// The zones, when some node has one.
    zones: Option<Box<Zones>>,
}

/// A service's zones, and its nodes grouped by zone, for `spread=zone`: the best node of a zone
/// is the top 1 of its group, ranked by the same code as a whole service.
#[derive(Debug, Clone)]
struct Zones {
    /// Each node's zone, in the order of the service's nodes.
    names: Vec<Option<String>>,
    /// Each node's zone number.
    zone_of: Vec<u32>,
    /// Zone `z`'s nodes are `members[starts[z]..starts[z + 1]]`.
    starts: Vec<u32>,
    /// Node positions, grouped by zone.
    members: Vec<u32>,
    /// The hashes, weights and inverse weights of `members`, in that order (weights only for a
    /// weighted service).
    hashes: Vec<u64>,
    weights: Vec<f64>,
    inv_weights: Vec<f64>,
}

impl Zones {
    fn build(names: Vec<Option<String>>, hashes: &[u64], weights: &[f64], inv_weights: &[f64]) -> Zones {
        let mut numbers: HashMap<Option<&str>, u32> = HashMap::new();
        let zone_of: Vec<u32> = names
            .iter()
            .map(|z| {
                let next = numbers.len() as u32;
                *numbers.entry(z.as_deref()).or_insert(next)
            })
            .collect();
        let count = numbers.len();
        drop(numbers);
        let mut starts = vec![0u32; count + 1];
        for &z in &zone_of {
            starts[z as usize + 1] += 1;
        }
        for z in 0..count {
            starts[z + 1] += starts[z];
        }
        let mut next: Vec<u32> = starts[..count].to_vec();
        let mut members = vec![0u32; zone_of.len()];
        for (i, &z) in zone_of.iter().enumerate() {
            members[next[z as usize] as usize] = i as u32;
            next[z as usize] += 1;
        }
        let pick =
            |of: &[f64]| if of.is_empty() { Vec::new() } else { members.iter().map(|&i| of[i as usize]).collect() };
        Zones {
            hashes: members.iter().map(|&i| hashes[i as usize]).collect(),
            weights: pick(weights),
            inv_weights: pick(inv_weights),
            names,
            zone_of,
            starts,
            members,
        }
    }

    fn count(&self) -> usize {
        self.starts.len() - 1
    }
}

/// An open-addressing table of node positions by identity hash (`hashes`, one per node): a
/// power of two of at least twice as many slots as nodes, each 0 (empty) or a position + 1, a
/// node in the first free slot from `hash & (slots - 1)`. One or two probes find an entry,
/// where a binary search over sorted hashes was a chain of dependent loads.
fn index_of(hashes: &[u64]) -> Vec<u32> {
    let slots = (hashes.len() * 2).next_power_of_two();
    let mut index = vec![0u32; slots];
    for (i, &h) in hashes.iter().enumerate() {
        let mut slot = h as usize & (slots - 1);
        while index[slot] != 0 {
            slot = (slot + 1) & (slots - 1);
        }
        index[slot] = i as u32 + 1;
    }
    index
}

/// Services of more nodes than this get an index of identity hashes for `exclude`; smaller ones
/// compare identities.
const INDEXED: usize = 32;

impl Service {
    /// Builds an algorithm-1 service (see [`Service::build_with`]).
    pub fn build(spec: ServiceSpec) -> Result<(Service, usize), TableError> {
        Service::build_with(spec, Algorithm::V1)
    }

    /// Builds a service, dropping duplicate nodes (same identity and address: the first one
    /// wins). An identity given to two addresses, or an address with two identities, is an
    /// error. Linear in the number of nodes. Returns the service and how many duplicates were
    /// removed.
    pub fn build_with(spec: ServiceSpec, algorithm: Algorithm) -> Result<(Service, usize), TableError> {
        if spec.name.is_empty() {
            return Err(TableError::EmptyName);
        }
        let nodes_in = &spec.nodes;
        // Few nodes (the usual case) are compared directly: cheaper than hashing them.
        let small = nodes_in.len() <= SMALL;
        let capacity = if small { 0 } else { nodes_in.len() };
        let seeds = || ahash::RandomState::with_seeds(1, 2, 3, 4);
        let mut by_id: HashMap<&str, usize, _> = HashMap::with_capacity_and_hasher(capacity, seeds());
        // Only nodes with an explicit Id can share an address with another identity.
        let mut by_address: HashMap<&str, usize, _> = HashMap::with_hasher(seeds());
        let mut keep = Vec::with_capacity(nodes_in.len());
        for (i, n) in nodes_in.iter().enumerate() {
            if !weight_in_range(n.weight) {
                return Err(TableError::InvalidWeight {
                    service: spec.name.clone(),
                    node: n.node.clone(),
                    weight: n.weight,
                });
            }
            let id = n.identity();
            let same_id = match small {
                true => nodes_in[..i].iter().position(|m| m.identity() == id),
                false => by_id.get(id).copied(),
            };
            if let Some(j) = same_id {
                if nodes_in[j].node != n.node {
                    return Err(TableError::DuplicateId {
                        service: spec.name.clone(),
                        id: id.to_string(),
                        first: nodes_in[j].node.clone(),
                        second: n.node.clone(),
                    });
                }
                keep.push(false);
                continue;
            }
            if !small {
                by_id.insert(id, i);
            }
            keep.push(true);
        }
        drop(by_id);
        // An address with two identities: only possible where some node has an explicit Id.
        if nodes_in.iter().any(|n| n.id.is_some()) {
            for (i, n) in nodes_in.iter().enumerate().filter(|(i, _)| keep[*i]) {
                if let Some(&j) = by_address.get(n.node.as_str()) {
                    return Err(TableError::SharedAddress {
                        service: spec.name.clone(),
                        node: n.node.clone(),
                        first: nodes_in[j].identity().to_string(),
                        second: n.identity().to_string(),
                    });
                }
                by_address.insert(&n.node, i);
            }
        }
        drop(by_address);
        let removed = keep.iter().filter(|k| !**k).count();
        let has_ids = spec.nodes.iter().any(|n| n.id.as_ref().is_some_and(|id| *id != n.node));
        let mut nodes = Vec::with_capacity(spec.nodes.len() - removed);
        let mut ids = Vec::with_capacity(if has_ids { nodes.capacity() } else { 0 });
        let mut weights = Vec::with_capacity(nodes.capacity());
        let has_zones = spec.nodes.iter().any(|n| n.zone.is_some());
        let mut zones = Vec::with_capacity(if has_zones { nodes.capacity() } else { 0 });
        for (n, keep) in spec.nodes.into_iter().zip(keep) {
            if keep {
                if has_ids {
                    ids.push(n.id.unwrap_or_else(|| n.node.clone()));
                }
                nodes.push(n.node);
                weights.push(n.weight);
                if has_zones {
                    zones.push(n.zone);
                }
            }
        }
        let identities = if has_ids { &ids } else { &nodes };
        let hashes: Vec<u64> = identities.iter().map(|n| algorithm.hash_id(n)).collect();
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        // All-equal weights rank exactly like no weights (the unweighted path below), so they
        // get the unweighted fingerprint: the fingerprint identifies the answers.
        let addresses = has_ids.then_some(&nodes[..]);
        let zone_names = has_zones.then_some(&zones[..]);
        let fingerprint =
            fingerprint(algorithm, &hashes, (!uniform).then_some(&weights[..]), addresses, &ids, zone_names);
        let inv_weights = if uniform { Vec::new() } else { weights.iter().map(|&w| weighted::inverse(w)).collect() };
        let by_hash = if hashes.len() > INDEXED { index_of(&hashes) } else { Vec::new() };
        let premixed = match uniform && hashes.len() > SMALL_N && Simd::detect() == Simd::Avx512 {
            true => hashes.iter().map(|&h| premix(h)).collect(),
            false => Vec::new(),
        };
        let zones = has_zones.then(|| {
            let weights = if uniform { &[][..] } else { &weights[..] };
            Box::new(Zones::build(zones, &hashes, weights, &inv_weights))
        });
        let service = Service {
            name: spec.name,
            algorithm,
            nodes,
            ids,
            hashes,
            premixed,
            weights,
            inv_weights,
            weighted: !uniform,
            fingerprint,
            by_hash,
            zones,
        };
        Ok((service, removed))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The nodes' addresses (what answers carry), in file order, without duplicates.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The nodes' identities (what the ranking hashes), in the order of [`Service::nodes`]: the
    /// Ids, or the addresses for nodes without one.
    pub fn ids(&self) -> &[String] {
        if self.ids.is_empty() {
            &self.nodes
        } else {
            &self.ids
        }
    }

    /// Whether some node's identity differs from its address (then `/table` and `check` show
    /// the Ids).
    pub fn has_ids(&self) -> bool {
        !self.ids.is_empty()
    }

    /// Each node's zone, in the order of [`Service::nodes`], or `None` when no node has one.
    pub fn zones(&self) -> Option<&[Option<String>]> {
        self.zones.as_ref().map(|z| &z.names[..])
    }

    /// Whether some node has a zone (then `/table` and `check` show them).
    pub fn has_zones(&self) -> bool {
        self.zones.is_some()
    }

    /// The algorithm that ranks this service.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Each node's weight, in the order of [`Service::nodes`].
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Whether the nodes have different weights (and lookups take the weighted path).
    pub fn is_weighted(&self) -> bool {
        self.weighted
    }

    /// Whether any node has a weight other than the default 1 (then `/table` shows them, even
    /// when they are all equal and rank like no weights).
    pub fn has_weights(&self) -> bool {
        self.weights.iter().any(|&w| w != 1.0)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A stable hash of the node set (identities and addresses), the weights and the algorithm,
    /// independent of node order. Services that answer every lookup alike have the same fingerprint: all-equal
    /// weights count as no weights.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// How many nodes a lookup with these bounds answers: `min(max, node count)`, or an error
    /// when `min > max` or the service has fewer than `min` nodes.
    pub fn answer_len(&self, min: u64, max: u64) -> Result<usize, LookupError> {
        self.answer_len_of(self.nodes.len(), min, max)
    }

    /// [`Service::answer_len`] for a lookup with options: the bounds apply to the nodes the
    /// options leave.
    pub fn answer_len_with(&self, min: u64, max: u64, resolved: &Resolved) -> Result<usize, LookupError> {
        self.answer_len_of(self.nodes.len() - resolved.excluded.len(), min, max)
    }

    fn answer_len_of(&self, available: usize, min: u64, max: u64) -> Result<usize, LookupError> {
        if min > max {
            return Err(LookupError::MinGreaterThanMax { min, max });
        }
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

    /// [`Service::lookup`] with options: `exclude` leaves nodes out (the answer is exactly the
    /// one of the service without them, `min` and `max` applying to the nodes that remain), and
    /// `spread` reorders the answer over zones. With default options, the same as
    /// [`Service::lookup`], at the same cost.
    pub fn lookup_with(&self, key: &str, min: u64, max: u64, opts: &LookupOptions) -> Result<Vec<&str>, LookupError> {
        let spread = opts.spread == Spread::Zone && self.zones.is_some();
        if opts.exclude.is_empty() && !spread {
            return self.lookup(key, min, max);
        }
        // A few entries (the usual retry) are matched into the stack: no allocation but the
        // answer's.
        let mut few = [0u32; FEW];
        let many;
        let excluded = match opts.exclude.len() <= FEW {
            true => {
                let mut n = 0;
                for i in opts.exclude.iter().filter_map(|e| self.position(e)) {
                    few[n] = i;
                    n += 1;
                }
                let few = &mut few[..n];
                // One entry (a retry's) needs no sorting.
                if n > 1 {
                    few.sort_unstable();
                }
                let kept = dedup(few);
                &few[..kept]
            }
            false => {
                many = self.resolve(opts).excluded;
                &many[..]
            }
        };
        let k = self.answer_len_of(self.nodes.len() - excluded.len(), min, max)?;
        let mut out = Vec::with_capacity(k);
        self.rank_with_indexes(key, k, excluded, spread, |i| out.push(self.nodes[i].as_str()));
        Ok(out)
    }

    /// Matches `opts` against this service's nodes, once for any number of lookups.
    pub fn resolve(&self, opts: &LookupOptions) -> Resolved {
        let mut excluded: Vec<u32> = opts.exclude.iter().filter_map(|e| self.position(e)).collect();
        excluded.sort_unstable();
        excluded.dedup();
        Resolved { excluded, spread: opts.spread == Spread::Zone && self.zones.is_some() }
    }

    /// The position of the node whose identity is `id`.
    fn position(&self, id: &str) -> Option<u32> {
        let ids = self.ids();
        if self.by_hash.is_empty() {
            return ids.iter().position(|i| i == id).map(|i| i as u32);
        }
        let h = self.algorithm.hash_id(id);
        let mask = self.by_hash.len() - 1;
        // Linear probing from the hash's slot to the first empty one (at least half are empty).
        let mut slot = h as usize & mask;
        loop {
            let i = self.by_hash[slot].checked_sub(1)? as usize;
            if self.hashes[i] == h && ids[i] == id {
                return Some(i as u32);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// [`Service::rank_each`] with resolved options: the `k` first nodes of the answer (`k` from
    /// [`Service::answer_len_with`]).
    pub fn rank_with_each<'a>(&'a self, key: &str, k: usize, resolved: &Resolved, mut emit: impl FnMut(&'a str)) {
        let nodes = &self.nodes[..];
        self.rank_with_indexes(key, k, &resolved.excluded, resolved.spread, |i| emit(nodes[i].as_str()));
    }

    /// The answer's first `k` nodes by position; `excluded` sorted, without duplicates.
    fn rank_with_indexes(&self, key: &str, k: usize, excluded: &[u32], spread: bool, emit: impl FnMut(usize)) {
        match &self.zones {
            Some(zones) if spread => self.rank_spread(key, k, excluded, zones, emit),
            _ => self.rank_excluding(key, k, excluded, emit),
        }
    }

    /// The `k` best nodes that are not excluded: the first `k` of the `k + excluded` best, since
    /// leaving nodes out does not change the order of the others.
    fn rank_excluding(&self, key: &str, k: usize, excluded: &[u32], mut emit: impl FnMut(usize)) {
        // A small unweighted service leaves the excluded out of the selection itself.
        if !self.weighted
            && !excluded.is_empty()
            && self.hashes.len() <= SMALL_N
            && top_k_unweighted_masked(
                Simd::detect(),
                self.algorithm.hash_key(key),
                &self.hashes,
                k,
                excluded,
                &mut emit,
            )
        {
            return;
        }
        // A weighted one too, in its scan.
        if self.weighted && !excluded.is_empty() && k <= INLINE {
            let weights = weighted::Weights { of: &self.weights, inverse: &self.inv_weights };
            let key_hash = self.algorithm.hash_key(key);
            let order = weighted_order(self.ids());
            return weighted::top_k(Simd::detect(), key_hash, &self.hashes, weights, excluded, k, order, emit);
        }
        let mut left = k;
        self.rank_indexes(key, k + excluded.len(), |i| {
            if left > 0 && !is_excluded(excluded, i) {
                left -= 1;
                emit(i);
            }
        });
    }

    /// `spread=zone`: the best node of each zone (the top 1 of its group, or the top `1 + e` when
    /// `e` of its nodes are excluded), ordered by the ranking; then, if `k` asks for more, the
    /// best of the others.
    fn rank_spread(&self, key: &str, k: usize, excluded: &[u32], zones: &Zones, mut emit: impl FnMut(usize)) {
        if k == 0 {
            return;
        }
        let key_hash = self.algorithm.hash_key(key);
        let count = zones.count();
        // Excluded nodes per zone: counted on the fly for a few, in a table for more.
        let mut excluded_in = Vec::new();
        if excluded.len() > FEW {
            excluded_in = vec![0usize; count];
            for &i in excluded {
                excluded_in[zones.zone_of[i as usize] as usize] += 1;
            }
        }
        let excluded_from = |z: usize| match excluded.len() > FEW {
            true => excluded_in[z],
            false => excluded.iter().filter(|&&i| zones.zone_of[i as usize] as usize == z).count(),
        };
        // The zones' best nodes: on the stack for a few zones (the usual case).
        let mut stack = [0u32; FEW_ZONES];
        let mut heap = Vec::new();
        let bests: &mut [u32] = match count <= FEW_ZONES {
            true => &mut stack[..count],
            false => {
                heap.resize(count, 0);
                &mut heap
            }
        };
        let mut found = 0;
        let ids = self.ids();
        // Small and unweighted, nothing excluded (the usual case): one pass for every zone.
        let small = !self.weighted && excluded.is_empty() && zones.hashes.len() <= SMALL_N;
        if small && zone_maxima(Simd::detect(), key_hash, &zones.hashes, &zones.starts, bests) {
            for b in bests.iter_mut() {
                *b = zones.members[*b as usize];
            }
            found = count;
        }
        // Otherwise (or on a tie), each zone ranked on its own: `found` is 0 or every zone.
        let ranked_apart = found..count;
        for z in ranked_apart {
            let (start, end) = (zones.starts[z] as usize, zones.starts[z + 1] as usize);
            let excluded_here = if excluded.is_empty() { 0 } else { excluded_from(z) };
            if excluded_here == end - start {
                continue;
            }
            let members = &zones.members[start..end];
            let mut best = None;
            let group = Group {
                hashes: &zones.hashes[start..end],
                weights: if self.weighted { &zones.weights[start..end] } else { &[] },
                inv_weights: if self.weighted { &zones.inv_weights[start..end] } else { &[] },
                ids: |j: u32| ids[members[j as usize] as usize].as_str(),
            };
            group.rank(key_hash, 1 + excluded_here, |j| {
                let i = members[j] as usize;
                if best.is_none() && !is_excluded(excluded, i) {
                    best = Some(i as u32);
                }
            });
            if let Some(b) = best {
                bests[found] = b;
                found += 1;
            }
        }
        let bests = &mut bests[..found];
        // The zones' best nodes in rank order: sorted by the ranking's keys.
        let first = k.min(bests.len());
        match self.weighted {
            false => {
                let key_of = |&i: &u32| (score(key_hash, self.hashes[i as usize]), std::cmp::Reverse(&ids[i as usize]));
                partial_sort(bests, first, |a, b| key_of(b).cmp(&key_of(a)));
            }
            true => {
                let key_of = |&i: &u32| {
                    let raw = score(key_hash, self.hashes[i as usize]);
                    (weighted_score(raw, self.weights[i as usize]), raw, &ids[i as usize])
                };
                partial_sort(bests, first, |a, b| {
                    let (a, b) = (key_of(a), key_of(b));
                    b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(b.2))
                });
            }
        }
        bests[..first].iter().for_each(|&i| emit(i as usize));
        let mut left = k - first;
        if left == 0 {
            return;
        }
        // Every zone is represented: the rest in rank order, the best `left` of the `k +
        // excluded` best that are neither excluded nor a zone's best.
        self.rank_indexes(key, k + excluded.len(), |i| {
            if left > 0 && !is_excluded(excluded, i) && !bests.contains(&(i as u32)) {
                left -= 1;
                emit(i);
            }
        });
    }

    /// Appends the `k` nodes ranked highest for `key` to `out`, best first (fewer if the service
    /// has fewer). Allocates nothing for `k <= 32` beyond what `out` needs.
    pub fn rank_into<'a>(&'a self, key: &str, k: usize, out: &mut Vec<&'a str>) {
        self.rank_each(key, k, |node| out.push(node));
    }

    /// Calls `emit` with each of the `k` nodes ranked highest for `key`, best first (fewer if
    /// the service has fewer): [`Service::rank_into`] without the vector.
    #[inline]
    pub fn rank_each<'a>(&'a self, key: &str, k: usize, mut emit: impl FnMut(&'a str)) {
        let nodes = &self.nodes[..];
        self.rank_indexes(key, k, |i: usize| emit(nodes[i].as_str()));
    }

    /// [`Service::rank_each`] by node position.
    #[inline(always)]
    fn rank_indexes(&self, key: &str, k: usize, emit: impl FnMut(usize)) {
        let key_hash = self.algorithm.hash_key(key);
        let hashes = &self.hashes[..];
        // Ties are broken by identity.
        let nodes = self.ids();
        let weights = self.weighted.then_some(weighted::Weights { of: &self.weights, inverse: &self.inv_weights });
        let premixed = &self.premixed[..];
        rank_scored(key_hash, hashes, premixed, weights, k, unweighted_order(nodes), weighted_order(nodes), emit)
    }
}

/// Calls `emit` with the positions in `hashes` of the `k` nodes ranked highest for `key_hash`
/// (weighted by `weights` when given), best first, ties broken by the order given: the one
/// dispatch a whole service and a zone's group rank through. `premixed`: empty, or `hashes`
/// through [`premix`].
#[inline(always)]
#[allow(clippy::too_many_arguments)] // What the two rankings share, passed on as it is.
fn rank_scored(
    key_hash: u64,
    hashes: &[u64],
    premixed: &[u64],
    weights: Option<weighted::Weights<'_>>,
    k: usize,
    unweighted: impl Fn(&Candidate<u64>, &Candidate<u64>) -> Ordering,
    weighted: impl Fn(&Candidate<WeightedScore>, &Candidate<WeightedScore>) -> Ordering,
    emit: impl FnMut(usize),
) {
    match weights {
        None => top_k_unweighted(Simd::detect(), key_hash, hashes, premixed, k, unweighted, emit),
        Some(w) if k <= INLINE => weighted::top_k(Simd::detect(), key_hash, hashes, w, &[], k, weighted, emit),
        Some(w) => top_k(
            hashes.len(),
            k,
            |start, out: &mut [WeightedScore], _| {
                for (i, o) in (start..).zip(out.iter_mut()) {
                    let raw = score(key_hash, hashes[i]);
                    *o = (weighted_score(raw, w.of[i]), raw);
                }
                // No skipping (k > INLINE ranks every node; see `top_k`).
                u32::MAX
            },
            |_, _, _| 0,
            weighted,
            emit,
        ),
    }
}

/// The order of an unweighted ranking over nodes of identities `nodes`, as [`top_k`] takes it
/// (`Greater`: `a` ranks before `b`): the higher score first; equal scores (a 64-bit collision)
/// by the identity, the smaller (bytewise) first, so the order is total and does not depend on
/// the order of the nodes in the file.
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

/// Sorts the first `first` elements of `v` by `order` (`Less`: ranks first), after moving the
/// `first` smallest there: the top of `v` without sorting all of it.
fn partial_sort<T>(v: &mut [T], first: usize, mut order: impl FnMut(&T, &T) -> Ordering) {
    if first == 0 {
        return;
    }
    if first < v.len() {
        v.select_nth_unstable_by(first - 1, &mut order);
    }
    v[..first].sort_unstable_by(order);
}

/// A group of nodes ranked on its own (a zone's): its hashes, weights (empty when unweighted)
/// and identities, by position in the group.
struct Group<'a, I> {
    hashes: &'a [u64],
    weights: &'a [f64],
    inv_weights: &'a [f64],
    ids: I,
}

impl<'a, I: Fn(u32) -> &'a str> Group<'a, I> {
    /// Calls `emit` with the positions in the group of its `k` best nodes, best first, by the
    /// same code and order as [`Service::rank_each`].
    #[inline]
    fn rank(&self, key_hash: u64, k: usize, emit: impl FnMut(usize)) {
        let ids = &self.ids;
        let tie = |a: u32, b: u32| ids(b).cmp(ids(a));
        let unweighted =
            |a: &Candidate<u64>, b: &Candidate<u64>| a.score.cmp(&b.score).then_with(|| tie(a.index, b.index));
        let weighted = |a: &Candidate<WeightedScore>, b: &Candidate<WeightedScore>| {
            a.score.0.total_cmp(&b.score.0).then(a.score.1.cmp(&b.score.1)).then_with(|| tie(a.index, b.index))
        };
        let weights =
            (!self.weights.is_empty()).then_some(weighted::Weights { of: self.weights, inverse: self.inv_weights });
        // A zone's group keeps no premixed copy of its hashes: it takes the skip from the raw ones.
        rank_scored(key_hash, self.hashes, &[], weights, k, unweighted, weighted, emit)
    }
}

/// `Greater` when node `a`'s identity is the smaller one: it ranks first.
#[inline(always)]
fn tie(nodes: &[String], a: u32, b: u32) -> Ordering {
    nodes[b as usize].cmp(&nodes[a as usize])
}

/// Up to this many nodes, duplicates are found by comparing every pair.
const SMALL: usize = 16;

/// Order-independent fingerprint: a sum of per-node mixes, so it is linear to compute and the
/// same for any permutation of the nodes. `weights` `None`: unweighted (every weight counts as
/// 1, which keeps the fingerprints of unweighted tables what they always were). `addresses`:
/// given when some identity differs from its address; a node whose Id differs from its address
/// mixes the address's hash in too, so that re-addressing a node changes the fingerprint
/// (nodes without an Id keep the fingerprints they always had). `zones`: given when some node
/// has a zone, which is mixed in the same way (`spread=zone` answers depend on it; nodes without
/// a zone add nothing). `docs/ranking.md` specifies it.
fn fingerprint(
    algorithm: Algorithm,
    hashes: &[u64],
    weights: Option<&[f64]>,
    addresses: Option<&[String]>,
    ids: &[String],
    zones: Option<&[Option<String>]>,
) -> u64 {
    let mut acc = mix(u64::from(algorithm.number()) ^ 0x9e37_79b9_7f4a_7c15);
    for (i, h) in hashes.iter().enumerate() {
        let w = weights.and_then(|w| w.get(i)).copied().unwrap_or(1.0);
        let address = match addresses {
            Some(a) if a[i] != ids[i] => mix(algorithm.hash_id(&a[i]) ^ ADDRESS_SALT),
            _ => 0,
        };
        let zone = match zones.and_then(|z| z[i].as_deref()) {
            Some(z) => mix(algorithm.hash_id(z) ^ ZONE_SALT),
            None => 0,
        };
        acc = acc.wrapping_add(mix(h ^ mix(w.to_bits()) ^ address ^ zone));
    }
    mix(acc ^ hashes.len() as u64)
}

/// Keeps an address's term in a fingerprint apart from an identity's of the same string.
const ADDRESS_SALT: u64 = 0x6164_6472_6573_7321; // "address!"

/// Keeps a zone's term in a fingerprint apart from an identity's of the same string.
const ZONE_SALT: u64 = 0x7a6f_6e65_2121_2121; // "zone!!!!"

/// All services, by name. Immutable: a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Table {
    algorithm: Algorithm,
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
    /// Builds an algorithm-1 table from service specs.
    pub fn build(specs: impl IntoIterator<Item = ServiceSpec>) -> Result<(Table, BuildReport), TableError> {
        Table::build_with(Algorithm::V1, specs)
    }

    /// Builds a table from service specs, ranked by `algorithm`.
    pub fn build_with(
        algorithm: Algorithm,
        specs: impl IntoIterator<Item = ServiceSpec>,
    ) -> Result<(Table, BuildReport), TableError> {
        let specs = specs.into_iter();
        let mut services = Vec::with_capacity(specs.size_hint().0);
        let mut report = BuildReport::default();
        for spec in specs {
            let (service, removed) = Service::build_with(spec, algorithm)?;
            if removed > 0 {
                report.duplicates_removed.push((service.name.clone(), removed));
            }
            services.push(service);
        }
        services.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        // Sorted, two services of the same name are neighbours.
        if let Some(w) = services.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(TableError::DuplicateService(w[0].name.clone()));
        }
        let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        let mut index = HashMap::with_capacity_and_hasher(names.len(), ahash::RandomState::with_seeds(1, 2, 3, 4));
        index.extend(names.iter().enumerate().map(|(i, n)| (n.clone(), i)));
        let mut acc = mix(u64::from(algorithm.number()));
        for service in &services {
            acc = mix(acc ^ algorithm.hash_id(&service.name)).wrapping_add(service.fingerprint);
        }
        Ok((Table { algorithm, services, index, names, fingerprint: mix(acc) }, report))
    }

    /// The algorithm that ranks every service of this table.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
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

    /// Whether `other` answers alike (same fingerprint) and shows the same weights, so that
    /// swapping it in would change nothing anyone can see.
    pub fn same_as(&self, other: &Table) -> bool {
        self.fingerprint == other.fingerprint
            && self.algorithm == other.algorithm
            && self.services.len() == other.services.len()
            && self.services.iter().zip(&other.services).all(|(a, b)| a.weights == b.weights)
    }
}

/// Formats a fingerprint the way the API shows it.
pub fn fingerprint_hex(f: u64) -> String {
    format!("{f:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(nodes: &[(&str, f64)]) -> Service {
        let nodes = nodes.iter().map(|&(node, weight)| NodeSpec::weighted(node, weight)).collect();
        Service::build(ServiceSpec { name: "s".into(), nodes }).unwrap().0
    }

    #[test]
    fn unweighted_fingerprints_are_pinned() {
        // The value docs/http-api.md shows, computed before all-equal weights joined the unweighted
        // fingerprint: unweighted tables keep theirs.
        let s = service(&[("bar1:8080", 1.0), ("bar2:8080", 1.0), ("bar3:8080", 1.0)]);
        assert_eq!(fingerprint_hex(s.fingerprint()), "8f291893d6c42466");
    }

    #[test]
    fn equal_weights_fingerprint_like_no_weights_and_different_weights_do_not() {
        let plain = service(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        let twos = service(&[("a", 2.0), ("b", 2.0), ("c", 2.0)]);
        let mixed = service(&[("a", 2.0), ("b", 1.0), ("c", 1.0)]);
        let mixed_elsewhere = service(&[("a", 1.0), ("b", 2.0), ("c", 1.0)]);
        assert_eq!(plain.fingerprint(), twos.fingerprint());
        assert!(!twos.is_weighted() && twos.has_weights() && !plain.has_weights());
        assert_ne!(plain.fingerprint(), mixed.fingerprint());
        assert_ne!(mixed.fingerprint(), mixed_elsewhere.fingerprint());
        for key in ["k", "ryans", "user:1", "x"] {
            assert_eq!(plain.lookup(key, 1, 3).unwrap(), twos.lookup(key, 1, 3).unwrap(), "{key}");
        }
        let (t1, _) = Table::build([ServiceSpec { name: "s".into(), nodes: vec![NodeSpec::new("a")] }]).unwrap();
        let (t2, _) =
            Table::build([ServiceSpec { name: "s".into(), nodes: vec![NodeSpec::weighted("a", 3.0)] }]).unwrap();
        assert_eq!(t1.fingerprint(), t2.fingerprint());
        assert!(!t1.same_as(&t2), "the weights /table shows differ");
        assert!(t1.same_as(&t1.clone()));
    }

    use proptest::prelude::*;

    /// Every node scored exactly and sorted: what the weighted path must answer.
    fn reference<'a>(s: &'a Service, key: &str, k: usize) -> Vec<&'a str> {
        let kh = crate::hash::hash_str(key);
        let mut all: Vec<(f64, u64, &str)> = (0..s.len())
            .map(|i| {
                let raw = score(kh, s.hashes[i]);
                (weighted_score(raw, s.weights[i]), raw, s.nodes[i].as_str())
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(b.2)));
        all.into_iter().take(k).map(|c| c.2).collect()
    }

    fn weighted_service(weights: &[f64]) -> Service {
        let nodes = weights.iter().enumerate().map(|(i, &weight)| NodeSpec::weighted(format!("n{i}:80"), weight));
        Service::build(ServiceSpec { name: "w".into(), nodes: nodes.collect() }).unwrap().0
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The bound only skips nodes that lose: every answer equals scoring every node exactly.
        #[test]
        fn the_weighted_fast_path_never_changes_an_answer(
            weights in prop::collection::vec(
                prop_oneof![1e-6f64..1e6, 0.5f64..2.0, Just(1.0), Just(1.0 + f64::EPSILON), Just(MIN_WEIGHT), Just(MAX_WEIGHT)],
                1..300,
            ),
            k in 1usize..=INLINE,
            seed in any::<u64>(),
        ) {
            let s = weighted_service(&weights);
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
        let s = weighted_service(&weights);
        for i in 0..60 {
            let key = format!("user:{i}");
            for k in [1, 3, 10, 32] {
                let mut fast = Vec::new();
                s.rank_into(&key, k, &mut fast);
                assert_eq!(fast, reference(&s, &key, k), "key {key}, k {k}");
            }
        }
    }

    fn with_ids(nodes: &[(&str, Option<&str>)]) -> ServiceSpec {
        let nodes =
            nodes.iter().map(|&(n, id)| NodeSpec { node: n.into(), id: id.map(String::from), weight: 1.0, zone: None });
        ServiceSpec { name: "s".into(), nodes: nodes.collect() }
    }

    #[test]
    fn an_id_given_to_two_addresses_is_refused() {
        let err = Service::build(with_ids(&[("a:1", Some("web-0")), ("b:1", Some("web-0"))])).unwrap_err();
        assert!(matches!(err, TableError::DuplicateId { ref id, .. } if id == "web-0"), "{err}");
        // A node without an Id is its own identity: an Id equal to another node's address clashes.
        let err = Service::build(with_ids(&[("a:1", None), ("b:1", Some("a:1"))])).unwrap_err();
        assert!(matches!(err, TableError::DuplicateId { .. }), "{err}");
    }

    #[test]
    fn an_address_with_two_ids_is_refused() {
        let err = Service::build(with_ids(&[("a:1", Some("web-0")), ("a:1", Some("web-1"))])).unwrap_err();
        assert!(matches!(err, TableError::SharedAddress { ref node, .. } if node == "a:1"), "{err}");
    }

    #[test]
    fn the_same_node_twice_is_a_duplicate_removed_with_or_without_id() {
        let (s, removed) = Service::build(with_ids(&[("a:1", Some("w")), ("a:1", Some("w")), ("b:1", None)])).unwrap();
        assert_eq!((s.nodes().len(), removed), (2, 1));
        let (s, removed) = Service::build(with_ids(&[("a:1", None), ("a:1", None)])).unwrap();
        assert_eq!((s.nodes().len(), removed), (1, 1));
    }

    #[test]
    fn an_id_equal_to_its_address_changes_nothing() {
        for algorithm in Algorithm::ALL {
            let build = |spec| Service::build_with(spec, algorithm).unwrap().0;
            let plain = build(with_ids(&[("a:1", None), ("b:1", None)]));
            let same = build(with_ids(&[("a:1", Some("a:1")), ("b:1", None)]));
            assert!(!same.has_ids());
            assert_eq!(plain.fingerprint(), same.fingerprint());
            let other = build(with_ids(&[("a:1", Some("web-a")), ("b:1", None)]));
            assert!(other.has_ids());
            assert_ne!(plain.fingerprint(), other.fingerprint());
            assert_eq!(other.ids(), ["web-a", "b:1"]);
        }
    }

    #[test]
    fn fingerprints_tell_algorithms_ids_addresses_and_weights_apart() {
        let base = || with_ids(&[("a:1", Some("web-0")), ("b:1", Some("web-1"))]);
        let fp = |spec: ServiceSpec, algorithm| Service::build_with(spec, algorithm).unwrap().0.fingerprint();
        let v1 = fp(base(), Algorithm::V1);
        let v2 = fp(base(), Algorithm::V2);
        assert_ne!(v1, v2);
        let mut readdressed = base();
        readdressed.nodes[0].node = "c:1".into();
        let mut renamed = base();
        renamed.nodes[0].id = Some("web-9".into());
        let mut reweighted = base();
        reweighted.nodes[0].weight = 2.0;
        for changed in [readdressed, renamed, reweighted] {
            assert_ne!(fp(changed, Algorithm::V2), v2);
        }
    }
}
