//! The command line: flags as in the original keyrouter, plus environment variables. This
//! module only defines and parses them; [`crate::cli::commands`] runs what they ask for.
//!
//! Every numeric flag has a range, stated in its help, checked while parsing: a value outside
//! it is a usage error (status 2) that names the flag, or the variable it came from, and the
//! range; nothing starts with it. Durations take Go's and Consul's units (`500ms`, `10s`, `2m`)
//! or plain seconds ([`parse_duration`]).
//!
//! The environment: a command line flag beats its variable; an empty variable counts as unset;
//! a command reads only the variables of flags it has (`keyrouter check` ignores
//! `KEYROUTER_ADDRESS`). clap reads a variable for every argument that names one, empty or not,
//! and the server's arguments at the top level even when a subcommand runs, so [`Cli::parse_from`]
//! parses twice: once without the environment, which settles the command line and which
//! command runs, then with the variables that apply.
//!
//! The subcommands live beside it: [`commands`] runs what was parsed (the binary's entry point),
//! [`diff`] is `keyrouter diff`, [`manpage`] renders `--help-man`.

pub mod commands;
pub mod diff;
pub mod manpage;
use std::ffi::OsString;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, RangedU64ValueParser};
use clap::error::{ContextKind, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::address::ListenAddress;
use crate::limits::{RequestLimits, DEFAULT_HEAVY_WORK};
use crate::logging::{parse_level, LogFormat};
use crate::request::{DEFAULT_MAX_ANSWER_NODES, DEFAULT_MAX_EXCLUDE};
use crate::startup::Settings;
use crate::table::config::DEFAULT_MAX_SERVICES_BYTES;

/// Most `--workers`: actix-server's own cap (it panics beyond it).
pub const MAX_WORKERS: u64 = 512;
/// Most `--heavy-lookups`: each runs on tokio's blocking pool, whose default size is 512; far
/// below tokio's `Semaphore::MAX_PERMITS`, which panics.
pub const MAX_HEAVY_LOOKUPS: u64 = 512;
/// Most `--max-connections`: beyond any descriptor limit Linux allows by default (`nr_open`).
pub const MAX_CONNECTIONS: u64 = 10_000_000;
/// Most `--max-service-series`: ten per service of the largest catalogs we measure.
pub const MAX_SERVICE_SERIES: u64 = 1_000_000;
/// Most `--max-answer-nodes`: an answer of ~250 MB of JSON.
pub const MAX_ANSWER_NODES: u64 = 10_000_000;

/// Largest `--max-exclude`.
pub const MAX_EXCLUDE: u64 = 1_000_000;
/// Most `--max-services-bytes`: 4 GiB.
pub const MAX_SERVICES_BYTES: u64 = 4 << 30;
/// `--request-timeout`: 1 s to 1 day. Below a second a slow network is a timeout; actix's
/// deadline is an `Instant`, which overflows on absurd durations.
pub const REQUEST_TIMEOUT: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(86_400);
/// `--shutdown-timeout`: 1 s (actix's least) to 1 hour.
pub const SHUTDOWN_TIMEOUT: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(3_600);
/// `--keep-alive`: 1 s to 1 hour.
pub const KEEP_ALIVE: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(3_600);
/// `--shutdown-delay`: none to 1 hour.
pub const SHUTDOWN_DELAY: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(3_600);

/// keyrouter maps a key to one or more nodes of a named service by rendezvous hashing.
///
/// Without a subcommand it serves `POST /service/{name}` with `key`, `min` and `max` (query
/// string, form, multipart form or JSON) and answers with a JSON array of the nodes ranked
/// highest for the key. `GET /service` lists the services; `/healthz`, `/readyz` and `/metrics`
/// are for operators. SIGHUP re-reads the services file; an invalid file is logged and the
/// previous table keeps serving. SIGTERM and SIGINT stop gracefully.
///
/// Durations are written as Go and Consul write them (`500ms`, `10s`, `2m`, `1h`, `1m30s`) or
/// as plain seconds (`10`). A flag given on the command line beats its environment variable; an
/// empty variable counts as unset; each command reads only the variables of its own flags.
/// Usage errors (an unknown flag, a value out of its range) exit with status 2.
#[derive(Debug, Parser)]
#[command(name = "keyrouter", version, about, long_about, disable_help_subcommand = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub server: ServerArgs,

    /// Print help for keyrouter and every subcommand, and exit.
    #[arg(long = "help-long")]
    pub help_long: bool,

    /// Print a man page (roff) and exit.
    #[arg(long = "help-man")]
    pub help_man: bool,
}

/// The server's flags (keyrouter without a subcommand). `--services`, `--max-services-bytes` and
/// `--max-answer-nodes` may also precede `check`, `lookup` or `diff` where that command has them.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub file: FileArgs,

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

    /// Services with metric series of their own (lookups, nodes, fingerprint), 0 to 1000000;
    /// lookups of the services beyond it (in name order) are counted together in
    /// keyrouter_other_service_lookups_total, which keeps /metrics small for large catalogs.
    #[arg(long, env = "KEYROUTER_MAX_SERVICE_SERIES", default_value_t = crate::metrics::DEFAULT_MAX_SERVICE_SERIES,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_SERVICE_SERIES), value_name = "N")]
    pub max_service_series: usize,

    /// Worker threads, 0 to 512 (0: one per CPU this process may use, container limits
    /// included).
    #[arg(long, env = "KEYROUTER_WORKERS", default_value_t = 0, value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_WORKERS))]
    pub workers: usize,

    /// How long in-flight requests get to finish after SIGTERM or SIGINT, 1s to 1h.
    #[arg(long, env = "KEYROUTER_SHUTDOWN_TIMEOUT", default_value = "5s", value_name = "DURATION",
          value_parser = parse_duration(SHUTDOWN_TIMEOUT))]
    pub shutdown_timeout: Duration,

    /// Time between SIGTERM (readiness turns 503) and closing the listener, for load balancers
    /// to stop sending first, 0s to 1h.
    #[arg(long, env = "KEYROUTER_SHUTDOWN_DELAY", default_value = "0s", value_name = "DURATION",
          value_parser = parse_duration(SHUTDOWN_DELAY))]
    pub shutdown_delay: Duration,

    /// Accept a services file with no services: a reload may then empty a non-empty table, and
    /// an empty table is ready. Without it such a reload is refused, and /readyz answers 503
    /// while the table is empty. From the environment: 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "KEYROUTER_ALLOW_EMPTY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub allow_empty: bool,

    #[command(flatten)]
    pub answers: AnswerArgs,

    /// Time a client gets to send a whole request head, and again its whole body, 1s to 24h; a
    /// client that stalls gets a 408 and its connection is closed.
    #[arg(long, env = "KEYROUTER_REQUEST_TIMEOUT", default_value = "10s", value_name = "DURATION",
          value_parser = parse_duration(REQUEST_TIMEOUT))]
    pub request_timeout: Duration,

    /// Most client connections at once, 0 to 10000000 (0: as many as the file-descriptor limit
    /// allows, less headroom). Beyond it new connections wait in the listen backlog.
    #[arg(long, env = "KEYROUTER_MAX_CONNECTIONS", default_value_t = 0, value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_CONNECTIONS))]
    pub max_connections: usize,

    /// Time an idle connection is kept open between requests, 1s to 1h. A connection that starts
    /// its next request must finish its head within --request-timeout.
    #[arg(long, env = "KEYROUTER_KEEP_ALIVE", default_value = "5s", value_name = "DURATION",
          value_parser = parse_duration(KEEP_ALIVE))]
    pub keep_alive: Duration,

    /// Lookups whose work is above this run on a separate bounded pool, off the threads that
    /// serve connections; any number from 0 (every lookup) to 18446744073709551615 (none).
    /// Work: keys × (nodes of the service + 32 × nodes per key answered).
    #[arg(long, env = "KEYROUTER_HEAVY_LOOKUP_WORK", default_value_t = DEFAULT_HEAVY_WORK, value_name = "N")]
    pub heavy_lookup_work: u64,

    /// Heavy lookups at once, 0 to 512 (0: one per CPU this process may use); more get a 503
    /// with Retry-After.
    #[arg(long, env = "KEYROUTER_HEAVY_LOOKUPS", default_value_t = 0, value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_HEAVY_LOOKUPS))]
    pub heavy_lookups: usize,
}

/// The services file and its size limit: the server, `check` and `lookup`.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// Services file (TOML, `[[Services]]` with `Name` and `Nodes`).
    #[arg(long, env = "KEYROUTER_SERVICES", default_value = "services.toml", value_name = "FILE")]
    pub services: PathBuf,

    #[command(flatten)]
    pub size: SizeArgs,
}

/// The largest services file accepted: every command that reads one.
#[derive(Debug, Clone, clap::Args)]
pub struct SizeArgs {
    /// Largest services file accepted, in bytes, 1 to 4294967296 (4 GiB); a bigger file is
    /// refused at startup, by `check`, `lookup` and `diff`, and on reload (the old table keeps
    /// serving).
    #[arg(long, env = "KEYROUTER_MAX_SERVICES_BYTES", default_value_t = DEFAULT_MAX_SERVICES_BYTES, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=MAX_SERVICES_BYTES))]
    pub max_services_bytes: u64,
}

/// The answer budget: the server and `lookup`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnswerArgs {
    /// Most nodes in one answer, 1 to 10000000: keys × nodes per key (a larger lookup is a 400
    /// that says so). Applies to `keyrouter lookup` too.
    #[arg(long, env = "KEYROUTER_MAX_ANSWER_NODES", default_value_t = DEFAULT_MAX_ANSWER_NODES, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_ANSWER_NODES))]
    pub max_answer_nodes: u64,
    /// Most `exclude` entries in one lookup, 0 to 1000000 (more is a 400 that says so; 0 turns
    /// `exclude` off). Each node excluded also counts in --max-answer-nodes, for every key.
    /// Applies to `keyrouter lookup` too.
    #[arg(long, env = "KEYROUTER_MAX_EXCLUDE", default_value_t = DEFAULT_MAX_EXCLUDE, value_name = "N",
          value_parser = clap::value_parser!(u64).range(0..=MAX_EXCLUDE))]
    pub max_exclude: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate the services file without serving: print a summary and exit 0, or
    /// print each error with line:column and exit 1.
    Check {
        #[command(flatten)]
        file: FileArgs,
    },
    /// Print the answer the server would give for SERVICE and KEY, with the same errors.
    /// Exit status: 0 with an answer, 1 with an error.
    Lookup {
        #[command(flatten)]
        file: FileArgs,
        #[command(flatten)]
        answers: AnswerArgs,
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
        /// Leave out the node of this Id (its address when it has no Id); repeatable. The answer
        /// is the one of the service without those nodes.
        #[arg(long, allow_hyphen_values = true, value_name = "ID")]
        exclude: Vec<String>,
        /// `zone`: the best node of each zone first, then the rest in rank order.
        #[arg(long, allow_hyphen_values = true, value_name = "zone")]
        spread: Option<String>,
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
        #[command(flatten)]
        size: SizeArgs,
        /// Also the share of keys whose set of K nodes changes, and how many of the K change,
        /// 1 to 1000000. With --keys: compare top-K answers instead of first choices.
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
        /// Synthetic keys sampled when the moved share has no exact formula, 1 to 100000000.
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
    /// Parses the process's command line and `KEYROUTER_*` environment (see [`Cli::parse_from`]).
    pub fn parse_args() -> Result<Cli, clap::Error> {
        Cli::parse_from(std::env::args_os())
    }

    /// Parses `args` (the program name first) with the process's environment. A bad value that
    /// came from a variable is reported with the variable's name, which is what the user set.
    pub fn parse_from(args: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Cli, clap::Error> {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        // First the command line alone: its errors are the command line's, and it says which
        // command runs.
        let bare = Cli::command().mut_args(without_env).mut_subcommands(|s| s.mut_args(without_env));
        let cli_only = match bare.try_get_matches_from(&args) {
            Ok(m) => m,
            // Again with the variables, which help shows.
            Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
                return Err(Cli::command().try_get_matches_from(&args).err().unwrap_or(e))
            }
            Err(e) => return Err(e),
        };
        if cli_only.get_flag("help_long") || cli_only.get_flag("help_man") {
            return Cli::from_arg_matches(&cli_only);
        }
        let subcommand = cli_only.subcommand();
        if let Some((name, sub)) = subcommand {
            refuse_flags_the_subcommand_lacks(&cli_only, name, sub)?;
        }

        // Then with the variables that apply: set and not empty, of the command that runs (the
        // top level's are the server's when a subcommand runs).
        let serving = subcommand.is_none();
        let cmd = Cli::command()
            .mut_args(|a| if serving { without_empty_env(a) } else { without_env(a) })
            .mut_subcommands(|s| s.mut_args(without_empty_env));
        let matches = cmd.try_get_matches_from(&args).map_err(|e| name_the_variable(e, subcommand.map(|s| s.0)))?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.take_flags_given_before_the_subcommand(&cli_only);
        Ok(cli)
    }

    /// `keyrouter --services F check`: a flag given before the subcommand counts as if given
    /// after it, and so beats the subcommand's variable.
    fn take_flags_given_before_the_subcommand(&mut self, cli_only: &ArgMatches) {
        let given =
            |id: &str| cli_only.ids().any(|i| i == id) && cli_only.value_source(id) == Some(ValueSource::CommandLine);
        let top = &self.server;
        let (mut file, size, answers) = match &mut self.command {
            None => return,
            Some(Command::Check { file }) => (Some(file), None, None),
            Some(Command::Lookup { file, answers, .. }) => (Some(file), None, Some(answers)),
            Some(Command::Diff { size, .. }) => (None, Some(size), None),
        };
        if let (Some(file), true) = (file.as_deref_mut(), given("services")) {
            file.services = top.file.services.clone();
        }
        if given("max_services_bytes") {
            if let Some(size) = size.or(file.map(|f| &mut f.size)) {
                *size = top.file.size.clone();
            }
        }
        if let Some(answers) = answers {
            if given("max_answer_nodes") {
                answers.max_answer_nodes = top.answers.max_answer_nodes;
            }
            if given("max_exclude") {
                answers.max_exclude = top.answers.max_exclude;
            }
        }
    }

    /// The serving settings these flags ask for (all within range: the parser checked them).
    pub fn settings(&self) -> Settings {
        let s = &self.server;
        Settings {
            services: s.file.services.clone(),
            address: s.address.clone(),
            watch: s.watch,
            max_service_series: s.max_service_series,
            workers: s.workers,
            shutdown_timeout: s.shutdown_timeout,
            shutdown_delay: s.shutdown_delay,
            log_requests: s.log_level >= tracing::Level::DEBUG,
            max_services_bytes: s.file.size.max_services_bytes,
            allow_empty: s.allow_empty,
            max_connections: s.max_connections,
            keep_alive: s.keep_alive,
            limits: RequestLimits {
                max_answer_nodes: s.answers.max_answer_nodes,
                max_exclude: s.answers.max_exclude,
                request_timeout: s.request_timeout,
                heavy_work: s.heavy_lookup_work,
                heavy_lookups: s.heavy_lookups,
            },
        }
    }
}

/// A value parser for a duration within `range`: Go's and Consul's forms (`500ms`, `10s`, `2m`,
/// `1h`, `1m30s`, `1.5s`) or plain seconds (`10`). Out of range, the message states the range.
pub fn parse_duration(
    range: RangeInclusive<Duration>,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let t = text.trim();
        let d = match t.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => humantime::parse_duration(t).map_err(|e| {
                format!(
                    "{e}; write a duration from {} to {} such as 500ms, 10s, 2m or 1h, or plain seconds",
                    show(*range.start()),
                    show(*range.end())
                )
            })?,
        };
        if range.contains(&d) {
            Ok(d)
        } else {
            Err(format!("{text} is out of range: from {} to {}", show(*range.start()), show(*range.end())))
        }
    }
}

/// `1h`, `24h`, `5s`, `500ms`: a range bound as a user would write it.
fn show(d: Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    match (secs, nanos) {
        (s, 0) if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        (s, 0) if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

fn without_env(arg: clap::Arg) -> clap::Arg {
    arg.env(None::<&'static str>)
}

/// An empty variable counts as unset (clap would parse the empty value).
fn without_empty_env(arg: clap::Arg) -> clap::Arg {
    let empty = arg.get_env().and_then(std::env::var_os).is_some_and(|v| v.is_empty());
    if empty {
        without_env(arg)
    } else {
        arg
    }
}

/// `keyrouter --workers 4 check` or `keyrouter --services F diff`: a flag the subcommand does not
/// have would be silently ignored, so it is an error.
fn refuse_flags_the_subcommand_lacks(top: &ArgMatches, name: &str, sub: &ArgMatches) -> Result<(), clap::Error> {
    let cmd = Cli::command();
    let Some(subcommand) = cmd.find_subcommand(name) else { return Ok(()) };
    for id in top.ids() {
        if top.value_source(id.as_str()) != Some(ValueSource::CommandLine) {
            continue;
        }
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id) else { continue };
        let flag = arg.get_long().map_or_else(|| id.to_string(), |l| format!("--{l}"));
        if !subcommand.get_arguments().any(|a| a.get_id() == id) {
            return Err(clap::Error::raw(
                ErrorKind::ArgumentConflict,
                format!("{flag} does not apply to `keyrouter {name}` (see `keyrouter {name} --help`)\n"),
            ));
        }
        if sub.ids().any(|i| i == id) && sub.value_source(id.as_str()) == Some(ValueSource::CommandLine) {
            return Err(clap::Error::raw(
                ErrorKind::ArgumentConflict,
                format!("{flag} is given both before and after `{name}`\n"),
            ));
        }
    }
    Ok(())
}

/// The command line parsed without the environment, so `e` is about a variable's value: it says
/// `NAME=value: ...`, which is what the user set.
fn name_the_variable(e: clap::Error, subcommand: Option<&str>) -> clap::Error {
    let cmd = Cli::command();
    let command = subcommand.and_then(|s| cmd.find_subcommand(s)).unwrap_or(&cmd);
    let long = e
        .get(ContextKind::InvalidArg)
        .map(|a| a.to_string())
        .and_then(|a| a.split_whitespace().next().and_then(|l| l.strip_prefix("--")).map(str::to_string));
    let Some(arg) = long.and_then(|l| command.get_arguments().find(|a| a.get_long() == Some(l.as_str())).cloned())
    else {
        return e;
    };
    let Some(variable) = arg.get_env().map(|v| v.to_string_lossy().into_owned()) else { return e };
    let value = e.get(ContextKind::InvalidValue).map(|v| v.to_string()).unwrap_or_default();
    clap::Error::raw(e.kind(), format!("{variable}={value}: {}\n", first_line(&e)))
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

    #[test]
    fn durations_take_units_and_plain_seconds() {
        let p = parse_duration(SHUTDOWN_DELAY);
        assert_eq!(p("10"), Ok(Duration::from_secs(10)));
        assert_eq!(p("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(p("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(p("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(p("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(p("1h"), Ok(Duration::from_secs(3600)));
        assert!(p("61m").unwrap_err().contains("from 0s to 1h"), "{:?}", p("61m"));
        assert!(p("18446744073709551615").unwrap_err().contains("out of range"));
        for bad in ["", "abc", "-1", "1x", "99999999999999999999999h"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(show(Duration::from_secs(86_400)), "24h");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
    }
}
