//! Log output: tracing to stderr, as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `1 service`, `2 services`: counts in log lines and messages read as English.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Parses a level name in any case.
pub fn parse_level(s: &str) -> Result<tracing::Level, String> {
    match s.to_ascii_uppercase().as_str() {
        "TRACE" => Ok(tracing::Level::TRACE),
        "DEBUG" => Ok(tracing::Level::DEBUG),
        "INFO" => Ok(tracing::Level::INFO),
        "WARN" | "WARNING" => Ok(tracing::Level::WARN),
        "ERROR" => Ok(tracing::Level::ERROR),
        _ => Err(format!("unknown log level {s:?}: use TRACE, DEBUG, INFO, WARN or ERROR")),
    }
}

/// What is logged at `level`: everything of keyrouter's, and of actix's own server machinery
/// only warnings and errors (its "starting N workers", "starting service" and "shutting down
/// idle worker" lines repeat keyrouter's startup and shutdown lines).
pub fn filter(level: tracing::Level) -> Targets {
    let level = LevelFilter::from_level(level);
    Targets::new().with_default(level).with_target("actix_server", level.min(LevelFilter::WARN))
}

/// Installs the global subscriber.
pub fn init(level: tracing::Level, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // A second initialisation (in-process tests) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.finish().with(filter(level)).try_init(),
        // Each line carries its span once (`span`), not again in the list of parents (`spans`).
        LogFormat::Json => {
            builder.json().flatten_event(true).with_span_list(false).finish().with(filter(level)).try_init()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1, "service"), "1 service");
        assert_eq!(count(0, "node"), "0 nodes");
        assert_eq!(count(2, "worker"), "2 workers");
    }

    #[test]
    fn log_levels_any_case() {
        assert_eq!(parse_level("debug").unwrap(), tracing::Level::DEBUG);
        assert_eq!(parse_level("Warn").unwrap(), tracing::Level::WARN);
        assert!(parse_level("loud").is_err());
    }
}
