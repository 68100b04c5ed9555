//! `--watch`: reload when the services file changes on disk.
//!
//! consul-template renders to a temporary file and renames it over the target, and Kubernetes
//! ConfigMap volumes swap a `..data` symlink: either way the path gets a new inode, so the watch
//! is on the directory, not on the file. Bursts of events are debounced into one reload, which
//! goes through the same path as SIGHUP (a bad file keeps the old table) and does nothing when
//! the file gives the table already served.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::reload::{reload_and_log, When};
use crate::state::AppState;

/// How long the directory must stay quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches the services file's directory until the returned watcher is dropped.
pub fn spawn(state: Arc<AppState>) -> notify::Result<RecommendedWatcher> {
    let dir = match state.services_path().parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Access events (reads, including our own) change nothing.
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!("watching {} for changes to {}", dir.display(), state.services_path().display());
    std::thread::Builder::new().name("keyrouter-watch".into()).spawn(move || {
        while rx.recv().is_ok() {
            loop {
                match rx.recv_timeout(DEBOUNCE) {
                    Ok(()) => continue,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            reload_and_log(&state, "file change", When::IfChanged);
        }
    })?;
    Ok(watcher)
}
