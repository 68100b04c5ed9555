//! Encoding: a validated lookup of one service becomes a [`Plan`] within the answer budget
//! ([`plan`]), and a plan becomes the answer's JSON bytes ([`render`]), written by hand as
//! serde_json would write them.

use std::borrow::Cow;
use std::collections::HashSet;

use super::{Budget, Fields, Keys, Lookup, RequestError};
use crate::ranking::{LookupOptions, Resolved, Service};

/// What one node in an answer costs next to scoring one node: selecting and sorting it among
/// the top k, and writing it as a JSON string (the measurement is in benches/wrk/README.md).
pub const ANSWER_NODE_WORK: u64 = 32;

/// Most bytes reserved up front for a batch answer, whatever the budget allows: the vector
/// grows past it if it must, but a capacity is never computed from a number a client sent.
const MAX_ANSWER_HINT: usize = 4 << 20;

/// A validated lookup of one service, within the answer budget: ready to [`render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    pub lookup: Lookup<'a>,
    /// Nodes per key in the answer.
    pub k: usize,
    /// The lookup's `exclude` and `spread`, matched against the service once for every key.
    pub options: Resolved,
}

impl Plan<'_> {
    /// The work this lookup costs, in node scores: every node of the service is scored once
    /// per key, and each node in the answer costs about [`ANSWER_NODE_WORK`] more (selecting,
    /// sorting and encoding it).
    pub fn work(&self, service: &Service) -> u64 {
        let ranked = self.k.saturating_add(self.options.excluded()) as u64;
        let per_key = (service.len() as u64).saturating_add(ranked.saturating_mul(ANSWER_NODE_WORK));
        (self.lookup.keys.len() as u64).saturating_mul(per_key)
    }

    /// The same plan owning its keys.
    pub fn into_owned(self) -> Plan<'static> {
        Plan { lookup: self.lookup.into_owned(), k: self.k, options: self.options }
    }
}

/// Validates the fields against `service` and the budget: at most `max_exclude` `exclude`
/// entries, and keys × (nodes per key + nodes excluded) must not exceed `max_answer_nodes`
/// (leaving `e` nodes out ranks `k + e`). The one place any input form becomes a lookup the
/// server will answer. Allocates nothing sized from the request's numbers.
pub fn plan<'a>(service: &Service, fields: Fields<'a>, budget: &Budget) -> Result<Plan<'a>, RequestError> {
    let lookup = fields.into_lookup()?;
    if lookup.exclude.len() as u64 > budget.max_exclude {
        return Err(RequestError::TooManyExcluded { given: lookup.exclude.len(), limit: budget.max_exclude });
    }
    let options = match (lookup.exclude.is_empty(), lookup.spread) {
        (true, crate::ranking::Spread::None) => Resolved::default(),
        _ => {
            let exclude: Vec<&str> = lookup.exclude.iter().map(|e| e.as_ref()).collect();
            service.resolve(&LookupOptions { exclude: &exclude, spread: lookup.spread })
        }
    };
    let k = service.answer_len_with(lookup.min, lookup.max, &options)?;
    let keys = lookup.keys.len();
    let excluded = options.excluded();
    let per_key = k.saturating_add(excluded);
    let total = (keys as u64).saturating_mul(per_key as u64);
    if total > budget.max_answer_nodes {
        return Err(RequestError::AnswerTooLarge { keys, per_key, excluded, total, limit: budget.max_answer_nodes });
    }
    Ok(Plan { lookup, k, options })
}

/// Ranks and encodes a planned lookup: the answer's JSON. Cannot fail: a plan is valid, and
/// writing into a vector cannot fail.
pub fn render(service: &Service, plan: &Plan) -> Vec<u8> {
    let options = &plan.options;
    match &plan.lookup.keys {
        Keys::One(key) => render_one(service, key, plan.k, options),
        Keys::Batch(keys) => render_batch(service, keys, plan.k, options),
    }
}

/// A one-key answer: the array of its `k` nodes.
fn render_one(service: &Service, key: &str, k: usize, options: &Resolved) -> Vec<u8> {
    let mut out = Vec::with_capacity(k.saturating_mul(24).saturating_add(2).min(MAX_ANSWER_HINT));
    write_ranked(&mut out, service, key, k, options);
    out
}

/// A batch answer: an object with the nodes of each distinct key, in the order the keys first
/// appear.
fn render_batch(service: &Service, keys: &[Cow<str>], k: usize, options: &Resolved) -> Vec<u8> {
    // Within the budget, but an operator may set the budget very high: cap the hint.
    let hint = keys.len().saturating_mul(k.saturating_mul(24).saturating_add(16));
    let mut out = Vec::with_capacity(hint.min(MAX_ANSWER_HINT));
    let mut seen = HashSet::with_capacity(keys.len());
    out.push(b'{');
    for key in keys.iter().map(|k| k.as_ref()).filter(|k| seen.insert(*k)) {
        if out.len() > 1 {
            out.push(b',');
        }
        write_json_str(&mut out, key);
        out.push(b':');
        write_ranked(&mut out, service, key, k, options);
    }
    out.push(b'}');
    out
}

/// Appends the JSON array of the `k` nodes ranked highest for `key`, written as it is ranked:
/// no vector of nodes, and no serializer (`serde_json::to_vec` was a large share of a small
/// lookup's own cost; figures in benches/wrk/README.md). A lookup without options takes the
/// plain ranking.
fn write_ranked(out: &mut Vec<u8>, service: &Service, key: &str, k: usize, options: &Resolved) {
    out.push(b'[');
    let mut first = true;
    let write = |node: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, node);
    };
    match options.is_plain() {
        true => service.rank_each(key, k, write),
        false => service.rank_with_each(key, k, options, write),
    }
    out.push(b']');
}

/// Whether `s` holds a byte serde_json escapes: a control character, the quote or the
/// backslash; nothing else. Eight bytes at a time (a node address is ~15 bytes; byte by byte this
/// check was half the cost of writing one).
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Non-zero iff some byte of `v` is below `n` (n <= 0x80): the classic bit trick, exact as to
    // whether any byte matches (only which bytes it marks can be wrong).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let any =
        |v: u64| below(v, 0x20) | below(v ^ (ONES * u64::from(b'"')), 1) | below(v ^ (ONES * u64::from(b'\\')), 1) != 0;
    let mut chunks = s.chunks_exact(8);
    if chunks.by_ref().any(|c| any(u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))) {
        return true;
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` as a JSON string, byte for byte as serde_json writes it: a string with nothing
/// to escape (every node address, most keys) is copied between quotes, any other goes through
/// serde_json.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // serde_json fails only when the writer does, and a vector never does.
        let _ = serde_json::to_writer(out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::{ServiceSpec, Table};
    use crate::request::answer;

    /// The answer as it was written before the hand-written writer: `serde_json` over the
    /// ranked nodes (a map of key to nodes for a batch).
    fn by_serde(service: &Service, keys: &[&str], batch: bool, k: usize) -> Vec<u8> {
        let ranked = |key: &str| {
            let mut nodes = Vec::new();
            service.rank_into(key, k, &mut nodes);
            nodes
        };
        if !batch {
            return serde_json::to_vec(&ranked(keys[0])).unwrap();
        }
        let mut map = serde_json::Map::new();
        for key in keys {
            map.entry(key.to_string()).or_insert_with(|| serde_json::json!(ranked(key)));
        }
        // `Map` keeps insertion order only with `preserve_order`: compare as values instead.
        serde_json::to_vec(&map).unwrap()
    }

    fn lookup(keys: Keys, k: usize) -> Lookup {
        Lookup { keys, min: 1, max: k as u64, exclude: vec![], spread: crate::ranking::Spread::None }
    }

    fn budget(max_answer_nodes: u64) -> Budget {
        Budget { max_answer_nodes, ..Budget::default() }
    }

    proptest::proptest! {
        /// The JSON writer gives serde_json's bytes for any node and key strings: quotes,
        /// backslashes, control characters, DEL, U+2028 and any other Unicode included.
        #[test]
        fn answers_are_written_as_serde_json_writes_them(
            nodes in proptest::collection::vec("(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}]){1,12}", 1..12),
            keys in proptest::collection::vec("(\\PC|[\"\\\\\u{0}-\u{1f}]){0,8}", 1..6),
            k in 1usize..14,
        ) {
            let (table, _) = Table::build([ServiceSpec::new("s", nodes)]).unwrap();
            let service = table.get("s").unwrap();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let k = k.min(service.len());
            let one = Plan { lookup: lookup(Keys::One(keys[0].into()), k), k, options: Resolved::default() };
            proptest::prop_assert_eq!(render(service, &one), by_serde(service, &keys, false, k));
            let many = Keys::Batch(keys.iter().map(|&k| k.into()).collect());
            let batch = Plan { lookup: lookup(many, k), k, options: Resolved::default() };
            let got: serde_json::Value = serde_json::from_slice(&render(service, &batch)).unwrap();
            let want: serde_json::Value = serde_json::from_slice(&by_serde(service, &keys, true, k)).unwrap();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn needs_escape_finds_every_escaped_byte_at_every_position() {
        let naive = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        for len in 0..=17 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    for fill in [b'a', 0x7f, 0xff, 0x20, 0x21] {
                        let mut s = vec![fill; len];
                        s[at] = byte;
                        assert_eq!(needs_escape(&s), naive(&s), "{s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_batch_answer_keeps_the_order_of_first_appearance() {
        let (table, _) = Table::build([ServiceSpec::new("s", vec!["a".to_string()])]).unwrap();
        let service = table.get("s").unwrap();
        let keys = Keys::Batch(["z", "a\"q", "z", "m"].iter().map(|&k| k.into()).collect());
        let plan = Plan { lookup: lookup(keys, 1), k: 1, options: Resolved::default() };
        assert_eq!(render(service, &plan), br#"{"z":["a"],"a\"q":["a"],"m":["a"]}"#);
    }

    #[test]
    fn answer_budget_is_checked_before_ranking() {
        let nodes: Vec<String> = (0..1000).map(|i| format!("n{i}")).collect();
        let (table, _) = Table::build([ServiceSpec::new("s", nodes)]).unwrap();
        let s = table.get("s").unwrap();
        let f = |json: &'static str| Fields::from_json(json.as_bytes()).unwrap();
        // 3 keys x 1000 nodes (max is capped at the node count) = 3000.
        let err = plan(s, f(r#"{"keys":["a","b","c"],"max":18446744073709551615}"#), &budget(2999)).unwrap_err();
        assert_eq!(err, RequestError::AnswerTooLarge { keys: 3, per_key: 1000, excluded: 0, total: 3000, limit: 2999 });
        assert!(err.to_string().contains("3 key(s) x 1000 node(s) per key = 3000 nodes, more than the limit of 2999"));
        assert!(plan(s, f(r#"{"keys":["a","b","c"],"max":18446744073709551615}"#), &budget(3000)).is_ok());
        assert!(answer(s, f(r#"{"key":"a","max":1001}"#), &budget(999)).is_err());
        let p = plan(s, f(r#"{"keys":["a","b"],"max":2}"#), &budget(4)).unwrap();
        assert_eq!(p.work(s), 2 * (1000 + 2 * ANSWER_NODE_WORK));
        assert_eq!(render(s, &p.clone().into_owned()), render(s, &p));
    }

    #[test]
    fn excluded_nodes_count_in_the_budget_and_entries_are_bounded() {
        let nodes: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        let (table, _) = Table::build([ServiceSpec::new("s", nodes)]).unwrap();
        let s = table.get("s").unwrap();
        let f = |json: &'static str| Fields::from_json(json.as_bytes()).unwrap();
        // 2 keys x (2 answered + 2 excluded; "zz" names no node, "n1" twice counts once).
        let body = r#"{"keys":["a","b"],"max":2,"exclude":["n1","n2","zz","n1"]}"#;
        let err = plan(s, f(body), &budget(7)).unwrap_err();
        assert_eq!(err, RequestError::AnswerTooLarge { keys: 2, per_key: 4, excluded: 2, total: 8, limit: 7 });
        assert!(err.to_string().contains("2 key(s) x 4 node(s) per key (including 2 excluded) = 8 nodes"), "{err}");
        let p = plan(s, f(body), &budget(8)).unwrap();
        assert_eq!(p.work(s), 2 * (100 + 4 * ANSWER_NODE_WORK));
        let few = Budget { max_exclude: 3, ..Budget::default() };
        let err = plan(s, f(body), &few).unwrap_err();
        assert_eq!(err.to_string(), "too many `exclude` entries: 4, at most 3 in one lookup (--max-exclude)");
        // Rendered through the options: the answer of the service without n1 and n2.
        let (without, _) =
            Table::build([ServiceSpec::new("s", (0..100).filter(|i| ![1, 2].contains(i)).map(|i| format!("n{i}")))])
                .unwrap();
        let p = plan(s, f(body), &budget(8)).unwrap();
        let q = plan(without.get("s").unwrap(), f(r#"{"keys":["a","b"],"max":2}"#), &budget(8)).unwrap();
        assert_eq!(render(s, &p), render(without.get("s").unwrap(), &q));
    }
}
