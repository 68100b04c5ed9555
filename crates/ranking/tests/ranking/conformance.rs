//! Algorithm 2's conformance vectors (`tests/vectors/algorithm2.json`): the answers, hashes and
//! fingerprints that `docs/ranking.md` specifies, for every implementation to reproduce. This
//! test proves the Rust implementation reproduces them; the Python and JavaScript
//! implementations written from the specification alone (`tests/independent/`) are run against
//! the same file by the server's test suite.
//!
//! Like the golden vectors, the file is a contract: regenerate it only when the specification
//! changes, with `KEYROUTER_BLESS=1 cargo test -p keyrouter-ranking --test ranking conformance`.

use keyrouter_ranking::hash::mix;
use keyrouter_ranking::{fingerprint_hex, Algorithm, NodeSpec, Service, ServiceSpec, Table, V2_ID_SEED, V2_KEY_SEED};
use serde::{Deserialize, Serialize};

pub const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/algorithm2.json");

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Vectors {
    algorithm: u32,
    about: String,
    /// `XXH64(UTF-8 bytes, seed)` for the two seeds the algorithm uses.
    xxh64: Vec<HashCase>,
    /// `fmix64(x)`.
    fmix64: Vec<MixCase>,
    services: Vec<ServiceCase>,
    /// Tables built from `services` (by index): their table fingerprints.
    tables: Vec<TableCase>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct HashCase {
    input: String,
    seed: String,
    hash: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct MixCase {
    input: String,
    output: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct Node {
    node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<f64>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct ServiceCase {
    name: String,
    nodes: Vec<Node>,
    fingerprint: String,
    lookups: Vec<Lookup>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Lookup {
    key: String,
    key_hash: String,
    /// How many nodes are asked for; the answer has `min(k, nodes)`.
    k: usize,
    expected: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct TableCase {
    services: Vec<usize>,
    fingerprint: String,
}

fn hex(x: u64) -> String {
    format!("{x:016x}")
}

fn spec(name: &str, nodes: &[Node]) -> ServiceSpec {
    ServiceSpec {
        name: name.to_string(),
        nodes: nodes
            .iter()
            .map(|n| NodeSpec { node: n.node.clone(), id: n.id.clone(), weight: n.weight.unwrap_or(1.0), zone: None })
            .collect(),
    }
}

fn build(name: &str, nodes: &[Node]) -> Service {
    Service::build_with(spec(name, nodes), Algorithm::V2).unwrap_or_else(|e| panic!("service {name:?}: {e}")).0
}

/// A service's name, nodes and lookups (a key and the values of k to ask it with).
type ServiceInput = (String, Vec<Node>, Vec<(String, Vec<usize>)>);

/// Deterministic inputs: the algorithm's corner cases, each of which an implementation in
/// another language could get wrong. Also the tables to build from them (service indexes).
fn inputs() -> (Vec<ServiceInput>, Vec<Vec<usize>>) {
    let mut r = 0x6b65_7972_6f75_7465u64;
    let mut next = move || {
        r = mix(r.wrapping_add(0x9e37_79b9_7f4a_7c15));
        r
    };
    let plain = |n: &str| Node { node: n.to_string(), id: None, weight: None };
    let long = |len: usize, seed: u64| -> String {
        "abcdefghijklmnopqrstuvwxyz0123456789-_:/ ".chars().cycle().skip((seed % 41) as usize).take(len).collect()
    };
    // Keys of every kind: empty, short, non-ASCII, around XXH64's 32-byte stripe and 8/4-byte
    // tails, and over 1 KB.
    let mut keys: Vec<String> = vec![
        String::new(),
        "ryans".into(),
        "a".into(),
        "user:42".into(),
        "ключ".into(),
        "session 🚀".into(),
        "日本語のキー".into(),
        "tab\there".into(),
        "\u{0}nul".into(),
        "é".into(),
        "e\u{301}".into(),
    ];
    for len in [3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1025, 1500] {
        keys.push(long(len, len as u64));
    }
    let mut services = Vec::new();
    // Every k from 1 to n (and past n) on small services.
    let small_sets: Vec<Vec<Node>> = vec![
        ["bar1:8080", "bar2:8080", "bar3:8080"].map(plain).to_vec(),
        ["10.0.0.5:8080", "10.0.0.6:8080"].map(plain).to_vec(),
        vec![plain("only:1")],
        vec![
            Node { node: "10.0.0.5:8080".into(), id: Some("web-0".into()), weight: None },
            Node { node: "10.0.0.6:8080".into(), id: Some("web-1".into()), weight: None },
            Node { node: "10.0.0.7:8080".into(), id: Some("web-2".into()), weight: None },
            plain("b:1"),
        ],
        // Ids that differ from nodes, with weights.
        vec![
            plain("a:1"),
            Node { node: "10.0.0.5:8080".into(), id: Some("web-0".into()), weight: None },
            Node { node: "b:1".into(), id: Some("web-1".into()), weight: Some(2.0) },
        ],
        // An Id equal to its own node is the same as no Id.
        vec![
            Node { node: "x:1".into(), id: Some("x:1".into()), weight: None },
            plain("y:1"),
            Node { node: "z:1".into(), id: Some("узел-z".into()), weight: None },
        ],
        // Equal weights other than 1 rank (and fingerprint) like no weights.
        ["e0:1", "e1:1", "e2:1", "e3:1"].map(|n| Node { node: n.into(), id: None, weight: Some(2.5) }).to_vec(),
        // The whole weight range.
        vec![
            Node { node: "tiny:1".into(), id: None, weight: Some(1e-6) },
            Node { node: "huge:1".into(), id: None, weight: Some(1e6) },
            Node { node: "mid:1".into(), id: None, weight: Some(1.0) },
            Node { node: "odd:1".into(), id: None, weight: Some(12345.678) },
            Node { node: "small:1".into(), id: None, weight: Some(0.001) },
        ],
    ];
    for (i, nodes) in small_sets.into_iter().enumerate() {
        let n = nodes.len();
        let lookups = keys.iter().map(|k| (k.clone(), (1..=n + 1).collect())).collect();
        services.push((format!("small-{i}"), nodes, lookups));
    }
    // Random services: sizes around the selection's thresholds, node spellings, weights.
    for i in 0..24u64 {
        let n = [5usize, 10, 33, 100, 129, 300][(i % 6) as usize];
        let style = next() % 4;
        let weighted = i % 3 == 1;
        let nodes: Vec<Node> = (0..n)
            .map(|j| {
                let node = match style {
                    0 => format!("node{j}.example:80"),
                    1 => format!("10.{}.{}.{}:{}", next() % 256, next() % 256, j % 256, 8000 + j),
                    2 => format!("[fd00::{:x}]:443", j * 7 + 1),
                    _ => format!("узел-{j} \"q\""),
                };
                let id = (next() % 3 == 0).then(|| format!("id-{i}-{j}"));
                let weight = weighted
                    .then(|| [1e-6, 0.001, 0.5, 1.0, 2.0, 3.25, 10.0, 1000.0, 123456.789, 1e6][(next() % 10) as usize]);
                Node { node, id, weight }
            })
            .collect();
        let lookups = (0..8)
            .map(|_| {
                let key = keys[(next() % keys.len() as u64) as usize].clone();
                let key = if next() % 2 == 0 { format!("{key}{}", next() % 1000) } else { key };
                (key, vec![1, 2, 3, 1 + (next() % n as u64) as usize])
            })
            .collect();
        services.push((format!("random-{i}"), nodes, lookups));
    }
    // Two-service names that sort differently by bytes than by characters' appearance.
    services.push(("Zeta".into(), vec![plain("z:1")], vec![("k".into(), vec![1])]));
    services.push(("alpha".into(), vec![plain("a:1")], vec![("k".into(), vec![1])]));
    services.push(("ä-umlaut".into(), vec![plain("u:1")], vec![("k".into(), vec![1])]));
    let last = services.len();
    let tables = vec![vec![0], vec![0, 1, 2], vec![last - 3, last - 2, last - 1], (0..last).collect(), vec![]];
    (services, tables)
}

fn generate() -> Vectors {
    let (inputs, tables) = inputs();
    let mut xxh64 = Vec::new();
    for input in ["", "a", "abc", "ryans", "web-0", "bar1:8080", "ключ", "session 🚀"] {
        for seed in [0, V2_KEY_SEED, V2_ID_SEED] {
            let hash = xxhash_of(input, seed);
            xxh64.push(HashCase { input: input.into(), seed: hex(seed), hash: hex(hash) });
        }
    }
    let fmix64 = [0u64, 1, 0x9e37_79b9_7f4a_7c15, u64::MAX, V2_KEY_SEED ^ V2_ID_SEED]
        .iter()
        .map(|&x| MixCase { input: hex(x), output: hex(mix(x)) })
        .collect();
    let mut services = Vec::new();
    for (name, nodes, lookups) in &inputs {
        let service = build(name, nodes);
        let lookups = lookups
            .iter()
            .flat_map(|(key, ks)| {
                let service = &service;
                ks.iter().map(move |&k| {
                    let mut got = Vec::new();
                    service.rank_into(key, k, &mut got);
                    Lookup {
                        key: key.clone(),
                        key_hash: hex(Algorithm::V2.hash_key(key)),
                        k,
                        expected: got.into_iter().map(String::from).collect(),
                    }
                })
            })
            .collect();
        services.push(ServiceCase {
            name: name.clone(),
            nodes: nodes.clone(),
            fingerprint: fingerprint_hex(service.fingerprint()),
            lookups,
        });
    }
    let tables = tables
        .into_iter()
        .map(|members| {
            let specs = members.iter().map(|&i| spec(&inputs[i].0, &inputs[i].1));
            let (table, _) = Table::build_with(Algorithm::V2, specs).expect("valid table");
            TableCase { services: members, fingerprint: fingerprint_hex(table.fingerprint()) }
        })
        .collect();
    Vectors {
        algorithm: 2,
        about: "keyrouter ranking algorithm 2 conformance vectors; see docs/ranking.md. Hashes, fingerprints \
                and seeds are 16 lowercase hex digits; a node without `id` is its own id, without `weight` \
                weighs 1; a lookup's answer is the min(k, nodes) best nodes' addresses, best first."
            .into(),
        xxh64,
        fmix64,
        services,
        tables,
    }
}

/// XXH64 through the ranking's own entry points where they apply, so the vectors check them.
fn xxhash_of(input: &str, seed: u64) -> u64 {
    match seed {
        V2_KEY_SEED => Algorithm::V2.hash_key(input),
        V2_ID_SEED => Algorithm::V2.hash_id(input),
        _ => xxhash_rust::xxh64::xxh64(input.as_bytes(), seed),
    }
}

/// One service per line, so that a change shows as a readable diff.
fn render(v: &Vectors) -> String {
    fn list<T: Serialize>(name: &str, items: &[T]) -> String {
        let lines: Vec<String> = items.iter().map(|x| serde_json::to_string(x).unwrap()).collect();
        format!("\"{name}\": [\n{}\n]", lines.join(",\n"))
    }
    let head = format!("\"algorithm\": {},\n\"about\": {}", v.algorithm, serde_json::to_string(&v.about).unwrap());
    let parts = [
        head,
        list("xxh64", &v.xxh64),
        list("fmix64", &v.fmix64),
        list("services", &v.services),
        list("tables", &v.tables),
    ];
    format!("{{\n{}\n}}\n", parts.join(",\n"))
}

#[test]
fn conformance_vectors_of_algorithm_2() {
    let generated = generate();
    if std::env::var_os("KEYROUTER_BLESS").is_some() {
        std::fs::create_dir_all(std::path::Path::new(PATH).parent().unwrap()).unwrap();
        std::fs::write(PATH, render(&generated)).unwrap();
    }
    let text = std::fs::read_to_string(PATH).expect("tests/vectors/algorithm2.json (bless it, see the module doc)");
    let recorded: Vectors = serde_json::from_str(&text).unwrap();
    let lookups: usize = recorded.services.iter().map(|s| s.lookups.len()).sum();
    assert!(lookups >= 300, "only {lookups} lookups in the vectors");
    // Compared piece by piece, so that a failure names what differs.
    assert_eq!(recorded.xxh64, generated.xxh64, "XXH64 values differ");
    assert_eq!(recorded.fmix64, generated.fmix64, "fmix64 values differ");
    for (r, g) in recorded.services.iter().zip(&generated.services) {
        assert_eq!(r.fingerprint, g.fingerprint, "service {:?}: fingerprint", r.name);
        for (rl, gl) in r.lookups.iter().zip(&g.lookups) {
            assert_eq!(rl, gl, "service {:?}", r.name);
        }
        assert_eq!(r, g);
    }
    assert_eq!(recorded, generated, "the vectors differ from what this build computes");
    // The file itself stays readable and small (no tracked file over 1 MB).
    assert!(text.len() < 1 << 20, "the vector file is {} bytes", text.len());
}

/// XXH64's own published values (the xxHash specification's test vectors, seed 0), so that the
/// crate behind algorithm 2 is checked against the function's definition, not only itself.
#[test]
fn xxh64_matches_its_specification() {
    assert_eq!(xxhash_rust::xxh64::xxh64(b"", 0), 0xef46_db37_51d8_e999);
    assert_eq!(xxhash_rust::xxh64::xxh64(b"a", 0), 0xd24e_c4f1_a98c_6e5b);
    assert_eq!(xxhash_rust::xxh64::xxh64(b"abc", 0), 0x44bc_2cf5_ad77_0999);
}

/// Re-addressing every node of a service while keeping its Ids moves no key: every answer
/// names the same identities, at the new addresses; the fingerprint changes.
#[test]
fn ids_keep_keys_across_readdressing() {
    for algorithm in Algorithm::ALL {
        let before: Vec<NodeSpec> =
            (0..50).map(|i| NodeSpec::new(format!("10.0.0.{i}:8080")).with_id(format!("web-{i}"))).collect();
        let after: Vec<NodeSpec> =
            (0..50).map(|i| NodeSpec::new(format!("10.9.{i}.1:9090")).with_id(format!("web-{i}"))).collect();
        let build = |nodes: &[NodeSpec]| {
            Service::build_with(ServiceSpec { name: "web".into(), nodes: nodes.to_vec() }, algorithm).unwrap().0
        };
        let (a, b) = (build(&before), build(&after));
        assert_ne!(a.fingerprint(), b.fingerprint(), "{algorithm:?}: re-addressing must change the fingerprint");
        let id_of = |s: &Service, node: &str| s.ids()[s.nodes().iter().position(|n| n == node).unwrap()].clone();
        for key in (0..2000).map(|i| format!("key-{i}")) {
            let (x, y) = (a.lookup(&key, 3, 3).unwrap(), b.lookup(&key, 3, 3).unwrap());
            let xi: Vec<String> = x.iter().map(|n| id_of(&a, n)).collect();
            let yi: Vec<String> = y.iter().map(|n| id_of(&b, n)).collect();
            assert_eq!(xi, yi, "{algorithm:?}: key {key:?} moved");
        }
    }
}
