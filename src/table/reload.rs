//! The one reload path: read → build → compare → swap → metrics → log. SIGHUP
//! ([`crate::signals`]), `--watch` ([`crate::table::watch`]) and startup ([`initial_load`]) all come
//! through here, so a file is judged the same way whoever asked.
//!
//! A file that cannot be read, is invalid, or is empty while services are served keeps the
//! table being served: the new table is built whole off to the side and only then swapped in.
//! SIGHUP reloads run on a thread of their own ([`Reloader`]), never on the thread that handles
//! signals.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use crate::impact::{self, ServiceImpact};
use crate::logging::{count, escape, quote};
use crate::ranking::Table;
use crate::table::config::{self, ConfigError, Loaded};
use crate::table::state::{unix_now, AppState, ReloadOutcome, ReloadRecord};

/// Why a reload kept the table being served.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read, or is not a valid services file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file has no services while some are served, and `--allow-empty` is off.
    #[error(
        "{path}: the file has no services; refusing to replace the {served} being served \
         with an empty table (--allow-empty allows it)",
        path = escape(&.path.display().to_string()),
        served = count(*.served, "service")
    )]
    Empty { path: PathBuf, served: usize },
}

impl ReloadError {
    /// The error on one line, whatever the file holds: for an invalid file, its first error and
    /// how many more there are ([`ConfigError::summary`]).
    pub fn summary(&self) -> String {
        match self {
            ReloadError::Config(e) => e.summary(),
            ReloadError::Empty { .. } => self.to_string(),
        }
    }
}

/// When to swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Whatever the file gives (SIGHUP: the operator asked).
    Always,
    /// Only when the file gives another table than the one served (`--watch`, which also sees
    /// events that change nothing).
    IfChanged,
}

/// Loads the services file at startup (refusing files over `max_bytes`), warning about removed
/// duplicates as a reload would.
pub fn initial_load(path: &Path, max_bytes: u64) -> Result<Loaded, ConfigError> {
    let _release = crate::memory::ReleaseOnDrop;
    let loaded = config::load_limited(path, max_bytes)?;
    warn_duplicates(path, &loaded.report.duplicates_removed);
    Ok(loaded)
}

/// Re-reads the services file and swaps the new table in whole, or keeps the old one if the
/// file cannot be read, is invalid, or has no services while some are served (unless
/// `allow_empty`). With [`When::IfChanged`], a file that gives the same table as the current one
/// is left alone (`Ok(None)`); it is still a successful reload for the metrics, as in
/// Prometheus: the gauge goes back to 1 after a failure, the timestamp moves.
pub fn reload(state: &AppState, when: When) -> Result<Option<ReloadSummary>, ReloadError> {
    let _one_at_a_time = state.lock_reloads();
    // Last out: whatever this load freed (file text, parse tree, a refused or unchanged table).
    let _release = crate::memory::ReleaseOnDrop;
    let options = state.options();
    let Loaded { table, report } = config::load_limited(state.services_path(), options.max_services_bytes)
        .inspect_err(|_| state.metrics().loaded(false, true))?;
    let current = state.live();
    if when == When::IfChanged && current.table.same_as(&table) {
        state.metrics().loaded(true, true);
        return Ok(None);
    }
    if table.is_empty() && !current.table.is_empty() && !options.allow_empty {
        state.metrics().loaded(false, true);
        return Err(ReloadError::Empty { path: state.services_path().to_path_buf(), served: current.table.len() });
    }
    let summary = ReloadSummary::between(&current.table, &table, report.duplicates_removed);
    drop(current);
    let added = summary.added.iter().map(|name| (name.clone(), 1.0));
    let changed = summary.impacts.iter().map(|(name, i)| (name.clone(), i.moved.value));
    let changes: Vec<(String, f64)> = added.chain(changed).collect();
    state.swap(table, &changes);
    state.metrics().reload_moved(&summary.removed, changes);
    state.metrics().loaded(true, true);
    Ok(Some(summary))
}

/// [`reload`], with the outcome logged and recorded for the status page
/// ([`AppState::last_reload`]); `cause` says who asked ("SIGHUP", "file change").
pub fn reload_and_log(state: &AppState, cause: &str, when: When) {
    let path = state.services_path().display();
    tracing::debug!("{cause}: reading {path}");
    let result = reload(state, when);
    let outcome = match &result {
        Ok(Some(summary)) if !summary.is_unchanged() => ReloadOutcome::Changed {
            added: summary.added.clone(),
            removed: summary.removed.clone(),
            moved: summary.impacts.iter().map(|(name, i)| (name.clone(), i.moved)).collect(),
        },
        Ok(_) => ReloadOutcome::Unchanged,
        Err(e) => ReloadOutcome::Failed(e.to_string()),
    };
    state.record_reload(ReloadRecord { at: unix_now(), cause: cause.to_string(), outcome });
    match result {
        Ok(None) => tracing::debug!("{cause}: {path} gives the same table, nothing to do"),
        Ok(Some(summary)) => {
            warn_duplicates(state.services_path(), &summary.duplicates_removed);
            // A reload that changes nothing is routine (consul-template renders on every catalog
            // event); only changes are worth a line at INFO.
            if summary.is_unchanged() {
                tracing::debug!("{cause}: reloaded {path}: {summary}");
            } else {
                tracing::info!("{cause}: reloaded {path}: {summary}");
            }
        }
        Err(e) => tracing::error!("{cause}: reload failed, still serving the previous table: {}", e.summary()),
    }
}

/// Runs reloads on a thread of its own, so that the thread handling signals never waits for a
/// file (however big, slow or odd) and SIGTERM is handled at once whatever a reload is doing.
/// Requests that arrive during a reload coalesce into one more reload, of the file as it is then.
#[derive(Debug, Clone)]
pub struct Reloader {
    requests: mpsc::Sender<&'static str>,
}

impl Reloader {
    /// Starts the reload thread for `state`; it ends when every `Reloader` is dropped.
    pub fn spawn(state: Arc<AppState>) -> std::io::Result<Reloader> {
        let (requests, rx) = mpsc::channel::<&'static str>();
        std::thread::Builder::new().name("keyrouter-reload".into()).spawn(move || {
            while let Ok(mut cause) = rx.recv() {
                while let Ok(later) = rx.try_recv() {
                    cause = later;
                }
                reload_and_log(&state, cause, When::Always);
            }
        })?;
        Ok(Reloader { requests })
    }

    /// Asks for a reload (`cause` says who asked, for the log) and returns at once.
    pub fn request(&self, cause: &'static str) {
        if self.requests.send(cause).is_err() {
            tracing::error!("{cause}: cannot reload: the reload thread has stopped");
        }
    }
}

/// Warns about the duplicate nodes a load of `path` removed (the first of each was kept).
/// At most [`config::MAX_DIAGNOSTICS`] lines (then a count), as for errors: a file with
/// duplicates in every one of 100 000 services must not flood the log on every reload.
fn warn_duplicates(path: &Path, removed: &[(String, usize)]) {
    let path = path.display().to_string();
    for (service, n) in removed.iter().take(config::MAX_DIAGNOSTICS) {
        tracing::warn!("{}: service {}: removed {}", escape(&path), quote(service), count(*n, "duplicate node"));
    }
    if let Some(more) = removed.len().checked_sub(config::MAX_DIAGNOSTICS).filter(|&m| m > 0) {
        tracing::warn!(
            "{}: \u{2026} and {} with duplicate nodes removed (`keyrouter check` lists them)",
            escape(&path),
            count(more, "more service")
        );
    }
}

/// Node scores a reload may spend on sampled estimates, over all its changed services (each
/// still gets at least [`MIN_RELOAD_SAMPLES`] keys): keeps a reload of a large catalog quick.
const RELOAD_SAMPLE_WORK: usize = 100_000_000;

/// The fewest synthetic keys a sampled estimate uses on reload.
const MIN_RELOAD_SAMPLES: usize = 100;

/// What a successful reload changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadSummary {
    pub services: usize,
    pub nodes: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// What each changed service's change does, in the order of `changed`.
    pub impacts: Vec<(String, ServiceImpact)>,
    pub duplicates_removed: Vec<(String, usize)>,
}

impl ReloadSummary {
    /// No service was added, removed or changed: every answer stays the same.
    pub fn is_unchanged(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

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
        // Exact where the formula applies (no sampling); else an estimate on the reload thread,
        // within a budget of node scores shared by all changed services.
        let mut budget = RELOAD_SAMPLE_WORK;
        s.impacts = s
            .changed
            .iter()
            .filter_map(|name| {
                let (a, b) = (old.get(name)?, new.get(name)?);
                let per_key = (a.len() + b.len()).max(1);
                let samples = (budget / per_key).clamp(MIN_RELOAD_SAMPLES, impact::RELOAD_SAMPLES);
                let i = impact::service_impact(Some(a), Some(b), None, samples);
                if !i.moved.is_exact() {
                    budget = budget.saturating_sub(samples * per_key);
                }
                Some((name.clone(), i))
            })
            .collect();
        s
    }
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}", count(self.services, "service"), count(self.nodes, "node"))?;
        if self.is_unchanged() {
            return f.write_str("; unchanged");
        }
        write!(f, "; added {:?}, removed {:?}, changed [", self.added, self.removed)?;
        for (n, (name, i)) in self.impacts.iter().enumerate() {
            let sep = if n > 0 { ", " } else { "" };
            let reweighted = match i.reweighted.len() {
                0 => String::new(),
                r => format!(" ~{r}"),
            };
            write!(f, "{sep}{name:?} (+{} -{}{reweighted} nodes, {} moved)", i.added.len(), i.removed.len(), i.moved)?;
        }
        f.write_str("]")
    }
}
