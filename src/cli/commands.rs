//! The binary's entry point: parse the command line, run the command, and map every failure to
//! one message and exit code, here and nowhere else.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::diff::{self, DiffArgs};
use crate::cli::manpage;
use crate::cli::{Cli, Command};
use crate::logging::{self, count, quote};
use crate::ranking::{self, SelfCheckError};
use crate::request::{self, Budget, Fields, RequestError};
use crate::startup::Settings;
use crate::startup::{self, StartupError};
use crate::table::config::{self, ConfigError, Loaded};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    SelfCheck(#[from] SelfCheckError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `keyrouter lookup` got the error a client would (its JSON is already on stdout).
    #[error(transparent)]
    Lookup(#[from] RequestError),
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    #[error("cannot render the man page: {0}")]
    Man(#[source] std::io::Error),
}

impl CommandError {
    /// The exit status: 1 for every failure of a command (clap uses 2 for usage errors).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::FAILURE
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::memory::configure();
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match &cli.command {
        _ if cli.help_man => man(),
        _ if cli.help_long => help_long(),
        None => serve(&cli),
        Some(Command::Check { file }) => check(&file.services, file.size.max_services_bytes),
        Some(Command::Lookup { file, answers, service, key, min, max, exclude, spread }) => offline_lookup(
            &file.services,
            file.size.max_services_bytes,
            service,
            key,
            Bounds { min: min.as_deref(), max: max.as_deref(), exclude, spread: spread.as_deref() },
            &Budget { max_answer_nodes: answers.max_answer_nodes, max_exclude: answers.max_exclude },
        ),
        // Its own exit statuses, like diff(1).
        Some(Command::Diff { old, new, size, replicas, keys, format, samples }) => {
            return diff::run(&DiffArgs {
                old: old.clone(),
                new: new.clone(),
                replicas: replicas.map(|k| usize::try_from(k).unwrap_or(usize::MAX)),
                keys: keys.clone(),
                format: *format,
                samples: usize::try_from(*samples).unwrap_or(usize::MAX),
                max_services_bytes: size.max_services_bytes,
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when stderr is a closed pipe, and the exit status must
            // stay this command's.
            let _ = writeln!(std::io::stderr(), "keyrouter: error: {e}");
            e.exit_code()
        }
    }
}

/// clap's own answer: help and version on stdout with status 0, usage errors on stderr with 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

fn serve(cli: &Cli) -> Result<(), CommandError> {
    // Dropped when serving ends, before the error (if any) is printed: flushes the log.
    let _log = logging::init(cli.server.log_level, cli.server.log_format);
    let settings: Settings = cli.settings();
    Ok(startup::serve(&settings)?)
}

/// `--help-long`: the help of keyrouter and of each subcommand, one after the other.
fn help_long() -> Result<(), CommandError> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut text = cmd.render_long_help().to_string();
    for sub in cmd.get_subcommands_mut() {
        let name = format!("keyrouter {}", sub.get_name());
        text.push_str(&format!("\n\n{name}\n{}\n\n", "=".repeat(name.len())));
        text.push_str(&sub.render_long_help().to_string());
    }
    std::io::stdout().write_all(text.as_bytes()).map_err(CommandError::Output)
}

fn man() -> Result<(), CommandError> {
    let page = manpage::render(Cli::command()).map_err(CommandError::Man)?;
    std::io::stdout().write_all(&page).map_err(CommandError::Output)
}

/// The hash self-check, then the services file: what every offline command needs.
fn load_checked(path: &Path, max_bytes: u64) -> Result<Loaded, CommandError> {
    ranking::self_check()?;
    Ok(config::load_limited(path, max_bytes)?)
}

/// The most nodes with an Id that `keyrouter check` lists per service.
const MAX_IDS_SHOWN: usize = 10;

/// The most zones that `keyrouter check` lists per service.
const MAX_ZONES_SHOWN: usize = 20;

/// How many nodes each zone has, by zone name, the nodes without a zone last:
/// `"eu-1a" 3, "eu-1b" 2, no zone 1`.
fn zone_counts(zones: &[Option<String>]) -> String {
    let mut counts = std::collections::BTreeMap::<Option<&str>, usize>::new();
    for z in zones {
        *counts.entry(z.as_deref()).or_default() += 1;
    }
    let none = counts.remove(&None);
    let mut parts: Vec<String> =
        counts.iter().take(MAX_ZONES_SHOWN).map(|(z, n)| format!("{} {n}", quote(z.unwrap_or_default()))).collect();
    if counts.len() > MAX_ZONES_SHOWN {
        parts.push(format!("\u{2026} and {}", count(counts.len() - MAX_ZONES_SHOWN, "more zone")));
    }
    parts.extend(none.map(|n| format!("no zone {n}")));
    parts.join(", ")
}

/// `keyrouter check`.
fn check(path: &Path, max_bytes: u64) -> Result<(), CommandError> {
    let loaded = load_checked(path, max_bytes)?;
    let t = &loaded.table;
    let mut out = format!(
        "{}: OK: {}, {}, algorithm {}, fingerprint {}\n",
        path.display(),
        count(t.len(), "service"),
        count(t.node_count(), "node"),
        t.algorithm().number(),
        ranking::fingerprint_hex(t.fingerprint())
    );
    for s in t.services() {
        let weighted = if s.is_weighted() { ", weighted" } else { "" };
        out.push_str(&format!("  {}: {}{weighted}\n", quote(s.name()), count(s.len(), "node")));
        if s.has_ids() {
            // The nodes whose Id is not their address: what the ranking hashes instead. Only the
            // first few, so that a large catalog's check stays readable.
            let renamed: Vec<_> = s.nodes().iter().zip(s.ids()).filter(|(node, id)| node != id).collect();
            for (node, id) in renamed.iter().take(MAX_IDS_SHOWN) {
                out.push_str(&format!("    {}: Id {}\n", quote(node), quote(id)));
            }
            if renamed.len() > MAX_IDS_SHOWN {
                out.push_str(&format!(
                    "    \u{2026} and {} with an Id\n",
                    count(renamed.len() - MAX_IDS_SHOWN, "more node")
                ));
            }
        }
        if let Some(zones) = s.zones() {
            out.push_str(&format!(
                "    zones: {}
",
                zone_counts(zones)
            ));
        }
    }
    for (service, n) in &loaded.report.duplicates_removed {
        out.push_str(&format!("  {}: removed {}\n", quote(service), count(*n, "duplicate node")));
    }
    if t.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "keyrouter: warning: {}: the file has no services (keyrouter refuses to reload it over a \
             non-empty table, and is not ready while its table is empty, unless --allow-empty)",
            path.display()
        );
    }
    std::io::stdout().write_all(out.as_bytes()).map_err(CommandError::Output)
}

/// The fields of `keyrouter lookup` besides the key, as given (validated as the server does).
struct Bounds<'a> {
    min: Option<&'a str>,
    max: Option<&'a str>,
    exclude: &'a [String],
    spread: Option<&'a str>,
}

/// `keyrouter lookup`: the server's validation and ranking, without the server.
fn offline_lookup(
    path: &Path,
    max_bytes: u64,
    service: &str,
    key: &str,
    bounds: Bounds,
    budget: &Budget,
) -> Result<(), CommandError> {
    let loaded = load_checked(path, max_bytes)?;
    let mut pairs = vec![("key", key)];
    pairs.extend(bounds.min.map(|m| ("min", m)));
    pairs.extend(bounds.max.map(|m| ("max", m)));
    pairs.extend(bounds.exclude.iter().map(|e| ("exclude", e.as_str())));
    pairs.extend(bounds.spread.map(|s| ("spread", s)));
    // Like the server: the body (answer or `{"error": ...}`) on stdout; the error as the exit
    // code, with the message on stderr too.
    let answer =
        Fields::from_pairs(pairs).and_then(|fields| request::answer_in(&loaded.table, service, fields, budget));
    let (body, result) = match answer {
        Ok(answer) => (answer, Ok(())),
        Err(e) => (serde_json::json!({ "error": e.to_string() }).to_string().into_bytes(), Err(e.into())),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&body).and_then(|()| out.write_all(b"\n")).map_err(CommandError::Output)?;
    result
}
