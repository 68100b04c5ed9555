//! consul-template, emulated: a Go text/template engine (gotmpl) executes a template with
//! consul-template's functions stubbed over a fake Consul catalog.
//!
//! The stubs follow consul-template's source, not a simplification of it: `services` returns the
//! catalog sorted by name, `service` parses its argument with consul-template's query grammar
//! (`tag.name@dc~near|filter`, failing on anything else) and returns only passing instances
//! sorted by node then ID with `.Address` falling back to the node's address, and `toJSON` escapes
//! strings exactly as Go's `json.Marshal` does; `env` reads a given environment (unset: ""), and
//! `contains V LIST` is consul-template's (V is an element of LIST). Fields are looked up with `missingkey=error`, so a
//! field that consul-template's structs lack fails here as it would there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gotmpl::{MissingKey, Template, TemplateError, Value};

/// The repository's template, services.toml.tmpl.
pub const TEMPLATE: &str = include_str!("../../../services.toml.tmpl");

/// One registered instance of a service.
#[derive(Clone)]
pub struct Instance {
    pub node: &'static str,
    pub node_address: &'static str,
    /// The service's own address; empty means "use the node's".
    pub service_address: &'static str,
    pub id: &'static str,
    pub port: i64,
    pub tags: &'static [&'static str],
    /// Aggregated health: passing, warning or critical.
    pub status: &'static str,
    /// `Weights.Passing` (Consul's default is 1).
    pub weight: i64,
}

pub fn inst(node: &'static str, address: &'static str, port: i64) -> Instance {
    Instance {
        node,
        node_address: address,
        service_address: "",
        id: node,
        port,
        tags: &[],
        status: "passing",
        weight: 1,
    }
}

impl Instance {
    pub fn status(mut self, status: &'static str) -> Self {
        self.status = status;
        self
    }
    pub fn service_address(mut self, a: &'static str) -> Self {
        self.service_address = a;
        self
    }
    pub fn id(mut self, id: &'static str) -> Self {
        self.id = id;
        self
    }
    pub fn tags(mut self, tags: &'static [&'static str]) -> Self {
        self.tags = tags;
        self
    }
    pub fn weight(mut self, weight: i64) -> Self {
        self.weight = weight;
        self
    }
}

/// A fake Consul catalog: service name -> instances.
#[derive(Clone, Default)]
pub struct Catalog(pub BTreeMap<String, Vec<Instance>>);

impl Catalog {
    pub fn with(mut self, name: &str, instances: Vec<Instance>) -> Self {
        self.0.insert(name.to_string(), instances);
        self
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(Arc::new(entries.into_iter().map(|(k, v)| (k.into(), v)).collect()))
}

fn list(items: Vec<Value>) -> Value {
    Value::List(items.into())
}

fn exec_err(msg: String) -> TemplateError {
    TemplateError::Exec(msg)
}

fn str_arg<'a>(f: &str, args: &'a [Value], i: usize) -> Result<&'a str, TemplateError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        other => Err(exec_err(format!("{f}: argument {i} must be a string, got {other:?}"))),
    }
}

/// consul-template's `HealthServiceQueryRe` (dependency/dependency.go and health_service.go):
/// tagRe + serviceNameRe + dcRe + nearRe + filterRe, anchored.
pub fn health_service_query_re() -> regex::Regex {
    regex::Regex::new(concat!(
        r"\A",
        r"((?P<tag>[[:word:]=:\.\-_]+)\.)?",
        r"(?P<name>[[:word:]\-_]+)",
        r"(@(?P<dc>[[:word:]\.\-_]+))?",
        r"(~(?P<near>[[:word:]\.\-_]+))?",
        r"(\|(?P<filter>[[:word:]\,]+))?",
        r"\z"
    ))
    .unwrap()
}

/// What the template asked `service` for: (raw query, parsed tag, parsed name).
pub type Queries = Arc<Mutex<Vec<(String, String, String)>>>;

/// Go's `json.Marshal` for the values a template can hand it (HTML-safe escaping, as
/// consul-template's `toJSON` uses).
pub fn go_json(v: &Value, out: &mut String) -> Result<(), TemplateError> {
    match v {
        Value::String(s) => go_json_string(s, out),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Uint(u) => out.push_str(&u.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Nil => out.push_str("null"),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(item, out)?;
            }
            out.push('}');
        }
        other => return Err(exec_err(format!("toJSON: unsupported value {other:?}"))),
    }
    Ok(())
}

/// encoding/json's appendString with escapeHTML (Go 1.22+, which writes \b and \f short).
pub fn go_json_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0xf] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            // Everything else, U+007F (DEL) included, is written raw.
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The template with consul-template's functions stubbed over `catalog`; queries made through
/// `service` are recorded in the returned list.
pub fn template_for(src: &str, catalog: &Catalog) -> (Template, Queries) {
    template_in(src, catalog, &[])
}

/// [`template_for`] with consul-template's environment (what `env` reads).
pub fn template_in(src: &str, catalog: &Catalog, environment: &[(&str, &str)]) -> (Template, Queries) {
    let environment: BTreeMap<String, String> =
        environment.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let queries: Queries = Arc::default();
    let services_catalog = catalog.clone();
    let service_catalog = catalog.clone();
    let recorded = queries.clone();
    let query_re = health_service_query_re();
    let t = Template::new("services.toml.tmpl")
        .missing_key(MissingKey::Error)
        // services "@dc": every catalog service as a CatalogSnippet {Name, Tags}, by name.
        .func("services", move |args| {
            if args.len() > 1 {
                return Err(exec_err("services: expected 0 or 1 arguments".into()));
            }
            let snippets = services_catalog
                .0
                .iter()
                .map(|(name, instances)| {
                    let mut tags: Vec<&str> = instances.iter().flat_map(|i| i.tags).copied().collect();
                    tags.sort_unstable();
                    tags.dedup();
                    map(vec![("Name", s(name)), ("Tags", list(tags.into_iter().map(s).collect()))])
                })
                .collect();
            Ok(list(snippets))
        })
        // service "tag.name@dc~near|filter" ["filter"]: healthy instances as HealthService.
        .func("service", move |args| {
            let parts = (0..args.len()).map(|i| str_arg("service", args, i)).collect::<Result<Vec<_>, _>>()?;
            if parts.is_empty() || parts[0].is_empty() {
                return Ok(list(vec![]));
            }
            let query = parts.join("|");
            let caps = query_re
                .captures(&query)
                .ok_or_else(|| exec_err(format!("health.service: invalid format: {query:?}")))?;
            let get = |n: &str| caps.name(n).map_or("", |m| m.as_str()).to_string();
            let (tag, name, filter) = (get("tag"), get("name"), get("filter"));
            recorded.lock().unwrap().push((query.clone(), tag.clone(), name.clone()));
            let filters: Vec<&str> = if filter.is_empty() { vec!["passing"] } else { filter.split(',').collect() };
            let mut found: Vec<&Instance> =
                service_catalog.0.get(&name).map(|v| v.iter().collect()).unwrap_or_default();
            found.retain(|i| {
                (tag.is_empty() || i.tags.contains(&tag.as_str()))
                    && filters.iter().any(|f| *f == "any" || *f == i.status)
            });
            found.sort_by(|a, b| (a.node, a.id).cmp(&(b.node, b.id)));
            let entries = found
                .into_iter()
                .map(|i| {
                    let address = if i.service_address.is_empty() { i.node_address } else { i.service_address };
                    let empty = || Value::Map(Arc::default());
                    map(vec![
                        ("Node", s(i.node)),
                        ("NodeID", s("")),
                        ("NodeAddress", s(i.node_address)),
                        ("NodeTaggedAddresses", empty()),
                        ("NodeMeta", empty()),
                        ("ServiceMeta", empty()),
                        ("Address", s(address)),
                        ("ServiceTaggedAddresses", empty()),
                        ("ID", s(i.id)),
                        ("Name", s(&name)),
                        ("Tags", list(i.tags.iter().map(|t| s(t)).collect())),
                        ("Checks", list(vec![])),
                        ("Status", s(i.status)),
                        ("Port", Value::Int(i.port)),
                        // Only passing instances are returned, but Warning is there too.
                        ("Weights", map(vec![("Passing", Value::Int(i.weight)), ("Warning", Value::Int(1))])),
                    ])
                })
                .collect();
            Ok(list(entries))
        })
        .func("toJSON", |args| {
            if args.len() != 1 {
                return Err(exec_err("toJSON: expected 1 argument".into()));
            }
            let mut out = String::new();
            go_json(&args[0], &mut out)?;
            Ok(s(&out))
        })
        // env NAME: the variable's value, "" when unset.
        .func("env", move |args| {
            if args.len() != 1 {
                return Err(exec_err("env: expected 1 argument".into()));
            }
            Ok(s(environment.get(str_arg("env", args, 0)?).map_or("", String::as_str)))
        })
        // contains V LIST: whether V is an element of LIST (consul-template's `in LIST V`).
        .func("contains", |args| {
            if args.len() != 2 {
                return Err(exec_err("contains: expected 2 arguments".into()));
            }
            match &args[1] {
                Value::List(items) => Ok(Value::Bool(
                    items.iter().any(|i| matches!((i, &args[0]), (Value::String(a), Value::String(b)) if a == b)),
                )),
                other => Err(exec_err(format!("contains: argument 1 must be a list, got {other:?}"))),
            }
        })
        // regexMatch RE S (Go's regexp.MatchString: unanchored).
        .func("regexMatch", |args| {
            if args.len() != 2 {
                return Err(exec_err("regexMatch: expected 2 arguments".into()));
            }
            let re =
                regex::Regex::new(str_arg("regexMatch", args, 0)?).map_err(|e| exec_err(format!("regexMatch: {e}")))?;
            Ok(Value::Bool(re.is_match(str_arg("regexMatch", args, 1)?)))
        })
        // replaceAll FROM TO S.
        .func("replaceAll", |args| {
            if args.len() != 3 {
                return Err(exec_err("replaceAll: expected 3 arguments".into()));
            }
            let (f, t, x) =
                (str_arg("replaceAll", args, 0)?, str_arg("replaceAll", args, 1)?, str_arg("replaceAll", args, 2)?);
            Ok(s(&x.replace(f, t)))
        })
        .parse(src)
        .unwrap_or_else(|e| panic!("template does not parse: {e}"));
    (t, queries)
}

pub fn render_with(src: &str, catalog: &Catalog) -> Result<(String, Queries), TemplateError> {
    let (t, queries) = template_for(src, catalog);
    let out = t.execute_to_string(&Value::Nil)?;
    Ok((out, queries))
}

pub fn render(catalog: &Catalog) -> String {
    render_with(TEMPLATE, catalog).unwrap_or_else(|e| panic!("template failed: {e}")).0
}

/// The repository's template rendered over `catalog` in consul-template's `environment`, with
/// the `service` queries it made.
pub fn render_in(catalog: &Catalog, environment: &[(&str, &str)]) -> (String, Queries) {
    let (t, queries) = template_in(TEMPLATE, catalog, environment);
    let out = t.execute_to_string(&Value::Nil).unwrap_or_else(|e| panic!("template failed: {e}"));
    (out, queries)
}
