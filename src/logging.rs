//! Log output: tracing to stderr, as text or JSON lines, through a lossy non-blocking writer.
//!
//! Logging can fail; serving cannot. Lines go to a bounded queue drained by a thread of their
//! own (`tracing-appender`), so a request or the signal handler never waits for stderr. When
//! the queue is full (a slow or stalled reader) or stderr is gone (`EPIPE` from a closed pipe),
//! lines are dropped and counted ([`dropped_lines`], exported as
//! `keyrouter_log_lines_dropped_total`), never a panic or a blocked thread.
//!
//! A log line is one line whatever a services file or a client sent: text from them goes
//! through [`escape`] (or [`quote`]) where it is put in a message, and the text format escapes
//! every field once more as it writes it (the JSON format escapes through serde), so a newline,
//! a carriage return or a terminal escape can neither end a line early nor disguise one.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines the queue holds before new lines are dropped (a few MB at most).
pub const LOG_QUEUE_LINES: usize = 16_384;

/// A write that has been going on for this long means the reader has stalled.
const STALLED: Duration = Duration::from_millis(100);

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// The message helpers live with the services-file parser (crates/config), which uses them too and
// must not depend on the server; re-exported here where the server's modules find them.
pub use keyrouter_config::text::{count, escape, quote, Escaped};

/// The text format's fields, each escaped ([`escape`]) as it is written: the message bare,
/// the others as `name=value` (what the default field formatter writes, minus its colours).
fn escaped_fields(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let text = format!("{value:?}");
    match field.name() {
        "message" => write!(w, "{}", escape(&text)),
        // `log` crate metadata that tracing-log records as fields; the formatter shows it itself.
        name if name.starts_with("log.") => Ok(()),
        name => write!(w, "{name}={}", escape(&text)),
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

/// What is logged at `level`:
/// - everything of keyrouter's;
/// - of actix's own server machinery only warnings and errors (its "starting N workers",
///   "starting service" and "shutting down idle worker" lines repeat keyrouter's own);
/// - nothing below DEBUG of what actix-http logs per connection: it logs what one client did
///   wrong (a malformed request, a connection reset mid-request: "stream error: ...") at ERROR.
///   A client's mistake is not the server's error, and a client must not be able to fill the
///   log; at DEBUG and TRACE those lines show like keyrouter's own per-request lines.
pub fn filter(level: tracing::Level) -> Targets {
    let per_connection = if level >= tracing::Level::DEBUG { LevelFilter::from_level(level) } else { LevelFilter::OFF };
    let level = LevelFilter::from_level(level);
    Targets::new()
        .with_default(level)
        .with_target("actix_server", level.min(LevelFilter::WARN))
        .with_target("actix_http::h1", per_connection)
        .with_target("actix_http::h2", per_connection)
}

/// The queue's worker, kept to flush it at exit ([`finish`]).
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);
/// Lines dropped because the queue was full.
static QUEUE_DROPS: OnceLock<ErrorCounter> = OnceLock::new();
/// Lines dropped because stderr refused them.
static WRITE_DROPS: AtomicU64 = AtomicU64::new(0);
/// When the write in progress started (milliseconds since [`epoch`], plus one); 0 when idle.
static WRITING_SINCE: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_millis() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Log lines dropped so far: queue full, or stderr closed or failing.
pub fn dropped_lines() -> u64 {
    let queue = QUEUE_DROPS.get().map_or(0, |c| c.dropped_lines() as u64);
    queue.saturating_add(WRITE_DROPS.load(Ordering::Relaxed))
}

/// Flushes the log at the end of `main` (see [`init`]).
#[must_use = "the log is flushed when the guard is dropped"]
pub struct LogGuard(());

impl Drop for LogGuard {
    fn drop(&mut self) {
        finish();
    }
}

/// Installs the global subscriber, writing to stderr through the lossy queue. Keep the guard
/// until the end of `main`: dropping it flushes what is queued.
pub fn init(level: tracing::Level, format: LogFormat) -> LogGuard {
    let _ = epoch();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("keyrouter-log")
        .finish(Stderr);
    let counter = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let installed = match format {
        LogFormat::Text => {
            builder.fmt_fields(debug_fn(escaped_fields).delimited(" ")).finish().with(filter(level)).try_init()
        }
        // Each line carries its span once (`span`), not again in the list of parents (`spans`).
        LogFormat::Json => {
            builder.json().flatten_event(true).with_span_list(false).finish().with(filter(level)).try_init()
        }
    };
    // A second initialisation (in-process tests) is harmless: keep the first.
    if installed.is_ok() {
        let _ = QUEUE_DROPS.set(counter);
        *GUARD.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
    }
    LogGuard(())
}

/// Writes out what is queued, within about a second, and stops the log thread; lines logged
/// afterwards are dropped. If stderr has stalled (a reader that does not read), gives up at
/// once instead. Called at exit, also by the shutdown paths that end the process early.
pub fn finish() {
    let Some(guard) = GUARD.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let since = WRITING_SINCE.load(Ordering::Acquire);
    if since != 0 && now_millis().saturating_sub(since - 1) >= STALLED.as_millis() as u64 {
        // The worker is stuck in a write: waiting for it would wait for the reader.
        std::mem::forget(guard);
        return;
    }
    // Dropping the guard waits (bounded) for the worker to drain the queue. It prints to stdout
    // if the queue stays full; stdout may be a closed pipe, and that print would panic.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(guard)));
}

/// stderr for the log thread: a line that cannot be written is counted and dropped, never an
/// error (which would stop nothing and print to stderr again).
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        WRITING_SINCE.store(now_millis() + 1, Ordering::Release);
        let written = std::io::stderr().write_all(buf);
        WRITING_SINCE.store(0, Ordering::Release);
        if written.is_err() {
            WRITE_DROPS.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_any_case() {
        assert_eq!(parse_level("debug").unwrap(), tracing::Level::DEBUG);
        assert_eq!(parse_level("Warn").unwrap(), tracing::Level::WARN);
        assert!(parse_level("loud").is_err());
    }
}
