//! keyrouter: maps a key to one or more nodes of a named service by rendezvous hashing.
//!
//! - [`ranking`]: the pure ranking core (hashing, table, top-k selection).
//! - [`config`]: the services file format, with errors that name line and column.
//! - [`lookup`]: the request boundary: every input form becomes one validated lookup.
//! - [`metrics`]: Prometheus metrics, lock-free on the lookup path.
//! - [`state`]: the live table behind one atomic pointer, and reload.
//! - [`server`]: the actix-web service, started on a listener the caller has bound.
//! - [`signals`]: SIGHUP reload, SIGTERM/SIGINT graceful stop.
//! - [`watch`]: `--watch`, reload when the file changes on disk.
//! - [`cli`]: flags and the binary's entry point.

pub mod cli;
pub mod config;
pub mod lookup;
pub mod metrics;
pub mod ranking;
pub mod server;
pub mod signals;
pub mod state;
pub mod watch;
