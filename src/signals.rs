//! Process signals: SIGHUP reloads the services file; SIGTERM and SIGINT stop the server.
//!
//! actix's own signal handling is disabled (it does not know SIGHUP, and an unhandled SIGHUP
//! kills the process), so keyrouter owns the whole story. [`Signals::install`] must run before
//! the server accepts connections.

use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::state::AppState;

pub struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Registers the handlers. Call inside the runtime, before serving.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Reloads on every SIGHUP until SIGTERM or SIGINT arrives, then returns. SIGHUPs that
    /// arrive during a reload coalesce into one more reload, which reads the file as it is then.
    pub async fn reload_until_stopped(mut self, state: Arc<AppState>) {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => reload_and_log(&state, "SIGHUP", false),
                _ = self.terminate.recv() => {
                    tracing::info!("SIGTERM: finishing in-flight requests, then exiting");
                    return;
                }
                _ = self.interrupt.recv() => {
                    tracing::info!("SIGINT: finishing in-flight requests, then exiting");
                    return;
                }
            }
        }
    }
}

/// Warns about the duplicate nodes a load of `path` removed (the first of each was kept).
pub fn warn_duplicates(path: &std::path::Path, removed: &[(String, usize)]) {
    for (service, n) in removed {
        tracing::warn!("{}: service {service:?}: removed {n} duplicate node(s)", path.display());
    }
}

/// Reloads the services file and logs the outcome; a bad file keeps the old table.
pub fn reload_and_log(state: &AppState, cause: &str, only_if_changed: bool) {
    let path = state.services_path().display();
    match state.reload(only_if_changed) {
        Ok(None) => tracing::debug!("{cause}: {path} gives the same table, nothing to do"),
        Ok(Some(summary)) => {
            warn_duplicates(state.services_path(), &summary.duplicates_removed);
            tracing::info!("{cause}: reloaded {path}: {summary}");
        }
        Err(e) => tracing::error!("{cause}: reload failed, still serving the previous table: {e}"),
    }
}
