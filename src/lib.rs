//! keyrouter: maps a key to one or more nodes of a named service by rendezvous hashing.
//!
//! The subsystems, top down; nothing imports upward (`tests/integration/layout.rs` enforces it):
//!
//! - [`cli`]: the command line: flags and variables parsed into validated settings, and the
//!   commands that run them ([`cli::commands`], the binary's entry point), `keyrouter diff`
//!   ([`cli::diff`]) and the man page ([`cli::manpage`]).
//! - [`startup`]: validated settings → signal handlers, self-check, table, listener, server;
//!   [`signals`] beside it (reload and shutdown), [`descriptors`] (the connection cap).
//! - [`http`]: the request path on the actix side: connections and their deadlines, routes,
//!   body reading, small endpoints, errors as JSON.
//! - [`status_page`]: the status page's HTML, rendered from one table snapshot (no actix).
//! - [`table`]: the table's life: the services file ([`table::config`]), the live table behind
//!   one atomic pointer ([`table::state`]), the one reload path ([`table::reload`]) and the file
//!   watcher ([`table::watch`]).
//! - [`request`]: every input form → one validated lookup → the answer's JSON (also used by
//!   `keyrouter lookup`).
//! - [`limits`]: what a request may cost; [`metrics`]: Prometheus metrics, lock-free on the
//!   lookup path; [`impact`]: how many keys a change of the services file moves (reloads and
//!   `keyrouter diff`).
//! - [`address`], [`logging`], [`memory`]: listen addresses, log output, giving freed memory back.
//! - [`ranking`]: the pure ranking core (hashing, table, top-k selection), the crate
//!   `keyrouter-ranking` in `crates/ranking`, re-exported here.

pub mod address;
pub mod cli;
pub mod descriptors;
pub mod http;
pub mod impact;
pub mod limits;
pub mod logging;
pub mod memory;
pub mod metrics;
pub use keyrouter_ranking as ranking;
pub mod request;
pub mod signals;
pub mod startup;
pub mod status_page;
pub mod table;
