//! `keyrouter diff OLD NEW`: what a new services file changes, before it is served.
//!
//! Per service added, removed or changed: the nodes added, removed, re-weighted and
//! re-addressed (same Id, new address: it keeps its keys), both fingerprints, and how many keys move ([`crate::impact`]). With `--keys FILE`, every listed key
//! whose answer changes, as JSON lines. Exit status like diff(1): 0 same table, 1 differences,
//! 2 errors.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::cli::DiffFormat;
use crate::impact::{self, ServiceImpact, Share};
use crate::logging::count;
use crate::ranking::{self, fingerprint_hex, NodeSpec, Service, ServiceSpec, Table};
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
            moved_keys(path, &old, &new, &changes, args.replicas.unwrap_or(1))?;
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
                out.push_str(&format!("  + {n}\n"));
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
            json!({
                "service": c.name,
                "change": c.kind(),
                "added": i.added,
                "removed": i.removed,
                "reweighted": reweighted,
                "readdressed": readdressed,
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

/// A `--keys` line in JSON.
#[derive(serde::Deserialize)]
struct KeyLine {
    service: String,
    key: String,
}

/// Keys read before they are ranked, on every CPU, and their lines written in file order.
const KEY_BATCH: usize = 16 * 1024;

/// One key to compare: in one service (a JSON line) or in every changed service.
struct KeyItem {
    service: Option<String>,
    key: String,
}

/// Prints, for each key of the file, each answer that changes: `{"service","key","old","new"}`.
/// A plain line is a key for every changed service; a JSON line names its service. Keys are
/// ranked in batches spread over the CPUs; the output is in file order.
fn moved_keys(path: &Path, old: &Table, new: &Table, changes: &[Change], k: usize) -> Result<(), DiffError> {
    let name = path.display().to_string();
    let read_error = |source| DiffError::KeysRead { path: name.clone(), source };
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path).map_err(read_error)?);
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut batch: Vec<KeyItem> = Vec::with_capacity(KEY_BATCH);
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        line += 1;
        let n = reader.by_ref().take(MAX_KEY_LINE + 1).read_until(b'\n', &mut buf).map_err(read_error)?;
        let bad = |message: String| DiffError::KeysLine { path: name.clone(), line, message };
        if n > 0 {
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            } else if n as u64 > MAX_KEY_LINE {
                return Err(bad(format!("line longer than {MAX_KEY_LINE} bytes")));
            }
            let text = std::str::from_utf8(&buf).map_err(|e| bad(format!("not UTF-8: {e}")))?;
            if text.starts_with('{') {
                let k: KeyLine = serde_json::from_str(text).map_err(|e| bad(format!("invalid key line: {e}")))?;
                batch.push(KeyItem { service: Some(k.service), key: k.key });
            } else if !text.is_empty() {
                batch.push(KeyItem { service: None, key: text.to_string() });
            }
        }
        if batch.len() >= KEY_BATCH || (n == 0 && !batch.is_empty()) {
            let chunk = batch.len().div_ceil(threads);
            let outputs: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .chunks(chunk)
                    .map(|items| scope.spawn(move || compare_keys(items, old, new, changes, k)))
                    .collect();
                // A ranking thread cannot panic short of a bug; its lines are then missing.
                handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
            });
            for o in outputs {
                out.write_all(&o).map_err(DiffError::Output)?;
            }
            batch.clear();
        }
        if n == 0 {
            break;
        }
    }
    out.flush().map_err(DiffError::Output)
}

/// How to rank one changed service's keys in the new table from their old ranking, when the kept
/// nodes keep their weights and few nodes change: the new top k is the old top `k + removed`
/// without the removed nodes, merged with the added nodes' own top k (ranked together, with the
/// new weights, by the same code as lookups). One ranking of the large service per key, not two.
struct Shortcut<'a> {
    removed: HashSet<&'a str>,
    /// The added nodes with their new weights, if any.
    added: Option<Service>,
    new_weights: HashMap<&'a str, f64>,
}

impl<'a> Shortcut<'a> {
    fn plan(change: &Change<'a>, k: usize) -> Option<Shortcut<'a>> {
        let (old, new) = (change.old?, change.new?);
        let i = &change.impact;
        // Exact: every kept node ranks as before among the kept ones. (Nodes are matched by
        // address here: with Ids, the plain comparison answers.)
        let cheap = k + i.removed.len() + i.added.len() <= old.len() / 2;
        if !i.moved.is_exact() || !cheap || old.has_ids() || new.has_ids() {
            return None;
        }
        let new_weights: HashMap<&str, f64> =
            new.nodes().iter().map(String::as_str).zip(new.weights().iter().copied()).collect();
        let removed = old.nodes().iter().map(String::as_str).filter(|n| !new_weights.contains_key(n)).collect();
        let added = match i.added.is_empty() {
            true => None,
            false => {
                let nodes =
                    i.added.iter().map(|n| NodeSpec { node: n.clone(), id: None, weight: new_weights[n.as_str()] });
                let spec = ServiceSpec { name: change.name.into(), nodes: nodes.collect() };
                Some(Service::build_with(spec, new.algorithm()).ok()?.0)
            }
        };
        Some(Shortcut { removed, added, new_weights })
    }
}

/// The JSON lines of `items` whose answers differ between `old` and `new`.
fn compare_keys(items: &[KeyItem], old: &Table, new: &Table, changes: &[Change], k: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let shortcuts: HashMap<&str, Shortcut> =
        changes.iter().filter_map(|c| Some((c.name, Shortcut::plan(c, k)?))).collect();
    let changed: HashSet<&str> = changes.iter().map(|c| c.name).collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut write = |service: &str, key: &str, a: &[&str], b: &[&str]| {
        if a != b {
            // In this field order, which serde_json's maps would not keep.
            let [service, key, a, b] = [json!(service), json!(key), json!(a), json!(b)];
            let _ = writeln!(out, r#"{{"service":{service},"key":{key},"old":{a},"new":{b}}}"#);
        }
    };
    let mut compare = |service: &str, key: &str| {
        a.clear();
        b.clear();
        if !changed.contains(service) {
            return; // The same service on both sides: the same answers.
        }
        if let (Some(plan), Some(o)) = (shortcuts.get(service), old.get(service)) {
            o.rank_into(key, k + plan.removed.len(), &mut a);
            let kept = a.iter().copied().filter(|n| !plan.removed.contains(n)).take(k);
            let old_answer = &a[..k.min(a.len())];
            match &plan.added {
                None => {
                    let kept: Vec<&str> = kept.collect();
                    write(service, key, old_answer, &kept);
                }
                Some(added) => {
                    added.rank_into(key, k, &mut b);
                    let nodes = kept.chain(b.iter().copied()).map(|n| NodeSpec {
                        node: n.to_string(),
                        id: None,
                        weight: plan.new_weights.get(n).copied().unwrap_or(1.0),
                    });
                    let spec = ServiceSpec { name: service.into(), nodes: nodes.collect() };
                    // Cannot fail (the names and weights come from the new table); if it did,
                    // the plain comparison below still answers.
                    if let Ok((candidates, _)) = Service::build_with(spec, o.algorithm()) {
                        let mut answer = Vec::with_capacity(k);
                        candidates.rank_into(key, k, &mut answer);
                        write(service, key, old_answer, &answer);
                        return;
                    }
                }
            }
            if plan.added.is_none() {
                return;
            }
            a.clear();
            b.clear();
        }
        if let Some(s) = old.get(service) {
            s.rank_into(key, k, &mut a);
        }
        if let Some(s) = new.get(service) {
            s.rank_into(key, k, &mut b);
        }
        write(service, key, &a, &b);
    };
    for item in items {
        match &item.service {
            Some(service) => compare(service, &item.key),
            None => changes.iter().for_each(|c| compare(c.name, &item.key)),
        }
    }
    out
}
