//! Decoding: the query string, urlencoded and multipart forms and JSON bodies, each read
//! strictly into the same [`Fields`], which [`Fields::into_lookup`] validates into one
//! [`Lookup`].
//!
//! Counts (`min`, `max`) are read exactly, never through a float: decimal digits only in
//! query strings and forms; in JSON any number token whose exact decimal value is a whole
//! number from 0 to 2^64 − 1 (`2`, `2.0`, `2e0`, `-0`), and nothing else (`2.0000000000000001`,
//! `1e-400`). A field of the wrong type is an error that names it.
//!
//! `exclude` repeats in query strings and forms like `keys` (a JSON array of strings in JSON);
//! `spread` is a string whose one accepted value is `zone`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Keys, Lookup, RequestError, MAX_BATCH_KEYS};
use crate::ranking::{LookupError, Spread};

/// The lookup fields as one source (query string or body) gave them; all optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "key")]
    pub key: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "keys")]
    pub keys: Option<Vec<Cow<'a, str>>>,
    #[serde(default, deserialize_with = "min")]
    pub min: Option<u64>,
    #[serde(default, deserialize_with = "max")]
    pub max: Option<u64>,
    #[serde(borrow, default, deserialize_with = "exclude")]
    pub exclude: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default, deserialize_with = "spread")]
    pub spread: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    /// Parses a JSON object body. Only an object: serde would otherwise also take an array and
    /// read its elements as the fields in declaration order. Malformed JSON is "invalid JSON
    /// body"; a well-formed body whose fields are wrong gets the field's own message.
    pub fn from_json(body: &'a [u8]) -> Result<Self, RequestError> {
        let start = body.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if start.is_some_and(|i| body[i] != b'{') {
            return Err(RequestError::invalid("invalid JSON body: must be an object, such as {\"key\": \"...\"}"));
        }
        serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => RequestError::invalid(e.to_string()),
            _ => RequestError::invalid(format!("invalid JSON body: {e}")),
        })
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
    /// `keys` and `exclude` may repeat; any other field may appear once.
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
                "exclude" => f.exclude.get_or_insert_with(Vec::new).push(value),
                "spread" => {
                    if f.spread.replace(value).is_some() {
                        return Err(twice());
                    }
                }
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
            exclude: self.exclude.or(lower.exclude),
            spread: self.spread.or(lower.spread),
        }
    }

    /// Validates: exactly one of `key`/`keys`, keys non-empty, `min` defaults to 1 and `max` to
    /// `min`, `min <= max`; `spread`, when given, is `zone`.
    pub fn into_lookup(self) -> Result<Lookup<'a>, RequestError> {
        let spread = match self.spread.as_deref() {
            None => Spread::None,
            Some("zone") => Spread::Zone,
            Some(other) => {
                return Err(RequestError::invalid(format!(
                    "`spread` must be \"zone\" (the one spread there is), got {:?}",
                    quoted(other)
                )))
            }
        };
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
        Ok(Lookup { keys, min, max, exclude: self.exclude.unwrap_or_default(), spread })
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

fn unknown_field(name: &str) -> RequestError {
    RequestError::invalid(format!(
        "unknown field `{name}`, expected one of `key`, `keys`, `min`, `max`, `exclude`, `spread`"
    ))
}

/// Longest piece of a client's value quoted back in an error message.
const QUOTED_MAX: usize = 40;

/// `s` as an error message quotes it: cut to [`QUOTED_MAX`] bytes (on a character boundary)
/// with `…` after, so that a megabyte value gives a short message.
fn quoted(s: &str) -> Cow<'_, str> {
    if s.len() <= QUOTED_MAX {
        return Cow::Borrowed(s);
    }
    let cut = (0..=QUOTED_MAX).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    Cow::Owned(format!("{}…", &s[..cut]))
}

/// Why a count was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountError {
    /// Not a whole number from 0 up: negative, a fraction, or not written as one.
    NotCount,
    /// A whole number above `u64::MAX`.
    TooLarge,
}

impl CountError {
    /// The message for field `name`, which was given as `got`.
    fn message(self, name: &str, got: impl fmt::Display) -> String {
        match self {
            CountError::NotCount => format!("`{name}` must be a non-negative integer, got {got}"),
            CountError::TooLarge => format!("`{name}` is too large, got {got}"),
        }
    }
}

/// Parses a count given as text (forms and query strings).
fn parse_count(name: &str, value: &str) -> Result<u64, RequestError> {
    count_from_digits(value).map_err(|e| RequestError::invalid(e.message(name, format_args!("{:?}", quoted(value)))))
}

/// A count written as decimal digits only: no sign (`u64::from_str` would take `+2`), no
/// spaces, no digits but ASCII `0`–`9`; leading zeros are allowed (`02` is 2).
fn count_from_digits(s: &str) -> Result<u64, CountError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CountError::NotCount);
    }
    // Only digits: the one error left is overflow.
    s.parse::<u64>().map_err(|_| CountError::TooLarge)
}

/// A JSON number token read exactly: a count when its decimal value is a whole number from 0
/// to `u64::MAX`, however it is written (`2`, `2.0`, `0.2e1`, `200e-2`, and `-0`, which is 0),
/// without going through a float, which would read `2.0000000000000001` as 2 and `1e-400` as 0.
fn count_from_json_number(token: &[u8]) -> Result<u64, CountError> {
    // The common case, plain digits that cannot overflow (u64::MAX has 20), is read directly:
    // the general path below is several times its cost, on every JSON lookup.
    if !token.is_empty() && token.len() < 20 && token.iter().all(u8::is_ascii_digit) {
        return Ok(token.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')));
    }
    let digits_len = |s: &[u8]| s.iter().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    let (negative, rest) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let (int, rest) = rest.split_at(digits_len(rest));
    let (frac, rest) = match rest.split_first() {
        Some((b'.', rest)) => rest.split_at(digits_len(rest)),
        _ => (&rest[..0], rest),
    };
    let exp: i64 = match rest.split_first() {
        None => 0,
        Some((b'e' | b'E', rest)) => {
            let (negative, digits) = match rest.split_first() {
                Some((b'-', digits)) => (true, digits),
                Some((b'+', digits)) => (false, digits),
                _ => (false, rest),
            };
            if digits.is_empty() || digits_len(digits) != digits.len() {
                return Err(CountError::NotCount);
            }
            // Saturates: an exponent past 10^18 is far beyond the digits a body can hold.
            let magnitude = digits.iter().fold(0i64, |n, &d| n.saturating_mul(10).saturating_add(i64::from(d - b'0')));
            if negative {
                -magnitude
            } else {
                magnitude
            }
        }
        Some(_) => return Err(CountError::NotCount),
    };
    if int.is_empty() {
        return Err(CountError::NotCount);
    }
    // The value is the significant digits (no leading or trailing zeros) x 10^scale.
    let all = || int.iter().chain(frac);
    let total = int.len() + frac.len();
    let leading = all().take_while(|&&d| d == b'0').count();
    if leading == total {
        return Ok(0);
    }
    let trailing = all().rev().take_while(|&&d| d == b'0').count();
    let significant = total - leading - trailing;
    // The lengths are at most a body's size, far below 2^62.
    let scale = exp.saturating_add(trailing as i64).saturating_sub(frac.len() as i64);
    if negative || scale < 0 {
        return Err(CountError::NotCount);
    }
    // u64::MAX has 20 digits.
    if (significant as i64).saturating_add(scale) > 20 {
        return Err(CountError::TooLarge);
    }
    all()
        .skip(leading)
        .take(significant)
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .and_then(|n| n.checked_mul(10u64.checked_pow(u32::try_from(scale).ok()?)?))
        .ok_or(CountError::TooLarge)
}

fn min<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    json_count("min", d)
}

fn max<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    json_count("max", d)
}

/// A JSON count: the raw token, read by [`count_from_json_number`]; null counts as absent.
/// The raw token rather than serde_json's number, which is an `f64` as soon as the token has a
/// fraction or an exponent (its exact form needs the `arbitrary_precision` feature, which
/// changes every number serde_json reads anywhere in the program).
fn json_count<'de, D: Deserializer<'de>>(name: &'static str, d: D) -> Result<Option<u64>, D::Error> {
    let token = <&'de RawValue>::deserialize(d)?.get();
    let wrong =
        |got: &str| -> D::Error { de::Error::custom(format!("`{name}` must be a non-negative integer, got {got}")) };
    match token.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => count_from_json_number(token.as_bytes())
            .map(Some)
            .map_err(|e| de::Error::custom(e.message(name, quoted(token)))),
        Some(b'n') => Ok(None),
        Some(b'"') => Err(wrong(&format!("string {}", quoted(token)))),
        Some(b't' | b'f') => Err(wrong(&format!("boolean `{token}`"))),
        Some(b'[') => Err(wrong("an array")),
        _ => Err(wrong("an object")),
    }
}

/// What a JSON value of the wrong type was, for an error message: `integer `5``, `null`,
/// `an array`.
struct Got<'a>(de::Unexpected<'a>);

impl fmt::Display for Got<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            de::Unexpected::Unit => f.write_str("null"),
            de::Unexpected::Seq => f.write_str("an array"),
            de::Unexpected::Map => f.write_str("an object"),
            de::Unexpected::Str(s) => write!(f, "string {:?}", quoted(s)),
            other => fmt::Display::fmt(&other, f),
        }
    }
}

/// A JSON string field, borrowed from the body when it has no escapes (serde's own
/// `Cow<str>` always copies inside an `Option`). Any other type is an error that says what the
/// field must be: `what` is "`key` must be a string" or "`keys` must be an array of strings".
struct Text {
    what: &'static str,
    /// For an element of `keys`: its index, which the error gives.
    index: Option<usize>,
}

impl Text {
    fn wrong<E: de::Error>(&self, got: de::Unexpected) -> E {
        match self.index {
            None => E::custom(format_args!("{}, got {}", self.what, Got(got))),
            Some(i) => E::custom(format_args!("{}; item {i} is {}", self.what, Got(got))),
        }
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(self.wrong(de::Unexpected::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(self.wrong(de::Unexpected::Signed(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(self.wrong(de::Unexpected::Unsigned(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(self.wrong(de::Unexpected::Float(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.wrong(de::Unexpected::Unit))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong(de::Unexpected::Seq))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong(de::Unexpected::Map))
    }
}

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `keys` or `exclude` (what it must be: [`KEYS_MUST`] or [`EXCLUDE_MUST`]): an array of
/// [`Text`]s; anything else is an error that names the field.
struct Texts(&'static str);

impl<'de> Visitor<'de> for Texts {
    type Value = Vec<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // No capacity from the client: serde_json gives no length, and it would be its number.
        let mut keys = Vec::new();
        while let Some(key) = seq.next_element_seed(Text { what: self.0, index: Some(keys.len()) })? {
            keys.push(key);
        }
        Ok(keys)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.visit_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Err(Text { what: self.0, index: None }.wrong(de::Unexpected::Str(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(Text { what: self.0, index: None }.wrong(de::Unexpected::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(Text { what: self.0, index: None }.wrong(de::Unexpected::Signed(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(Text { what: self.0, index: None }.wrong(de::Unexpected::Unsigned(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(Text { what: self.0, index: None }.wrong(de::Unexpected::Float(v)))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(Text { what: self.0, index: None }.wrong(de::Unexpected::Map))
    }
}

const KEY_MUST: &str = "`key` must be a string";
const KEYS_MUST: &str = "`keys` must be an array of strings";
const EXCLUDE_MUST: &str = "`exclude` must be an array of strings";
const SPREAD_MUST: &str = "`spread` must be a string";

/// `key`: null counts as absent.
fn key<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    d.deserialize_option(Nullable(Text { what: KEY_MUST, index: None }))
}

/// `keys`: null counts as absent.
fn keys<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cow<'a, str>>>, D::Error> {
    d.deserialize_option(Nullable(Seq(KEYS_MUST)))
}

/// `exclude`: null counts as absent.
fn exclude<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cow<'a, str>>>, D::Error> {
    d.deserialize_option(Nullable(Seq(EXCLUDE_MUST)))
}

/// `spread`: null counts as absent.
fn spread<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    d.deserialize_option(Nullable(Text { what: SPREAD_MUST, index: None }))
}

/// An array of strings, as [`Texts`] reads it.
struct Seq(&'static str);

impl<'de> DeserializeSeed<'de> for Seq {
    type Value = Vec<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(Texts(self.0))
    }
}

/// A field where null means absent, and any other value goes to the seed.
struct Nullable<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Nullable<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(f: Result<Fields, RequestError>) -> Result<Lookup, RequestError> {
        f?.into_lookup()
    }

    fn msg<T: fmt::Debug>(r: Result<T, RequestError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn exclude_and_spread_in_every_form() {
        let want = Lookup {
            keys: Keys::One("k".into()),
            min: 1,
            max: 2,
            exclude: vec!["web-0".into(), "web 3".into()],
            spread: Spread::Zone,
        };
        let query = b"key=k&max=2&exclude=web-0&exclude=web+3&spread=zone";
        assert_eq!(lookup(Fields::from_urlencoded(query)).unwrap(), want);
        let json = br#"{"key":"k","max":2,"exclude":["web-0","web 3"],"spread":"zone"}"#;
        assert_eq!(lookup(Fields::from_json(json)).unwrap(), want);
        let pairs = [("key", "k"), ("max", "2"), ("exclude", "web-0"), ("exclude", "web 3"), ("spread", "zone")];
        assert_eq!(lookup(Fields::from_pairs(pairs)).unwrap(), want);
        // The body's list wins over the query string's, as for `keys`.
        let f = Fields::from_request(b"exclude=a&spread=zone", Body::Json(br#"{"key":"k","exclude":["b"]}"#)).unwrap();
        assert_eq!((f.exclude.unwrap(), f.spread.unwrap()), (vec![Cow::Borrowed("b")], Cow::Borrowed("zone")));
        // Null is absent.
        let l = lookup(Fields::from_json(br#"{"key":"k","exclude":null,"spread":null}"#)).unwrap();
        assert_eq!((l.exclude.len(), l.spread), (0, Spread::None));
    }

    #[test]
    fn bad_exclude_and_spread_are_named() {
        let json = |b: &str| msg(lookup(Fields::from_json(b.as_bytes())));
        assert!(json(r#"{"key":"k","exclude":"web-0"}"#).contains("`exclude` must be an array of strings"));
        assert!(json(r#"{"key":"k","exclude":[1]}"#).contains("`exclude` must be an array of strings; item 0 is"));
        assert!(json(r#"{"key":"k","spread":["zone"]}"#).contains("`spread` must be a string"));
        let m = json(r#"{"key":"k","spread":"rack"}"#);
        assert_eq!(m, "`spread` must be \"zone\" (the one spread there is), got \"rack\"");
        assert!(msg(lookup(Fields::from_urlencoded(b"key=k&spread=zone&spread=zone"))).contains("more than once"));
        assert!(msg(lookup(Fields::from_urlencoded(b"key=k&spread="))).contains("`spread` must be \"zone\""));
    }

    #[test]
    fn every_form_gives_the_same_lookup() {
        let want = Lookup { keys: Keys::One("ryans".into()), min: 1, max: 3, exclude: vec![], spread: Spread::None };
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
        assert_eq!(l, Lookup { keys: Keys::One("b".into()), min: 2, max: 2, exclude: vec![], spread: Spread::None });
    }

    #[test]
    fn errors_say_what_is_wrong() {
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
            .starts_with("`min` must be a non-negative integer, got -1"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","min":1.5}"#)))
            .starts_with("`min` must be a non-negative integer, got 1.5"));
        assert!(
            msg(lookup(Fields::from_json(br#"{"key":"a","max":1e30}"#))).starts_with("`max` is too large, got 1e30")
        );
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","mx":1}"#))).starts_with("unknown field `mx`"));
        assert!(msg(lookup(Fields::from_json(br#"[1]"#))).contains("must be an object"));
        assert!(msg(lookup(Fields::from_json(br#" ["ryans",null,1,3]"#))).contains("must be an object"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a""#))).starts_with("invalid JSON body"));
        assert!(msg(lookup(Fields::from_json(br#"{"key":"a","keys":["b"]}"#))).contains("not both"));
        assert!(msg(lookup(Fields::from_json(br#"{"keys":[]}"#))).contains("must not be empty"));
    }

    #[test]
    fn a_json_field_of_the_wrong_type_is_named() {
        for (body, want) in [
            (r#"{"key":5}"#, "`key` must be a string, got integer `5`"),
            (r#"{"key":1.5}"#, "`key` must be a string, got floating point `1.5`"),
            (r#"{"key":true}"#, "`key` must be a string, got boolean `true`"),
            (r#"{"key":["a"]}"#, "`key` must be a string, got an array"),
            (r#"{"key":{"a":1}}"#, "`key` must be a string, got an object"),
            (r#"{"keys":"a"}"#, "`keys` must be an array of strings, got string \"a\""),
            (r#"{"keys":5}"#, "`keys` must be an array of strings, got integer `5`"),
            (r#"{"keys":{}}"#, "`keys` must be an array of strings, got an object"),
            (r#"{"keys":["a",5]}"#, "`keys` must be an array of strings; item 1 is integer `5`"),
            (r#"{"keys":[null]}"#, "`keys` must be an array of strings; item 0 is null"),
            (r#"{"keys":[["a"]]}"#, "`keys` must be an array of strings; item 0 is an array"),
            (r#"{"key":"a","min":"1"}"#, "`min` must be a non-negative integer, got string \"1\""),
            (r#"{"key":"a","max":false}"#, "`max` must be a non-negative integer, got boolean `false`"),
            (r#"{"key":"a","max":[1]}"#, "`max` must be a non-negative integer, got an array"),
            (r#"{"key":"a","min":{}}"#, "`min` must be a non-negative integer, got an object"),
        ] {
            let got = msg(Fields::from_json(body.as_bytes()));
            assert!(got.starts_with(want), "{body}: {got:?}");
            // Where it is, as serde_json says it.
            assert!(got.contains(" at line 1 column "), "{body}: {got:?}");
        }
        // A long string is quoted back cut short.
        let long = format!(r#"{{"keys":"{}"}}"#, "x".repeat(10_000));
        assert!(msg(Fields::from_json(long.as_bytes())).len() < 200);
    }

    #[test]
    fn counts_in_forms_are_decimal_digits_only() {
        let count = |value: &str| Fields::from_pairs([("max", value)]).map(|f| f.max.unwrap_or(u64::MAX));
        for (value, want) in [
            ("2", Ok(2)),
            ("0", Ok(0)),
            ("02", Ok(2)),
            ("0000000000000000000000000018446744073709551615", Ok(u64::MAX)),
            ("18446744073709551616", Err("`max` is too large, got \"18446744073709551616\"")),
            ("+2", Err("`max` must be a non-negative integer, got \"+2\"")),
            ("-0", Err("`max` must be a non-negative integer, got \"-0\"")),
            (" 2", Err("`max` must be a non-negative integer, got \" 2\"")),
            ("2 ", Err("`max` must be a non-negative integer, got \"2 \"")),
            ("0x2", Err("`max` must be a non-negative integer, got \"0x2\"")),
            ("2.0", Err("`max` must be a non-negative integer, got \"2.0\"")),
            ("1e0", Err("`max` must be a non-negative integer, got \"1e0\"")),
            ("٢", Err("`max` must be a non-negative integer, got \"٢\"")),
            ("", Err("`max` must be a non-negative integer, got \"\"")),
        ] {
            assert_eq!(count(value).map_err(|e| e.to_string()), want.map_err(str::to_string), "{value:?}");
        }
        // Through percent-decoding: `%2B2` is `+2`, `+2` a space and 2.
        assert_eq!(msg(Fields::from_urlencoded(b"max=%2B2")), "`max` must be a non-negative integer, got \"+2\"");
        assert_eq!(msg(Fields::from_urlencoded(b"max=+2")), "`max` must be a non-negative integer, got \" 2\"");
        assert_eq!(msg(Fields::from_urlencoded(b"min=%D9%A2")), "`min` must be a non-negative integer, got \"٢\"");
        assert_eq!(Fields::from_urlencoded(b"min=%32").unwrap().min, Some(2));
        // A huge value is quoted back cut short.
        let long = format!("max={}", "9".repeat(100_000));
        assert!(msg(Fields::from_urlencoded(long.as_bytes())).len() < 100);
    }

    #[test]
    fn json_counts_are_read_exactly() {
        let count = |token: &str| {
            Fields::from_json(format!(r#"{{"max":{token}}}"#).as_bytes()).map(|f| f.max).map_err(|e| e.to_string())
        };
        for (token, want) in [
            ("1", Some(1)),
            ("1234567", Some(1_234_567)),
            // The longest that the digits-only fast path reads; 20 digits take the general path.
            ("9999999999999999999", Some(9_999_999_999_999_999_999)),
            ("1.0", Some(1)),
            ("1e0", Some(1)),
            ("1E+0", Some(1)),
            ("10e-1", Some(1)),
            ("0.2e1", Some(2)),
            ("200e-2", Some(2)),
            ("0", Some(0)),
            ("-0", Some(0)),
            ("-0.0e-5", Some(0)),
            ("0e999999999999999999999999", Some(0)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551615.000", Some(u64::MAX)),
            ("1844674407370955161.5e1", Some(u64::MAX)),
            ("18446744073709549568.0", Some(18_446_744_073_709_549_568)),
            ("1e19", Some(10_000_000_000_000_000_000)),
            ("null", None),
        ] {
            assert_eq!(count(token), Ok(want), "{token}");
        }
        for token in ["1.5", "2.0000000000000001", "1e-400", "1e-99999999999999999999", "-1", "-1.0", "-1e400", "0.5"] {
            let got = count(token).unwrap_err();
            assert!(got.starts_with(&format!("`max` must be a non-negative integer, got {token}")), "{token}: {got}");
        }
        for token in ["18446744073709551616", "1e20", "1e400", "1.8446744073709552e19", "1e99999999999999999999"] {
            let got = count(token).unwrap_err();
            assert!(got.starts_with(&format!("`max` is too large, got {token}")), "{token}: {got}");
        }
        // Zeros a megabyte long still read as the value they spell.
        let long = format!("1{}e-100000", "0".repeat(100_000));
        assert_eq!(count(&long), Ok(Some(1)));
        let long = format!("0.{}1e100001", "0".repeat(100_000));
        assert_eq!(count(&long), Ok(Some(1)));
        assert!(count(&format!("1{}", "0".repeat(100_000))).unwrap_err().len() < 200);
    }

    /// The exact value of a JSON number token, by moving its decimal point in the digit string
    /// (no arithmetic): `Some` of the integer's decimal digits when it is whole, without leading
    /// zeros ("" for zero).
    fn whole_digits(negative: bool, int: &str, frac: &str, exp: i64) -> Option<(bool, String)> {
        let digits = format!("{int}{frac}");
        let point = int.len() as i64 + exp;
        let (whole, fraction) = if point <= 0 {
            (String::new(), format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)))
        } else if point as usize >= digits.len() {
            (format!("{digits}{}", "0".repeat(point as usize - digits.len())), String::new())
        } else {
            (digits[..point as usize].to_string(), digits[point as usize..].to_string())
        };
        fraction.bytes().all(|b| b == b'0').then(|| (negative, whole.trim_start_matches('0').to_string()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, ..Default::default() })]

        /// Any JSON number token is accepted as a count iff its exact decimal value is a whole
        /// number from 0 to u64::MAX, and then as that number.
        #[test]
        fn a_json_number_is_a_count_iff_its_exact_value_is_one(
            negative in proptest::bool::weighted(0.2),
            int in "0|[1-9][0-9]{0,24}|[1-9]0{0,30}",
            frac in proptest::option::of("[0-9]{1,30}|0{1,5}"),
            exp in proptest::option::of((proptest::sample::select(vec!["e", "E"]),
                proptest::sample::select(vec!["", "+", "-"]), -40i64..40)),
        ) {
            let mut token = format!("{}{int}", if negative { "-" } else { "" });
            if let Some(frac) = &frac {
                token += &format!(".{frac}");
            }
            let mut e = 0;
            if let Some((letter, sign, magnitude)) = exp {
                let magnitude = magnitude.abs();
                token += &format!("{letter}{sign}{magnitude}");
                e = if sign == "-" { -magnitude } else { magnitude };
            }
            // The token is JSON, as serde_json reads it.
            proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&token).is_ok(), "{}", token);
            let want = match whole_digits(negative, &int, frac.as_deref().unwrap_or(""), e) {
                Some((_, digits)) if digits.is_empty() => Ok(0),
                Some((false, digits)) => digits.parse::<u64>().map_err(|_| CountError::TooLarge),
                Some((true, _)) | None => Err(CountError::NotCount),
            };
            proptest::prop_assert_eq!(count_from_json_number(token.as_bytes()), want, "{}", &token);
            let body = format!(r#"{{"key":"k","max":{token}}}"#);
            let got = Fields::from_json(body.as_bytes()).map(|f| f.max);
            proptest::prop_assert_eq!(got.is_ok(), want.is_ok(), "{}", &token);
            if let Ok(n) = want {
                proptest::prop_assert_eq!(got.unwrap(), Some(n));
            }
        }

        /// Digits only, and then exactly what `u64` parses; nothing else.
        #[test]
        fn a_form_count_is_digits_only(value in "[0-9]{0,22}|[-+ 0-9a-fx.e٢]{0,6}") {
            let got = count_from_digits(&value);
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                proptest::prop_assert_eq!(got, Err(CountError::NotCount));
            } else {
                proptest::prop_assert_eq!(got, value.parse::<u64>().map_err(|_| CountError::TooLarge));
            }
        }
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
    fn batch_keys() {
        let l = lookup(Fields::from_json(br#"{"keys":["a","b"],"max":2}"#)).unwrap();
        assert_eq!(l.keys, Keys::Batch(vec!["a".into(), "b".into()]));
        let l = lookup(Fields::from_urlencoded(b"keys=a&keys=b")).unwrap();
        assert_eq!(l.keys, Keys::Batch(vec!["a".into(), "b".into()]));
        let many: Vec<String> = (0..=MAX_BATCH_KEYS).map(|i| i.to_string()).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "keys": many })).unwrap();
        assert!(lookup(Fields::from_json(&body)).unwrap_err().to_string().contains("too many keys"));
        assert_eq!(Fields::from_json(br#"{"keys":null}"#).unwrap().keys, None);
    }

    #[test]
    fn json_keys_are_borrowed_when_they_have_no_escapes() {
        let f = Fields::from_json(br#"{"key":"plain"}"#).unwrap();
        assert!(matches!(f.key, Some(Cow::Borrowed("plain"))));
        let f = Fields::from_json(br#"{"keys":["plain","a\"b"]}"#).unwrap();
        let keys = f.keys.unwrap();
        assert!(matches!(keys[0], Cow::Borrowed("plain")));
        assert_eq!(keys[1], "a\"b");
    }
}
