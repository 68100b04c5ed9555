//! Process signals: SIGHUP asks for a reload; SIGTERM and SIGINT start a shutdown that ends in
//! bounded time; a second SIGTERM or SIGINT exits at once. SIGUSR1, SIGUSR2 and SIGALRM mean
//! nothing to keyrouter: each is logged and ignored, where their default action would end the
//! process (a stray `kill -USR1` must not take a routing service down).
//!
//! actix's own signal handling is disabled (it does not know SIGHUP, and an unhandled SIGHUP
//! kills the process), so keyrouter owns the whole story. [`Signals::install`] must run before
//! the server accepts connections. Nothing here waits for a file or a request: reloads run on
//! their own thread ([`Reloader`]) and the shutdown deadline on another, so a slow reload, a
//! CPU-bound request or a stalled log sink never delays a stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::oneshot;

use crate::table::reload::Reloader;
use crate::table::state::AppState;

/// What the watchdog adds to `--shutdown-delay` + `--shutdown-timeout` before it ends the
/// process whatever still runs.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// How long a shutdown may take: readiness 503 and the listener open for `delay`, then up to
/// `timeout` for in-flight requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownBudget {
    pub delay: Duration,
    pub timeout: Duration,
}

impl ShutdownBudget {
    /// When the watchdog ends the process, counted from the first SIGTERM or SIGINT. Saturating:
    /// the command line bounds both, but an overflow here would panic the signal task, after
    /// which no signal but SIGKILL stops the process.
    pub fn deadline(&self) -> Duration {
        self.delay.saturating_add(self.timeout).saturating_add(SHUTDOWN_GRACE)
    }
}

pub struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
    user1: Signal,
    user2: Signal,
    alarm: Signal,
}

impl Signals {
    /// Registers the handlers. Call inside the runtime, before serving.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            user1: signal(SignalKind::user_defined1())?,
            user2: signal(SignalKind::user_defined2())?,
            alarm: signal(SignalKind::alarm())?,
        })
    }

    /// Handles signals for the life of the process. Each SIGHUP asks `reloader` for a reload and
    /// returns to listening at once. The first SIGTERM or SIGINT turns readiness to 503, starts
    /// a watchdog that ends the process (status 0) at `budget`'s deadline whatever still runs,
    /// and completes `stop` (the server's graceful stop). A second SIGTERM or SIGINT exits at
    /// once with status 128 + the signal's number, as if the signal had killed the process.
    pub async fn run(
        mut self,
        state: Arc<AppState>,
        reloader: Reloader,
        budget: ShutdownBudget,
        stop: oneshot::Sender<()>,
    ) {
        let name = loop {
            tokio::select! {
                _ = self.hangup.recv() => reloader.request("SIGHUP"),
                _ = self.user1.recv() => ignored("SIGUSR1"),
                _ = self.user2.recv() => ignored("SIGUSR2"),
                _ = self.alarm.recv() => ignored("SIGALRM"),
                _ = self.terminate.recv() => break "SIGTERM",
                _ = self.interrupt.recv() => break "SIGINT",
            }
        };
        state.set_ready(false);
        tracing::info!(
            "{name}: readiness is 503 from now; the listener closes in {} s, then in-flight requests \
             get up to {} s (--shutdown-delay, --shutdown-timeout); exit within {:.1} s at most, or at \
             once on a second SIGTERM or SIGINT",
            budget.delay.as_secs_f64(),
            budget.timeout.as_secs_f64(),
            budget.deadline().as_secs_f64()
        );
        watchdog(budget.deadline());
        let _ = stop.send(());
        loop {
            let (name, number) = tokio::select! {
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP: ignored, shutting down");
                    continue;
                }
                _ = self.user1.recv() => { ignored("SIGUSR1"); continue; }
                _ = self.user2.recv() => { ignored("SIGUSR2"); continue; }
                _ = self.alarm.recv() => { ignored("SIGALRM"); continue; }
                _ = self.terminate.recv() => ("SIGTERM", libc::SIGTERM),
                _ = self.interrupt.recv() => ("SIGINT", libc::SIGINT),
            };
            tracing::warn!("{name} again: exiting now, without waiting for in-flight requests");
            exit_now(128 + number);
        }
    }
}

/// A signal keyrouter gives no meaning: logged, so that whoever sent it can see it arrived.
fn ignored(name: &str) {
    tracing::info!("{name}: ignored (keyrouter gives it no meaning; SIGHUP reloads, SIGTERM and SIGINT stop)");
}

/// Ends the process `after` from now, whatever is still running then: a CPU-bound request or a
/// worker that does not stop cannot hold a shutdown past its promise.
fn watchdog(after: Duration) {
    let spawned = std::thread::Builder::new().name("keyrouter-shutdown".into()).spawn(move || {
        std::thread::sleep(after);
        tracing::warn!(
            "shutdown: still running {:.1} s after the signal (--shutdown-delay + --shutdown-timeout + {:.1} s): \
             exiting now, abandoning the requests still in flight",
            after.as_secs_f64(),
            SHUTDOWN_GRACE.as_secs_f64()
        );
        exit_now(0);
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the shutdown watchdog: {e}");
    }
}

/// Flushes the log (bounded in time) and ends the process with `code`.
pub fn exit_now(code: i32) -> ! {
    crate::logging::finish();
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_deadline_saturates_instead_of_overflowing() {
        let budget = ShutdownBudget { delay: Duration::MAX, timeout: Duration::MAX };
        assert_eq!(budget.deadline(), Duration::MAX);
        let budget = ShutdownBudget { delay: Duration::from_secs(2), timeout: Duration::from_millis(1500) };
        assert_eq!(budget.deadline(), Duration::from_millis(4000));
    }
}
