//! The module layering of `src/`: every `use crate::` edge points down, so that each change has
//! one obvious home and the offline commands never drag in the HTTP layer. A new module gets a
//! layer here; an edge that points up (or sideways between layers that must not know each other)
//! fails with the file and the edge.

use std::collections::BTreeSet;
use std::path::Path;

/// Layers, top first. A module may use modules of lower layers only (and itself).
const LAYERS: &[&[&str]] = &[
    &["main"],
    &["cli::commands"],
    &["cli::manpage", "cli::diff"],
    &["cli"],
    &["startup"],
    &["signals", "table::watch", "descriptors"],
    &["table::watch_path"],
    &["table::reload"],
    &["http"],
    &["status_page"],
    &["table::state"],
    &["limits"],
    &["request", "table::config", "metrics", "impact"],
    &["address", "logging", "memory"],
    &["ranking", "table"],
];

/// Folders whose files are layers of their own (`cli::diff`, `table::state`); every other folder
/// (`http`, `request`, `status_page`) is one layer.
const SUBSYSTEMS: &[&str] = &["cli", "table"];

/// The layer a path below `crate::` names: `cli::diff` for `cli::diff::Change`, `cli` for
/// `cli::Cli`, `http` for `http::error::HttpError`.
fn layer_of_path(path: &str) -> String {
    let mut parts = path.split("::");
    let first = parts.next().unwrap_or("").to_string();
    if SUBSYSTEMS.contains(&first.as_str()) {
        if let Some(second) = parts.next() {
            let candidate = format!("{first}::{second}");
            if layer(&candidate).is_some() {
                return candidate;
            }
        }
    }
    first
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The layer a file under `src/` belongs to: its top-level module, or for the files of a
/// subsystem folder, `folder::file`.
fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).expect("under src");
    let parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    match parts.as_slice() {
        [folder, file] if SUBSYSTEMS.contains(&folder.as_str()) && file != "mod" => format!("{folder}::{file}"),
        // A module of a subsystem that is a folder itself (`cli/diff/keys.rs`) is that module's layer.
        [folder, module, _, ..] if SUBSYSTEMS.contains(&folder.as_str()) => format!("{folder}::{module}"),
        [first, ..] => first.clone(),
        [] => unreachable!("a file has a name"),
    }
}

/// `crate::X` paths used in code (comments and doc comments skipped).
fn crate_edges(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let path: String =
                after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            match after[path.len()..].strip_prefix('{') {
                // `use crate::{a, b::C}` and `use crate::table::{config, state::X}`: each item.
                Some(list) => {
                    for item in list.split('}').next().unwrap_or("").split(',') {
                        let item = item.trim();
                        if !item.is_empty() && item != "self" {
                            out.insert(layer_of_path(&format!("{path}{item}")));
                        } else if item == "self" {
                            out.insert(layer_of_path(path.trim_end_matches(':')));
                        }
                    }
                }
                None if !path.is_empty() => {
                    out.insert(layer_of_path(path.trim_end_matches(':')));
                }
                None => {}
            }
            rest = after;
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_crate_edge_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut edges_seen = 0;
    for file in &files {
        let from = module_of(file, &src);
        if from == "lib" {
            continue;
        }
        let Some(from_layer) = layer(&from) else {
            problems.push(format!("{}: module `{from}` has no layer in tests/layout.rs", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for to in crate_edges(&text) {
            if to == from {
                continue;
            }
            edges_seen += 1;
            match layer(&to) {
                None => problems.push(format!("{}: uses `crate::{to}`, which has no layer", file.display())),
                Some(to_layer) if to_layer <= from_layer => {
                    problems.push(format!("{}: `{from}` uses `crate::{to}`, which is not below it", file.display()))
                }
                Some(_) => {}
            }
        }
    }
    assert!(edges_seen > 20, "the edge scanner found only {edges_seen} edges: is it broken?");
    assert!(problems.is_empty(), "layering violations:\n{}", problems.join("\n"));
}

#[test]
fn the_offline_commands_and_the_request_layer_never_touch_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let request = ["request/mod.rs", "request/decode.rs", "request/encode.rs"];
    for file in request.iter().chain(&["table/state.rs", "table/reload.rs"]) {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        assert!(!crate_edges(&text).contains("http"), "{file} uses crate::http");
    }
    for file in request {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        assert!(!text.lines().any(|l| l.trim_start().starts_with("use actix")), "{file} uses actix");
    }
    // `keyrouter check` and `keyrouter lookup` go through config, ranking and request only.
    let commands = std::fs::read_to_string(src.join("cli/commands.rs")).unwrap();
    let offline: String =
        commands.split("fn load_checked").nth(1).expect("cli/commands.rs has load_checked").to_string();
    assert!(
        !crate_edges(&offline).contains("http") && !offline.contains("startup::"),
        "offline commands use the server"
    );
}

/// The ranking crate is pure because of what it may link: no runtime, no I/O stack, no logging.
/// A new dependency there is a decision (the client packages build on this crate alone), so it
/// must be added to this list on purpose.
#[test]
fn the_ranking_crate_links_only_pure_dependencies() {
    const ALLOWED: &[&str] = &["ahash", "libm", "thiserror", "xxhash-rust"];
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/ranking/Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
    let deps = manifest["dependencies"].as_table().expect("[dependencies]");
    let extra: Vec<&String> = deps.keys().filter(|d| !ALLOWED.contains(&d.as_str())).collect();
    assert!(extra.is_empty(), "crates/ranking depends on {extra:?}: the ranking core must stay pure");
    assert!(!manifest.contains_key("target"), "crates/ranking has target-specific dependencies");
}

/// The services-file parser (crates/config, `table::config` in the server) is what the Python
/// client builds on beside the ranking crate: it links no runtime, no HTTP stack, no logging.
#[test]
fn the_config_crate_links_only_pure_dependencies() {
    const ALLOWED: &[&str] = &["keyrouter-ranking", "serde", "toml", "ahash", "libc"];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table =
        std::fs::read_to_string(root.join("crates/config/Cargo.toml")).unwrap().parse().unwrap();
    let deps = manifest["dependencies"].as_table().expect("[dependencies]");
    let extra: Vec<&String> = deps.keys().filter(|d| !ALLOWED.contains(&d.as_str())).collect();
    assert!(extra.is_empty(), "crates/config depends on {extra:?}: the parser must stay free of the server");
    assert!(!manifest.contains_key("target"), "crates/config has target-specific dependencies");
    // The server sees the crate where it always was.
    let table = std::fs::read_to_string(root.join("src/table/mod.rs")).unwrap();
    assert!(table.contains("pub use keyrouter_config as config;"), "src/table/mod.rs re-exports the parser");
}

#[test]
fn the_scanner_sees_edges_and_skips_comments() {
    let edges = crate_edges(
        "use crate::a::B;\n// use crate::z;\n/// [`crate::y`]\nuse crate::{b, c::D};\nlet x = crate::d::f();\n\
         use crate::table::{config::X, state};\nuse crate::cli::{self, Cli};\nlet d = crate::cli::diff::run();",
    );
    assert_eq!(
        edges.into_iter().collect::<Vec<_>>(),
        ["a", "b", "c", "cli", "cli::diff", "d", "table::config", "table::state"]
    );
}
