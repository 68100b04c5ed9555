//! The live state shared by every worker: the table behind one atomic pointer, and reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::{self, ConfigError, Loaded};
use crate::metrics::{LookupCounters, Metrics};
use crate::ranking::{fingerprint_hex, Table};
use actix_web::http::header::HeaderValue;

/// One table and what goes with it, swapped as a whole.
#[derive(Debug)]
pub struct Live {
    pub table: Table,
    /// Lookup counters of each service, in the order of `table.services()`.
    pub counters: Vec<LookupCounters>,
    /// Each service's fingerprint as a ready response header value, in the same order.
    pub fingerprints: Vec<HeaderValue>,
}

impl Live {
    /// `table` with its metric handles (registered in `metrics`, replacing `old`'s) and headers.
    fn new(table: Table, metrics: &Metrics, old: Option<&Table>) -> Live {
        let counters = metrics.install(old, &table);
        let fingerprints = table
            .services()
            .iter()
            .map(|s| {
                // Sixteen hex digits are always a valid header value.
                HeaderValue::from_str(&fingerprint_hex(s.fingerprint())).unwrap_or(HeaderValue::from_static("?"))
            })
            .collect();
        Live { table, counters, fingerprints }
    }
}

/// What the server shares between workers.
#[derive(Debug)]
pub struct AppState {
    live: ArcSwap<Live>,
    services_path: PathBuf,
    ready: AtomicBool,
    /// Serializes reloads (SIGHUP and the file watcher may fire together); lookups never take it.
    reloading: Mutex<()>,
    metrics: Metrics,
}

impl AppState {
    /// State serving `table`, which was loaded from `services_path`.
    pub fn new(table: Table, services_path: impl Into<PathBuf>) -> Arc<Self> {
        let metrics = Metrics::new();
        let live = Live::new(table, &metrics, None);
        metrics.loaded(true, false);
        Arc::new(AppState {
            live: ArcSwap::from_pointee(live),
            services_path: services_path.into(),
            ready: AtomicBool::new(true),
            reloading: Mutex::new(()),
            metrics,
        })
    }

    /// The current table. Load it once per request: a reload may swap it at any moment, and
    /// the guard keeps the table it points to alive.
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn services_path(&self) -> &Path {
        &self.services_path
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Re-reads the services file and swaps the new table in whole, or keeps the old one if
    /// the file cannot be read or is invalid. With `only_if_changed`, a file that gives the
    /// same table as the current one is left alone (`Ok(None)`, not counted as a reload).
    pub fn reload(&self, only_if_changed: bool) -> Result<Option<ReloadSummary>, ConfigError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Loaded { table, report } =
            config::load(&self.services_path).inspect_err(|_| self.metrics.loaded(false, true))?;
        let old = self.live.load_full();
        if only_if_changed && old.table.fingerprint() == table.fingerprint() {
            return Ok(None);
        }
        let summary = ReloadSummary::between(&old.table, &table, report.duplicates_removed);
        self.live.store(Arc::new(Live::new(table, &self.metrics, Some(&old.table))));
        self.metrics.loaded(true, true);
        Ok(Some(summary))
    }
}

/// What a successful reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub services: usize,
    pub nodes: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub duplicates_removed: Vec<(String, usize)>,
}

impl ReloadSummary {
    fn between(old: &Table, new: &Table, duplicates_removed: Vec<(String, usize)>) -> Self {
        let mut s =
            ReloadSummary { services: new.len(), nodes: new.node_count(), duplicates_removed, ..Default::default() };
        for service in new.services() {
            match old.get(service.name()) {
                None => s.added.push(service.name().to_string()),
                Some(o) if o.fingerprint() != service.fingerprint() => s.changed.push(service.name().to_string()),
                Some(_) => {}
            }
        }
        s.removed = old.names().iter().filter(|n| new.get(n).is_none()).cloned().collect();
        s
    }
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} services, {} nodes; added {:?}, removed {:?}, changed {:?}",
            self.services, self.nodes, self.added, self.removed, self.changed
        )
    }
}
