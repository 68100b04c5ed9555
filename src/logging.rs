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

/// Installs the global subscriber.
pub fn init(level: tracing::Level, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // A second initialisation (in-process tests) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.finish().with(client_noise(level)).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).finish().with(client_noise(level)).try_init(),
    };
}

/// actix-http logs what one client did wrong (a malformed request, a connection reset
/// mid-request: "stream error: ...") at ERROR, once per connection. A client's mistake is not
/// the server's error, and a client must not be able to fill the log: below DEBUG those
/// targets are silent; at DEBUG and TRACE they show like keyrouter's own per-request lines.
fn client_noise(level: tracing::Level) -> Targets {
    let per_connection = if level >= tracing::Level::DEBUG { LevelFilter::from_level(level) } else { LevelFilter::OFF };
    Targets::new()
        .with_default(level)
        .with_target("actix_http::h1", per_connection)
        .with_target("actix_http::h2", per_connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_noise_is_debug_only() {
        use tracing::Level;
        let info = client_noise(Level::INFO);
        assert!(!info.would_enable("actix_http::h1::dispatcher", &Level::ERROR));
        assert!(info.would_enable("actix_server::accept", &Level::ERROR));
        assert!(info.would_enable("keyrouter::startup", &Level::INFO));
        assert!(!info.would_enable("keyrouter::http::lookup", &Level::DEBUG));
        let debug = client_noise(Level::DEBUG);
        assert!(debug.would_enable("actix_http::h1::dispatcher", &Level::ERROR));
        assert!(!debug.would_enable("actix_http::h1::dispatcher", &Level::TRACE));
    }

    #[test]
    fn log_levels_any_case() {
        assert_eq!(parse_level("debug").unwrap(), tracing::Level::DEBUG);
        assert_eq!(parse_level("Warn").unwrap(), tracing::Level::WARN);
        assert!(parse_level("loud").is_err());
    }
}
