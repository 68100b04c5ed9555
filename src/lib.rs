//! keyrouter: maps a key to one or more nodes of a named service by rendezvous hashing.
//!
//! - [`ranking`]: the pure ranking core (hashing, table, top-k selection).
//! - [`config`]: the services file format, with errors that name line and column.

pub mod config;
pub mod ranking;
