//! The request boundary: every way a client can ask for a lookup (query string, urlencoded form,
//! multipart form, JSON) becomes one [`Fields`], then one validated [`Plan`], and [`render`]
//! turns that into the answer's JSON bytes. Every way a request can be wrong is a
//! [`RequestError`].
//!
//! - [`decode`]: the strict decoders, from bytes to [`Fields`] (and counts, read exactly).
//! - [`encode`]: validation against a service and the answer budget ([`plan`]), and the
//!   answer's JSON ([`render`]).
//!
//! Nothing here knows about actix: the HTTP layer (`crate::http`) feeds it the query string and
//! the body it read, and maps `RequestError` to a status; the offline `keyrouter lookup` command
//! calls [`answer_in`], which goes through the same [`plan`] and [`render`] as the server, so
//! both give the same bytes for the same table. The property tests in `tests/integration/parser_props.rs`
//! drive the decoders and the answer together.

mod decode;
mod encode;

use std::borrow::Cow;

pub use decode::{decode_path_segment, Body, Fields};
pub use encode::{plan, render, Plan, ANSWER_NODE_WORK};

use crate::ranking::{LookupError, Service, Spread, Table};

/// Largest number of keys in one batch lookup.
pub const MAX_BATCH_KEYS: usize = 10_000;

/// Default answer budget (`--max-answer-nodes`): keys × nodes per key in one answer. A node in
/// an answer costs its name plus 3 bytes of JSON (about 25 bytes for `10.0.0.1:8080`), so the
/// default keeps one answer to about 2.5 MB, far below the 256 MiB the Kubernetes manifest
/// gives the pod, while a batch of 10 000 keys still gets 10 nodes each.
pub const DEFAULT_MAX_ANSWER_NODES: u64 = 100_000;

/// Default `--max-exclude`: most `exclude` entries in one lookup. Far more than a client
/// retrying around failed nodes needs; each entry also counts in the answer budget.
pub const DEFAULT_MAX_EXCLUDE: u64 = 1_000;

/// What one lookup may ask for: the answer budget and the most `exclude` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Keys × (nodes per key + nodes excluded) in one answer (`--max-answer-nodes`).
    pub max_answer_nodes: u64,
    /// `exclude` entries in one lookup (`--max-exclude`).
    pub max_exclude: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_answer_nodes: DEFAULT_MAX_ANSWER_NODES, max_exclude: DEFAULT_MAX_EXCLUDE }
    }
}

/// What to look up: one key or a batch, how many nodes to answer with, which nodes to leave
/// out and how to spread the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup<'a> {
    pub keys: Keys<'a>,
    pub min: u64,
    pub max: u64,
    /// Identities of nodes to leave out, as given (unmatched and repeated entries included).
    pub exclude: Vec<Cow<'a, str>>,
    pub spread: Spread,
}

/// One key (answered with an array) or a batch (answered with an object by key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys<'a> {
    One(Cow<'a, str>),
    Batch(Vec<Cow<'a, str>>),
}

impl Keys<'_> {
    /// How many keys were asked for (duplicates included).
    pub fn len(&self) -> usize {
        match self {
            Keys::One(_) => 1,
            Keys::Batch(keys) => keys.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Lookup<'_> {
    /// The same lookup owning its keys, to move to another thread.
    pub fn into_owned(self) -> Lookup<'static> {
        let own = |k: Cow<'_, str>| Cow::Owned(k.into_owned());
        let keys = match self.keys {
            Keys::One(k) => Keys::One(own(k)),
            Keys::Batch(keys) => Keys::Batch(keys.into_iter().map(own).collect()),
        };
        Lookup {
            keys,
            min: self.min,
            max: self.max,
            exclude: self.exclude.into_iter().map(own).collect(),
            spread: self.spread,
        }
    }
}

/// Everything a request itself can get wrong, wherever it came from (an HTTP request or
/// `keyrouter lookup`); `crate::http::error` wraps it with what only HTTP can get wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The answer would hold more nodes than `--max-answer-nodes` allows (excluded nodes
    /// count as answered: a lookup ranks them to leave them out).
    #[error(
        "answer too large: {keys} key(s) x {per_key} node(s) per key{} = {total} nodes, more than the limit of \
         {limit} (--max-answer-nodes); ask for fewer keys or a smaller `max`", excluded_note(*.excluded)
    )]
    AnswerTooLarge { keys: usize, per_key: usize, excluded: usize, total: u64, limit: u64 },
    /// More `exclude` entries than `--max-exclude` allows.
    #[error("too many `exclude` entries: {given}, at most {limit} in one lookup (--max-exclude)")]
    TooManyExcluded { given: usize, limit: u64 },
}

/// How [`RequestError::AnswerTooLarge`] counts excluded nodes, when there are some.
fn excluded_note(excluded: usize) -> String {
    match excluded {
        0 => String::new(),
        n => format!(" (including {n} excluded)"),
    }
}

impl RequestError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        RequestError::Invalid(msg.into())
    }
}

/// Answers a lookup of service `name` in `table`: the JSON body a client gets.
pub fn answer_in(table: &Table, name: &str, fields: Fields, budget: &Budget) -> Result<Vec<u8>, RequestError> {
    let service = table.get(name).ok_or_else(|| RequestError::UnknownService(name.to_string()))?;
    answer(service, fields, budget)
}

/// Validates the fields and ranks: [`plan`] then [`render`], the path every input form takes
/// to an answer's JSON (the server calls the two apart, to weigh the plan in between).
pub fn answer(service: &Service, fields: Fields, budget: &Budget) -> Result<Vec<u8>, RequestError> {
    Ok(render(service, &plan(service, fields, budget)?))
}
