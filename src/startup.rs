//! From validated [`Settings`] to a running server: signal handlers first, then the hash
//! self-check, the services file, the listener, the watcher, and the server itself.
//!
//! [`Application::build`] does everything that can fail before serving, so a test (or an
//! embedding program) gets the bound port before anything runs; [`Application::run_until_stopped`]
//! serves until SIGTERM or SIGINT.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::address::ListenAddress;
use crate::descriptors;
use crate::http::{self, ServerOptions};
use crate::limits::{LoadRules, RequestLimits};
use crate::logging::count;
use crate::memory;
use crate::ranking::{self, SelfCheckError};
use crate::signals::{ShutdownBudget, Signals};
use crate::table::config::ConfigError;
use crate::table::reload::{self, Reloader};
use crate::table::state::{AppState, StateOptions};
use crate::table::watch;

/// What `keyrouter` (serving) needs, validated: the command line's and environment's flags
/// after parsing (see `crate::cli`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub services: PathBuf,
    pub address: ListenAddress,
    pub watch: bool,
    /// Services with metric series of their own; the others are aggregated.
    pub max_service_series: usize,
    /// Worker threads; 0: one per CPU this process may use (container limits included).
    pub workers: usize,
    pub shutdown_timeout: Duration,
    pub shutdown_delay: Duration,
    /// Log a line per request (DEBUG and TRACE).
    pub log_requests: bool,
    /// Services files bigger than this are refused, at startup and on reload.
    pub max_services_bytes: u64,
    /// An empty table may replace a non-empty one on reload, and is ready at startup.
    pub allow_empty: bool,
    /// Most client connections at once; 0: derived from the file-descriptor limit.
    pub max_connections: usize,
    /// Idle time allowed between a connection's requests.
    pub keep_alive: Duration,
    /// What one request may cost.
    pub limits: RequestLimits,
}

/// Why keyrouter could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    SelfCheck(#[from] SelfCheckError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: ListenAddress, source: std::io::Error },
    #[error("cannot watch {path}: {source}", path = .path.display())]
    Watch { path: PathBuf, source: notify::Error },
    #[error("cannot start the reload thread: {0}")]
    Reloader(#[source] std::io::Error),
    #[error("server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// A server ready to run: table loaded, listener bound, signal handlers installed.
pub struct Application {
    state: Arc<AppState>,
    listener: TcpListener,
    local: SocketAddr,
    options: ServerOptions,
    signals: Signals,
    reloader: Reloader,
    /// The limits in force, for the startup line.
    startup_note: String,
    _watcher: Option<watch::WatchHandle>,
}

impl Application {
    /// Prepares everything that can fail. Call inside the actix runtime.
    pub fn build(settings: &Settings) -> Result<Application, StartupError> {
        // First of all: an unhandled SIGHUP kills the process, and in a pod consul-template may
        // send one while keyrouter is still starting. Registered now, a SIGHUP that arrives
        // during startup waits, and triggers a reload once the server runs.
        let signals = Signals::install().map_err(StartupError::Signals)?;
        ranking::self_check()?;
        let loaded = reload::initial_load(&settings.services, settings.max_services_bytes)?;
        if loaded.table.is_empty() && !settings.allow_empty {
            tracing::warn!(
                "{}: no services: /readyz answers 503 until a reload loads some (--allow-empty serves an \
                 empty table as ready)",
                settings.services.display()
            );
        }
        let listener = settings
            .address
            .bind()
            .map_err(|source| StartupError::Bind { address: settings.address.clone(), source })?;
        let local =
            listener.local_addr().map_err(|source| StartupError::Bind { address: settings.address.clone(), source })?;
        let workers = match settings.workers {
            // The CPUs this process may use (cgroup limits included), not the machine's.
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (connections, connection_note) = descriptors::connection_budget(settings.max_connections, workers);
        let limits = &settings.limits;
        let startup_note = format!(
            "limits: {connection_note}, answers of up to {}, requests within {} s, idle connections closed after {} s, \
             services files of up to {} bytes",
            count(usize::try_from(limits.max_answer_nodes).unwrap_or(usize::MAX), "node"),
            limits.request_timeout.as_secs(),
            settings.keep_alive.as_secs(),
            settings.max_services_bytes,
        );
        let options = ServerOptions {
            workers,
            shutdown_timeout: settings.shutdown_timeout,
            shutdown_delay: settings.shutdown_delay,
            log_requests: settings.log_requests,
            request_timeout: settings.limits.request_timeout,
            keep_alive: settings.keep_alive,
            max_connections: connections.total,
            max_connections_per_worker: connections.per_worker,
            max_lingering: connections.lingering,
        };
        let table_options =
            LoadRules { max_services_bytes: settings.max_services_bytes, allow_empty: settings.allow_empty };
        let state = AppState::new(
            loaded.table,
            settings.services.clone(),
            StateOptions {
                table: table_options,
                limits: settings.limits.clone(),
                max_service_series: settings.max_service_series,
            },
        );
        let reloader = Reloader::spawn(state.clone()).map_err(StartupError::Reloader)?;
        let watcher = match settings.watch {
            true => Some(
                watch::spawn(state.clone())
                    .map_err(|source| StartupError::Watch { path: settings.services.clone(), source })?,
            ),
            false => None,
        };
        Ok(Application { state, listener, local, options, signals, reloader, startup_note, _watcher: watcher })
    }

    /// The address the listener is bound to (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully, within `--shutdown-delay` +
    /// `--shutdown-timeout` + [`crate::signals::SHUTDOWN_GRACE`] (see [`Signals::run`]).
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let live = self.state.live();
        tracing::info!(
            "keyrouter {} listening on {} with {}, serving {} ({}, {}); {}",
            env!("CARGO_PKG_VERSION"),
            self.local,
            count(self.options.workers, "worker"),
            self.state.services_path().display(),
            count(live.table.len(), "service"),
            count(live.table.node_count(), "node"),
            self.startup_note,
        );
        drop(live);
        memory::spawn_periodic_trim();
        let budget = ShutdownBudget { delay: self.options.shutdown_delay, timeout: self.options.shutdown_timeout };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        actix_rt::spawn(self.signals.run(self.state.clone(), self.reloader, budget, stop));
        let shutdown = async move {
            let _ = stopped.await;
        };
        http::run(self.listener, self.state, self.options, shutdown).await.map_err(StartupError::Server)?;
        drop(self._watcher);
        Ok(())
    }
}

/// Runs the server with `settings` until it is stopped.
pub fn serve(settings: &Settings) -> Result<(), StartupError> {
    actix_rt::System::new().block_on(async move { Application::build(settings)?.run_until_stopped().await })?;
    tracing::info!("stopped");
    Ok(())
}
