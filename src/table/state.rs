//! The live state shared by every worker: the table behind one atomic pointer.
//!
//! A [`Live`] is a table with what the server needs per service (metric handles, the
//! fingerprint header); it is built whole off to the side and swapped in by [`AppState::swap`],
//! which only [`crate::table::reload`] calls. Requests load it once and keep that one table to the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::http::header::HeaderValue;
use actix_web::web::Bytes;
use arc_swap::ArcSwap;

use crate::impact::Share;
use crate::limits::{LoadRules, RequestLimits};
use crate::metrics::{self, LookupCounters, Metrics, TableSeries};
use crate::ranking::{fingerprint_hex, Service, Table};

/// One table and what goes with each of its services, swapped as a whole.
#[derive(Debug)]
pub struct Live {
    pub table: Table,
    /// What the server keeps per service, in the order of `table.services()`; built in
    /// [`Live::new`] from the same iteration, read only through [`Live::service`].
    extras: Box<[Extras]>,
    /// The table's own metric series, rendered once: a scrape takes them and the lookup
    /// counters from the same `Live`, so it never mixes two tables.
    series: TableSeries,
    /// How many services (the first, in table order) have lookup counters of their own; the
    /// others share [`Metrics::other`].
    own_series: usize,
    /// The `/table` body, rendered once when the table is built (never on an HTTP worker).
    table_json: Bytes,
    /// The `/table` entity tag: the table fingerprint, weak (see [`Live::table_etag`]).
    table_etag: HeaderValue,
    /// The `GET /service` body, likewise.
    names_json: Bytes,
    /// Declared last, so dropped last: once a replaced table is freed (by the reload, or by the
    /// last request that still held it), its memory goes back to the system.
    _release: crate::memory::ReleaseOnDrop,
}

#[derive(Debug)]
struct Extras {
    counters: Arc<LookupCounters>,
    fingerprint: HeaderValue,
    /// The last reload that changed the service, if one did since startup.
    last_change: Option<Change>,
}

/// A reload that changed a service: when, and the share of first choices it moved (1 for a
/// service it added).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub moved: f64,
}

/// What the last reload attempt did, for the status page: written by [`crate::table::reload`] after
/// every attempt (SIGHUP or `--watch`), read by whoever renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadRecord {
    /// Seconds since the Unix epoch, when the attempt ended.
    pub at: f64,
    /// Who asked: "SIGHUP", "file change".
    pub cause: String,
    pub outcome: ReloadOutcome,
}

/// How a reload attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// A new table was swapped in: the services it added and removed, and for each changed
    /// service the share of first choices that moved.
    Changed { added: Vec<String>, removed: Vec<String>, moved: Vec<(String, Share)> },
    /// The file gives the table already served (nothing moved).
    Unchanged,
    /// The file was refused and the previous table kept serving; the reason, as logged.
    Failed(String),
}

/// How many reload attempts [`AppState::recent_reloads`] keeps.
pub const RECENT_RELOADS: usize = 10;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// A served service: the ranking entry, its lookup counters and its fingerprint header.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    pub service: &'a Service,
    pub counters: &'a LookupCounters,
    /// The service's fingerprint as a ready response header value.
    pub fingerprint: &'a HeaderValue,
}

impl Live {
    /// `table` with its lookup counters (a service that `old` served keeps its counts), its
    /// metric series and its fingerprint headers.
    /// `changes`: the services this reload changed (added included), with the moved share.
    fn new(table: Table, metrics: &Metrics, old: Option<&Live>, changes: &[(String, f64)]) -> Live {
        let now = unix_now();
        let changed: std::collections::HashMap<&str, f64> = changes.iter().map(|(n, m)| (n.as_str(), *m)).collect();
        let last_change = |name: &str| match changed.get(name) {
            Some(&moved) => Some(Change { at: now, moved }),
            None => old.and_then(|old| old.table.find(name).and_then(|(i, _)| old.extras.get(i)?.last_change)),
        };
        let own_series = table.len().min(metrics.max_service_series());
        let extras = table
            .services()
            .iter()
            .enumerate()
            .map(|(i, s)| Extras {
                counters: match i < own_series {
                    true => old.and_then(|old| old.own_counters(s.name())).unwrap_or_default(),
                    false => metrics.other().clone(),
                },
                // Sixteen hex digits are always a valid header value.
                fingerprint: HeaderValue::from_str(&fingerprint_hex(s.fingerprint()))
                    .unwrap_or(HeaderValue::from_static("?")),
                last_change: last_change(s.name()),
            })
            .collect::<Box<[Extras]>>();
        let series = TableSeries::render(&table, own_series);
        let table_json = Bytes::from(render_table(&table, &extras));
        // `W/"` + sixteen hex digits + `"` is always a valid header value.
        let table_etag = HeaderValue::from_str(&format!("W/\"{}\"", fingerprint_hex(table.fingerprint())))
            .unwrap_or(HeaderValue::from_static("W/\"?\""));
        let names_json = Bytes::from(serde_json::to_vec(table.names()).unwrap_or_else(|_| b"[]".to_vec()));
        Live {
            table,
            extras,
            series,
            own_series,
            table_json,
            table_etag,
            names_json,
            _release: crate::memory::ReleaseOnDrop,
        }
    }

    /// The `/table` body: the table, its fingerprints and any weights the file set.
    pub fn table_json(&self) -> &Bytes {
        &self.table_json
    }

    /// The `/table` entity tag, `W/"<table fingerprint>"`. Weak because equal fingerprints mean
    /// equal answers, not equal bytes: the body also carries when each service last changed,
    /// lists nodes in file order and shows all-equal weights, none of which the fingerprint
    /// covers (RFC 9110 section 8.8.1: a weak tag promises semantic equivalence only).
    pub fn table_etag(&self) -> &HeaderValue {
        &self.table_etag
    }

    /// The `GET /service` body: the service names, sorted.
    pub fn names_json(&self) -> &Bytes {
        &self.names_json
    }

    /// When a reload last changed the service at `index` (in table order), if one did since
    /// startup.
    pub fn last_change(&self, index: usize) -> Option<Change> {
        self.extras.get(index)?.last_change
    }

    /// The counters of `name`, if it has counters of its own in this table.
    fn own_counters(&self, name: &str) -> Option<Arc<LookupCounters>> {
        let (i, _) = self.table.find(name)?;
        (i < self.own_series).then(|| self.extras.get(i).map(|e| e.counters.clone())).flatten()
    }

    /// The services with lookup counters of their own, with them (in table order).
    pub fn own_counters_iter(&self) -> impl Iterator<Item = (&Service, &LookupCounters)> {
        self.table.services().iter().zip(self.extras.iter()).take(self.own_series).map(|(s, e)| (s, &*e.counters))
    }

    fn series_len_hint(&self) -> usize {
        self.series.as_bytes().len() + self.own_series * 180
    }

    /// Appends this table's metric series (static part and lookup counters) to `out`.
    pub fn render_metrics(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.series.as_bytes());
        let own = self.table.services().iter().zip(self.extras.iter()).take(self.own_series);
        metrics::render_lookups(out, own.map(|(s, e)| (s, &*e.counters)));
    }

    /// The service called `name`, if it is in the table.
    #[inline]
    pub fn service(&self, name: &str) -> Option<Served<'_>> {
        let (i, service) = self.table.find(name)?;
        let extras = self.extras.get(i)?;
        Some(Served { service, counters: &extras.counters, fingerprint: &extras.fingerprint })
    }
}

/// The `/table` JSON of `table`, written service by service (no intermediate JSON values, which
/// cost several times the table for large catalogs).
fn render_table(table: &Table, extras: &[Extras]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct ServiceView<'a> {
        name: &'a str,
        nodes: &'a [String],
        /// Each node's Id, in the order of `nodes`; only when some Id differs from its address.
        #[serde(skip_serializing_if = "Option::is_none")]
        ids: Option<&'a [String]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        weights: Option<&'a [f64]>,
        /// Each node's zone (null for none), in the order of `nodes`; only when some node has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        zones: Option<&'a [Option<String>]>,
        fingerprint: String,
        /// When a reload last changed the service (seconds since the epoch), and the share of
        /// first choices that change moved; absent until a reload changes it.
        #[serde(skip_serializing_if = "Option::is_none")]
        changed_at: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        moved: Option<f64>,
    }
    let mut out = Vec::with_capacity(64 + table.len() * 64 + table.node_count() * 24);
    out.extend_from_slice(b"{\"fingerprint\":\"");
    out.extend_from_slice(fingerprint_hex(table.fingerprint()).as_bytes());
    out.extend_from_slice(format!("\",\"algorithm\":{},\"services\":[", table.algorithm().number()).as_bytes());
    for (i, s) in table.services().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let view = ServiceView {
            name: s.name(),
            nodes: s.nodes(),
            ids: s.has_ids().then(|| s.ids()),
            weights: s.has_weights().then(|| s.weights()),
            zones: s.zones(),
            fingerprint: fingerprint_hex(s.fingerprint()),
            changed_at: extras.get(i).and_then(|e| e.last_change).map(|c| c.at),
            moved: extras.get(i).and_then(|e| e.last_change).map(|c| c.moved),
        };
        // Writing plain strings and finite numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &view);
    }
    out.extend_from_slice(b"]}");
    out
}

/// What the server shares between workers.
#[derive(Debug)]
pub struct AppState {
    live: ArcSwap<Live>,
    services_path: PathBuf,
    options: LoadRules,
    /// Set once a shutdown starts; readiness is 503 from then on.
    stopping: AtomicBool,
    /// Serializes reloads (SIGHUP and the file watcher may fire together); lookups never take it.
    reloading: Mutex<()>,
    metrics: Metrics,
    limits: RequestLimits,
    /// One permit per heavy lookup that may run at once.
    heavy: Arc<tokio::sync::Semaphore>,
    /// The last reload attempt since startup (none yet: `None`); only [`crate::table::reload`] writes
    /// it, once per attempt, and the status page reads it. Never taken on the lookup path.
    last_reload: Mutex<Option<Arc<ReloadRecord>>>,
    /// The last [`RECENT_RELOADS`] attempts, oldest first, for the status page's traffic view.
    recent_reloads: Mutex<std::collections::VecDeque<Arc<ReloadRecord>>>,
    /// When the first table was loaded (seconds since the Unix epoch).
    started_at: f64,
}

/// How an [`AppState`] serves its table, beyond the table and the file it came from; each part
/// defaults to the flag's default.
#[derive(Debug, Clone)]
pub struct StateOptions {
    /// How reloads read the services file.
    pub table: LoadRules,
    /// What one request may cost (`heavy_lookups` 0 is resolved to the CPU count).
    pub limits: RequestLimits,
    /// Per-service metric series exist for at most this many services.
    pub max_service_series: usize,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            table: LoadRules::default(),
            limits: RequestLimits::default(),
            max_service_series: metrics::DEFAULT_MAX_SERVICE_SERIES,
        }
    }
}

impl AppState {
    /// State serving `table`, which was loaded from `services_path` (reloads read it again).
    pub fn new(table: Table, services_path: impl Into<PathBuf>, options: StateOptions) -> Arc<Self> {
        let StateOptions { table: table_options, mut limits, max_service_series } = options;
        if limits.heavy_lookups == 0 {
            limits.heavy_lookups = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        let heavy = Arc::new(tokio::sync::Semaphore::new(limits.heavy_lookups));
        let metrics = Metrics::new(max_service_series);
        let live = Live::new(table, &metrics, None, &[]);
        metrics.loaded(true, false);
        Arc::new(AppState {
            live: ArcSwap::from_pointee(live),
            services_path: services_path.into(),
            options: table_options,
            stopping: AtomicBool::new(false),
            reloading: Mutex::new(()),
            metrics,
            limits,
            heavy,
            last_reload: Mutex::new(None),
            recent_reloads: Mutex::default(),
            started_at: unix_now(),
        })
    }

    /// The current table. Load it once per request: a reload may swap it at any moment, and
    /// the guard keeps the table it points to alive.
    #[inline]
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn limits(&self) -> &RequestLimits {
        &self.limits
    }

    /// Permits for heavy lookups: take one with `try_acquire_owned`, never wait for one.
    pub fn heavy_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.heavy
    }

    pub fn services_path(&self) -> &Path {
        &self.services_path
    }

    pub fn options(&self) -> LoadRules {
        self.options
    }

    /// Ready for traffic, or why not: shutting down, or an empty table (unless
    /// `allow_empty`), so that a load balancer sends nothing to a replica that would answer
    /// 404 to every lookup.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Acquire) {
            Err("shutting down")
        } else if !self.options.allow_empty && self.live.load().table.is_empty() {
            Err("no services loaded: the services file is empty")
        } else {
            Ok(())
        }
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// `false` starts a shutdown: readiness answers 503 from now on, whatever the table.
    pub fn set_ready(&self, ready: bool) {
        self.stopping.store(!ready, Ordering::Release);
    }

    /// Held for the whole of a reload, so that two never interleave.
    pub(crate) fn lock_reloads(&self) -> MutexGuard<'_, ()> {
        self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Installs `table` (with its metrics) in place of the current one; returns the old one.
    /// `changes`: the services the reload changed (added included), with the moved share.
    pub(crate) fn swap(&self, table: Table, changes: &[(String, f64)]) -> Arc<Live> {
        let old = self.live.load_full();
        self.live.store(Arc::new(Live::new(table, &self.metrics, Some(&old), changes)));
        old
    }

    /// The last [`RECENT_RELOADS`] reload attempts, newest first.
    pub fn recent_reloads(&self) -> Vec<Arc<ReloadRecord>> {
        self.recent_reloads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().rev().cloned().collect()
    }

    /// The last reload attempt, if any since startup.
    pub fn last_reload(&self) -> Option<Arc<ReloadRecord>> {
        self.last_reload.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Records a reload attempt's outcome (the reload path calls this once per attempt).
    pub(crate) fn record_reload(&self, record: ReloadRecord) {
        let record = Arc::new(record);
        {
            let mut recent = self.recent_reloads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if recent.len() == RECENT_RELOADS {
                recent.pop_front();
            }
            recent.push_back(Arc::clone(&record));
        }
        *self.last_reload.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(record);
    }

    /// When this process loaded its first table (seconds since the Unix epoch).
    pub fn started_at(&self) -> f64 {
        self.started_at
    }

    /// The whole `/metrics` exposition: process-wide series, then the current table's, all
    /// from one snapshot of the table.
    pub fn render_metrics(&self) -> Vec<u8> {
        let live = self.live.load_full();
        let mut out = Vec::with_capacity(8192 + live.series_len_hint());
        self.metrics.render_into(&mut out);
        metrics::render_ready(&mut out, self.is_ready());
        live.render_metrics(&mut out);
        out
    }
}
