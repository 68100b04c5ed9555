//! The table's life: the services file is parsed ([`config`]) into a table that serves behind one
//! atomic pointer ([`state`]); [`reload`] is the one path that builds a new table off to the side
//! and swaps it in (or keeps the old one), whoever asks for it: startup, SIGHUP or [`watch`],
//! which follows the file on disk.

/// The parser is the crate `keyrouter-config` (crates/config), shared with the client packages.
pub use keyrouter_config as config;
pub mod reload;
pub mod state;
pub mod watch;
mod watch_path;
