//! The request boundary: every way a client can ask for a lookup (query string, urlencoded form,
//! multipart form, JSON) becomes one [`Fields`], then one validated [`Lookup`], and [`answer`]
//! turns that into the answer's JSON bytes. Every way it can go wrong is a [`RequestError`].
//!
//! Nothing here knows about actix: the HTTP layer (`crate::http`) feeds it the query string and
//! the body it read, and maps `RequestError` to a status; the offline `keyrouter lookup` command
//! calls the same [`answer_in`], so both give the same bytes for the same table.
//!
//! Longer than most modules because it is the whole client boundary in one place: the strict
//! decoders, the fields, the validation and the answer budget must agree with each other, and
//! the property tests in `tests/parser_props.rs` drive them together.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::ranking::{LookupError, Service, Table};

/// Largest number of keys in one batch lookup.
pub const MAX_BATCH_KEYS: usize = 10_000;

/// Default answer budget (`--max-answer-nodes`): keys × nodes per key in one answer. A node in
/// an answer costs its name plus 3 bytes of JSON (about 25 bytes for `10.0.0.1:8080`), so the
/// default keeps one answer to about 2.5 MB, far below the 256 MiB the Kubernetes manifest
/// gives the pod, while a batch of 10 000 keys still gets 10 nodes each.
pub const DEFAULT_MAX_ANSWER_NODES: u64 = 100_000;

/// What one node in an answer costs next to scoring one node (~2 ns): selecting and sorting
/// it among the top k, and writing it as a JSON string, measured at 30–60 ns together.
pub const ANSWER_NODE_WORK: u64 = 32;

/// Most bytes reserved up front for a batch answer, whatever the budget allows: the vector
/// grows past it if it must, but a capacity is never computed from a number a client sent.
const MAX_ANSWER_HINT: usize = 4 << 20;

/// What to look up: one key or a batch, and how many nodes to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup<'a> {
    pub keys: Keys<'a>,
    pub min: u64,
    pub max: u64,
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
        Lookup { keys, min: self.min, max: self.max }
    }
}

/// Everything that can go wrong with a request; `crate::http` gives each its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The answer would hold more nodes than `--max-answer-nodes` allows.
    #[error(
        "answer too large: {keys} key(s) x {per_key} node(s) per key = {total} nodes, more than the limit of \
         {limit} (--max-answer-nodes); ask for fewer keys or a smaller `max`"
    )]
    AnswerTooLarge { keys: usize, per_key: usize, total: u64, limit: u64 },
    #[error("unsupported Content-Type {0:?}: send application/json, application/x-www-form-urlencoded, multipart/form-data or a query string")]
    UnsupportedMediaType(String),
    #[error("unsupported Content-Encoding {0:?}: send the body uncompressed")]
    UnsupportedEncoding(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("query string is longer than {limit} bytes; send large lookups as a body")]
    QueryTooLong { limit: usize },
    /// The request did not arrive whole within `--request-timeout`.
    #[error("request not received within {secs} s (--request-timeout)")]
    Timeout { secs: u64 },
    /// Every slot for heavy lookups is taken.
    #[error("too many large lookups in progress; retry shortly (--heavy-lookups)")]
    Overloaded,
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("no such route: {0}")]
    NotFound(String),
    /// The answer could not be encoded: our fault, not the client's.
    #[error("cannot encode answer: {0}")]
    Encode(String),
}

impl RequestError {
    fn invalid(msg: impl Into<String>) -> Self {
        RequestError::Invalid(msg.into())
    }
}

/// The lookup fields as one source (query string or body) gave them; all optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub key: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "texts")]
    pub keys: Option<Vec<Cow<'a, str>>>,
    #[serde(default, deserialize_with = "count_min")]
    pub min: Option<u64>,
    #[serde(default, deserialize_with = "count_max")]
    pub max: Option<u64>,
}

impl<'a> Fields<'a> {
    /// Parses a JSON object body. Only an object: serde would otherwise also take an array and
    /// read its elements as the fields in declaration order.
    pub fn from_json(body: &'a [u8]) -> Result<Self, RequestError> {
        let start = body.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if start.is_some_and(|i| body[i] != b'{') {
            return Err(RequestError::invalid("invalid JSON body: must be an object, such as {\"key\": \"...\"}"));
        }
        serde_json::from_slice(body).map_err(|e| RequestError::invalid(format!("invalid JSON body: {e}")))
    }

    /// Parses an urlencoded string (a query string or a form body): `+` is a space, `%XX` a
    /// byte, and every name and value must be UTF-8 once decoded (a 400 otherwise, where
    /// `form_urlencoded` would turn each bad byte into U+FFFD and make different inputs equal).
    pub fn from_urlencoded(input: &'a [u8]) -> Result<Self, RequestError> {
        let pairs = input.split(|&b| b == b'&').filter(|p| !p.is_empty()).map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let name = decode_form(name).ok_or_else(|| {
                RequestError::invalid("a field name is not valid UTF-8 once percent-decoded".to_string())
            })?;
            let value = decode_form(value).ok_or_else(|| {
                RequestError::invalid(format!("field `{name}` is not valid UTF-8 once percent-decoded"))
            })?;
            Ok((name, value))
        });
        Self::try_from_pairs(pairs)
    }

    /// Builds fields from name/value pairs (query string, urlencoded and multipart forms).
    /// `keys` may repeat; any other field may appear once.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self, RequestError>
    where
        N: AsRef<str>,
        V: Into<Cow<'a, str>>,
    {
        Self::try_from_pairs(pairs.into_iter().map(Ok))
    }

    fn try_from_pairs<N, V>(pairs: impl Iterator<Item = Result<(N, V), RequestError>>) -> Result<Self, RequestError>
    where
        N: AsRef<str>,
        V: Into<Cow<'a, str>>,
    {
        let mut f = Fields::default();
        for pair in pairs {
            let (name, value) = pair?;
            let name = name.as_ref();
            let value = value.into();
            let twice = || RequestError::invalid(format!("field `{name}` is given more than once"));
            match name {
                "key" => {
                    if f.key.replace(value).is_some() {
                        return Err(twice());
                    }
                }
                "keys" => f.keys.get_or_insert_with(Vec::new).push(value),
                "min" | "max" => {
                    let n = parse_count(name, &value)?;
                    let slot = if name == "min" { &mut f.min } else { &mut f.max };
                    if slot.replace(n).is_some() {
                        return Err(twice());
                    }
                }
                _ => return Err(unknown_field(name)),
            }
        }
        Ok(f)
    }

    /// Fields from `self` (the body) win over fields from `lower` (the query string).
    pub fn or(self, lower: Fields<'a>) -> Fields<'a> {
        Fields {
            key: self.key.or(lower.key),
            keys: self.keys.or(lower.keys),
            min: self.min.or(lower.min),
            max: self.max.or(lower.max),
        }
    }

    /// Validates: exactly one of `key`/`keys`, keys non-empty, `min` defaults to 1 and `max` to
    /// `min`, `min <= max`.
    pub fn into_lookup(self) -> Result<Lookup<'a>, RequestError> {
        let min = self.min.unwrap_or(1);
        let max = self.max.unwrap_or(min);
        if min > max {
            return Err(LookupError::MinGreaterThanMax { min, max }.into());
        }
        let keys = match (self.key, self.keys) {
            (Some(_), Some(_)) => return Err(RequestError::invalid("give either `key` or `keys`, not both")),
            (None, None) => return Err(RequestError::invalid("missing field `key`")),
            (Some(key), None) => {
                if key.is_empty() {
                    return Err(RequestError::invalid("`key` must not be empty"));
                }
                Keys::One(key)
            }
            (None, Some(keys)) => {
                if keys.is_empty() {
                    return Err(RequestError::invalid("`keys` must not be empty"));
                }
                if keys.len() > MAX_BATCH_KEYS {
                    return Err(RequestError::invalid(format!(
                        "too many keys: {}, at most {MAX_BATCH_KEYS} in one request",
                        keys.len()
                    )));
                }
                if keys.iter().any(|k| k.is_empty()) {
                    return Err(RequestError::invalid("`keys` must not contain an empty key"));
                }
                Keys::Batch(keys)
            }
        };
        Ok(Lookup { keys, min, max })
    }
}

/// A request body as the HTTP layer read and classified it.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// No body: the query string alone.
    Empty,
    Json(&'a [u8]),
    /// `application/x-www-form-urlencoded`.
    Form(&'a [u8]),
    /// The text fields of a `multipart/form-data` body.
    Pairs(&'a [(String, String)]),
}

impl<'a> Fields<'a> {
    /// The fields of one request: the body's win over the query string's.
    pub fn from_request(query: &'a [u8], body: Body<'a>) -> Result<Self, RequestError> {
        let query = Fields::from_urlencoded(query)?;
        Ok(match body {
            Body::Empty => query,
            Body::Json(b) => Fields::from_json(b)?.or(query),
            Body::Form(b) => Fields::from_urlencoded(b)?.or(query),
            Body::Pairs(p) => Fields::from_pairs(p.iter().map(|(n, v)| (n.as_str(), v.as_str())))?.or(query),
        })
    }
}

/// Answers a lookup of service `name` in `table`: the JSON body a client gets.
pub fn answer_in(table: &Table, name: &str, fields: Fields, max_answer_nodes: u64) -> Result<Vec<u8>, RequestError> {
    let service = table.get(name).ok_or_else(|| RequestError::UnknownService(name.to_string()))?;
    answer(service, fields, max_answer_nodes)
}

/// Validates the fields and ranks: the one path from any input form to an answer's JSON.
pub fn answer(service: &Service, fields: Fields, max_answer_nodes: u64) -> Result<Vec<u8>, RequestError> {
    render(service, &plan(service, fields, max_answer_nodes)?)
}

/// A validated lookup of one service, within the answer budget: ready to [`render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    pub lookup: Lookup<'a>,
    /// Nodes per key in the answer.
    pub k: usize,
}

impl Plan<'_> {
    /// The work this lookup costs, in node scores: every node of the service is scored once
    /// per key, and each node in the answer costs about [`ANSWER_NODE_WORK`] more (selecting,
    /// sorting and encoding it).
    pub fn work(&self, service: &Service) -> u64 {
        let per_key = (service.len() as u64).saturating_add((self.k as u64).saturating_mul(ANSWER_NODE_WORK));
        (self.lookup.keys.len() as u64).saturating_mul(per_key)
    }

    /// The same plan owning its keys.
    pub fn into_owned(self) -> Plan<'static> {
        Plan { lookup: self.lookup.into_owned(), k: self.k }
    }
}

/// Validates the fields against `service` and the answer budget: keys × nodes per key must not
/// exceed `max_answer_nodes`. Allocates nothing sized from the request's numbers.
pub fn plan<'a>(service: &Service, fields: Fields<'a>, max_answer_nodes: u64) -> Result<Plan<'a>, RequestError> {
    let lookup = fields.into_lookup()?;
    let k = service.answer_len(lookup.min, lookup.max)?;
    let keys = lookup.keys.len();
    let total = (keys as u64).saturating_mul(k as u64);
    if total > max_answer_nodes {
        return Err(RequestError::AnswerTooLarge { keys, per_key: k, total, limit: max_answer_nodes });
    }
    Ok(Plan { lookup, k })
}

/// Ranks and encodes a planned lookup: the answer's JSON.
pub fn render(service: &Service, plan: &Plan) -> Result<Vec<u8>, RequestError> {
    let k = plan.k;
    let mut out;
    match &plan.lookup.keys {
        Keys::One(key) => {
            out = Vec::with_capacity(k.saturating_mul(24).saturating_add(2).min(MAX_ANSWER_HINT));
            write_ranked(&mut out, service, key, k)
        }
        Keys::Batch(keys) => {
            // Within the budget, but an operator may set the budget very high: cap the hint.
            let hint = keys.len().saturating_mul(k.saturating_mul(24).saturating_add(16));
            out = Vec::with_capacity(hint.min(MAX_ANSWER_HINT));
            let mut seen = HashSet::with_capacity(keys.len());
            out.push(b'{');
            (|| {
                for key in keys.iter().map(|k| k.as_ref()).filter(|k| seen.insert(*k)) {
                    if out.len() > 1 {
                        out.push(b',');
                    }
                    write_json_str(&mut out, key)?;
                    out.push(b':');
                    write_ranked(&mut out, service, key, k)?;
                }
                Ok(())
            })()
            .map(|()| out.push(b'}'))
        }
    }
    .map(|()| out)
    .map_err(|e: serde_json::Error| RequestError::Encode(e.to_string()))
}

/// Appends the JSON array of the `k` nodes ranked highest for `key`, written as it is ranked:
/// no vector of nodes, and no serializer (a quarter of a small lookup's own cost when it went
/// through `serde_json::to_vec`; callgrind over `benches/http.rs`).
fn write_ranked(out: &mut Vec<u8>, service: &Service, key: &str, k: usize) -> Result<(), serde_json::Error> {
    out.push(b'[');
    let mut written = Ok(());
    let mut first = true;
    service.rank_each(key, k, |node| {
        if !first {
            out.push(b',');
        }
        first = false;
        if written.is_ok() {
            written = write_json_str(out, node);
        }
    });
    out.push(b']');
    written
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
fn write_json_str(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if needs_escape(s.as_bytes()) {
        return serde_json::to_writer(out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

fn unknown_field(name: &str) -> RequestError {
    RequestError::invalid(format!("unknown field `{name}`, expected one of `key`, `keys`, `min`, `max`"))
}

/// Parses a count given as text (forms and query strings).
pub fn parse_count(name: &str, value: &str) -> Result<u64, RequestError> {
    value.parse::<u64>().map_err(|_| {
        let what = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            "is too large"
        } else {
            "must be a non-negative integer"
        };
        RequestError::invalid(format!("`{name}` {what}, got {value:?}"))
    })
}

/// A JSON string, borrowed from the body when it has no escapes (serde's own `Cow<str>`
/// always copies inside an `Option`).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn text<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
}

fn texts<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cow<'a, str>>>, D::Error> {
    Ok(Option::<Vec<Text>>::deserialize(d)?.map(|v| v.into_iter().map(|t| t.0).collect()))
}

/// Decodes one urlencoded component, borrowing when it has nothing to decode; `None` when the
/// result is not UTF-8. A `%` not followed by two hex digits stays as it is (as in browsers).
fn decode_form(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.iter().any(|&b| b == b'+' || b == b'%') {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let spaced: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(decoded).ok().map(Cow::Owned)
}

/// Decodes a percent-encoded path segment (a service name) completely, `%2F` included; `None`
/// when the result is not UTF-8.
pub fn decode_path_segment(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        // Nothing to decode, and already UTF-8: skip the decoder's copy-on-write scan.
        return Some(Cow::Borrowed(raw));
    }
    percent_encoding::percent_decode_str(raw).decode_utf8().ok()
}

fn count_min<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(Count("min"))
}

fn count_max<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(Count("max"))
}

/// A JSON count, named for its errors: a non-negative integer that fits in 64 bits. Null counts
/// as absent. A number written with a fraction or an exponent counts when its value is an
/// integer (`1.0`, `1e0`: Python's `json.dumps` writes floats, and JSON Schema's `integer`
/// includes them); `1.5` is not an integer, `1e30` is too large.
struct Count(&'static str);

impl<'de> Visitor<'de> for Count {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "`{}` as a non-negative integer", self.0)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("`{}` must be a non-negative integer, got {v}", self.0)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // 2^64 is exactly representable; every integral f64 below it converts exactly.
        const LIMIT: f64 = 18_446_744_073_709_551_616.0;
        if !(v.is_finite() && v.fract() == 0.0 && v >= 0.0) {
            Err(E::custom(format!("`{}` must be a non-negative integer, got {v}", self.0)))
        } else if v >= LIMIT {
            Err(E::custom(format!("`{}` is too large, got {v:e}", self.0)))
        } else {
            Ok(Some(v as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(f: Result<Fields, RequestError>) -> Result<Lookup, RequestError> {
        f?.into_lookup()
    }

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

    proptest::proptest! {
        /// The JSON writer gives serde_json's bytes for any node and key strings: quotes,
        /// backslashes, control characters, DEL, U+2028 and any other Unicode included.
        #[test]
        fn answers_are_written_as_serde_json_writes_them(
            nodes in proptest::collection::vec("(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}]){1,12}", 1..12),
            keys in proptest::collection::vec("(\\PC|[\"\\\\\u{0}-\u{1f}]){0,8}", 1..6),
            k in 1usize..14,
        ) {
            let (table, _) = crate::ranking::Table::build([crate::ranking::ServiceSpec::new("s", nodes)]).unwrap();
            let service = table.get("s").unwrap();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let k = k.min(service.len());
            let one = Plan { lookup: Lookup { keys: Keys::One(keys[0].into()), min: 1, max: k as u64 }, k };
            proptest::prop_assert_eq!(render(service, &one).unwrap(), by_serde(service, &keys, false, k));
            let many = Keys::Batch(keys.iter().map(|&k| k.into()).collect());
            let batch = Plan { lookup: Lookup { keys: many, min: 1, max: k as u64 }, k };
            let got: serde_json::Value = serde_json::from_slice(&render(service, &batch).unwrap()).unwrap();
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
        let (table, _) =
            crate::ranking::Table::build([crate::ranking::ServiceSpec::new("s", vec!["a".to_string()])]).unwrap();
        let service = table.get("s").unwrap();
        let keys = Keys::Batch(["z", "a\"q", "z", "m"].iter().map(|&k| k.into()).collect());
        let plan = Plan { lookup: Lookup { keys, min: 1, max: 1 }, k: 1 };
        assert_eq!(render(service, &plan).unwrap(), br#"{"z":["a"],"a\"q":["a"],"m":["a"]}"#);
    }

    #[test]
    fn every_form_gives_the_same_lookup() {
        let want = Lookup { keys: Keys::One("ryans".into()), min: 1, max: 3 };
        assert_eq!(lookup(Fields::from_urlencoded(b"key=ryans&min=1&max=3")).unwrap(), want);
        assert_eq!(lookup(Fields::from_json(br#"{"key":"ryans","min":1,"max":3}"#)).unwrap(), want);
        assert_eq!(lookup(Fields::from_pairs([("key", "ryans"), ("min", "1"), ("max", "3")])).unwrap(), want);
    }

    #[test]
    fn defaults_min_1_and_max_min() {
        let l = lookup(Fields::from_urlencoded(b"key=a")).unwrap();
        assert_eq!((l.min, l.max), (1, 1));
        let l = lookup(Fields::from_urlencoded(b"key=a&min=2")).unwrap();
        assert_eq!((l.min, l.max), (2, 2));
        let l = lookup(Fields::from_json(br#"{"key":"a","max":4,"min":null}"#)).unwrap();
        assert_eq!((l.min, l.max), (1, 4));
    }

    #[test]
    fn body_wins_over_query() {
        let body = Fields::from_json(br#"{"key":"b","max":2}"#).unwrap();
        let query = Fields::from_urlencoded(b"key=q&min=2&max=5").unwrap();
        let l = body.or(query).into_lookup().unwrap();
        assert_eq!(l, Lookup { keys: Keys::One("b".into()), min: 2, max: 2 });
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let msg = |r: Result<Lookup, RequestError>| r.unwrap_err().to_string();
        assert_eq!(msg(lookup(Fields::from_urlencoded(b"min=1"))), "missing field `key`");
        assert_eq!(msg(lookup(Fields::from_urlencoded(b"key="))), "`key` must not be empty");
        assert_eq!(
            msg(lookup(Fields::from_urlencoded(b"key=a&min=-1"))),
            "`min` must be a non-negative integer, got \"-1\""
        );
        assert_eq!(
            msg(lookup(Fields::from_urlencoded(b"key=a&max=99999999999999999999"))),
            "`max` is too large, got \"99999999999999999999\""
        );
        assert_eq!(msg(lookup(Fields::from_urlencoded(b"key=a&min=3&max=1"))), "min (3) is greater than max (1)");
        assert!(msg(lookup(Fields::from_urlencoded(b"key=a&mx=1"))).contains("unknown field `mx`"));
        assert!(msg(lookup(Fields::from_urlencoded(b"key=a&key=b"))).contains("more than once"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","min":-1}"#)))
            .contains("`min` must be a non-negative integer, got -1"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","min":1.5}"#)))
            .contains("`min` must be a non-negative integer, got 1.5"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","max":1e30}"#))).contains("`max` is too large"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","max":"3"}"#))).contains("`max` as a non-negative integer"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":1}"#))).contains("invalid type"));
        assert!(msg(lookup(Fields::from_json(br#"[1]"#))).contains("must be an object"));
        assert!(msg(lookup(Fields::from_json(br#" ["ryans",null,1,3]"#))).contains("must be an object"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a""#))).starts_with("invalid JSON body"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","keys":["b"]}"#))).contains("not both"));
        assert!(msg(lookup(Fields::from_json(br#"{"keys":[]}"#))).contains("must not be empty"));
    }

    #[test]
    fn integral_floats_are_counts() {
        for body in [&br#"{"key":"a","max":1.0}"#[..], br#"{"key":"a","max":1e0}"#, br#"{"key":"a","max":10e-1}"#] {
            assert_eq!(lookup(Fields::from_json(body)).unwrap().max, 1, "{}", String::from_utf8_lossy(body));
        }
        let l = lookup(Fields::from_json(br#"{"key":"a","min":2.0,"max":18446744073709549568.0}"#)).unwrap();
        assert_eq!((l.min, l.max), (2, 18_446_744_073_709_549_568));
        assert!(Fields::from_json(br#"{"key":"a","max":1.8446744073709552e19}"#)
            .unwrap_err()
            .to_string()
            .contains("`max` is too large"));
        assert!(Fields::from_json(br#"{"key":"a","max":-0.5}"#).unwrap_err().to_string().contains("`max` must be"));
    }

    #[test]
    fn urlencoded_must_decode_to_utf8() {
        let f = Fields::from_urlencoded(b"key=a%2Fb+c&max=2").unwrap();
        assert_eq!(f.key.as_deref(), Some("a/b c"));
        assert!(matches!(Fields::from_urlencoded(b"key=plain").unwrap().key, Some(Cow::Borrowed("plain"))));
        assert_eq!(Fields::from_urlencoded(b"key=%zz").unwrap().key.as_deref(), Some("%zz"));
        assert_eq!(Fields::from_urlencoded(b"key=%C3%A9").unwrap().key.as_deref(), Some("é"));
        let err = Fields::from_urlencoded(b"key=%FF").unwrap_err().to_string();
        assert!(err.contains("field `key` is not valid UTF-8"), "{err}");
        assert!(Fields::from_urlencoded(b"k%FEy=a").is_err());
        assert!(Fields::from_urlencoded(b"key=\xff").is_err());
        assert_eq!(Fields::from_urlencoded(b"&&key=a&").unwrap().key.as_deref(), Some("a"));
    }

    #[test]
    fn path_segments_decode_fully() {
        assert_eq!(decode_path_segment("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(decode_path_segment("a%20b").as_deref(), Some("a b"));
        assert!(matches!(decode_path_segment("bar"), Some(Cow::Borrowed("bar"))));
        assert_eq!(decode_path_segment("%FF"), None);
        assert_eq!(decode_path_segment("%FE"), None);
    }

    #[test]
    fn answer_budget_is_checked_before_ranking() {
        let nodes: Vec<String> = (0..1000).map(|i| format!("n{i}")).collect();
        let (table, _) = Table::build([crate::ranking::ServiceSpec::new("s", nodes)]).unwrap();
        let s = table.get("s").unwrap();
        let f = |json: &'static str| Fields::from_json(json.as_bytes()).unwrap();
        // 3 keys x 1000 nodes (max is capped at the node count) = 3000.
        let err = plan(s, f(r#"{"keys":["a","b","c"],"max":18446744073709551615}"#), 2999).unwrap_err();
        assert_eq!(err, RequestError::AnswerTooLarge { keys: 3, per_key: 1000, total: 3000, limit: 2999 });
        assert!(err.to_string().contains("3 key(s) x 1000 node(s) per key = 3000 nodes, more than the limit of 2999"));
        assert!(plan(s, f(r#"{"keys":["a","b","c"],"max":18446744073709551615}"#), 3000).is_ok());
        assert!(answer(s, f(r#"{"key":"a","max":1001}"#), 999).is_err());
        let p = plan(s, f(r#"{"keys":["a","b"],"max":2}"#), 4).unwrap();
        assert_eq!(p.work(s), 2 * (1000 + 2 * ANSWER_NODE_WORK));
        assert_eq!(render(s, &p.clone().into_owned()).unwrap(), render(s, &p).unwrap());
    }

    #[test]
    fn batch_keys() {
        let l = lookup(Fields::from_json(br#"{"keys":["a","b"],"max":2}"#)).unwrap();
        assert_eq!(l.keys, Keys::Batch(vec!["a".into(), "b".into()]));
        let l = lookup(Fields::from_urlencoded(b"keys=a&keys=b")).unwrap();
        assert_eq!(l.keys, Keys::Batch(vec!["a".into(), "b".into()]));
        let many: Vec<String> = (0..=MAX_BATCH_KEYS).map(|i| i.to_string()).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "keys": many })).unwrap();
        assert!(lookup(Fields::from_json(&body)).unwrap_err().to_string().contains("too many keys"));
    }

    #[test]
    fn json_key_is_borrowed_when_it_has_no_escapes() {
        let f = Fields::from_json(br#"{"key":"plain"}"#).unwrap();
        assert!(matches!(f.key, Some(Cow::Borrowed("plain"))));
    }
}
