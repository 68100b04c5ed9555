//! The binary's entry point: parse the command line, run the command, and map every failure to
//! one message and exit code, here and nowhere else.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::config::{self, ConfigError, Loaded};
use crate::ranking::{self, SelfCheckError};
use crate::request::{self, Fields, RequestError};
use crate::startup::{self, StartupError};
use crate::{logging, startup::Settings};

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
    let cli = Cli::parse();
    let result = match &cli.command {
        _ if cli.help_man => man(),
        None => serve(&cli),
        Some(Command::Check) => check(&cli.services),
        Some(Command::Lookup { service, key, min, max }) => {
            offline_lookup(&cli.services, service, key, min.as_deref(), max.as_deref(), cli.max_answer_nodes)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyrouter: error: {e}");
            e.exit_code()
        }
    }
}

fn serve(cli: &Cli) -> Result<(), CommandError> {
    logging::init(cli.log_level, cli.log_format);
    let settings: Settings = cli.settings();
    Ok(startup::serve(&settings)?)
}

fn man() -> Result<(), CommandError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out).map_err(CommandError::Man)?;
    std::io::stdout().write_all(&out).map_err(CommandError::Output)
}

/// The hash self-check, then the services file: what every offline command needs.
fn load_checked(path: &Path) -> Result<Loaded, CommandError> {
    ranking::self_check()?;
    Ok(config::load(path)?)
}

/// `keyrouter check`.
fn check(path: &Path) -> Result<(), CommandError> {
    let loaded = load_checked(path)?;
    let t = &loaded.table;
    let mut out = format!(
        "{}: OK: {} services, {} nodes, fingerprint {}\n",
        path.display(),
        t.len(),
        t.node_count(),
        ranking::fingerprint_hex(t.fingerprint())
    );
    for s in t.services() {
        let weighted = if s.is_weighted() { ", weighted" } else { "" };
        out.push_str(&format!("  {:?}: {} nodes{weighted}\n", s.name(), s.len()));
    }
    for (service, n) in &loaded.report.duplicates_removed {
        out.push_str(&format!("  {service:?}: removed {n} duplicate node(s)\n"));
    }
    std::io::stdout().write_all(out.as_bytes()).map_err(CommandError::Output)
}

/// `keyrouter lookup`: the server's validation and ranking, without the server.
fn offline_lookup(
    path: &Path,
    service: &str,
    key: &str,
    min: Option<&str>,
    max: Option<&str>,
    max_answer_nodes: u64,
) -> Result<(), CommandError> {
    let loaded = load_checked(path)?;
    let mut pairs = vec![("key", key)];
    pairs.extend(min.map(|m| ("min", m)));
    pairs.extend(max.map(|m| ("max", m)));
    // Like the server: the body (answer or `{"error": ...}`) on stdout; the error as the exit
    // code, with the message on stderr too.
    let answer = Fields::from_pairs(pairs)
        .and_then(|fields| request::answer_in(&loaded.table, service, fields, max_answer_nodes));
    let (body, result) = match answer {
        Ok(answer) => (answer, Ok(())),
        Err(e) => (serde_json::json!({ "error": e.to_string() }).to_string().into_bytes(), Err(e.into())),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&body).and_then(|()| out.write_all(b"\n")).map_err(CommandError::Output)?;
    result
}
