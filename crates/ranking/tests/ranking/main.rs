//! The ranking crate's integration tests, in one binary: the golden vectors every release must
//! reproduce, and properties over random tables.

mod conformance;
mod golden;
mod options;
mod props;

use keyrouter_ranking::{NodeSpec, Service, ServiceSpec};

/// The ranking's answer for `key` over `nodes` (weighted when `weights` is given), as strings:
/// what the tests compare recorded and computed answers with.
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
