//! Prometheus metrics. Counting on the lookup path is a couple of atomic increments on handles
//! resolved when the table is installed, never a label lookup, lock or allocation.
//! Label values are bounded: one per configured service, plus `_unknown` for all others.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::ranking::{fingerprint_hex, Table, ALGORITHM_VERSION};

/// Label used for lookups of services that are not in the table.
pub const UNKNOWN_SERVICE: &str = "_unknown";

/// Counters of one service's lookups, by status class.
#[derive(Debug, Clone)]
pub struct LookupCounters {
    ok: IntCounter,
    client_error: IntCounter,
    server_error: IntCounter,
}

impl LookupCounters {
    /// Counts one answered lookup with this HTTP status.
    #[inline]
    pub fn count(&self, status: u16) {
        match status {
            500.. => self.server_error.inc(),
            400.. => self.client_error.inc(),
            _ => self.ok.inc(),
        }
    }
}

/// Every metric keyrouter exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    lookups: IntCounterVec,
    latency: Histogram,
    reloads: IntCounterVec,
    last_reload_successful: IntGauge,
    last_reload_success_timestamp: Gauge,
    services: IntGauge,
    nodes: IntGaugeVec,
    table_info: IntGaugeVec,
    service_info: IntGaugeVec,
    log_lines_dropped: IntCounter,
    /// Held while `log_lines_dropped` catches up, so two scrapes never add the same drops twice.
    log_sync: std::sync::Mutex<()>,
    unknown: LookupCounters,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Only fails on invalid metric names or duplicate registration: programming errors that the
    // unit tests below catch.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let lookups = must(IntCounterVec::new(
            Opts::new("keyrouter_lookups_total", "Lookups answered, by service and status class."),
            &["service", "status"],
        ));
        let latency = must(Histogram::with_opts(
            HistogramOpts::new("keyrouter_lookup_duration_seconds", "Time to answer a lookup, body reading included.")
                .buckets(vec![
                    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1,
                ]),
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
        let services = must(IntGauge::new("keyrouter_services", "Services in the table."));
        let nodes = must(IntGaugeVec::new(Opts::new("keyrouter_service_nodes", "Nodes per service."), &["service"]));
        let table_info = must(IntGaugeVec::new(
            Opts::new("keyrouter_table_info", "Fingerprint of the whole table (always 1)."),
            &["fingerprint"],
        ));
        let service_info = must(IntGaugeVec::new(
            Opts::new("keyrouter_service_info", "Fingerprint of each service (always 1)."),
            &["service", "fingerprint"],
        ));
        let build_info = must(IntGaugeVec::new(
            Opts::new("keyrouter_build_info", "Version of keyrouter and of its ranking algorithm (always 1)."),
            &["version", "algorithm"],
        ));
        let log_lines_dropped = must(IntCounter::new(
            "keyrouter_log_lines_dropped_total",
            "Log lines dropped because stderr was closed, failing or too slow.",
        ));
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION"), &ALGORITHM_VERSION.to_string()]).set(1);
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        for c in [
            Box::new(lookups.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(reloads.clone()),
            Box::new(last_reload_successful.clone()),
            Box::new(last_reload_success_timestamp.clone()),
            Box::new(services.clone()),
            Box::new(nodes.clone()),
            Box::new(table_info.clone()),
            Box::new(service_info.clone()),
            Box::new(build_info),
            Box::new(log_lines_dropped.clone()),
        ] {
            must(registry.register(c));
        }
        let unknown = counters(&lookups, UNKNOWN_SERVICE);
        Metrics {
            registry,
            lookups,
            latency,
            reloads,
            last_reload_successful,
            last_reload_success_timestamp,
            services,
            nodes,
            table_info,
            service_info,
            log_lines_dropped,
            log_sync: std::sync::Mutex::new(()),
            unknown,
        }
    }

    /// Counters for lookups of unknown services.
    pub fn unknown(&self) -> &LookupCounters {
        &self.unknown
    }

    /// Records how long a lookup took.
    #[inline]
    pub fn observe_latency(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Describes a newly installed table (replacing `old`, if any) and returns the lookup
    /// counters of its services, in the table's order.
    pub fn install(&self, old: Option<&Table>, new: &Table) -> Vec<LookupCounters> {
        if let Some(old) = old {
            for s in old.services() {
                let fp = fingerprint_hex(s.fingerprint());
                let _ = self.service_info.remove_label_values(&[s.name(), &fp]);
                if new.get(s.name()).is_none() {
                    let _ = self.nodes.remove_label_values(&[s.name()]);
                    for status in ["2xx", "4xx", "5xx"] {
                        let _ = self.lookups.remove_label_values(&[s.name(), status]);
                    }
                }
            }
            let _ = self.table_info.remove_label_values(&[&fingerprint_hex(old.fingerprint())]);
        }
        self.services.set(new.len() as i64);
        self.table_info.with_label_values(&[&fingerprint_hex(new.fingerprint())]).set(1);
        new.services()
            .iter()
            .map(|s| {
                self.nodes.with_label_values(&[s.name()]).set(s.len() as i64);
                self.service_info.with_label_values(&[s.name(), &fingerprint_hex(s.fingerprint())]).set(1);
                counters(&self.lookups, s.name())
            })
            .collect()
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        // The log counts its drops itself (it must not depend on anything that could fail).
        {
            let _one_at_a_time = self.log_sync.lock().unwrap_or_else(|p| p.into_inner());
            let dropped = crate::logging::dropped_lines();
            let shown = self.log_lines_dropped.get();
            if dropped > shown {
                self.log_lines_dropped.inc_by(dropped - shown);
            }
        }
        let mut out = Vec::with_capacity(4096);
        // Encoding into a Vec only fails on invalid metric families, which we never build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counters(lookups: &IntCounterVec, service: &str) -> LookupCounters {
    LookupCounters {
        ok: lookups.with_label_values(&[service, "2xx"]),
        client_error: lookups.with_label_values(&[service, "4xx"]),
        server_error: lookups.with_label_values(&[service, "5xx"]),
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::ServiceSpec;

    #[test]
    fn install_tracks_services_and_forgets_removed_ones() {
        let m = Metrics::new();
        let (a, _) = Table::build([ServiceSpec::new("a", ["x"]), ServiceSpec::new("b", ["y", "z"])]).unwrap();
        let counters = m.install(None, &a);
        counters[1].count(200);
        counters[1].count(404);
        m.unknown().count(404);
        m.loaded(true, false);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"keyrouter_lookups_total{service="b",status="2xx"} 1"#), "{text}");
        assert!(text.contains(r#"keyrouter_lookups_total{service="_unknown",status="4xx"} 1"#), "{text}");
        assert!(text.contains(r#"keyrouter_service_nodes{service="b"} 2"#), "{text}");
        assert!(text.contains("keyrouter_services 2"), "{text}");
        assert!(text.contains("keyrouter_config_last_reload_successful 1"), "{text}");
        assert!(text.contains(r#"keyrouter_reloads_total{result="success"} 0"#), "{text}");

        let (b, _) = Table::build([ServiceSpec::new("a", ["x"])]).unwrap();
        m.install(Some(&a), &b);
        m.loaded(false, true);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(!text.contains(r#"service="b""#), "{text}");
        assert!(text.contains(r#"keyrouter_reloads_total{result="failure"} 1"#), "{text}");
        assert!(text.contains("keyrouter_config_last_reload_successful 0"), "{text}");
        assert_eq!(text.matches("keyrouter_table_info{").count(), 1, "{text}");
    }
}
