//! `keyrouter diff --keys FILE`: the engine that ranks every listed key in both tables and prints
//! the keys whose answers change, apart from the report in the parent module. Keys are ranked in
//! batches spread over the CPUs; where few nodes of a large service change, one ranking of the
//! old service answers for both tables ([`Shortcut`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde_json::json;

use super::{Change, DiffError, MAX_KEY_LINE};
use crate::ranking::{NodeSpec, Service, ServiceSpec, Table};

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
pub(super) fn moved_keys(path: &Path, old: &Table, new: &Table, changes: &[Change], k: usize) -> Result<(), DiffError> {
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
                let nodes = i.added.iter().map(|n| NodeSpec {
                    node: n.clone(),
                    id: None,
                    weight: new_weights[n.as_str()],
                    zone: None,
                });
                let spec = ServiceSpec { name: change.name.into(), nodes: nodes.collect() };
                Some(Service::build_with(spec, new.algorithm()).ok()?.0)
            }
        };
        Some(Shortcut { removed, added, new_weights })
    }
}

/// What every comparison of one batch shares: both tables, the changed services, the shortcut
/// of each service that has one, and the answer size.
struct Comparison<'a> {
    old: &'a Table,
    new: &'a Table,
    changed: HashSet<&'a str>,
    shortcuts: HashMap<&'a str, Shortcut<'a>>,
    k: usize,
}

/// The JSON lines of `items` whose answers differ between `old` and `new`.
fn compare_keys(items: &[KeyItem], old: &Table, new: &Table, changes: &[Change], k: usize) -> Vec<u8> {
    let c = Comparison {
        old,
        new,
        changed: changes.iter().map(|c| c.name).collect(),
        shortcuts: changes.iter().filter_map(|c| Some((c.name, Shortcut::plan(c, k)?))).collect(),
        k,
    };
    let mut out = Vec::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for item in items {
        match &item.service {
            Some(service) => compare(&c, service, &item.key, &mut a, &mut b, &mut out),
            None => changes.iter().for_each(|ch| compare(&c, ch.name, &item.key, &mut a, &mut b, &mut out)),
        }
    }
    out
}

/// Writes the line of `key` in `service` if its answer changes; `a` and `b` are scratch space.
fn compare<'a>(
    c: &'a Comparison<'a>,
    service: &str,
    key: &str,
    a: &mut Vec<&'a str>,
    b: &mut Vec<&'a str>,
    out: &mut Vec<u8>,
) {
    a.clear();
    b.clear();
    if !c.changed.contains(service) {
        return; // The same service on both sides: the same answers.
    }
    if let (Some(plan), Some(o)) = (c.shortcuts.get(service), c.old.get(service)) {
        if by_shortcut(plan, o, service, key, c.k, a, b, out) {
            return;
        }
        a.clear();
        b.clear();
    }
    if let Some(s) = c.old.get(service) {
        s.rank_into(key, c.k, a);
    }
    if let Some(s) = c.new.get(service) {
        s.rank_into(key, c.k, b);
    }
    write_line(out, service, key, a, b);
}

/// Compares `key`'s answers through `plan` (one ranking of the large service); false when the
/// plain comparison must answer instead.
#[allow(clippy::too_many_arguments)]
fn by_shortcut<'a>(
    plan: &'a Shortcut<'a>,
    old: &'a Service,
    service: &str,
    key: &str,
    k: usize,
    a: &mut Vec<&'a str>,
    b: &mut Vec<&'a str>,
    out: &mut Vec<u8>,
) -> bool {
    old.rank_into(key, k + plan.removed.len(), a);
    let kept = a.iter().copied().filter(|n| !plan.removed.contains(n)).take(k);
    let old_answer = &a[..k.min(a.len())];
    let Some(added) = &plan.added else {
        let kept: Vec<&str> = kept.collect();
        write_line(out, service, key, old_answer, &kept);
        return true;
    };
    added.rank_into(key, k, b);
    let nodes = kept.chain(b.iter().copied()).map(|n| NodeSpec {
        node: n.to_string(),
        id: None,
        weight: plan.new_weights.get(n).copied().unwrap_or(1.0),
        zone: None,
    });
    let spec = ServiceSpec { name: service.into(), nodes: nodes.collect() };
    // Cannot fail (the names and weights come from the new table); if it did, the plain
    // comparison answers.
    let Ok((candidates, _)) = Service::build_with(spec, old.algorithm()) else { return false };
    let mut answer = Vec::with_capacity(k);
    candidates.rank_into(key, k, &mut answer);
    write_line(out, service, key, old_answer, &answer);
    true
}

/// The JSON line of a key whose answer changes: `{"service","key","old","new"}`, in this field
/// order (which serde_json's maps would not keep); nothing when the answers are equal.
fn write_line(out: &mut Vec<u8>, service: &str, key: &str, a: &[&str], b: &[&str]) {
    if a != b {
        let [service, key, a, b] = [json!(service), json!(key), json!(a), json!(b)];
        let _ = writeln!(out, r#"{{"service":{service},"key":{key},"old":{a},"new":{b}}}"#);
    }
}
