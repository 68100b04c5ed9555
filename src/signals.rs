//! Process signals: SIGHUP reloads the services file; SIGTERM and SIGINT stop the server.
//!
//! actix's own signal handling is disabled (it does not know SIGHUP, and an unhandled SIGHUP
//! kills the process), so keyrouter owns the whole story. [`Signals::install`] must run before
//! the server accepts connections.

use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::reload::{reload_and_log, When};
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

    /// Reloads on every SIGHUP until SIGTERM or SIGINT arrives, then returns its name. SIGHUPs
    /// that arrive during a reload coalesce into one more reload, which reads the file as it is
    /// then.
    pub async fn reload_until_stopped(mut self, state: Arc<AppState>) -> &'static str {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => reload_and_log(&state, "SIGHUP", When::Always),
                _ = self.terminate.recv() => return "SIGTERM",
                _ = self.interrupt.recv() => return "SIGINT",
            }
        }
    }
}
