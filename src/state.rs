//! The live state shared by every worker: the table behind one atomic pointer.
//!
//! A [`Live`] is a table with what the server needs per service (metric handles, the
//! fingerprint header); it is built whole off to the side and swapped in by [`AppState::swap`],
//! which only [`crate::reload`] calls. Requests load it once and keep that one table to the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwap;

use crate::config::DEFAULT_MAX_SERVICES_BYTES;
use crate::metrics::{LookupCounters, Metrics};
use crate::ranking::{fingerprint_hex, Service, Table};

/// One table and what goes with each of its services, swapped as a whole.
#[derive(Debug)]
pub struct Live {
    pub table: Table,
    /// What the server keeps per service, in the order of `table.services()`; built in
    /// [`Live::new`] from the same iteration, read only through [`Live::service`].
    extras: Box<[Extras]>,
}

#[derive(Debug)]
struct Extras {
    counters: LookupCounters,
    fingerprint: HeaderValue,
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
    /// `table` with its metric handles (registered in `metrics`, replacing `old`'s) and headers.
    fn new(table: Table, metrics: &Metrics, old: Option<&Table>) -> Live {
        let extras = metrics
            .install(old, &table)
            .into_iter()
            .zip(table.services())
            .map(|(counters, s)| Extras {
                counters,
                // Sixteen hex digits are always a valid header value.
                fingerprint: HeaderValue::from_str(&fingerprint_hex(s.fingerprint()))
                    .unwrap_or(HeaderValue::from_static("?")),
            })
            .collect();
        Live { table, extras }
    }

    /// The service called `name`, if it is in the table.
    #[inline]
    pub fn service(&self, name: &str) -> Option<Served<'_>> {
        let (i, service) = self.table.find(name)?;
        let extras = self.extras.get(i)?;
        Some(Served { service, counters: &extras.counters, fingerprint: &extras.fingerprint })
    }
}

/// How the services file is judged, at startup and on every reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    /// Files bigger than this are refused (`--max-services-bytes`).
    pub max_services_bytes: u64,
    /// An empty table may replace a non-empty one, and an empty table is ready
    /// (`--allow-empty`).
    pub allow_empty: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions { max_services_bytes: DEFAULT_MAX_SERVICES_BYTES, allow_empty: false }
    }
}

/// Default `--heavy-lookup-work` (see [`crate::request::Plan::work`]): about 2 ms of work. A
/// single key stays inline up to a service of ~1 000 000 nodes, a batch of 1 000 keys over 100
/// nodes too; the largest answer the default budget allows (100 000 nodes) does not.
pub const DEFAULT_HEAVY_WORK: u64 = 1_000_000;

/// What one request may cost (see the README's "Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Keys × nodes per key in one answer.
    pub max_answer_nodes: u64,
    /// Time for the request head, and again for the body.
    pub request_timeout: Duration,
    /// Node scores above which a lookup runs on the heavy pool.
    pub heavy_work: u64,
    /// Heavy lookups at once; 0 for one per CPU this process may use.
    pub heavy_lookups: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_answer_nodes: crate::request::DEFAULT_MAX_ANSWER_NODES,
            request_timeout: Duration::from_secs(10),
            heavy_work: DEFAULT_HEAVY_WORK,
            heavy_lookups: 0,
        }
    }
}

/// What the server shares between workers.
#[derive(Debug)]
pub struct AppState {
    live: ArcSwap<Live>,
    services_path: PathBuf,
    options: TableOptions,
    /// Set once a shutdown starts; readiness is 503 from then on.
    stopping: AtomicBool,
    /// Serializes reloads (SIGHUP and the file watcher may fire together); lookups never take it.
    reloading: Mutex<()>,
    metrics: Metrics,
    limits: Limits,
    /// One permit per heavy lookup that may run at once.
    heavy: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// State serving `table`, which was loaded from `services_path`, with the default
    /// [`TableOptions`].
    pub fn new(table: Table, services_path: impl Into<PathBuf>) -> Arc<Self> {
        Self::with(table, services_path, TableOptions::default(), Limits::default())
    }

    /// State serving `table`, which was loaded from `services_path`; reloads follow `options`.
    pub fn with_options(table: Table, services_path: impl Into<PathBuf>, options: TableOptions) -> Arc<Self> {
        Self::with(table, services_path, options, Limits::default())
    }

    /// Like [`AppState::new`], with these limits.
    pub fn with_limits(table: Table, services_path: impl Into<PathBuf>, limits: Limits) -> Arc<Self> {
        Self::with(table, services_path, TableOptions::default(), limits)
    }

    /// State serving `table`, which was loaded from `services_path`: reloads follow `options`,
    /// requests `limits` (`heavy_lookups` 0 resolved to the CPU count).
    pub fn with(
        table: Table,
        services_path: impl Into<PathBuf>,
        options: TableOptions,
        mut limits: Limits,
    ) -> Arc<Self> {
        if limits.heavy_lookups == 0 {
            limits.heavy_lookups = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        let heavy = Arc::new(tokio::sync::Semaphore::new(limits.heavy_lookups));
        let metrics = Metrics::new();
        let live = Live::new(table, &metrics, None);
        metrics.loaded(true, false);
        Arc::new(AppState {
            live: ArcSwap::from_pointee(live),
            services_path: services_path.into(),
            options,
            stopping: AtomicBool::new(false),
            reloading: Mutex::new(()),
            metrics,
            limits,
            heavy,
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

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Permits for heavy lookups: take one with `try_acquire_owned`, never wait for one.
    pub fn heavy_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.heavy
    }

    pub fn services_path(&self) -> &Path {
        &self.services_path
    }

    pub fn options(&self) -> TableOptions {
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
    pub(crate) fn swap(&self, table: Table) -> Arc<Live> {
        let old = self.live.load_full();
        self.live.store(Arc::new(Live::new(table, &self.metrics, Some(&old.table))));
        old
    }
}
