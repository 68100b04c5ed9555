//! The command line: flags as in the original keyrouter, plus environment variables.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config;
use crate::ranking;
use crate::server::{self, ServerOptions};
use crate::signals::{self, Signals};
use crate::state::AppState;
use crate::watch;

/// keyrouter maps a key to one or more nodes of a named service by rendezvous hashing.
///
/// Without a subcommand it serves `POST /service/{name}` with `key`, `min` and `max` (query
/// string, form, multipart form or JSON) and answers with a JSON array of the nodes ranked
/// highest for the key. `GET /service` lists the services; `/healthz`, `/readyz` and `/metrics`
/// are for operators. SIGHUP re-reads the services file; an invalid file is logged and the
/// previous table keeps serving. SIGTERM and SIGINT stop gracefully.
#[derive(Debug, Parser)]
#[command(name = "keyrouter", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Services file (TOML, `[[Services]]` with `Name` and `Nodes`).
    #[arg(long, global = true, env = "KEYROUTER_SERVICES", default_value = "services.toml")]
    pub services: PathBuf,

    /// Address to listen on: `:PORT` (all interfaces), `HOST:PORT` or `[IPv6]:PORT`.
    #[arg(long, env = "KEYROUTER_ADDRESS", default_value = ":8080")]
    pub address: ListenAddress,

    /// Log level: TRACE, DEBUG, INFO, WARN or ERROR (any case). Requests are logged at DEBUG.
    #[arg(long, env = "KEYROUTER_LOG_LEVEL", default_value = "INFO", value_parser = parse_level)]
    pub log_level: tracing::Level,

    /// Log format: human-readable text or JSON lines.
    #[arg(long, env = "KEYROUTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Also reload when the services file changes on disk (SIGHUP works either way).
    #[arg(long, env = "KEYROUTER_WATCH")]
    pub watch: bool,

    /// Worker threads (0: one per CPU this process may use, container limits included).
    #[arg(long, env = "KEYROUTER_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "KEYROUTER_SHUTDOWN_TIMEOUT", default_value_t = 5)]
    pub shutdown_timeout: u64,

    /// Seconds between SIGTERM (readiness turns 503) and closing the listener, for load
    /// balancers to stop sending first.
    #[arg(long, env = "KEYROUTER_SHUTDOWN_DELAY", default_value_t = 0)]
    pub shutdown_delay: u64,

    /// Print long help (same as --help).
    #[arg(long = "help-long", action = ArgAction::HelpLong)]
    pub help_long: Option<bool>,

    /// Print a man page (roff) and exit.
    #[arg(long = "help-man")]
    pub help_man: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate the services file without serving: print a summary and exit 0, or
    /// print each error with line:column and exit 1.
    Check,
    /// Print the answer the server would give for SERVICE and KEY, with the same errors.
    /// Exit status: 0 with an answer, 1 with an error.
    Lookup {
        /// Service name.
        service: String,
        /// Key to place.
        key: String,
        /// Fewest nodes acceptable (default 1).
        #[arg(long, allow_hyphen_values = true)]
        min: Option<String>,
        /// Most nodes wanted (default: min).
        #[arg(long, allow_hyphen_values = true)]
        max: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_level(s: &str) -> Result<tracing::Level, String> {
    match s.to_ascii_uppercase().as_str() {
        "TRACE" => Ok(tracing::Level::TRACE),
        "DEBUG" => Ok(tracing::Level::DEBUG),
        "INFO" => Ok(tracing::Level::INFO),
        "WARN" | "WARNING" => Ok(tracing::Level::WARN),
        "ERROR" => Ok(tracing::Level::ERROR),
        _ => Err(format!("unknown log level {s:?}: use TRACE, DEBUG, INFO, WARN or ERROR")),
    }
}

/// A listen address in Go's forms: `:8080`, `host:8080`, `127.0.0.1:8080`, `[::1]:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// `None`: all interfaces.
    pub host: Option<String>,
    pub port: u16,
}

impl FromStr for ListenAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid address {s:?}: {why}; use :PORT, HOST:PORT or [IPv6]:PORT");
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port must be a number from 0 to 65535"))?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            let ip = inner.strip_suffix(']').ok_or_else(|| bad("unclosed ["))?;
            ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad("not an IPv6 address inside [ ]"))?;
            Some(ip.to_string())
        } else if host.contains(':') {
            return Err(bad("an IPv6 address must be written in brackets"));
        } else if host.is_empty() {
            None
        } else {
            Some(host.to_string())
        };
        Ok(ListenAddress { host, port })
    }
}

impl ListenAddress {
    /// Binds a listener. All interfaces means IPv6 and IPv4 where the host has IPv6, else IPv4.
    pub fn bind(&self) -> std::io::Result<TcpListener> {
        let candidates: Vec<SocketAddr> = match &self.host {
            None => vec![
                (std::net::Ipv6Addr::UNSPECIFIED, self.port).into(),
                (std::net::Ipv4Addr::UNSPECIFIED, self.port).into(),
            ],
            Some(host) => (host.as_str(), self.port).to_socket_addrs()?.collect(),
        };
        let mut last = std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to bind");
        for addr in candidates {
            match TcpListener::bind(addr) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            None => write!(f, ":{}", self.port),
            Some(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
        }
    }
}

fn init_logging(level: tracing::Level, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // A second initialisation (in-process tests) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.help_man {
        let mut out = Vec::new();
        if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut out) {
            eprintln!("keyrouter: cannot render the man page: {e}");
            return ExitCode::FAILURE;
        }
        let _ = std::io::stdout().write_all(&out);
        return ExitCode::SUCCESS;
    }
    let result = match &cli.command {
        None => serve(&cli),
        Some(Command::Check) => check(&cli.services),
        Some(Command::Lookup { service, key, min, max }) => {
            offline_lookup(&cli.services, service, key, min.as_deref(), max.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keyrouter: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The hash self-check, then the services file: what every command needs before it ranks.
fn load_checked(path: &Path) -> Result<config::Loaded, String> {
    ranking::self_check().map_err(|e| e.to_string())?;
    config::load(path).map_err(|e| e.to_string())
}

/// `keyrouter check`.
fn check(path: &Path) -> Result<(), String> {
    let loaded = load_checked(path)?;
    let t = &loaded.table;
    println!(
        "{}: OK: {} services, {} nodes, fingerprint {}",
        path.display(),
        t.len(),
        t.node_count(),
        ranking::fingerprint_hex(t.fingerprint())
    );
    for s in t.services() {
        let weighted = if s.is_weighted() { ", weighted" } else { "" };
        println!("  {:?}: {} nodes{weighted}", s.name(), s.len());
    }
    for (service, n) in &loaded.report.duplicates_removed {
        println!("  {service:?}: removed {n} duplicate node(s)");
    }
    Ok(())
}

/// `keyrouter lookup`: the server's validation and ranking, without the server.
fn offline_lookup(path: &Path, service: &str, key: &str, min: Option<&str>, max: Option<&str>) -> Result<(), String> {
    let loaded = load_checked(path)?;
    let mut pairs = vec![("key", key)];
    pairs.extend(min.map(|m| ("min", m)));
    pairs.extend(max.map(|m| ("max", m)));
    // Like the server: the body (answer or `{"error": ...}`) on stdout; the status as the exit
    // code, with the message on stderr too.
    let (body, result) = match server::answer_lookup(&loaded.table, service, crate::lookup::Fields::from_pairs(pairs)) {
        Ok(answer) => (answer, Ok(())),
        Err(e) => (serde_json::json!({ "error": e.to_string() }).to_string().into_bytes(), Err(e.to_string())),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&body).and_then(|()| out.write_all(b"\n")).map_err(|e| e.to_string())?;
    result
}

fn serve(cli: &Cli) -> Result<(), String> {
    init_logging(cli.log_level, cli.log_format);
    actix_rt::System::new().block_on(async move {
        // First of all: an unhandled SIGHUP kills the process, and in a pod consul-template may
        // send one while keyrouter is still starting. Registered now, a SIGHUP that arrives
        // during startup waits, and triggers a reload once the server runs.
        let signals = Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let loaded = load_checked(&cli.services)?;
        signals::warn_duplicates(&cli.services, &loaded.report.duplicates_removed);
        let listener = cli.address.bind().map_err(|e| format!("cannot listen on {}: {e}", cli.address))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let opts = ServerOptions {
            workers: match cli.workers {
                // The CPUs this process may use (cgroup limits included), not the machine's.
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            shutdown_timeout: Duration::from_secs(cli.shutdown_timeout),
            shutdown_delay: Duration::from_secs(cli.shutdown_delay),
            log_requests: cli.log_level >= tracing::Level::DEBUG,
        };
        let (services, nodes) = (loaded.table.len(), loaded.table.node_count());
        let state = AppState::new(loaded.table, cli.services.clone());
        let _watcher = match cli.watch {
            true => {
                Some(watch::spawn(state.clone()).map_err(|e| format!("cannot watch {}: {e}", cli.services.display()))?)
            }
            false => None,
        };
        tracing::info!(
            "keyrouter {} listening on {local} with {} workers, serving {} ({services} services, {nodes} nodes)",
            env!("CARGO_PKG_VERSION"),
            opts.workers,
            cli.services.display()
        );
        server::run(listener, state.clone(), opts, signals.reload_until_stopped(state))
            .await
            .map_err(|e| format!("server failed: {e}"))
    })?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_addresses() {
        let a = |s: &str| s.parse::<ListenAddress>();
        assert_eq!(a(":8080").unwrap(), ListenAddress { host: None, port: 8080 });
        assert_eq!(a("localhost:80").unwrap().host.as_deref(), Some("localhost"));
        assert_eq!(a("127.0.0.1:0").unwrap().port, 0);
        assert_eq!(a("[::1]:8080").unwrap().host.as_deref(), Some("::1"));
        for bad in ["8080", ":http", ":70000", "::1:80", "[::1:80", "[zz]:80", ""] {
            assert!(a(bad).is_err(), "{bad}");
        }
        assert_eq!(a("[::1]:8080").unwrap().to_string(), "[::1]:8080");
    }

    #[test]
    fn log_levels_any_case() {
        assert_eq!(parse_level("debug").unwrap(), tracing::Level::DEBUG);
        assert_eq!(parse_level("Warn").unwrap(), tracing::Level::WARN);
        assert!(parse_level("loud").is_err());
    }

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
