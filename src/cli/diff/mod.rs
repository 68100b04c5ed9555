//! `keyrouter diff OLD NEW`: what a new services file changes, before it is served.
//!
//! Per service added, removed or changed: the nodes added, removed, re-weighted and
//! re-addressed (same Id, new address: it keeps its keys) and re-zoned, both fingerprints, and how many keys move ([`crate::impact`]). With `--keys FILE`, every listed key
//! whose answer changes, as JSON lines. Exit status like diff(1): 0 same table, 1 differences,
//! 2 errors. The `--keys` engine is [`keys`].

mod keys;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::cli::DiffFormat;
use crate::impact::{self, ServiceImpact, Share};
use crate::logging::count;
use crate::ranking::{self, fingerprint_hex, Service, Table};
use crate::table::config::{self, ConfigError};

/// Longest line accepted in a `--keys` file, in bytes.
pub const MAX_KEY_LINE: u64 = 1024 * 1024;

/// What `keyrouter diff` was asked.
#[derive(Debug, Clone)]
pub struct DiffArgs {
    pub old: PathBuf,
    pub new: PathBuf,
    pub replicas: Option<usize>,
    pub keys: Option<PathBuf>,
    pub format: DiffFormat,
    pub samples: usize,
    pub max_services_bytes: u64,
}

/// Why `keyrouter diff` could not answer (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    SelfCheck(#[from] ranking::SelfCheckError),
    /// One message per file that failed, each as `check` prints it.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    #[error("{path}: cannot read keys: {source}")]
    KeysRead { path: String, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    KeysLine { path: String, line: u64, message: String },
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

/// Runs `keyrouter diff`; prints the error (if any) and maps the outcome to diff(1)'s status.
pub fn run(args: &DiffArgs) -> ExitCode {
    match diff(args) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            for line in e.to_string().lines() {
                let _ = writeln!(std::io::stderr(), "keyrouter: error: {line}");
            }
            ExitCode::from(2)
        }
    }
}

/// Whether the files differ.
fn diff(args: &DiffArgs) -> Result<bool, DiffError> {
    ranking::self_check()?;
    let old = config::load_limited(&args.old, args.max_services_bytes);
    let new = config::load_limited(&args.new, args.max_services_bytes);
    let (old, new) = match (old, new) {
        (Ok(old), Ok(new)) => (old.table, new.table),
        (old, new) => return Err(DiffError::Config(old.err().into_iter().chain(new.err()).collect())),
    };
    let changes = changes(&old, &new, args.replicas, args.samples);
    let summary = match args.format {
        DiffFormat::Text => text(args, &old, &new, &changes),
        DiffFormat::Json => format!("{}\n", json_summary(args, &old, &new, &changes)),
    };
    // With --keys, stdout is exactly the list of keys that move; the summary goes to stderr.
    match &args.keys {
        None => std::io::stdout().write_all(summary.as_bytes()).map_err(DiffError::Output)?,
        Some(path) => {
            let _ = std::io::stderr().write_all(summary.as_bytes());
            keys::moved_keys(path, &old, &new, &changes, args.replicas.unwrap_or(1))?;
        }
    }
    // Two empty tables on different algorithms answer alike, but the files do differ.
    Ok(!changes.is_empty() || old.algorithm() != new.algorithm())
}

/// One service that differs.
pub struct Change<'a> {
    pub name: &'a str,
    pub old: Option<&'a Service>,
    pub new: Option<&'a Service>,
    pub impact: ServiceImpact,
}

impl Change<'_> {
    fn kind(&self) -> &'static str {
        match (self.old, self.new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        }
    }
}

/// Services added, removed or changed (other answers, or other weights shown), in name order.
pub fn changes<'a>(old: &'a Table, new: &'a Table, replicas: Option<usize>, samples: usize) -> Vec<Change<'a>> {
    let names: BTreeSet<&str> = old.names().iter().chain(new.names()).map(String::as_str).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (old.get(name), new.get(name));
            if let (Some(a), Some(b)) = (a, b) {
                if a.fingerprint() == b.fingerprint() && same_weights(a, b) {
                    return None;
                }
            }
            Some(Change { name, old: a, new: b, impact: impact::service_impact(a, b, replicas, samples) })
        })
        .collect()
}

/// Same nodes with the same weights as written (order aside).
fn same_weights(a: &Service, b: &Service) -> bool {
    let mut x: Vec<(&String, u64)> = a.nodes().iter().zip(a.weights().iter().map(|w| w.to_bits())).collect();
    let mut y: Vec<(&String, u64)> = b.nodes().iter().zip(b.weights().iter().map(|w| w.to_bits())).collect();
    x.sort();
    y.sort();
    x == y
}

/// The zone of node `address` of `s`, if it has one.
fn zone_of<'a>(s: &'a Service, address: &str) -> Option<&'a str> {
    let i = s.nodes().iter().position(|n| n == address)?;
    s.zones()?[i].as_deref()
}

/// Nodes on both sides (by address) whose zone changes: `(node, old zone, new zone)`, by node.
/// A zone change moves no key of a plain lookup, only `spread=zone` answers.
fn rezoned<'a>(c: &Change<'a>) -> Vec<(&'a str, Option<&'a str>, Option<&'a str>)> {
    let (Some(old), Some(new)) = (c.old, c.new) else { return Vec::new() };
    if !old.has_zones() && !new.has_zones() {
        return Vec::new();
    }
    let before: std::collections::HashMap<&str, Option<&str>> =
        old.nodes().iter().enumerate().map(|(i, n)| (n.as_str(), old.zones().and_then(|z| z[i].as_deref()))).collect();
    let mut out: Vec<_> = new
        .nodes()
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let was = *before.get(n.as_str())?;
            let now = new.zones().and_then(|z| z[i].as_deref());
            (was != now).then_some((n.as_str(), was, now))
        })
        .collect();
    out.sort();
    out
}

fn fingerprint(s: Option<&Service>) -> Option<String> {
    s.map(|s| fingerprint_hex(s.fingerprint()))
}

/// `10.0 % (exact)` or `9.97 % ± 0.62 % (estimate: 100000 keys, 99.9 % Hoeffding bound)`.
fn describe(share: &Share, samples: usize) -> String {
    match share.is_exact() {
        true => format!("{share} (exact)"),
        false => format!("{share} (estimate: {samples} keys, 99.9 % Hoeffding bound)"),
    }
}

fn text(args: &DiffArgs, old: &Table, new: &Table, changes: &[Change]) -> String {
    let mut out = format!(
        "--- {} ({}, fingerprint {})\n+++ {} ({}, fingerprint {})\n",
        args.old.display(),
        count(old.len(), "service"),
        fingerprint_hex(old.fingerprint()),
        args.new.display(),
        count(new.len(), "service"),
        fingerprint_hex(new.fingerprint()),
    );
    if old.algorithm() != new.algorithm() {
        // Every score changes: nearly every key of every service moves, once.
        out.push_str(&format!(
            "algorithm {} -> {}: nearly every key moves\n",
            old.algorithm().number(),
            new.algorithm().number()
        ));
    }
    if changes.is_empty() && old.algorithm() == new.algorithm() {
        out.push_str("no differences\n");
    }
    for c in changes {
        let i = &c.impact;
        out.push_str(&format!(
            "{} {:?}: +{} -{} ~{} nodes, fingerprint {} -> {}\n",
            c.kind(),
            c.name,
            i.added.len(),
            i.removed.len(),
            i.reweighted.len(),
            fingerprint(c.old).unwrap_or_else(|| "none".into()),
            fingerprint(c.new).unwrap_or_else(|| "none".into()),
        ));
        // Whole services added or removed: their node lists are in the files.
        if c.old.is_some() && c.new.is_some() {
            for n in &i.added {
                match c.new.and_then(|s| zone_of(s, n)) {
                    Some(z) => out.push_str(&format!("  + {n} zone {z:?}\n")),
                    None => out.push_str(&format!("  + {n}\n")),
                }
            }
            for n in &i.removed {
                out.push_str(&format!("  - {n}\n"));
            }
            for (n, a, b) in &i.reweighted {
                out.push_str(&format!("  ~ {n} weight {a} -> {b}\n"));
            }
            for (id, a, b) in &i.readdressed {
                out.push_str(&format!("  = Id {id:?} re-addressed {a} -> {b}\n"));
            }
            for (n, a, b) in rezoned(c) {
                let show = |z: Option<&str>| z.map_or("none".to_string(), |z| format!("{z:?}"));
                out.push_str(&format!("  @ {n} zone {} -> {}\n", show(a), show(b)));
            }
        }
        out.push_str(&format!("  first choices moved: {}\n", describe(&i.moved, args.samples)));
        if let Some(r) = &i.replicas {
            out.push_str(&format!("  {}-sets changed: {}\n", r.k, describe(&r.set_changed, args.samples)));
            let slots = match r.slots_changed.bound {
                None => format!("{:.2}", r.slots_changed.value),
                Some(b) => format!("{:.2} ± {:.2}", r.slots_changed.value, b),
            };
            out.push_str(&format!("  slots changed per key: {slots} of {}\n", r.k));
        }
    }
    out
}

fn share_json(share: &Share) -> Value {
    json!({ "share": share.value, "exact": share.is_exact(), "bound": share.bound })
}

fn json_summary(args: &DiffArgs, old: &Table, new: &Table, changes: &[Change]) -> Value {
    let services: Vec<Value> = changes
        .iter()
        .map(|c| {
            let i = &c.impact;
            let reweighted: Vec<Value> =
                i.reweighted.iter().map(|(n, a, b)| json!({ "node": n, "old": a, "new": b })).collect();
            let readdressed: Vec<Value> =
                i.readdressed.iter().map(|(id, a, b)| json!({ "id": id, "old": a, "new": b })).collect();
            let rezoned: Vec<Value> =
                rezoned(c).iter().map(|(n, a, b)| json!({ "node": n, "old": a, "new": b })).collect();
            let zones = |s: Option<&Service>| s.and_then(Service::zones).map(|z| json!(z));
            json!({
                "service": c.name,
                "change": c.kind(),
                "added": i.added,
                "removed": i.removed,
                "reweighted": reweighted,
                "readdressed": readdressed,
                "rezoned": rezoned,
                "old_zones": zones(c.old),
                "new_zones": zones(c.new),
                "old_fingerprint": fingerprint(c.old),
                "new_fingerprint": fingerprint(c.new),
                "moved": share_json(&i.moved),
                "replicas": i.replicas.map(|r| json!({
                    "k": r.k,
                    "set_changed": share_json(&r.set_changed),
                    "slots_changed": share_json(&r.slots_changed),
                })),
            })
        })
        .collect();
    json!({
        "old": {
            "path": args.old.display().to_string(),
            "fingerprint": fingerprint_hex(old.fingerprint()),
            "algorithm": old.algorithm().number(),
        },
        "new": {
            "path": args.new.display().to_string(),
            "fingerprint": fingerprint_hex(new.fingerprint()),
            "algorithm": new.algorithm().number(),
        },
        "samples": args.samples,
        "bound": "99.9 % Hoeffding",
        "services": services,
    })
}
