//! The request boundary: every way a client can ask for a lookup (query string, urlencoded form,
//! multipart form, JSON) becomes one [`Fields`], then one validated [`Lookup`], and [`answer`]
//! turns that into the answer's JSON bytes. Every way it can go wrong is a [`RequestError`].
//!
//! Nothing here knows about actix: the HTTP layer (`crate::http`) feeds it the query string and
//! the body it read, and maps `RequestError` to a status; the offline `keyrouter lookup` command
//! calls the same [`answer_in`], so both give the same bytes for the same table.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::Deserialize;

use crate::ranking::{LookupError, Service, Table};

/// Largest number of keys in one batch lookup.
pub const MAX_BATCH_KEYS: usize = 10_000;

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

/// Everything that can go wrong with a request; `crate::http` gives each its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("unsupported Content-Type {0:?}: send application/json, application/x-www-form-urlencoded, multipart/form-data or a query string")]
    UnsupportedMediaType(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("query string is longer than {limit} bytes; send large lookups as a body")]
    QueryTooLong { limit: usize },
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
    #[serde(default, deserialize_with = "count")]
    pub min: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub max: Option<u64>,
}

impl<'a> Fields<'a> {
    /// Parses a JSON object body.
    pub fn from_json(body: &'a [u8]) -> Result<Self, RequestError> {
        serde_json::from_slice(body).map_err(|e| RequestError::invalid(format!("invalid JSON body: {e}")))
    }

    /// Parses an urlencoded string (a query string or a form body).
    pub fn from_urlencoded(input: &'a [u8]) -> Result<Self, RequestError> {
        Self::from_pairs(form_urlencoded::parse(input))
    }

    /// Builds fields from name/value pairs (query string, urlencoded and multipart forms).
    /// `keys` may repeat; any other field may appear once.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self, RequestError>
    where
        N: AsRef<str>,
        V: Into<Cow<'a, str>>,
    {
        let mut f = Fields::default();
        for (name, value) in pairs {
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
pub fn answer_in(table: &Table, name: &str, fields: Fields) -> Result<Vec<u8>, RequestError> {
    let service = table.get(name).ok_or_else(|| RequestError::UnknownService(name.to_string()))?;
    answer(service, fields)
}

/// Validates the fields and ranks: the one path from any input form to an answer's JSON.
pub fn answer(service: &Service, fields: Fields) -> Result<Vec<u8>, RequestError> {
    let lookup = fields.into_lookup()?;
    let k = service.answer_len(lookup.min, lookup.max)?;
    let mut nodes = Vec::with_capacity(k);
    match &lookup.keys {
        Keys::One(key) => {
            service.rank_into(key, k, &mut nodes);
            serde_json::to_vec(&nodes)
        }
        Keys::Batch(keys) => {
            let mut out = Vec::with_capacity(keys.len() * (16 + 24 * k));
            let mut ser = serde_json::Serializer::new(&mut out);
            let mut seen = HashSet::with_capacity(keys.len());
            (|| {
                let mut map = ser.serialize_map(None)?;
                for key in keys.iter().map(|k| k.as_ref()).filter(|k| seen.insert(*k)) {
                    nodes.clear();
                    service.rank_into(key, k, &mut nodes);
                    map.serialize_entry(key, &nodes)?;
                }
                map.end()
            })()
            .map(|()| out)
        }
    }
    .map_err(|e| RequestError::Encode(e.to_string()))
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

/// A JSON count: a non-negative integer that fits in 64 bits. Null counts as absent.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative integer")
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
            u64::try_from(v).map(Some).map_err(|_| E::custom(format!("must be a non-negative integer, got {v}")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.fract() == 0.0 && v >= 0.0 {
                Err(E::custom(format!("is too large, got {v}")))
            } else {
                Err(E::custom(format!("must be a non-negative integer, got {v}")))
            }
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(f: Result<Fields, RequestError>) -> Result<Lookup, RequestError> {
        f?.into_lookup()
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
            .contains("must be a non-negative integer, got -1"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","min":1.5}"#))).contains("non-negative integer"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","max":1e30}"#))).contains("too large"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","max":"3"}"#))).contains("non-negative integer"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":1}"#))).contains("invalid type"));
        assert!(msg(lookup(Fields::from_json(br#"[1]"#))).starts_with("invalid JSON body"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a""#))).starts_with("invalid JSON body"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","keys":["b"]}"#))).contains("not both"));
        assert!(msg(lookup(Fields::from_json(br#"{"keys":[]}"#))).contains("must not be empty"));
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
