//! The command line: flags as in the original keyrouter, plus environment variables. This
//! module only defines and parses them; [`crate::commands`] runs what they ask for.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ErrorKind};
use clap::{ArgAction, CommandFactory, Parser, Subcommand};

use crate::address::ListenAddress;
use crate::config::DEFAULT_MAX_SERVICES_BYTES;
use crate::limits::{Limits, DEFAULT_HEAVY_WORK};
use crate::logging::{parse_level, LogFormat};
use crate::request::DEFAULT_MAX_ANSWER_NODES;
use crate::startup::Settings;

/// keyrouter maps a key to one or more nodes of a named service by rendezvous hashing.
///
/// Without a subcommand it serves `POST /service/{name}` with `key`, `min` and `max` (query
/// string, form, multipart form or JSON) and answers with a JSON array of the nodes ranked
/// highest for the key. `GET /service` lists the services; `/healthz`, `/readyz` and `/metrics`
/// are for operators. SIGHUP re-reads the services file; an invalid file is logged and the
/// previous table keeps serving. SIGTERM and SIGINT stop gracefully.
#[derive(Debug, Parser)]
#[command(name = "keyrouter", version, about, long_about, disable_help_subcommand = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Services file (TOML, `[[Services]]` with `Name` and `Nodes`).
    #[arg(long, global = true, env = "KEYROUTER_SERVICES", default_value = "services.toml", value_name = "FILE")]
    pub services: PathBuf,

    /// Address to listen on: `:PORT` (all interfaces), `HOST:PORT` or `[IPv6]:PORT`.
    #[arg(long, env = "KEYROUTER_ADDRESS", default_value = ":8080", value_name = "ADDR")]
    pub address: ListenAddress,

    /// Log level: TRACE, DEBUG, INFO, WARN or ERROR (any case). Requests are logged at DEBUG.
    #[arg(long, env = "KEYROUTER_LOG_LEVEL", default_value = "INFO", value_parser = parse_level, value_name = "LEVEL")]
    pub log_level: tracing::Level,

    /// Log format: human-readable text or JSON lines.
    #[arg(long, env = "KEYROUTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Also reload when the services file changes on disk (SIGHUP works either way). From the
    /// environment: 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "KEYROUTER_WATCH", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub watch: bool,

    /// Services with metric series of their own (lookups, nodes, fingerprint); lookups of the
    /// services beyond it (in name order) are counted together in
    /// keyrouter_other_service_lookups_total, which keeps /metrics small for large catalogs.
    #[arg(long, env = "KEYROUTER_MAX_SERVICE_SERIES", default_value_t = crate::metrics::DEFAULT_MAX_SERVICE_SERIES)]
    pub max_service_series: usize,

    /// Worker threads (0: one per CPU this process may use, container limits included).
    #[arg(long, env = "KEYROUTER_WORKERS", default_value_t = 0, value_name = "N")]
    pub workers: usize,

    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "KEYROUTER_SHUTDOWN_TIMEOUT", default_value_t = 5, value_name = "SECS")]
    pub shutdown_timeout: u64,

    /// Seconds between SIGTERM (readiness turns 503) and closing the listener, for load
    /// balancers to stop sending first.
    #[arg(long, env = "KEYROUTER_SHUTDOWN_DELAY", default_value_t = 0, value_name = "SECS")]
    pub shutdown_delay: u64,

    /// Largest services file accepted, in bytes; a bigger file is refused at startup, by
    /// `check` and `lookup`, and on reload (the old table keeps serving).
    #[arg(long, global = true, env = "KEYROUTER_MAX_SERVICES_BYTES", default_value_t = DEFAULT_MAX_SERVICES_BYTES, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_services_bytes: u64,

    /// Accept a services file with no services: a reload may then empty a non-empty table, and
    /// an empty table is ready. Without it such a reload is refused, and /readyz answers 503
    /// while the table is empty. From the environment: 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "KEYROUTER_ALLOW_EMPTY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub allow_empty: bool,
    /// Most nodes in one answer: keys × nodes per key (a larger lookup is a 400 that says so).
    /// Applies to `keyrouter lookup` too.
    #[arg(long, global = true, env = "KEYROUTER_MAX_ANSWER_NODES", default_value_t = DEFAULT_MAX_ANSWER_NODES)]
    pub max_answer_nodes: u64,

    /// Seconds a client gets to send a whole request head, and again its whole body; a client
    /// that stalls gets a 408 and its connection is closed.
    #[arg(long, env = "KEYROUTER_REQUEST_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,

    /// Most client connections at once (0: as many as the file-descriptor limit allows, less
    /// headroom). Beyond it new connections wait in the listen backlog.
    #[arg(long, env = "KEYROUTER_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Seconds an idle connection is kept open between requests (1 to 3600). A connection that
    /// starts its next request must finish its head within --request-timeout.
    #[arg(long, env = "KEYROUTER_KEEP_ALIVE", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS")]
    pub keep_alive: u64,

    /// Lookups whose work is above this run on a separate bounded pool, off the threads that
    /// serve connections. Work: keys × (nodes of the service + 32 × nodes per key answered).
    #[arg(long, env = "KEYROUTER_HEAVY_LOOKUP_WORK", default_value_t = DEFAULT_HEAVY_WORK)]
    pub heavy_lookup_work: u64,

    /// Heavy lookups at once (0: one per CPU this process may use); more get a 503 with
    /// Retry-After.
    #[arg(long, env = "KEYROUTER_HEAVY_LOOKUPS", default_value_t = 0)]
    pub heavy_lookups: usize,

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
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        min: Option<String>,
        /// Most nodes wanted (default: min).
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        max: Option<String>,
    },
    /// Compare two services files before a rollout: per service added, removed or changed, the
    /// nodes added, removed and re-weighted, both fingerprints and the share of keys whose first
    /// choice moves (exact when kept nodes keep their weights, else estimated from synthetic
    /// keys with a 99.9 % bound). Exit status like diff(1): 0 same table, 1 differences,
    /// 2 errors.
    Diff {
        /// The services file served now.
        old: PathBuf,
        /// The services file to serve next.
        new: PathBuf,
        /// Also the share of keys whose set of K nodes changes, and how many of the K change.
        /// With --keys: compare top-K answers instead of first choices.
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        replicas: Option<u64>,
        /// Keys to check, one per line (a key for every changed service), or JSON lines
        /// `{"service": ..., "key": ...}`. Each key whose answer changes is printed as a JSON
        /// line `{"service", "key", "old", "new"}` on stdout (the summary then goes to stderr).
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        /// Summary format.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text, value_name = "FORMAT")]
        format: DiffFormat,
        /// Synthetic keys sampled when the moved share has no exact formula.
        #[arg(long, env = "KEYROUTER_DIFF_SAMPLES", default_value_t = crate::impact::DEFAULT_SAMPLES as u64,
              value_parser = clap::value_parser!(u64).range(1..=100_000_000), value_name = "N")]
        samples: u64,
    },
}

/// The summary format of `keyrouter diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

impl Cli {
    /// Parses the command line and the `KEYROUTER_*` environment. A bad value that came from the
    /// environment is reported with the variable's name, which is what the user set.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        Cli::try_parse().map_err(|e| match from_environment(&e) {
            Some(variable) => clap::Error::raw(e.kind(), format!("{variable}: {}\n", first_line(&e))),
            None => e,
        })
    }

    /// The serving settings these flags ask for.
    pub fn settings(&self) -> Settings {
        Settings {
            services: self.services.clone(),
            address: self.address.clone(),
            watch: self.watch,
            max_service_series: self.max_service_series,
            workers: self.workers,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            shutdown_delay: Duration::from_secs(self.shutdown_delay),
            log_requests: self.log_level >= tracing::Level::DEBUG,
            max_services_bytes: self.max_services_bytes,
            allow_empty: self.allow_empty,
            max_connections: self.max_connections,
            keep_alive: Duration::from_secs(self.keep_alive),
            limits: Limits {
                max_answer_nodes: self.max_answer_nodes,
                request_timeout: Duration::from_secs(self.request_timeout),
                heavy_work: self.heavy_lookup_work,
                heavy_lookups: self.heavy_lookups,
            },
        }
    }
}

/// `NAME=value` when `e` is about a value that came from the environment variable NAME (and
/// not from the command line).
fn from_environment(e: &clap::Error) -> Option<String> {
    if !matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let value = e.get(ContextKind::InvalidValue)?.to_string();
    let arg = e.get(ContextKind::InvalidArg)?.to_string();
    let long = arg.split_whitespace().next()?.strip_prefix("--")?.to_string();
    let cmd = Cli::command();
    let variable = cmd.get_arguments().find(|a| a.get_long() == Some(&long))?.get_env()?.to_str()?.to_string();
    let on_command_line = std::env::args().any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
    (std::env::var(&variable).ok()? == value && !on_command_line).then(|| format!("{variable}={value}"))
}

/// clap's message without its `error: ` prefix, usage and help hint.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines().take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"));
    let first = lines.next().unwrap_or_default().trim_start_matches("error: ").to_string();
    let rest: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
    if rest.is_empty() {
        first
    } else {
        format!("{first} {}", rest.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
