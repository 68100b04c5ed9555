//! keyrouter: maps a key to one or more nodes of a named service by rendezvous hashing.
//!
//! A request flows down through these modules; nothing imports upward:
//!
//! - [`commands`]: the binary's entry point; runs what [`cli`] parsed, maps failures to exit codes.
//! - [`diff`]: `keyrouter diff OLD NEW`, what a new services file changes.
//! - [`startup`]: validated settings → signal handlers, self-check, table, listener, server.
//! - [`http`]: the actix side: routes, body reading, small endpoints, errors as JSON.
//! - [`request`]: every input form → one validated lookup → the answer's JSON (also used by
//!   `keyrouter lookup`).
//! - [`status`]: the status page's HTML, rendered from one table snapshot (no actix).
//! - [`state`]: the live table behind one atomic pointer, with per-service metric handles, and
//!   the last reload's outcome.
//! - [`reload`]: the one reload path (startup, SIGHUP and `--watch`).
//! - [`signals`], [`watch`]: who triggers reloads and shutdown.
//! - [`impact`]: how many keys a change of a service's nodes moves (`diff`, reloads).
//! - [`config`]: the services file format, with errors that name line and column.
//! - [`metrics`]: Prometheus metrics, lock-free on the lookup path.
//! - [`ranking`]: the pure ranking core (hashing, table, top-k selection), the crate
//!   `keyrouter-ranking` in `crates/ranking`, re-exported here.
//! - [`address`], [`logging`]: listen addresses and log output.
//! - [`memory`]: giving freed memory back to the system after big tables and answers.
//! - [`impact`], [`diff`]: how many keys a change of the services file moves (reloads and
//!   `keyrouter diff`).
//! - [`limits`], [`descriptors`]: what a request and a file may cost; the connection cap.

pub mod address;
pub mod cli;
pub mod commands;
pub mod config;
pub mod descriptors;
pub mod diff;
pub mod http;
pub mod impact;
pub mod limits;
pub mod logging;
pub mod manpage;
pub mod memory;
pub mod metrics;
pub use keyrouter_ranking as ranking;
pub mod reload;
pub mod request;
pub mod signals;
pub mod startup;
pub mod state;
pub mod status;
pub mod watch;
