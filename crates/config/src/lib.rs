//! The services file: parsing and validation, with errors that name the line and column.
//!
//! ```toml
//! Algorithm = 2   # optional, before the first [[Services]]: the ranking algorithm, 1 by default
//! [[Services]]
//!   Name = "bar"
//!   Nodes = ["bar1:8080", { Node = "bar2:8080", Weight = 2.5 }, { Node = "10.0.0.5:80", Id = "bar-3" }]
//! ```
//!
//! A node's Id (its address when it has none) is what the ranking hashes; answers carry addresses.
//!
//! [`parse`] is pure; [`load`] reads a file and parses it. [`read`] refuses anything that is
//! not a regular file (a FIFO would block, `/dev/zero` never ends) and anything bigger than a
//! limit, before it costs memory.
//!
//! Reading, parsing and validating stay together: every diagnostic needs the file's text to get
//! its line and column, whichever step found it.
//!
//! A crate of its own (`keyrouter-config`, re-exported by the server as `table::config`) so that
//! the client packages (clients/python) parse a file exactly as `keyrouter check` does without
//! compiling the server.

pub mod text;

use keyrouter_ranking as ranking;

use std::collections::hash_map::Entry;
use std::collections::BinaryHeap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::ranking::{Algorithm, BuildReport, NodeSpec, ServiceSpec, Table, MAX_WEIGHT, MIN_WEIGHT};
use crate::text::{count, escape, quote};

/// One problem in a services file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a services file could not be turned into a table.
#[derive(Debug)]
pub struct ConfigError {
    /// The file name (or a description of the input) the errors refer to.
    pub origin: String,
    pub kind: ConfigErrorKind,
}

#[derive(Debug)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Read(std::io::Error),
    /// The path is not a regular file: what it is instead ("a FIFO (named pipe)", ...).
    NotAFile(&'static str),
    /// The file is bigger than the limit (`--max-services-bytes`); `size` if known up front.
    TooBig { limit: u64, size: Option<u64> },
    /// The file was read but is not a valid services file: its first diagnostics (at least one,
    /// at most [`MAX_DIAGNOSTICS`], in file order) and how many more there are.
    Invalid { first: Vec<Diagnostic>, more: usize },
}

/// The most diagnostics an error keeps (and `keyrouter check` prints); the rest are counted.
pub const MAX_DIAGNOSTICS: usize = 100;

impl ConfigError {
    /// The first diagnostics (at most [`MAX_DIAGNOSTICS`]), if the file was read (empty for a
    /// read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match &self.kind {
            ConfigErrorKind::Invalid { first, .. } => first,
            _ => &[],
        }
    }

    /// How many problems were found in the file: [`Self::diagnostics`] and the ones left out.
    pub fn error_count(&self) -> usize {
        match &self.kind {
            ConfigErrorKind::Invalid { first, more } => first.len() + more,
            _ => 1,
        }
    }

    /// The error on one line: the first diagnostic and how many more there are (the reload
    /// log's form; [`fmt::Display`] gives every kept diagnostic, a line each).
    pub fn summary(&self) -> String {
        match &self.kind {
            ConfigErrorKind::Invalid { first, more } if first.len() + more > 1 => {
                let d = &first[0];
                format!(
                    "{}:{}:{}: {} (and {}; `keyrouter check` lists them)",
                    escape(&self.origin),
                    d.line,
                    d.column,
                    d.message,
                    count(first.len() - 1 + more, "more error")
                )
            }
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line per diagnostic, then "… and N more errors" if some were left out. The file name
    /// and the messages are escaped ([`escape`]): each line is one line whatever the file holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = escape(&self.origin);
        match &self.kind {
            ConfigErrorKind::Read(e) => {
                write!(f, "{origin}: cannot read services file: {}", escape(&e.to_string()))
            }
            ConfigErrorKind::NotAFile(what) => {
                write!(f, "{origin}: cannot read services file: it is {what}, not a regular file")
            }
            ConfigErrorKind::TooBig { limit, size } => {
                write!(f, "{origin}: services file too large: ")?;
                match size {
                    Some(size) => write!(f, "{size} bytes")?,
                    None => write!(f, "more than {limit} bytes")?,
                }
                write!(f, ", the limit is {limit} bytes (--max-services-bytes)")
            }
            ConfigErrorKind::Invalid { first, more } => {
                for (i, d) in first.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{origin}:{}:{}: {}", d.line, d.column, d.message)?;
                }
                if *more > 0 {
                    write!(f, "\n{origin}: \u{2026} and {}", count(*more, "more error"))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ConfigErrorKind::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// A parsed and built services file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub table: Table,
    pub report: BuildReport,
}

/// The default of `--max-services-bytes`: room for several million nodes.
pub const DEFAULT_MAX_SERVICES_BYTES: u64 = 64 * 1024 * 1024;

/// Reads and parses the services file at `path`, refusing files over
/// [`DEFAULT_MAX_SERVICES_BYTES`].
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_limited(path, DEFAULT_MAX_SERVICES_BYTES)
}

/// Reads ([`read`]) and parses the services file at `path`.
pub fn load_limited(path: &Path, max_bytes: u64) -> Result<Loaded, ConfigError> {
    let src = read(path, max_bytes)?;
    parse(&src, &path.display().to_string())
}

/// Reads the services file at `path` as text, if it is a regular file (or a symlink to one) of
/// at most `max_bytes` bytes. Never blocks on a FIFO and never reads more than `max_bytes + 1`
/// bytes, whatever the path is.
pub fn read(path: &Path, max_bytes: u64) -> Result<String, ConfigError> {
    let origin = path.display().to_string();
    let fail = |kind| ConfigError { origin: origin.clone(), kind };
    let file = open(path).map_err(fail)?;
    // The type of what was opened, not of what the path named a moment before.
    let meta = file.metadata().map_err(|e| fail(ConfigErrorKind::Read(e)))?;
    if let Some(what) = not_a_file(meta.file_type()) {
        return Err(fail(ConfigErrorKind::NotAFile(what)));
    }
    if meta.len() > max_bytes {
        return Err(fail(ConfigErrorKind::TooBig { limit: max_bytes, size: Some(meta.len()) }));
    }
    // The file may grow while it is read: `take` bounds the read whatever the size said.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| fail(ConfigErrorKind::Read(e)))?;
    if bytes.len() as u64 > max_bytes {
        return Err(fail(ConfigErrorKind::TooBig { limit: max_bytes, size: None }));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let text = std::str::from_utf8(&e.as_bytes()[..valid]).unwrap_or("");
        let mut diags = Diagnostics::new(text);
        diags.at(valid..valid, "not valid UTF-8");
        diags.into_error(&origin)
    })
}

/// Opens `path` for reading without blocking: `O_NONBLOCK` makes opening a FIFO return at once
/// (a blocking open waits for a writer), `O_NOCTTY` keeps a terminal from becoming ours.
fn open(path: &Path) -> Result<File, ConfigErrorKind> {
    match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path) {
        Ok(file) => Ok(file),
        // Opening a Unix socket fails with ENXIO ("No such device or address"); say what it is.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => Err(ConfigErrorKind::NotAFile("a socket")),
            _ => Err(ConfigErrorKind::Read(e)),
        },
        Err(e) => Err(ConfigErrorKind::Read(e)),
    }
}

/// What a file type is, if it is not a regular file.
fn not_a_file(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("an unknown kind of file")
    }
}

/// Parses a services file. `origin` names it in error messages.
pub fn parse(src: &str, origin: &str) -> Result<Loaded, ConfigError> {
    let mut diags = Diagnostics::new(src);
    let mut algorithm = None;
    let Some(docs) = service_docs(src, &mut algorithm, &mut diags) else { return Err(diags.into_error(origin)) };
    let mut names = FirstSeen::with_capacity_and_hasher(docs.len(), hasher());
    let mut specs = Vec::with_capacity(docs.len());
    for (offset, service) in &docs {
        let service = service.get_ref();
        check_name(&service.name, *offset, &mut names, &mut diags);
        let nodes = check_nodes(service, *offset, &mut diags);
        specs.push(ServiceSpec { name: service.name.get_ref().clone(), nodes });
    }
    if !diags.is_empty() {
        return Err(diags.into_error(origin));
    }
    // No `Algorithm` line is algorithm 1: the answers every file gave before there was a choice.
    let (table, report) = Table::build_with(algorithm.unwrap_or(Algorithm::V1), specs).map_err(|e| {
        diags.at(0..0, e);
        diags.into_error(origin)
    })?;
    Ok(Loaded { table, report })
}

/// Where each name (or node) was first seen, and whatever else is needed to compare the next.
///
/// std's SipHash with random keys, not ahash with the ranking's fixed seeds: names and nodes
/// come from a catalog anyone may register in, and with known seeds they could be chosen to
/// collide, which would make finding duplicates quadratic. Nothing depends on the order.
type FirstSeen<'a, T> = std::collections::HashMap<&'a str, T>;

fn hasher() -> std::collections::hash_map::RandomState {
    std::collections::hash_map::RandomState::new()
}

/// `span`, relative to the part of the file that starts at `offset`, in the whole file.
fn shift(span: Range<usize>, offset: usize) -> Range<usize> {
    span.start + offset..span.end + offset
}

/// A service's name is not empty, and no other service has it.
fn check_name<'a>(name: &'a Spanned<String>, offset: usize, seen: &mut FirstSeen<'a, usize>, diags: &mut Diagnostics) {
    let span = shift(name.span(), offset);
    let name = name.get_ref().as_str();
    if name.is_empty() {
        diags.at(span, "service Name is empty");
        return;
    }
    match seen.entry(name) {
        Entry::Vacant(e) => {
            e.insert(span.start);
        }
        Entry::Occupied(e) => {
            let first = *e.get();
            diags.at_with(span, |lines| {
                format!("service {} is already defined at line {}", quote(name), lines.position(first).0)
            });
        }
    }
}

/// A service's nodes: not empty, with a valid weight, and one weight per node; Ids not empty,
/// each Id given to one address and each address given one Id. A node listed again with the
/// same Id and weight is a duplicate, removed by [`Table::build_with`].
fn check_nodes(service: &ServiceDoc, offset: usize, diags: &mut Diagnostics) -> Vec<NodeSpec> {
    let name = service.name.get_ref();
    let mut nodes = Vec::with_capacity(service.nodes.len());
    // Where each address was first listed, with which weight and identity: a node listed again
    // must have the same weight, or the answer would depend on which listing came first; and
    // the same identity, or two identities would share one address.
    let mut first_listed = FirstSeen::with_hasher(hasher());
    // Where each identity was first listed, and at which address.
    let mut identities: FirstSeen<(usize, &str)> = FirstSeen::with_hasher(hasher());
    for spanned in &service.nodes {
        let span = shift(spanned.span(), offset);
        let (node, weight, id, zone) = match spanned.get_ref() {
            NodeDoc::Plain(n) => (n, None, None, None),
            NodeDoc::Weighted { node, weight, id, zone } => (node, weight.as_ref(), id.as_ref(), zone.as_ref()),
        };
        let zone_value = zone.map(|z| z.get_ref().as_str());
        let weight_value = weight.map_or(1.0, |w| *w.get_ref());
        let identity = id.map_or(node.as_str(), |id| id.get_ref().as_str());
        let id_span = id.map_or(span.clone(), |id| shift(id.span(), offset));
        match first_listed.entry(node.as_str()) {
            Entry::Vacant(e) => {
                e.insert((span.start, weight_value, identity, zone_value));
            }
            Entry::Occupied(e) => {
                let &(first_at, first_weight, first_identity, first_zone) = e.get();
                let valid = |w: f64| w.is_finite() && w > 0.0;
                if first_identity != identity {
                    diags.at_with(id_span.clone(), |lines| {
                        let (line, column) = lines.position(first_at);
                        format!(
                            "node {} has Id {} here and Id {} at {line}:{column}; two Ids cannot share one address",
                            quote(node),
                            quote(identity),
                            quote(first_identity)
                        )
                    });
                // (An invalid weight is reported on its own below.)
                } else if first_weight != weight_value && valid(first_weight) && valid(weight_value) {
                    let here = span.start;
                    diags.at_with(span.clone(), |lines| {
                        let ((line, column), (here_line, here_column)) =
                            (lines.position(first_at), lines.position(here));
                        format!(
                            "node {} is listed with Weight {weight_value} at {here_line}:{here_column} \
                             and with Weight {first_weight} at {line}:{column}; a node has one weight",
                            quote(node)
                        )
                    });
                } else if first_zone != zone_value {
                    let zone_span = zone.map_or(span.clone(), |z| shift(z.span(), offset));
                    let show = |z: Option<&str>| z.map_or("no Zone".to_string(), |z| format!("Zone {}", quote(z)));
                    diags.at_with(zone_span, |lines| {
                        let (line, column) = lines.position(first_at);
                        format!(
                            "node {} is listed with {} here and with {} at {line}:{column}; a node is in one zone",
                            quote(node),
                            show(zone_value),
                            show(first_zone)
                        )
                    });
                }
            }
        }
        match identities.entry(identity) {
            Entry::Vacant(e) => {
                e.insert((span.start, node.as_str()));
            }
            Entry::Occupied(e) => {
                let &(first_at, first_node) = e.get();
                if first_node != node {
                    diags.at_with(id_span.clone(), |lines| {
                        let (line, column) = lines.position(first_at);
                        format!(
                            "Id {} is already given to node {} at {line}:{column}; Ids are unique within a service",
                            quote(identity),
                            quote(first_node)
                        )
                    });
                }
            }
        }
        if node.is_empty() {
            diags.at(
                span.clone(),
                format_args!("service {}: node is empty (nothing can be routed to \"\")", quote(name)),
            );
        }
        if id.is_some_and(|id| id.get_ref().is_empty()) {
            diags.at(id_span, format_args!("node {}: Id is empty (leave Id out to use the address)", quote(node)));
        }
        if let Some(z) = zone.filter(|z| z.get_ref().is_empty()) {
            let zone_span = shift(z.span(), offset);
            diags.at(zone_span, format_args!("node {}: Zone is empty (leave Zone out for no zone)", quote(node)));
        }
        if let Some(w) = weight {
            let value = *w.get_ref();
            let span = shift(w.span(), offset);
            if !(value.is_finite() && value > 0.0) {
                diags.at(
                    span,
                    format_args!("node {}: Weight must be a finite number greater than 0, got {value}", quote(node)),
                );
            } else if !crate::ranking::hash::weight_in_range(value) {
                // Beyond this range the share formula stops holding numerically (see
                // `ranking::MAX_WEIGHT`); weights are relative, so the file can scale them.
                diags.at(
                    span,
                    format_args!(
                        "node {}: Weight {value:e} is outside {MIN_WEIGHT:e}..={MAX_WEIGHT:e}, \
                         where shares follow the weights (weights are relative: scale them all)",
                        quote(node)
                    ),
                );
            }
        }
        nodes.push(NodeSpec {
            node: node.clone(),
            id: id.map(|id| id.get_ref().clone()),
            weight: weight_value,
            zone: zone_value.map(String::from),
        });
    }
    nodes
}

/// `[[Services]]` entries, each with the byte offset of the file its spans are relative to.
type Entries = Vec<(usize, Spanned<ServiceDoc>)>;

/// The services of the file, each with the byte offset its spans are relative to; the entries
/// that do not have the right structure are reported to `diags`. `None` when the file is not
/// TOML at all (every syntax error is reported).
///
/// The toml crate holds the whole document's tokens and events in memory at once, about 25
/// times the file's size (270 MB for 100 000 services). So the file is cut before each line
/// that is exactly a `[[Services]]` header and the parts are parsed one by one: they are the
/// same document, since each such header starts a new element of the array of tables and
/// nothing else. Whenever that could be in doubt the whole file is parsed instead, which also
/// gives every error its position: a part that does not parse on its own (a cut inside a
/// multi-line string leaves it unterminated), or anything but comments before the first cut
/// (`Services = [...]` there could not be appended to).
fn service_docs(src: &str, algorithm: &mut Option<Algorithm>, diags: &mut Diagnostics) -> Option<Entries> {
    let mut cuts = vec![0];
    let mut pos = 0;
    for line in src.split_inclusive('\n') {
        let header = line.trim().strip_prefix("[[Services]]").map(str::trim_start);
        if header.is_some_and(|rest| rest.is_empty() || rest.starts_with('#')) {
            cuts.push(pos);
        }
        pos += line.len();
    }
    cuts.push(src.len());
    // Before the first cut: comments, and at most the `Algorithm` line.
    let head_is_plain = |t: toml::Table| t.keys().all(|k| k == "Algorithm");
    if cuts.len() > 3 && toml::from_str::<toml::Table>(&src[..cuts[1]]).is_ok_and(head_is_plain) {
        let mut docs = Vec::with_capacity(cuts.len() - 2);
        let mut in_parts = Diagnostics::new(src);
        let whole = cuts.windows(2).all(|w| {
            let part_docs = structure(w[0], &src[w[0]..w[1]], algorithm, &mut in_parts);
            part_docs.map(|d| docs.extend(d)).is_some()
        });
        if whole {
            diags.extend(in_parts);
            return Some(docs);
        }
    }
    *algorithm = None;
    structure(0, src, algorithm, diags)
}

/// The structure of `part` (which starts at byte `offset` of the file): each `[[Services]]`
/// entry deserialized on its own, so that a missing field, a wrong type or an unknown key in one
/// entry does not hide the errors of the others. `None` when `part` is not TOML at all.
fn structure(offset: usize, part: &str, algorithm: &mut Option<Algorithm>, diags: &mut Diagnostics) -> Option<Entries> {
    let report = |diags: &mut Diagnostics, e: &toml::de::Error, fallback: Range<usize>| {
        diags.at(shift(e.span().unwrap_or(fallback), offset), e.message().trim_end());
    };
    let (root, syntax) = toml::de::DeTable::parse_recoverable(part);
    if !syntax.is_empty() {
        for e in &syntax {
            report(diags, e, 0..0);
        }
        return None;
    }
    let mut docs = Vec::new();
    for (key, value) in root.into_inner() {
        let key_span = shift(key.span(), offset);
        if key.get_ref().as_ref() == "Algorithm" {
            let span = shift(value.span(), offset);
            match toml::Value::deserialize(toml::de::ValueDeserializer::from(value)) {
                Ok(toml::Value::Integer(n)) if Algorithm::from_number(n).is_some() => {
                    *algorithm = Algorithm::from_number(n);
                }
                Ok(other) => diags
                    .at(span, format_args!("Algorithm must be 1 or 2 (the ranking algorithm's number), got {other}")),
                Err(e) => report(diags, &e, span),
            }
            continue;
        }
        if key.get_ref().as_ref() != "Services" {
            diags.at(key_span, format_args!("unknown field `{}`, expected `Algorithm` or `Services`", key.get_ref()));
            continue;
        }
        let toml::de::DeValue::Array(entries) = value.into_inner() else {
            diags.at(key_span, "`Services` must be an array of tables: write each service as [[Services]]");
            continue;
        };
        for entry in entries {
            let entry_span = entry.span();
            match ServiceDoc::deserialize(toml::de::ValueDeserializer::from(entry)) {
                Ok(service) => docs.push((offset, Spanned::new(entry_span, service))),
                Err(e) => report(diags, &e, entry_span),
            }
        }
    }
    Some(docs)
}

/// Where the lines of a file start, found once (on the first diagnostic: a valid file never
/// pays for it) and binary-searched for each position, so that positioning every diagnostic
/// costs time linear in the file, not in the file times the diagnostics.
pub struct Lines<'a> {
    src: &'a str,
    starts: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> Lines<'a> {
    pub fn new(src: &'a str) -> Self {
        Lines { src, starts: std::cell::OnceCell::new() }
    }

    fn starts(&self) -> &[usize] {
        self.starts.get_or_init(|| {
            let newlines = self.src.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1);
            std::iter::once(0).chain(newlines).collect()
        })
    }

    /// The 0-based line of byte `offset`, and the offset that line starts at.
    fn line_of(&self, offset: usize) -> (usize, usize) {
        let starts = self.starts();
        let line = starts.partition_point(|&s| s <= offset).saturating_sub(1);
        (line, starts[line])
    }

    /// 1-based line and column (in characters) of byte `offset`. Counting the column costs the
    /// length of its line: call it for the few diagnostics that are kept.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let (line, start) = self.line_of(offset);
        (line + 1, chars_in(&self.src.as_bytes()[start..offset]) + 1)
    }
}

/// The characters that start in `bytes` (of UTF-8 text; a cut inside a character counts it once).
fn chars_in(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

/// Every problem found in a file, as they are found, in whatever order: the first
/// [`MAX_DIAGNOSTICS`] in file order are kept and the others counted. A message is escaped
/// ([`escape`]: the file's text is in many of them) and only made when it is kept.
pub struct Diagnostics<'a> {
    lines: Lines<'a>,
    /// The earliest diagnostics so far, the latest of them on top: (offset, order found, message).
    kept: BinaryHeap<(usize, usize, String)>,
    found: usize,
}

impl<'a> Diagnostics<'a> {
    pub fn new(src: &'a str) -> Self {
        Diagnostics { lines: Lines::new(src), kept: BinaryHeap::new(), found: 0 }
    }

    /// A problem at `span` (bytes of the file).
    pub fn at(&mut self, span: Range<usize>, message: impl fmt::Display) {
        self.at_with(span, |_| message.to_string());
    }

    /// A problem at `span` whose message names other positions in the file: made only if kept.
    pub fn at_with(&mut self, span: Range<usize>, message: impl FnOnce(&Lines) -> String) {
        let order = self.found;
        self.found += 1;
        if self.kept.len() >= MAX_DIAGNOSTICS {
            match self.kept.peek() {
                Some(&(latest, _, _)) if span.start < latest => {
                    self.kept.pop();
                }
                _ => return,
            }
        }
        let message = escape(&message(&self.lines)).to_string();
        self.kept.push((span.start, order, message));
    }

    /// No problem found.
    pub fn is_empty(&self) -> bool {
        self.found == 0
    }

    /// Adds what `other` (of the same file) found.
    fn extend(&mut self, other: Diagnostics) {
        let left_out = other.found - other.kept.len();
        for (offset, _, message) in other.kept.into_sorted_vec() {
            self.at(offset..offset, message);
        }
        self.found += left_out;
    }

    /// The error for a file called `origin`: the kept diagnostics in file order, with their
    /// lines and columns, and a count of the others.
    pub fn into_error(self, origin: &str) -> ConfigError {
        let kept = self.kept.into_sorted_vec();
        let more = self.found - kept.len();
        let bytes = self.lines.src.as_bytes();
        // Columns counted on from the previous diagnostic when it is on the same line: a line
        // with many errors is counted once.
        let mut previous: Option<(usize, usize, usize)> = None;
        let first = kept
            .into_iter()
            .map(|(offset, _, message)| {
                let offset = offset.min(bytes.len());
                let (line, start) = self.lines.line_of(offset);
                let column = match previous {
                    Some((l, from, column)) if l == line && from <= offset => column + chars_in(&bytes[from..offset]),
                    _ => chars_in(&bytes[start..offset]) + 1,
                };
                previous = Some((line, offset, column));
                Diagnostic { line: line + 1, column, message }
            })
            .collect();
        ConfigError { origin: origin.to_string(), kind: ConfigErrorKind::Invalid { first, more } }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDoc {
    #[serde(rename = "Name")]
    name: Spanned<String>,
    #[serde(rename = "Nodes", default)]
    nodes: Vec<Spanned<NodeDoc>>,
}

/// A node: `"host:port"` or `{ Node = "host:port", Id = "web-0", Weight = 2.5, Zone = "eu-1a" }`.
enum NodeDoc {
    Plain(String),
    Weighted { node: String, weight: Option<Spanned<f64>>, id: Option<Spanned<String>>, zone: Option<Spanned<String>> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightedDoc {
    #[serde(rename = "Node")]
    node: String,
    #[serde(rename = "Weight", default)]
    weight: Option<Spanned<f64>>,
    #[serde(rename = "Id", default)]
    id: Option<Spanned<String>>,
    #[serde(rename = "Zone", default)]
    zone: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for NodeDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    r#"a node: a string such as "host:port", or { Node = "host:port", Id = "web-0", Weight = 2.5, Zone = "eu-1a" }"#,
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeDoc, E> {
                Ok(NodeDoc::Plain(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<NodeDoc, E> {
                Ok(NodeDoc::Plain(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NodeDoc, A::Error> {
                let w = WeightedDoc::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(NodeDoc::Weighted { node: w.node, weight: w.weight, id: w.id, zone: w.zone })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> Vec<Diagnostic> {
        match parse(src, "t.toml") {
            Ok(_) => panic!("expected an error for {src:?}"),
            Err(e) => e.diagnostics().to_vec(),
        }
    }

    fn one(src: &str) -> (usize, usize, String) {
        let d = err(src);
        assert_eq!(d.len(), 1, "{d:?}");
        (d[0].line, d[0].column, d[0].message.clone())
    }

    #[test]
    fn parses_the_documented_format() {
        let l = parse("[[Services]]\n  Name = \"bar\"\n  Nodes = [\"bar1:8080\", \"bar2:8080\"]\n", "t").unwrap();
        assert_eq!(l.table.names(), ["bar"]);
        assert_eq!(l.table.get("bar").unwrap().nodes(), ["bar1:8080", "bar2:8080"]);
    }

    #[test]
    fn empty_file_and_empty_service_are_valid() {
        assert!(parse("", "t").unwrap().table.is_empty());
        let l = parse("[[Services]]\nName = \"e\"\nNodes = []\n", "t").unwrap();
        assert!(l.table.get("e").unwrap().is_empty());
    }

    #[test]
    fn syntax_error_has_position() {
        let (line, col, msg) = one("[[Services]]\nName = \"bar\nNodes = []\n");
        assert_eq!((line, col), (2, 12), "{msg}");
    }

    #[test]
    fn nodes_not_a_list_of_strings() {
        let (line, col, msg) = one("[[Services]]\nName = \"bar\"\nNodes = [\"a\", 5]\n");
        assert_eq!((line, col), (3, 15), "{msg}");
        assert!(msg.contains("a node"), "{msg}");
        let (line, _, msg) = one("[[Services]]\nName = \"bar\"\nNodes = \"a\"\n");
        assert_eq!(line, 3, "{msg}");
    }

    #[test]
    fn missing_and_empty_name() {
        let (line, _, msg) = one("[[Services]]\nNodes = [\"a\"]\n");
        assert!(msg.contains("missing field `Name`"), "{msg}");
        assert!(line <= 2, "{line}");
        let (line, col, msg) = one("[[Services]]\nName = \"\"\nNodes = [\"a\"]\n");
        assert_eq!((line, col), (2, 8));
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn unknown_key_is_an_error_not_an_empty_service() {
        let (line, col, msg) = one("[[Services]]\nName = \"bar\"\nNode = [\"a\"]\n");
        assert_eq!((line, col), (3, 1), "{msg}");
        assert!(msg.contains("unknown field `Node`"), "{msg}");
        let (line, _, msg) = one("[[Service]]\nName = \"bar\"\n");
        assert_eq!(line, 1, "{msg}");
    }

    #[test]
    fn duplicate_service_names() {
        let (line, col, msg) = one("[[Services]]\nName = \"a\"\n[[Services]]\nName = \"a\"\n");
        assert_eq!((line, col), (4, 8));
        assert!(msg.contains("already defined at line 2"), "{msg}");
    }

    #[test]
    fn duplicate_nodes_are_removed_and_reported() {
        let l = parse("[[Services]]\nName = \"a\"\nNodes = [\"x\", \"y\", \"x\", \"x\"]\n", "t").unwrap();
        assert_eq!(l.table.get("a").unwrap().nodes(), ["x", "y"]);
        assert_eq!(l.report.duplicates_removed, vec![("a".to_string(), 2)]);
    }

    #[test]
    fn a_node_listed_twice_needs_the_same_weight() {
        let src = "[[Services]]\nName = \"a\"\nNodes = [\"x\", \"y\",\n  { Node = \"x\", Weight = 5 }]\n";
        let (line, col, msg) = one(src);
        assert_eq!((line, col), (4, 3), "{msg}");
        assert!(msg.contains("node \"x\" is listed with Weight 5 at 4:3 and with Weight 1 at 3:10"), "{msg}");
        // The other order is the same error: the answer must not depend on which came first.
        let (line, _, msg) = one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Weight = 5 }, \"x\"]\n");
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains("with Weight 1 at 3:38 and with Weight 5 at 3:10"), "{msg}");
        // The same weight spelt two ways is a plain duplicate, removed.
        let l = parse("[[Services]]\nName = \"a\"\nNodes = [\"x\", { Node = \"x\", Weight = 1.0 }]\n", "t").unwrap();
        assert_eq!(l.table.get("a").unwrap().nodes(), ["x"]);
        assert_eq!(l.report.duplicates_removed, vec![("a".to_string(), 1)]);
        // An invalid weight is one error, not two.
        assert_eq!(err("[[Services]]\nName = \"a\"\nNodes = [\"x\", { Node = \"x\", Weight = -1 }]\n").len(), 1);
    }

    #[test]
    fn weights() {
        let l = parse("[[Services]]\nName = \"a\"\nNodes = [\"x\", { Node = \"y\", Weight = 2.5 }, { Node = \"z\", Weight = 3 }]\n", "t")
            .unwrap();
        assert_eq!(l.table.get("a").unwrap().weights(), [1.0, 2.5, 3.0]);
        for bad in ["0", "-1", "nan", "inf"] {
            let (line, col, msg) =
                one(&format!("[[Services]]\nName = \"a\"\nNodes = [\n  {{ Node = \"y\", Weight = {bad} }},\n]\n"));
            assert_eq!((line, col), (4, 26), "{bad}: {msg}");
            assert!(msg.contains("greater than 0"), "{msg}");
        }
        for bad in ["1e-7", "9.99e-7", "1000000.5", "1e300", "1.7976931348623157e308", "5e-324"] {
            let (line, col, msg) =
                one(&format!("[[Services]]\nName = \"a\"\nNodes = [\n  {{ Node = \"y\", Weight = {bad} }},\n]\n"));
            assert_eq!((line, col), (4, 26), "{bad}: {msg}");
            assert!(msg.contains("outside 1e-6..=1e6"), "{msg}");
        }
        for good in ["1e-6", "0.000001", "1e6", "1000000", "0.5"] {
            let src = format!("[[Services]]\nName = \"a\"\nNodes = [\"x\", {{ Node = \"y\", Weight = {good} }}]\n");
            assert!(parse(&src, "t").is_ok(), "{good}");
        }
        let (line, _, msg) = one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"y\", Wieght = 2 }]\n");
        assert_eq!(line, 3);
        assert!(msg.contains("unknown field `Wieght`"), "{msg}");
    }

    #[test]
    fn several_errors_are_all_reported() {
        let d = err("[[Services]]\nName = \"\"\n[[Services]]\nName = \"a\"\nNodes = [{ Node = \"y\", Weight = 0 }]\n");
        assert_eq!(d.len(), 2, "{d:?}");
    }

    #[test]
    fn structural_errors_in_several_entries_are_all_reported() {
        let src = "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Weight = 0 }]\n[[Services]]\nName = \"a\"\n\
                   [[Services]]\nNodes = [\"y\"]\n[[Services]]\nName = \"b\"\nNode = [\"z\"]\n\
                   [[Services]]\nName = 7\n";
        let d = err(src);
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, [3, 5, 6, 10, 12], "{d:?}");
        assert!(d[0].message.contains("greater than 0"), "{d:?}");
        assert!(d[1].message.contains("already defined at line 2"), "{d:?}");
        assert!(d[2].message.contains("missing field `Name`"), "{d:?}");
        assert!(d[3].message.contains("unknown field `Node`"), "{d:?}");
        assert!(d[4].message.contains("invalid type"), "{d:?}");
    }

    #[test]
    fn several_syntax_errors_are_all_reported() {
        let d = err("[[Services]]\nName = \"a\nNodes = [\n[[Services]]\nName = = \"b\"\n");
        assert!(d.len() >= 2, "{d:?}");
    }

    #[test]
    fn display_names_file_line_and_column() {
        let e = parse("[[Services]]\nName = \"\"\n", "svc.toml").unwrap_err();
        assert_eq!(e.to_string(), "svc.toml:2:8: service Name is empty");
        let e = load(Path::new("/nonexistent/x.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/x.toml: cannot read services file"), "{e}");
    }

    #[test]
    fn parsing_in_parts_is_parsing_the_whole_file() {
        let three = "# comment\n[[Services]]\nName = \"a\"\nNodes = [\"x\"]\n[[Services]] # b\nName = \"b\"\n\
                     [[Services]]\nName = \"c\"\nNodes = [{ Node = \"y\", Weight = -1 }]\n";
        // Positions in a later part are positions in the file.
        assert_eq!(one(three), (9, 33, "node \"y\": Weight must be a finite number greater than 0, got -1".into()));
        let (line, col, msg) =
            one("[[Services]]\nName = \"a\"\n[[Services]]\nName = \"b\"\n[[Services]]\nName = \"a\"\n");
        assert_eq!((line, col), (6, 8));
        assert!(msg.contains("already defined at line 2"), "{msg}");
        // A header inside a multi-line string is not a cut.
        let l =
            parse("[[Services]]\nName = \"\"\"a\n[[Services]]\nb\"\"\"\n[[Services]]\nName = \"c\"\n", "t").unwrap();
        assert_eq!(l.table.names(), ["a\n[[Services]]\nb", "c"]);
        // A static array before the first header cannot be appended to, whole or in parts.
        // (Every error of the file is reported: here each [[Services]] header is one.)
        let d = err("Services = [{ Name = \"a\" }]\n[[Services]]\nName = \"b\"\n[[Services]]\nName = \"c\"\n");
        assert_eq!(d[0].line, 2, "{d:?}");
        // Sub-tables stay with their service.
        let l = parse(
            "[[Services]]\nName = \"a\"\n[[Services.Nodes]]\nNode = \"n\"\nWeight = 2\n[[Services]]\nName = \"b\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(l.table.get("a").unwrap().weights(), [2.0]);
    }

    #[test]
    fn empty_node_is_an_error() {
        let (line, col, msg) = one("[[Services]]\nName = \"a\"\nNodes = [\"x\", \"\"]\n");
        assert_eq!((line, col), (3, 15), "{msg}");
        assert!(msg.contains("node is empty"), "{msg}");
        let (line, col, msg) = one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"\", Weight = 2 }]\n");
        assert_eq!((line, col), (3, 10), "{msg}");
    }

    #[test]
    fn ids_are_hashed_and_answers_stay_addresses() {
        let src = "[[Services]]\nName = \"a\"\nNodes = [\"x:1\", { Node = \"10.0.0.5:8080\", Id = \"web-0\" }, \
                   { Node = \"b:1\", Id = \"web-1\", Weight = 2 }]\n";
        let l = parse(src, "t").unwrap();
        let s = l.table.get("a").unwrap();
        assert_eq!(s.nodes(), ["x:1", "10.0.0.5:8080", "b:1"]);
        assert_eq!(s.ids(), ["x:1", "web-0", "web-1"]);
        assert_eq!(s.weights(), [1.0, 1.0, 2.0]);
        // An Id equal to the address is no Id at all: the same answers as without it.
        let plain = parse("[[Services]]\nName = \"a\"\nNodes = [\"x:1\", \"y:1\"]\n", "t").unwrap();
        let same =
            parse("[[Services]]\nName = \"a\"\nNodes = [\"x:1\", { Node = \"y:1\", Id = \"y:1\" }]\n", "t").unwrap();
        assert_eq!(plain.table.fingerprint(), same.table.fingerprint());
        // Another address under the same Id: another fingerprint, the same ranking.
        let moved =
            parse("[[Services]]\nName = \"a\"\nNodes = [\"x:1\", { Node = \"z:1\", Id = \"y:1\" }]\n", "t").unwrap();
        assert_ne!(moved.table.fingerprint(), same.table.fingerprint());
    }

    #[test]
    fn duplicate_ids_shared_addresses_and_empty_ids_are_positioned_errors() {
        let (line, col, msg) = one(
            "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Id = \"i\" },\n  { Node = \"y\", Id = \"i\" }]\n",
        );
        assert_eq!((line, col), (4, 22), "{msg}");
        assert_eq!(msg, "Id \"i\" is already given to node \"x\" at 3:10; Ids are unique within a service");
        // A node without Id is its own Id.
        let (line, col, msg) = one("[[Services]]\nName = \"a\"\nNodes = [\"i\", { Node = \"y\", Id = \"i\" }]\n");
        assert_eq!((line, col), (3, 34), "{msg}");
        assert!(msg.contains("already given to node \"i\" at 3:10"), "{msg}");
        let (line, col, msg) =
            one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Id = \"i\" }, { Node = \"x\", Id = \"j\" }]\n");
        assert_eq!((line, col), (3, 55), "{msg}");
        assert_eq!(msg, "node \"x\" has Id \"j\" here and Id \"i\" at 3:10; two Ids cannot share one address");
        let (line, col, msg) = one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Id = \"\" }]\n");
        assert_eq!((line, col), (3, 29), "{msg}");
        assert!(msg.contains("Id is empty"), "{msg}");
        // The same node with the same Id twice is a duplicate, removed.
        let l = parse(
            "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Id = \"i\" }, { Node = \"x\", Id = \"i\" }]\n",
            "t",
        )
        .unwrap();
        assert_eq!(l.table.get("a").unwrap().ids(), ["i"]);
        // The same Id in two services is fine.
        assert!(parse("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Id = \"i\" }]\n[[Services]]\nName = \"b\"\nNodes = [{ Node = \"y\", Id = \"i\" }]\n", "t").is_ok());
        let (line, _, msg) = one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Id = 5 }]\n");
        assert_eq!(line, 3);
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn zones_on_nodes() {
        let src = "[[Services]]\nName = \"a\"\nNodes = [\"a:1\", { Node = \"b:1\", Zone = \"eu-1a\" }, \
                   { Node = \"c:1\", Id = \"c\", Zone = \"eu-1b\", Weight = 2 }]\n";
        let l = parse(src, "t").unwrap();
        let s = l.table.get("a").unwrap();
        assert_eq!(s.zones().unwrap(), [None, Some("eu-1a".into()), Some("eu-1b".into())]);
        let plain = parse("[[Services]]\nName = \"a\"\nNodes = [\"a:1\", \"b:1\"]\n", "t").unwrap();
        assert!(!plain.table.get("a").unwrap().has_zones());
        let (line, col, msg) = one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Zone = \"\" }]\n");
        assert_eq!((line, col), (3, 31));
        assert!(msg.contains("Zone is empty"), "{msg}");
        let (line, _, msg) = one("[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Zone = 5 }]\n");
        assert_eq!(line, 3);
        assert!(msg.contains("invalid type"), "{msg}");
        let (line, col, msg) = one(
            "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Zone = \"z1\" },\n  { Node = \"x\", Zone = \"z2\" }]\n",
        );
        assert_eq!((line, col), (4, 24));
        assert_eq!(
            msg,
            "node \"x\" is listed with Zone \"z2\" here and with Zone \"z1\" at 3:10; a node is in one zone"
        );
        // The same node, same zone twice: a duplicate, removed.
        let l = parse(
            "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Zone = \"z\" }, { Node = \"x\", Zone = \"z\" }]\n",
            "t",
        )
        .unwrap();
        assert_eq!(l.table.get("a").unwrap().len(), 1);
    }

    #[test]
    fn algorithm_is_chosen_at_the_top_and_defaults_to_1() {
        let body = "[[Services]]\nName = \"a\"\nNodes = [\"x\", \"y\"]\n[[Services]]\nName = \"b\"\n[[Services]]\nName = \"c\"\n";
        let v1 = parse(body, "t").unwrap();
        assert_eq!(v1.table.algorithm(), Algorithm::V1);
        let explicit = parse(&format!("# one\nAlgorithm = 1\n{body}"), "t").unwrap();
        assert_eq!(explicit.table.fingerprint(), v1.table.fingerprint());
        // In parts (several [[Services]] headers) and whole (one) alike.
        for body in [body, "[[Services]]\nName = \"a\"\nNodes = [\"x\", \"y\"]\n"] {
            let v2 = parse(&format!("Algorithm = 2 # portable\n\n{body}"), "t").unwrap();
            assert_eq!(v2.table.algorithm(), Algorithm::V2);
            assert_eq!(v2.table.get("a").unwrap().algorithm(), Algorithm::V2);
        }
        for (bad, col) in [("3", 13), ("0", 13), ("\"2\"", 13), ("2.5", 13), ("-1", 13)] {
            let src = format!("# top\nAlgorithm = {bad}\n{body}");
            let (line, column, msg) = one(&src);
            assert_eq!((line, column), (2, col), "{bad}: {msg}");
            assert!(msg.starts_with("Algorithm must be 1 or 2"), "{bad}: {msg}");
        }
        // After the first [[Services]] it belongs to that service, which has no such field.
        let (line, _, msg) = one("[[Services]]\nName = \"a\"\nAlgorithm = 2\n");
        assert_eq!(line, 3);
        assert!(msg.contains("unknown field `Algorithm`"), "{msg}");
        let (_, _, msg) = one("Algorithms = 2\n");
        assert!(msg.contains("expected `Algorithm` or `Services`"), "{msg}");
    }

    fn kind(e: ConfigError) -> ConfigErrorKind {
        e.kind
    }

    #[test]
    fn read_refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), 100).unwrap_err();
        assert!(e.to_string().ends_with("cannot read services file: it is a directory, not a regular file"), "{e}");
        assert!(matches!(kind(read(Path::new("/dev/null"), 100).unwrap_err()), ConfigErrorKind::NotAFile(_)));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated string that outlives the call; mkfifo only reads it.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Returns at once (no writer), and says what it found.
        let e = read(&fifo, 100).unwrap_err();
        assert!(e.to_string().contains("it is a FIFO (named pipe)"), "{e}");
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read(&sock, 100).unwrap_err();
        assert!(e.to_string().contains("it is a socket"), "{e}");
    }

    #[test]
    fn read_refuses_files_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "0123456789").unwrap();
        assert_eq!(read(&path, 10).unwrap(), "0123456789");
        let e = read(&path, 9).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: services file too large: 10 bytes, the limit is 9 bytes (--max-services-bytes)",
                path.display()
            )
        );
        std::fs::write(&path, b"a = 1\nb = \xff\n").unwrap();
        let e = read(&path, 100).unwrap_err();
        assert_eq!(e.diagnostics()[0].line, 2);
        assert_eq!(e.diagnostics()[0].column, 5);
    }

    #[test]
    fn diagnostics_keep_the_first_in_file_order_and_count_the_rest() {
        let src = "[[Services]]\nNodes = [\"a\"]\n".repeat(250);
        let e = parse(&src, "t.toml").unwrap_err();
        assert_eq!(e.error_count(), 250);
        let d = e.diagnostics();
        assert_eq!(d.len(), MAX_DIAGNOSTICS);
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, (0..MAX_DIAGNOSTICS).map(|i| 2 * i + 1).collect::<Vec<_>>());
        let text = e.to_string();
        assert_eq!(text.lines().count(), MAX_DIAGNOSTICS + 1, "{text}");
        assert!(text.ends_with("t.toml: \u{2026} and 150 more errors"), "{text}");
        assert_eq!(e.summary(), "t.toml:1:1: missing field `Name` (and 249 more errors; `keyrouter check` lists them)");
        // Found out of order (the later checks come back to the start of the file): the
        // earliest are kept all the same.
        let mut diags = Diagnostics::new("x\n".repeat(300).leak());
        for i in (0..300).rev() {
            diags.at(2 * i..2 * i + 1, format_args!("line {}", i + 1));
        }
        let e = diags.into_error("t");
        assert_eq!(e.diagnostics()[0], Diagnostic { line: 1, column: 1, message: "line 1".into() });
        assert_eq!(e.diagnostics()[99].line, 100);
        assert_eq!(e.error_count(), 300);
    }

    #[test]
    fn columns_of_many_errors_on_one_line() {
        let src = format!("Services = [{}]\n", "{ Nodes = [] }, ".repeat(3));
        let columns: Vec<usize> = err(&src).iter().map(|d| d.column).collect();
        assert_eq!(columns, [13, 29, 45]);
    }

    #[test]
    fn file_text_in_messages_is_escaped() {
        let forged =
            "[[Services]]\nName = \"a\"\n\"q\\n2031-01-01T00:00:00Z  INFO SIGHUP: reloaded\\u001b[31m\\u2028\" = 1\n";
        let e = parse(forged, "t.toml").unwrap_err();
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("q\\n2031") && text.contains("\\u{1b}[31m\\u{2028}"), "{text}");
        let e = parse("[[Services]]\nName = \"a\\u202e\\r\"\n[[Services]]\nName = \"a\\u202e\\r\"\n", "t.toml")
            .unwrap_err();
        assert!(e.to_string().contains("service \"a\\u{202e}\\r\" is already defined"), "{e}");
        let e = parse("", "dir\n/t.toml").map(|_| ()).and_then(|()| parse("x", "dir\n/t.toml").map(|_| ()));
        let text = e.unwrap_err().to_string();
        assert!(text.starts_with("dir\\n/t.toml:1:"), "{text}");
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(Lines::new("ab\ncdé f").position(8), (2, 5));
        assert_eq!(Lines::new("").position(0), (1, 1));
        assert_eq!(Lines::new("a\n\nb").position(3), (3, 1));
        assert_eq!(Lines::new("a\n").position(2), (2, 1));
    }
}
