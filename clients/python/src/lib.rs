//! `keyrouter._native`: the server's ranking (`keyrouter-ranking`) and services-file parser
//! (`keyrouter-config`) for Python, so that a lookup in Python is the server's lookup, bit for
//! bit, without a round trip. The Python half (`python/keyrouter/`) fetches `/table` and keeps
//! it fresh; this half turns a table document into a [`Table`] only after recomputing its
//! fingerprints, and answers lookups from it, also those of the Python `Client` ([`ClientBase`],
//! which holds the client's current table).

use std::path::PathBuf;
use std::sync::Mutex;

use keyrouter_config as config;
use keyrouter_ranking::{
    self as ranking, fingerprint_hex, Algorithm, LookupError, LookupOptions, NodeSpec, Resolved, Service, ServiceSpec,
    Spread,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyAttributeError, PyException, PyImportError, PyTypeError};
use pyo3::impl_::extract_argument::argument_extraction_error;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde::Deserialize;

create_exception!(keyrouter, KeyrouterError, PyException, "Base class of every error keyrouter raises.");
create_exception!(
    keyrouter,
    ConfigError,
    KeyrouterError,
    "A services file that `keyrouter check` refuses; the message is check's, line and column included."
);
create_exception!(
    keyrouter,
    UnverifiedTableError,
    KeyrouterError,
    "A table document whose fingerprints do not match its content (altered, truncated or malformed)."
);
create_exception!(keyrouter, UnknownServiceError, KeyrouterError, "The table has no service of that name.");
create_exception!(
    keyrouter,
    InvalidLookupError,
    KeyrouterError,
    "A lookup the server would answer with 400: `min` greater than `max`, an empty key, no keys, an unknown `spread`."
);
create_exception!(
    keyrouter,
    NotEnoughNodesError,
    KeyrouterError,
    "The service has fewer nodes (left after `exclude`) than `min`."
);

/// An immutable table of services, ranked exactly as the server ranks it. Built from a services
/// file ([`Table::from_file`]), a verified `/table` document ([`Table::from_json`]) or service
/// descriptions ([`Table::from_services`]). Immutable, so a lookup never sees two tables.
#[pyclass(frozen, module = "keyrouter")]
struct Table {
    inner: ranking::Table,
}

fn spread_of(spread: Option<&str>) -> PyResult<Spread> {
    match spread {
        None => Ok(Spread::None),
        Some("zone") => Ok(Spread::Zone),
        // The server's message (issue 26, src/request/decode.rs), a long value cut as it cuts it.
        Some(other) => {
            let cut = (0..=other.len().min(40)).rev().find(|&i| other.is_char_boundary(i)).unwrap_or(0);
            let shown = if cut < other.len() { format!("{}\u{2026}", &other[..cut]) } else { other.to_string() };
            Err(InvalidLookupError::new_err(format!(
                "`spread` must be \"zone\" (the one spread there is), got {shown:?}"
            )))
        }
    }
}

/// What a lookup asks beyond its key: the bounds, the identities to leave out and the spread.
struct Ask<'a> {
    min: u64,
    max: u64,
    exclude: Vec<&'a str>,
    spread: Spread,
}

impl<'a> Ask<'a> {
    /// Checks what the server checks before it ranks, in its order: `spread`, `min <= max`.
    fn new(min: u64, max: Option<u64>, exclude: &'a [String], spread: Option<&str>) -> PyResult<Self> {
        let spread = spread_of(spread)?;
        let max = max.unwrap_or(min);
        if min > max {
            return Err(lookup_error(LookupError::MinGreaterThanMax { min, max }));
        }
        Ok(Ask { min, max, exclude: exclude.iter().map(String::as_str).collect(), spread })
    }

    /// The options matched against `service` once, and the answer's length: what every key
    /// of a batch shares, as the server plans a batch.
    fn plan<'s>(&self, service: &'s Service) -> Result<Planned<'s>, LookupError> {
        let resolved = service.resolve(&LookupOptions { exclude: &self.exclude, spread: self.spread });
        let k = service.answer_len_with(self.min, self.max, &resolved)?;
        Ok(Planned { service, resolved, k })
    }
}

/// A lookup ready to rank keys.
struct Planned<'s> {
    service: &'s Service,
    resolved: Resolved,
    k: usize,
}

impl<'s> Planned<'s> {
    /// The answer for `key`, best first.
    fn rank(&self, key: &str) -> Vec<&'s str> {
        let mut out = Vec::with_capacity(self.k);
        if self.resolved.is_plain() {
            self.service.rank_into(key, self.k, &mut out);
        } else {
            self.service.rank_with_each(key, self.k, &self.resolved, |node| out.push(node));
        }
        out
    }
}

fn lookup_error(e: LookupError) -> PyErr {
    match e {
        LookupError::MinGreaterThanMax { .. } => InvalidLookupError::new_err(e.to_string()),
        LookupError::NotEnoughNodes { .. } => NotEnoughNodesError::new_err(e.to_string()),
    }
}

impl Table {
    /// `lookup`'s answer (`Table.lookup` and `Client.lookup` both answer through it).
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one per lookup field.
    fn lookup_list<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        key: &str,
        min: u64,
        max: Option<u64>,
        exclude: &[String],
        spread: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let service = self.service(service)?;
        let ask = Ask::new(min, max, exclude, spread)?;
        if key.is_empty() {
            return Err(InvalidLookupError::new_err("`key` must not be empty"));
        }
        let planned = ask.plan(service).map_err(lookup_error)?;
        PyList::new(py, planned.rank(key))
    }

    fn service(&self, name: &str) -> PyResult<&Service> {
        // The server's message (src/request: RequestError::UnknownService).
        self.inner.get(name).ok_or_else(|| UnknownServiceError::new_err(format!("unknown service {name:?}")))
    }
}

/// One service of a `/table` document (fields the client does not need, such as `changed_at`,
/// are ignored).
#[derive(Deserialize)]
struct ServiceDoc {
    name: String,
    nodes: Vec<String>,
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    weights: Option<Vec<f64>>,
    #[serde(default)]
    zones: Option<Vec<Option<String>>>,
    fingerprint: String,
}

/// A `/table` document.
#[derive(Deserialize)]
struct TableDoc {
    fingerprint: String,
    algorithm: i64,
    services: Vec<ServiceDoc>,
}

/// A node's spec from the parts a table document or a vector gives.
fn node_spec(node: String, id: Option<String>, weight: Option<f64>, zone: Option<String>) -> Result<NodeSpec, String> {
    let mut spec = NodeSpec::weighted(node, weight.unwrap_or(1.0));
    if let Some(id) = id {
        spec = spec.with_id(id);
    }
    if let Some(zone) = zone {
        spec = spec.with_zone(zone);
    }
    Ok(spec)
}

fn algorithm_of(n: i64) -> Result<Algorithm, String> {
    Algorithm::from_number(n).ok_or_else(|| format!("unknown ranking algorithm {n}"))
}

/// Builds a table from a `/table` document and checks that every service's fingerprint, and
/// the table's, is what its content gives: a node, Id, weight or zone altered on the way (or a
/// truncated document) is refused.
fn verified(text: &str) -> Result<ranking::Table, String> {
    let doc: TableDoc = serde_json::from_str(text).map_err(|e| format!("not a table document: {e}"))?;
    let algorithm = algorithm_of(doc.algorithm)?;
    let mut specs = Vec::with_capacity(doc.services.len());
    let mut claimed = Vec::with_capacity(doc.services.len());
    for s in doc.services {
        let n = s.nodes.len();
        let parallel = |field: &str, len: Option<usize>| match len {
            Some(len) if len != n => Err(format!("service {:?}: {field} has {len} entries for {n} nodes", s.name)),
            _ => Ok(()),
        };
        parallel("ids", s.ids.as_ref().map(Vec::len))?;
        parallel("weights", s.weights.as_ref().map(Vec::len))?;
        parallel("zones", s.zones.as_ref().map(Vec::len))?;
        let mut ids = s.ids.map(Vec::into_iter);
        let mut weights = s.weights.map(Vec::into_iter);
        let mut zones = s.zones.map(Vec::into_iter);
        let mut nodes = Vec::with_capacity(n);
        for node in s.nodes {
            // The server lists an Id for every node when some node has one; an Id equal to the
            // address is the address's own identity.
            let id = ids.as_mut().and_then(Iterator::next).filter(|id| *id != node);
            let weight = weights.as_mut().and_then(Iterator::next);
            let zone = zones.as_mut().and_then(Iterator::next).flatten();
            nodes.push(node_spec(node, id, weight, zone).map_err(|e| format!("service {:?}: {e}", s.name))?);
        }
        claimed.push((s.name.clone(), s.fingerprint));
        specs.push(ServiceSpec { name: s.name, nodes });
    }
    let (table, report) = ranking::Table::build_with(algorithm, specs).map_err(|e| e.to_string())?;
    if let Some((service, n)) = report.duplicates_removed.first() {
        return Err(format!("service {service:?} lists {n} duplicate node(s)"));
    }
    for (name, fingerprint) in claimed {
        let service = table.get(&name).expect("built from these names");
        let computed = fingerprint_hex(service.fingerprint());
        if computed != fingerprint {
            return Err(format!(
                "service {name:?} does not verify: its fingerprint is {fingerprint}, its nodes give {computed}"
            ));
        }
    }
    let computed = fingerprint_hex(table.fingerprint());
    if computed != doc.fingerprint {
        return Err(format!(
            "the table does not verify: its fingerprint is {}, its services give {computed}",
            doc.fingerprint
        ));
    }
    Ok(table)
}

/// A service as the conformance vectors write it: `{"name", "nodes": [{"node", "id"?,
/// "weight"?, "zone"?}]}`.
#[derive(Deserialize)]
struct ServiceSource {
    name: String,
    nodes: Vec<NodeSource>,
}

#[derive(Deserialize)]
struct NodeSource {
    node: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    zone: Option<String>,
}

#[pymethods]
impl Table {
    /// Parses a services file exactly as `keyrouter check` does: the same errors (file, line
    /// and column), raised as `ConfigError`, and the same size limit (`max_bytes`, the default
    /// of `--max-services-bytes`).
    #[staticmethod]
    #[pyo3(signature = (path, max_bytes = config::DEFAULT_MAX_SERVICES_BYTES))]
    fn from_file(py: Python<'_>, path: PathBuf, max_bytes: u64) -> PyResult<Table> {
        let loaded = py.detach(|| config::load_limited(&path, max_bytes));
        match loaded {
            Ok(loaded) => Ok(Table { inner: loaded.table }),
            Err(e) => Err(ConfigError::new_err(e.to_string())),
        }
    }

    /// A table from the JSON of the server's `GET /table`, after recomputing every fingerprint
    /// from the algorithm, names, nodes, Ids, weights and zones it holds. Raises
    /// `UnverifiedTableError` when one does not match.
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str) -> PyResult<Table> {
        let text = text.to_owned();
        match py.detach(move || verified(&text)) {
            Ok(inner) => Ok(Table { inner }),
            Err(e) => Err(UnverifiedTableError::new_err(e)),
        }
    }

    /// A table from service descriptions, as the conformance vectors write them:
    /// `[{"name": "bar", "nodes": [{"node": "bar1:8080", "id": "b1", "weight": 2.0}]}]`.
    #[staticmethod]
    #[pyo3(signature = (services, algorithm = 2))]
    fn from_services(py: Python<'_>, services: &Bound<'_, PyAny>, algorithm: i64) -> PyResult<Table> {
        let json: String = py.import("json")?.call_method1("dumps", (services,))?.extract()?;
        let sources: Vec<ServiceSource> =
            serde_json::from_str(&json).map_err(|e| KeyrouterError::new_err(format!("not a list of services: {e}")))?;
        let algorithm = algorithm_of(algorithm).map_err(KeyrouterError::new_err)?;
        let mut specs = Vec::with_capacity(sources.len());
        for s in sources {
            let nodes = s
                .nodes
                .into_iter()
                .map(|n| node_spec(n.node, n.id, n.weight, n.zone))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| KeyrouterError::new_err(format!("service {:?}: {e}", s.name)))?;
            specs.push(ServiceSpec { name: s.name, nodes });
        }
        let (inner, _) =
            ranking::Table::build_with(algorithm, specs).map_err(|e| KeyrouterError::new_err(e.to_string()))?;
        Ok(Table { inner })
    }

    /// The nodes ranked highest for `key` in `service`, best first: between `min` and `max`
    /// of them (`max` defaults to `min`), as the server's `POST /service/{service}` answers.
    ///
    /// The answer's list is built straight from the table's node names (a `Vec<String>` in
    /// between, converted by PyO3, cost four allocations a lookup).
    #[pyo3(signature = (service, key, min = 1, max = None, exclude = Vec::new(), spread = None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one per lookup field.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        key: &str,
        min: u64,
        max: Option<u64>,
        exclude: Vec<String>,
        spread: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.lookup_list(py, service, key, min, max, &exclude, spread)
    }

    /// `lookup` for many keys: a dict from each distinct key (in the order keys first appear)
    /// to its answer, as the server's batch answer. No keys raise `InvalidLookupError`, as the
    /// server answers 400 to an empty batch.
    #[pyo3(signature = (service, keys, min = 1, max = None, exclude = Vec::new(), spread = None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one per lookup field.
    fn lookup_many<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        keys: &Bound<'py, PyAny>,
        min: u64,
        max: Option<u64>,
        exclude: Vec<String>,
        spread: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let service = self.service(service)?;
        let ask = Ask::new(min, max, &exclude, spread)?;
        // The server's checks in its order: an empty batch is refused before the plan's own
        // (src/request/decode.rs), so the first key is taken before planning.
        let mut keys = keys.try_iter()?;
        let Some(first) = keys.next().transpose()? else {
            return Err(InvalidLookupError::new_err("`keys` must not be empty"));
        };
        let planned = ask.plan(service).map_err(lookup_error)?;
        let out = PyDict::new(py);
        for key in std::iter::once(Ok(first)).chain(keys) {
            let key = key?;
            if out.contains(&key)? {
                continue;
            }
            let text: std::borrow::Cow<str> = key.extract()?;
            if text.is_empty() {
                return Err(InvalidLookupError::new_err("`keys` must not contain an empty key"));
            }
            let answer = planned.rank(&text);
            out.set_item(key, PyList::new(py, answer)?)?;
        }
        Ok(out)
    }

    /// The `k` nodes ranked highest for `key`, best first (fewer when the service has fewer):
    /// the ranking itself, as the conformance vectors define it, for any key (the empty one
    /// too, which a lookup refuses as the server does).
    /// `exclude` and `spread` as in `lookup`.
    #[pyo3(signature = (service, key, k, exclude = Vec::new(), spread = None))]
    fn rank<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        key: &str,
        k: usize,
        exclude: Vec<String>,
        spread: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let service = self.service(service)?;
        let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
        let resolved = service.resolve(&LookupOptions { exclude: &exclude, spread: spread_of(spread)? });
        let k = k.min(service.len() - resolved.excluded());
        let mut out = Vec::with_capacity(k);
        service.rank_with_each(key, k, &resolved, |node| out.push(node));
        PyList::new(py, out)
    }

    /// The table's fingerprint, 16 hex digits, as the server's `/table` and `check` show it.
    #[getter]
    fn fingerprint(&self) -> String {
        fingerprint_hex(self.inner.fingerprint())
    }

    /// The ranking algorithm's number (1 or 2).
    #[getter]
    fn algorithm(&self) -> u32 {
        self.inner.algorithm().number()
    }

    /// The service names, sorted.
    #[getter]
    fn services(&self) -> Vec<String> {
        self.inner.names().to_vec()
    }

    /// A service's node addresses, in file order.
    fn nodes(&self, service: &str) -> PyResult<Vec<String>> {
        Ok(self.service(service)?.nodes().to_vec())
    }

    /// A service's zones, one per node in the order of `nodes` (None for a node without a
    /// zone), or None when no node of the service has one.
    fn zones(&self, service: &str) -> PyResult<Option<Vec<Option<String>>>> {
        Ok(self.service(service)?.zones().map(<[_]>::to_vec))
    }

    /// A service's fingerprint, 16 hex digits.
    fn service_fingerprint(&self, service: &str) -> PyResult<String> {
        Ok(fingerprint_hex(self.service(service)?.fingerprint()))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, service: &str) -> bool {
        self.inner.get(service).is_some()
    }

    fn __repr__(&self) -> String {
        format!(
            "<keyrouter.Table {} services, {} nodes, algorithm {}, fingerprint {}>",
            self.inner.len(),
            self.inner.node_count(),
            self.inner.algorithm().number(),
            fingerprint_hex(self.inner.fingerprint())
        )
    }
}

/// `exclude` as the client's lookups take it: not given, or any iterable of identities but a
/// string (which `identities` refuses, as the Python client always has).
enum Exclude<'py> {
    NotGiven,
    Given(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Exclude<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Exclude::Given(obj.to_owned()))
    }
}

impl Exclude<'_> {
    /// The identities of an `exclude` given to the client: none when not given; else what the
    /// Python client did before calling the table (a string refused, anything else through
    /// `list()`), with its errors, and then `Table.lookup`'s own conversion, with PyO3's errors
    /// for its `exclude` argument.
    fn identities(self, py: Python<'_>) -> PyResult<Vec<String>> {
        match self {
            Exclude::NotGiven => Ok(Vec::new()),
            Exclude::Given(e) => identities(py, &e),
        }
    }
}

/// [`Exclude::identities`] of a given `exclude`.
fn identities(py: Python<'_>, exclude: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if exclude.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "exclude takes a list of node identities, not a string: [{}]?",
            exclude.repr()?
        )));
    }
    let listed;
    let list = match exclude.is_instance_of::<PyList>() {
        true => exclude,
        false => {
            listed = py.get_type::<PyList>().call1((exclude,))?;
            &listed
        }
    };
    list.extract().map_err(|e| argument_extraction_error(py, "exclude", e))
}

/// The base of the Python `Client`: the table it answers from, swapped whole by a refresh, and
/// `lookup` and `lookup_many` in Rust, so that a lookup through the client costs no Python
/// frame (a fifth of a lookup at 100 nodes). The rest of the client (fetching, refreshing) is
/// Python.
#[pyclass(subclass, frozen, module = "keyrouter")]
struct ClientBase {
    table: Mutex<Option<Py<Table>>>,
}

#[pymethods]
impl ClientBase {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyAny>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        ClientBase { table: Mutex::new(None) }
    }

    /// The current verified `Table` (None before the first).
    #[getter(_table)]
    fn table(&self, py: Python<'_>) -> Option<Py<Table>> {
        self.current(py)
    }

    #[setter(_table)]
    fn set_table(&self, table: Option<Py<Table>>) {
        *self.table.lock().unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// The nodes of ``service`` ranked highest for ``key``, best first: the server's answer
    /// to ``POST /service/{service}`` with the same fields.
    #[pyo3(signature = (service, key, min = 1, max = None, exclude = Exclude::NotGiven, spread = None))]
    #[pyo3(text_signature = "(self, service, key, min=1, max=None, exclude=(), spread=None)")]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one per lookup field.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        key: &str,
        min: u64,
        max: Option<u64>,
        exclude: Exclude<'py>,
        spread: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let table = self.answering(py, "lookup")?;
        let exclude = exclude.identities(py)?;
        table.get().lookup_list(py, service, key, min, max, &exclude, spread)
    }

    /// ``lookup`` for many keys, all against one table: a dict from each distinct key to its
    /// answer, as the server's batch answer. No keys raise ``InvalidLookupError``, as the
    /// server answers 400 to an empty batch.
    #[pyo3(signature = (service, keys, min = 1, max = None, exclude = Exclude::NotGiven, spread = None))]
    #[pyo3(text_signature = "(self, service, keys, min=1, max=None, exclude=(), spread=None)")]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one per lookup field.
    fn lookup_many<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        keys: &Bound<'py, PyAny>,
        min: u64,
        max: Option<u64>,
        exclude: Exclude<'py>,
        spread: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let table = self.answering(py, "lookup_many")?;
        let exclude = exclude.identities(py)?;
        table.get().lookup_many(py, service, keys, min, max, exclude, spread)
    }
}

impl ClientBase {
    fn current(&self, py: Python<'_>) -> Option<Py<Table>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|t| t.clone_ref(py))
    }

    /// The table a lookup answers from, read once: a refresh swapping it meanwhile does not
    /// mix two. Before the first, the error `None.method` would have raised.
    fn answering(&self, py: Python<'_>, method: &str) -> PyResult<Py<Table>> {
        self.current(py)
            .ok_or_else(|| PyAttributeError::new_err(format!("'NoneType' object has no attribute '{method}'")))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // What the server does at startup: a build that ranks differently must not load.
    ranking::self_check().map_err(|e| PyImportError::new_err(e.to_string()))?;
    let py = m.py();
    m.add_class::<Table>()?;
    m.add_class::<ClientBase>()?;
    m.add("KeyrouterError", py.get_type::<KeyrouterError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("UnverifiedTableError", py.get_type::<UnverifiedTableError>())?;
    m.add("UnknownServiceError", py.get_type::<UnknownServiceError>())?;
    m.add("InvalidLookupError", py.get_type::<InvalidLookupError>())?;
    m.add("NotEnoughNodesError", py.get_type::<NotEnoughNodesError>())?;
    m.add("DEFAULT_MAX_SERVICES_BYTES", config::DEFAULT_MAX_SERVICES_BYTES)?;
    Ok(())
}
