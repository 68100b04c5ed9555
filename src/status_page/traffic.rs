//! The status page's live traffic view: `GET /status/traffic.json`, the counters the page's
//! script (`/status/traffic.js`) polls every few seconds to show, per service, lookups per
//! second, 4xx, 5xx, shed and p99 over the last minute, and the last reloads.
//!
//! The JSON carries cumulative counters and latency buckets (what `/metrics` has, for the same
//! counters); the browser keeps a minute of snapshots and computes the rates from their
//! differences, so the server keeps no history and does no windowing. It is bounded whatever
//! the catalog: the [`MAX_TRAFFIC_SERVICES`] busiest services with series of their own (a
//! partial selection, linear in `--max-service-series`), the rest summed in `other`, and
//! [`crate::table::state::RECENT_RELOADS`] reloads with at most [`MAX_MOVED`] moved services
//! each and messages cut to [`MAX_TEXT_CHARS`](super::MAX_TEXT_CHARS) characters.

use std::sync::Arc;

use serde::Serialize;

use crate::metrics::{latency_buckets, LookupCounters};
use crate::table::state::{Live, ReloadOutcome, ReloadRecord};

/// Most services listed, the busiest (by lookups since they were loaded).
pub const MAX_TRAFFIC_SERVICES: usize = 50;

/// Most changed services listed per reload, those that moved most.
pub const MAX_MOVED: usize = 5;

/// The page's traffic script.
pub const SCRIPT: &str = include_str!("traffic.js");

#[derive(Serialize)]
struct Counts<'a> {
    name: &'a str,
    /// Lookups answered 2xx, 4xx, 5xx and shed (503 from `--heavy-lookups`), cumulative.
    counts: [u64; 4],
    /// Cumulative latency buckets, one per bound of `le` and one for `+Inf`.
    buckets: Vec<u64>,
}

fn counts<'a>(name: &'a str, c: &LookupCounters) -> Counts<'a> {
    let (raw, _) = c.latency();
    let mut cumulative = 0;
    let buckets = raw
        .iter()
        .map(|n| {
            cumulative += n;
            cumulative
        })
        .collect();
    Counts { name, counts: c.get(), buckets }
}

#[derive(Serialize)]
struct Reload {
    at: f64,
    cause: String,
    /// "changed", "unchanged" or "failed".
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    added: usize,
    removed: usize,
    /// The services this reload changed, those that moved most first: (name, share moved).
    moved: Vec<(String, f64)>,
    /// How many changed services `moved` leaves out.
    more_moved: usize,
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(super::MAX_TEXT_CHARS) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

fn reload(r: &ReloadRecord) -> Reload {
    let mut out = Reload {
        at: r.at,
        cause: cut(&r.cause),
        outcome: "unchanged",
        error: None,
        added: 0,
        removed: 0,
        moved: Vec::new(),
        more_moved: 0,
    };
    match &r.outcome {
        ReloadOutcome::Unchanged => {}
        ReloadOutcome::Failed(reason) => {
            out.outcome = "failed";
            out.error = Some(cut(reason));
        }
        ReloadOutcome::Changed { added, removed, moved } => {
            out.outcome = "changed";
            out.added = added.len();
            out.removed = removed.len();
            let mut all: Vec<(&String, f64)> = moved.iter().map(|(n, s)| (n, s.value)).collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            out.more_moved = all.len().saturating_sub(MAX_MOVED);
            out.moved = all.into_iter().take(MAX_MOVED).map(|(n, s)| (cut(n), s)).collect();
        }
    }
    out
}

/// The `/status/traffic.json` body: `now` (seconds since the epoch), the latency bucket bounds,
/// the busiest services, the services beyond `--max-service-series` and those not in the table
/// (`other`, `unknown`), and the recent reloads (newest first).
pub fn traffic_json(
    live: &Live,
    other: &LookupCounters,
    unknown: &LookupCounters,
    reloads: &[Arc<ReloadRecord>],
    now: f64,
) -> String {
    let total = |c: &LookupCounters| c.get().iter().sum::<u64>();
    let mut busy: Vec<_> = live.own_counters_iter().map(|(s, c)| (total(c), s.name(), c)).filter(|b| b.0 > 0).collect();
    let with_lookups = busy.len();
    let by_traffic =
        |a: &(u64, &str, &LookupCounters), b: &(u64, &str, &LookupCounters)| b.0.cmp(&a.0).then(a.1.cmp(b.1));
    if busy.len() > MAX_TRAFFIC_SERVICES {
        busy.select_nth_unstable_by(MAX_TRAFFIC_SERVICES - 1, by_traffic);
        busy.truncate(MAX_TRAFFIC_SERVICES);
    }
    busy.sort_unstable_by(by_traffic);
    #[derive(Serialize)]
    struct Traffic<'a> {
        now: f64,
        le: &'static [f64],
        services: Vec<Counts<'a>>,
        /// Services with lookups that `services` leaves out (they are in no total here).
        more_services: usize,
        other: Counts<'a>,
        unknown: Counts<'a>,
        reloads: Vec<Reload>,
    }
    let traffic = Traffic {
        now,
        le: latency_buckets(),
        services: busy.iter().map(|(_, name, c)| counts(name, c)).collect(),
        more_services: with_lookups - busy.len(),
        other: counts("(other services)", other),
        unknown: counts("(unknown services)", unknown),
        reloads: reloads.iter().map(|r| reload(r)).collect(),
    };
    // Plain strings, integers and finite numbers: serializing cannot fail.
    serde_json::to_string(&traffic).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ranking::{ServiceSpec, Table};
    use crate::table::state::{AppState, StateOptions};
    use std::time::Duration;

    #[test]
    fn the_busiest_services_are_listed_and_the_rest_counted() {
        let specs = (0..MAX_TRAFFIC_SERVICES + 20).map(|i| ServiceSpec::new(format!("s{i:03}"), ["n"]));
        let (table, _) = Table::build(specs).unwrap();
        let state = AppState::new(table, "/nonexistent", StateOptions::default());
        let live = state.live();
        // Service i gets i lookups (s000 none); one slow lookup for s069.
        for (i, (service, c)) in live.own_counters_iter().enumerate() {
            for _ in 0..i {
                c.count(200, false);
                c.observe(Duration::from_micros(10));
            }
            if service.name() == "s069" {
                c.count(503, true);
                c.observe(Duration::from_secs(1));
            }
        }
        let metrics = Metrics::new(1);
        let json: serde_json::Value =
            serde_json::from_str(&traffic_json(&live, metrics.other(), metrics.unknown(), &[], 1.0)).unwrap();
        let services = json["services"].as_array().unwrap();
        assert_eq!(services.len(), MAX_TRAFFIC_SERVICES);
        assert_eq!(services[0]["name"], "s069");
        assert_eq!(services[0]["counts"], serde_json::json!([69, 0, 0, 1]));
        let buckets = services[0]["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), json["le"].as_array().unwrap().len() + 1);
        assert_eq!(buckets[0], 69);
        assert_eq!(buckets.last().unwrap(), 70);
        assert_eq!(services.last().unwrap()["name"], "s020");
        // 69 services had lookups (s001..s069): 19 more than shown.
        assert_eq!(json["more_services"], 19);
    }
}
