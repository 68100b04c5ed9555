//! Prometheus metrics. Counting on the lookup path is a few relaxed atomic increments on counters
//! resolved when the table is installed, never a label lookup, lock or allocation.
//!
//! Two kinds of series:
//!
//! - process-wide ones (latency of every lookup, reloads, lookups of unknown services, the
//!   standard `process_*` series) live in a [`prometheus::Registry`] here;
//! - table-level ones (build info, services, nodes, fingerprints, per-service lookups and
//!   latency) belong to one table:
//!   [`TableSeries`] renders their static part once when the table is built, and
//!   [`render_lookups`] writes the per-service counters at scrape time from the same snapshot,
//!   so one scrape never mixes two tables.
//!
//! Label values are bounded: one per configured service, up to `--max-service-series`; lookups
//! of services beyond that count in `keyrouter_other_service_lookups_total` (and their latency
//! in `keyrouter_other_service_lookup_duration_seconds`), lookups of services
//! not in the table in `keyrouter_unknown_service_lookups_total` (their own metrics, so no
//! service name can collide with them).
//!
//! One module for every metric keyrouter exports, so that names, help texts and label rules are
//! read and changed in one place.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::ranking::{fingerprint_hex, Service, Table};

/// Default of `--max-service-series`.
pub const DEFAULT_MAX_SERVICE_SERIES: usize = 10_000;

/// Outcomes of a lookup, in the order of [`LookupCounters::get`]: the three status classes,
/// and `shed` for the 503s of `--heavy-lookups` (load shedding, not a failure: an error-rate
/// alert on `5xx` must not fire on it).
const STATUSES: [&str; 4] = ["2xx", "4xx", "5xx", "shed"];

/// Upper bounds of the latency buckets, in seconds (the `+Inf` bucket comes after them).
const LATENCY_BUCKETS: [f64; 11] =
    [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1];

/// Counters of lookups, by outcome, and their latency: one set per service with series of its
/// own, one shared by the services beyond `--max-service-series`, one for unknown services.
/// Relaxed atomics only: a scrape may see a lookup counted before its latency, never a torn value.
#[derive(Debug, Default)]
pub struct LookupCounters {
    counts: [AtomicU64; 4],
    /// Lookups per latency bucket (not cumulative; the last one is `+Inf`).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of the latencies, in nanoseconds (an integer, so one `fetch_add`; 2^64 ns is 584 years).
    sum_nanos: AtomicU64,
}

impl LookupCounters {
    /// Counts one answered lookup with this HTTP status; `shed`: it was refused by
    /// `--heavy-lookups` (a 503 counted apart from the 5xx).
    #[inline]
    pub fn count(&self, status: u16, shed: bool) {
        let class = match status {
            _ if shed => 3,
            500.. => 2,
            400.. => 1,
            _ => 0,
        };
        self.counts[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one lookup took.
    #[inline]
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|&le| secs <= le).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counts for 2xx, 4xx, 5xx and shed.
    pub fn get(&self) -> [u64; 4] {
        self.counts.each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// Lookups observed per latency bucket (not cumulative, `+Inf` last) and their sum in seconds.
    pub fn latency(&self) -> ([u64; LATENCY_BUCKETS.len() + 1], f64) {
        let buckets = self.buckets.each_ref().map(|c| c.load(Ordering::Relaxed));
        (buckets, self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9)
    }
}

/// The upper bounds of the latency buckets, in seconds (`+Inf` not included).
pub fn latency_buckets() -> &'static [f64] {
    &LATENCY_BUCKETS
}

/// Every process-wide metric keyrouter exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    latency: Histogram,
    reloads: IntCounterVec,
    last_reload_successful: IntGauge,
    last_reload_success_timestamp: Gauge,
    log_lines_dropped: IntCounter,
    /// Held while `log_lines_dropped` catches up, so two scrapes never add the same drops twice.
    log_sync: std::sync::Mutex<()>,
    unknown: LookupCounters,
    other: std::sync::Arc<LookupCounters>,
    max_service_series: usize,
    /// Per service, the share of first choices the last reload that changed it moved (written
    /// by the reload thread only, read by scrapes).
    moved: std::sync::Mutex<std::collections::BTreeMap<String, f64>>,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Only fails on invalid metric names or duplicate registration: programming errors that the
    // unit tests below catch.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    /// Metrics with per-service series for at most `max_service_series` services.
    pub fn new(max_service_series: usize) -> Self {
        let registry = Registry::new();
        let latency = must(Histogram::with_opts(
            HistogramOpts::new("keyrouter_lookup_duration_seconds", "Time to answer a lookup, body reading included.")
                .buckets(LATENCY_BUCKETS.to_vec()),
        ));
        let reloads = must(IntCounterVec::new(
            Opts::new("keyrouter_reloads_total", "Reloads of the services file, by result."),
            &["result"],
        ));
        let last_reload_successful = must(IntGauge::new(
            "keyrouter_config_last_reload_successful",
            "Whether the last reload of the services file succeeded (1) or failed (0).",
        ));
        let last_reload_success_timestamp = must(Gauge::new(
            "keyrouter_config_last_reload_success_timestamp_seconds",
            "Time of the last successful load of the services file, in seconds since the epoch.",
        ));
        let log_lines_dropped = must(IntCounter::new(
            "keyrouter_log_lines_dropped_total",
            "Log lines dropped because stderr was closed, failing or too slow.",
        ));
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        // The standard process_* series (CPU, memory, descriptors, start time), read from /proc at
        // each scrape, so that the memory and descriptor limits in docs/operating.md can be watched.
        #[cfg(target_os = "linux")]
        must(registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())));
        for c in [
            Box::new(latency.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reloads.clone()),
            Box::new(last_reload_successful.clone()),
            Box::new(last_reload_success_timestamp.clone()),
            Box::new(log_lines_dropped.clone()),
        ] {
            must(registry.register(c));
        }
        Metrics {
            registry,
            latency,
            reloads,
            last_reload_successful,
            last_reload_success_timestamp,
            log_lines_dropped,
            log_sync: std::sync::Mutex::new(()),
            unknown: LookupCounters::default(),
            other: Default::default(),
            max_service_series,
            moved: Default::default(),
        }
    }

    /// Counters for lookups of services that are not in the table.
    pub fn unknown(&self) -> &LookupCounters {
        &self.unknown
    }

    /// Counters shared by the services beyond `--max-service-series`.
    pub fn other(&self) -> &std::sync::Arc<LookupCounters> {
        &self.other
    }

    /// How many services get series of their own.
    pub fn max_service_series(&self) -> usize {
        self.max_service_series
    }

    /// Records how long a lookup took.
    #[inline]
    pub fn observe_latency(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Records a load or reload of the services file. `counted` is false for the first load at
    /// startup, which sets the gauges but is not a reload.
    pub fn loaded(&self, ok: bool, counted: bool) {
        if counted {
            self.reloads.with_label_values(&[if ok { "success" } else { "failure" }]).inc();
        }
        self.last_reload_successful.set(i64::from(ok));
        if ok {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            self.last_reload_success_timestamp.set(now.as_secs_f64());
        }
    }

    /// Records what a reload moved: `removed` services lose their series, each of `moved`
    /// (service, share of first choices moved) replaces the service's last value.
    pub fn reload_moved(&self, removed: &[String], moved: impl IntoIterator<Item = (String, f64)>) {
        let mut map = self.moved.lock().unwrap_or_else(|p| p.into_inner());
        for name in removed {
            map.remove(name);
        }
        map.extend(moved);
    }

    /// The Prometheus text exposition of the process-wide metrics (see [`render_lookups`] and
    /// [`TableSeries`] for the rest), appended to `out`.
    pub fn render_into(&self, out: &mut Vec<u8>) {
        // The log counts its drops itself (it must not depend on anything that could fail).
        {
            let _one_at_a_time = self.log_sync.lock().unwrap_or_else(|p| p.into_inner());
            let dropped = crate::logging::dropped_lines();
            let shown = self.log_lines_dropped.get();
            if dropped > shown {
                self.log_lines_dropped.inc_by(dropped - shown);
            }
        }
        // Encoding into a Vec only fails on invalid metric families, which we never build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), out);
        counter_family(
            out,
            "keyrouter_unknown_service_lookups_total",
            "Lookups of services that are not in the table, by status class.",
        );
        status_lines(out, "keyrouter_unknown_service_lookups_total", None, self.unknown.get());
        counter_family(
            out,
            "keyrouter_other_service_lookups_total",
            "Lookups of services beyond --max-service-series (which have no series of their own), by status class.",
        );
        status_lines(out, "keyrouter_other_service_lookups_total", None, self.other.get());
        histogram_family(
            out,
            "keyrouter_other_service_lookup_duration_seconds",
            "Time to answer a lookup of a service beyond --max-service-series, body reading included.",
        );
        histogram_lines(out, "keyrouter_other_service_lookup_duration_seconds", None, &self.other);
        gauge_family(
            out,
            "keyrouter_reload_moved_ratio",
            "Share of keys whose first choice moved in the last reload that changed the service (1: added).",
        );
        let moved = self.moved.lock().unwrap_or_else(|p| p.into_inner());
        for (service, share) in moved.iter().take(self.max_service_series) {
            out.extend_from_slice(b"keyrouter_reload_moved_ratio{service=\"");
            escape_label(out, service);
            let _ = writeln!(out, "\"}} {share}");
        }
    }
}

/// Appends `keyrouter_ready`: what `/readyz` answers (1 for 200, 0 for 503), so that an alert
/// sees a replica that is up but refuses traffic (empty table, shutting down).
pub fn render_ready(out: &mut Vec<u8>, ready: bool) {
    gauge_family(out, "keyrouter_ready", "1 if /readyz answers 200 (a table is loaded and no shutdown began), else 0.");
    let _ = writeln!(out, "keyrouter_ready {}", u8::from(ready));
}

/// The series of one table that do not change while it is served, rendered once.
#[derive(Debug)]
pub struct TableSeries {
    text: Box<[u8]>,
}

impl TableSeries {
    /// Renders the table-level gauges of `table`; services after the first `max_service_series`
    /// (in the table's order) are only counted in the totals.
    pub fn render(table: &Table, max_service_series: usize) -> TableSeries {
        let own = &table.services()[..table.len().min(max_service_series)];
        let mut out = Vec::with_capacity(256 + own.len() * 120);
        // The algorithm and fingerprint are the served table's (a reload may change them), so this
        // "build" info is rendered with the table, not set once at startup. It carries the
        // fingerprint too (also in keyrouter_table_info), so that one series per replica says what
        // it runs and serves: `count by (fingerprint, version)` shows a fleet that disagrees.
        gauge_family(
            &mut out,
            "keyrouter_build_info",
            "Version of keyrouter, the ranking algorithm and the fingerprint of the served table (always 1).",
        );
        let _ = writeln!(
            out,
            "keyrouter_build_info{{algorithm=\"{}\",fingerprint=\"{}\",version=\"{}\"}} 1",
            table.algorithm().number(),
            fingerprint_hex(table.fingerprint()),
            env!("CARGO_PKG_VERSION")
        );
        gauge_family(&mut out, "keyrouter_services", "Services in the table.");
        let _ = writeln!(out, "keyrouter_services {}", table.len());
        gauge_family(&mut out, "keyrouter_nodes", "Nodes in the table, over all services.");
        let _ = writeln!(out, "keyrouter_nodes {}", table.node_count());
        gauge_family(&mut out, "keyrouter_table_info", "Fingerprint of the whole table (always 1).");
        let _ = writeln!(out, "keyrouter_table_info{{fingerprint=\"{}\"}} 1", fingerprint_hex(table.fingerprint()));
        gauge_family(
            &mut out,
            "keyrouter_service_series_limited",
            "1 if the table has more services than --max-service-series, so some have no series of their own.",
        );
        let _ = writeln!(out, "keyrouter_service_series_limited {}", u8::from(own.len() < table.len()));
        gauge_family(&mut out, "keyrouter_service_nodes", "Nodes per service.");
        for s in own {
            out.extend_from_slice(b"keyrouter_service_nodes{service=\"");
            escape_label(&mut out, s.name());
            let _ = writeln!(out, "\"}} {}", s.len());
        }
        gauge_family(&mut out, "keyrouter_service_info", "Fingerprint of each service (always 1).");
        for s in own {
            let _ =
                write!(out, "keyrouter_service_info{{fingerprint=\"{}\",service=\"", fingerprint_hex(s.fingerprint()));
            escape_label(&mut out, s.name());
            out.extend_from_slice(b"\"} 1\n");
        }
        TableSeries { text: out.into_boxed_slice() }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }
}

/// Appends `keyrouter_lookups_total` for `services`, each with its counters, and
/// `keyrouter_service_lookup_duration_seconds` for those that had a lookup (a catalog of
/// thousands of idle services would otherwise add a dozen lines each to every scrape).
pub fn render_lookups<'a>(
    out: &mut Vec<u8>,
    services: impl Iterator<Item = (&'a Service, &'a LookupCounters)> + Clone,
) {
    counter_family(
        out,
        "keyrouter_lookups_total",
        "Lookups answered, by service and outcome (shed: refused by --heavy-lookups).",
    );
    for (s, counters) in services.clone() {
        status_lines(out, "keyrouter_lookups_total", Some(s.name()), counters.get());
    }
    histogram_family(
        out,
        "keyrouter_service_lookup_duration_seconds",
        "Time to answer a lookup, by service (those with a lookup since they were loaded), body reading included.",
    );
    for (s, counters) in services {
        if counters.get().iter().any(|&n| n > 0) {
            histogram_lines(out, "keyrouter_service_lookup_duration_seconds", Some(s.name()), counters);
        }
    }
}

fn gauge_family(out: &mut Vec<u8>, name: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
}

fn counter_family(out: &mut Vec<u8>, name: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
}

fn histogram_family(out: &mut Vec<u8>, name: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
}

/// `name_suffix{service="...",`, or `name_suffix{` without a service: a series line left open
/// for more labels.
fn open_labels(out: &mut Vec<u8>, name: &str, suffix: &str, service: Option<&str>) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    out.push(b'{');
    if let Some(service) = service {
        out.extend_from_slice(b"service=\"");
        escape_label(out, service);
        out.extend_from_slice(b"\",");
    }
}

/// The `_bucket`, `_sum` and `_count` lines of one histogram series.
fn histogram_lines(out: &mut Vec<u8>, name: &str, service: Option<&str>, counters: &LookupCounters) {
    let (buckets, sum) = counters.latency();
    let mut cumulative = 0;
    for (i, n) in buckets.iter().enumerate() {
        cumulative += n;
        open_labels(out, name, "_bucket", service);
        match LATENCY_BUCKETS.get(i) {
            Some(le) => {
                let _ = writeln!(out, "le=\"{le}\"}} {cumulative}");
            }
            None => {
                let _ = writeln!(out, "le=\"+Inf\"}} {cumulative}");
            }
        }
    }
    for (suffix, value) in [("_sum", sum.to_string()), ("_count", cumulative.to_string())] {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        if let Some(service) = service {
            out.extend_from_slice(b"{service=\"");
            escape_label(out, service);
            out.extend_from_slice(b"\"}");
        }
        let _ = writeln!(out, " {value}");
    }
}

fn status_lines(out: &mut Vec<u8>, name: &str, service: Option<&str>, counts: [u64; 4]) {
    for (status, n) in STATUSES.iter().zip(counts) {
        open_labels(out, name, "", service);
        let _ = writeln!(out, "status=\"{status}\"}} {n}");
    }
}

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
fn escape_label(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::ServiceSpec;

    #[test]
    fn process_metrics_render_and_reload_gauges_follow_the_outcome() {
        let m = Metrics::new(10);
        m.unknown().count(404, false);
        m.loaded(true, false);
        let mut out = Vec::new();
        m.render_into(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#"keyrouter_unknown_service_lookups_total{status="4xx"} 1"#), "{text}");
        assert!(text.contains(r#"keyrouter_other_service_lookups_total{status="2xx"} 0"#), "{text}");
        assert!(text.contains("keyrouter_other_service_lookup_duration_seconds_bucket{le=\"+Inf\"} 0\n"), "{text}");
        assert!(text.contains("keyrouter_other_service_lookup_duration_seconds_count 0\n"), "{text}");
        assert!(text.contains("keyrouter_config_last_reload_successful 1"), "{text}");
        assert!(text.contains(r#"keyrouter_reloads_total{result="success"} 0"#), "{text}");
        m.loaded(false, true);
        let mut out = Vec::new();
        m.render_into(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#"keyrouter_reloads_total{result="failure"} 1"#), "{text}");
        assert!(text.contains("keyrouter_config_last_reload_successful 0"), "{text}");
    }

    #[test]
    fn table_series_are_capped_and_escaped() {
        let (t, _) = Table::build([
            ServiceSpec::new("a\"b\\c\nd", ["x"]),
            ServiceSpec::new("b", ["y", "z"]),
            ServiceSpec::new("c", ["w"]),
        ])
        .unwrap();
        let text = String::from_utf8(TableSeries::render(&t, 2).as_bytes().to_vec()).unwrap();
        assert!(text.contains(r#"keyrouter_service_nodes{service="a\"b\\c\nd"} 1"#), "{text}");
        assert!(text.contains(r#"keyrouter_service_nodes{service="b"} 2"#), "{text}");
        assert!(!text.contains(r#"service="c""#), "{text}");
        assert!(text.contains("keyrouter_services 3\n"), "{text}");
        assert!(text.contains("keyrouter_nodes 4\n"), "{text}");
        assert!(text.contains("keyrouter_service_series_limited 1\n"), "{text}");
        let text = String::from_utf8(TableSeries::render(&t, 3).as_bytes().to_vec()).unwrap();
        assert!(text.contains("keyrouter_service_series_limited 0\n"), "{text}");
        assert_eq!(text.matches("keyrouter_service_info{").count(), 3, "{text}");
    }

    #[test]
    fn lookups_render_per_service() {
        let (t, _) = Table::build([ServiceSpec::new("a", ["x"])]).unwrap();
        let c = LookupCounters::default();
        c.count(200, false);
        c.count(503, false);
        c.count(503, true);
        c.count(404, false);
        c.count(404, false);
        c.observe(Duration::from_micros(30));
        c.observe(Duration::from_millis(200));
        let mut out = Vec::new();
        render_lookups(&mut out, t.services().iter().zip([&c]));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("keyrouter_lookups_total{service=\"a\",status=\"2xx\"} 1\n"), "{text}");
        assert!(text.contains("keyrouter_lookups_total{service=\"a\",status=\"4xx\"} 2\n"), "{text}");
        assert!(text.contains("keyrouter_lookups_total{service=\"a\",status=\"5xx\"} 1\n"), "{text}");
        assert!(text.contains("keyrouter_lookups_total{service=\"a\",status=\"shed\"} 1\n"), "{text}");
        let h = "keyrouter_service_lookup_duration_seconds";
        assert!(text.contains(&format!("{h}_bucket{{service=\"a\",le=\"0.000025\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{h}_bucket{{service=\"a\",le=\"0.00005\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("{h}_bucket{{service=\"a\",le=\"0.1\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("{h}_bucket{{service=\"a\",le=\"+Inf\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("{h}_count{{service=\"a\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("{h}_sum{{service=\"a\"}} 0.20003\n")), "{text}");
    }

    #[test]
    fn idle_services_have_no_latency_series() {
        let (t, _) = Table::build([ServiceSpec::new("idle", ["x"])]).unwrap();
        let c = LookupCounters::default();
        let mut out = Vec::new();
        render_lookups(&mut out, t.services().iter().zip([&c]));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("keyrouter_lookups_total{service=\"idle\",status=\"2xx\"} 0\n"), "{text}");
        assert!(!text.contains("keyrouter_service_lookup_duration_seconds_count"), "{text}");
    }

    #[test]
    fn process_series_are_exported() {
        let mut out = Vec::new();
        Metrics::new(1).render_into(&mut out);
        let text = String::from_utf8(out).unwrap();
        for name in
            ["process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"]
        {
            assert!(text.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} missing:\n{text}");
        }
    }
}
