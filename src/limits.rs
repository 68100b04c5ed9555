//! What the server is configured to allow: how a services file is judged ([`LoadRules`]) and
//! what one request may cost ([`RequestLimits`]). Plain values, validated from the command line by
//! `crate::cli` and held by `crate::table::state::AppState`.

use std::time::Duration;

use crate::table::config::DEFAULT_MAX_SERVICES_BYTES;

/// How the services file is judged, at startup and on every reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadRules {
    /// Files bigger than this are refused (`--max-services-bytes`).
    pub max_services_bytes: u64,
    /// An empty table may replace a non-empty one, and an empty table is ready
    /// (`--allow-empty`).
    pub allow_empty: bool,
}

impl Default for LoadRules {
    fn default() -> Self {
        LoadRules { max_services_bytes: DEFAULT_MAX_SERVICES_BYTES, allow_empty: false }
    }
}

/// Default `--heavy-lookup-work` (see [`crate::request::Plan::work`]): about 2 ms of work. A
/// single key stays inline up to a service of ~1 000 000 nodes, a batch of 1 000 keys over 100
/// nodes too; the largest answer the default budget allows (100 000 nodes) does not.
pub const DEFAULT_HEAVY_WORK: u64 = 1_000_000;

/// What one request may cost (see "Limits" in docs/http-api.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// Keys × nodes per key in one answer.
    pub max_answer_nodes: u64,
    /// `exclude` entries in one lookup.
    pub max_exclude: u64,
    /// Time for the request head, and again for the body.
    pub request_timeout: Duration,
    /// Node scores above which a lookup runs on the heavy pool.
    pub heavy_work: u64,
    /// Heavy lookups at once; 0 for one per CPU this process may use.
    pub heavy_lookups: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_answer_nodes: crate::request::DEFAULT_MAX_ANSWER_NODES,
            max_exclude: crate::request::DEFAULT_MAX_EXCLUDE,
            request_timeout: Duration::from_secs(10),
            heavy_work: DEFAULT_HEAVY_WORK,
            heavy_lookups: 0,
        }
    }
}

impl RequestLimits {
    /// What one lookup may ask for.
    pub fn budget(&self) -> crate::request::Budget {
        crate::request::Budget { max_answer_nodes: self.max_answer_nodes, max_exclude: self.max_exclude }
    }
}
