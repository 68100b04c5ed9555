//! The ranking's answer for a key over a list of nodes, as strings: what tests compare recorded
//! and computed answers with. Shared, by `#[path]`, with the server's integration tests
//! (`tests/integration/common`), so that the binary, the in-process app and the golden vectors
//! are all held to the one library.

use keyrouter_ranking::{NodeSpec, Service, ServiceSpec};

/// The answer the ranking library gives for `key` on a service of `nodes` (with `weights`, one
/// per node, when given): the nodes best first, between `min` and `max` of them.
pub fn expected<N: AsRef<str>>(nodes: &[N], weights: Option<&[f64]>, key: &str, min: u64, max: u64) -> Vec<String> {
    let mut spec = ServiceSpec::new("expected", nodes.iter().map(|n| n.as_ref().to_string()));
    if let Some(w) = weights {
        assert_eq!(w.len(), nodes.len(), "one weight per node");
        spec.nodes = nodes.iter().zip(w).map(|(n, &weight)| NodeSpec::weighted(n.as_ref(), weight)).collect();
    }
    let (s, _) = Service::build(spec).unwrap_or_else(|e| panic!("cannot build the expected service: {e}"));
    let answer = s.lookup(key, min, max).unwrap_or_else(|e| panic!("no expected answer for {key:?}: {e}"));
    answer.into_iter().map(String::from).collect()
}
