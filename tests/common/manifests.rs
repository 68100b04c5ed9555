//! Reading the deployment files: the Kubernetes manifests under deploy/kubernetes (YAML, as
//! JSON values), the kustomization, and the consul-template configuration.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn kube_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document in `src`, skipping empty ones.
pub fn yaml_docs(src: &str, origin: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(src)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The single document of a YAML file under deploy/kubernetes.
pub fn manifest(file: &str) -> Value {
    let path = kube_dir().join(file);
    let mut docs = yaml_docs(&read(&path), file);
    assert_eq!(docs.len(), 1, "{file}: expected exactly one document");
    docs.remove(0)
}

pub fn kustomization() -> Value {
    manifest("kustomization.yaml")
}

/// The files kustomization.yaml lists under `resources`.
pub fn resources() -> Vec<String> {
    strs(&kustomization()["resources"])
}

/// Every resource manifest, with its file name.
pub fn resource_manifests() -> Vec<(String, Value)> {
    resources()
        .into_iter()
        .map(|f| {
            let m = manifest(&f);
            (f, m)
        })
        .collect()
}

/// The one resource of `kind` among the kustomization's resources.
pub fn of_kind(kind: &str) -> Value {
    let mut found: Vec<Value> =
        resource_manifests().into_iter().map(|(_, m)| m).filter(|m| m["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found.remove(0)
}

pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")).to_string())
        .collect()
}

pub fn pod_spec() -> Value {
    of_kind("Deployment")["spec"]["template"]["spec"].clone()
}

/// A container (or init container) of the Deployment's pod, by name.
pub fn container(name: &str) -> Value {
    let spec = pod_spec();
    let all = spec["containers"].as_array().into_iter().chain(spec["initContainers"].as_array()).flatten();
    let found: Vec<&Value> = all.filter(|c| c["name"] == name).collect();
    assert_eq!(found.len(), 1, "expected one container named {name}");
    found[0].clone()
}

/// The generated ConfigMap: (name, files).
pub fn config_map_generator() -> (String, Vec<String>) {
    let gens = kustomization()["configMapGenerator"].clone();
    let gens = gens.as_array().expect("configMapGenerator");
    assert_eq!(gens.len(), 1, "expected one configMapGenerator");
    let name = gens[0]["name"].as_str().unwrap().to_string();
    (name, strs(&gens[0]["files"]))
}

/// The ConfigMap kustomize generates, as a plain manifest (without the name's hash suffix).
pub fn generated_config_map() -> Value {
    let (name, files) = config_map_generator();
    let mut data = serde_json::Map::new();
    for f in files {
        data.insert(f.clone(), Value::String(read(&kube_dir().join(&f))));
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name },
        "data": data,
    })
}

/// `key = "value"` settings of consul-template.hcl, in order (nested blocks flattened).
pub fn hcl_strings() -> Vec<(String, String)> {
    let src = read(&kube_dir().join("consul-template.hcl"));
    src.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| {
            let v = v.trim();
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

pub fn hcl_string(key: &str) -> String {
    let found: Vec<String> = hcl_strings().into_iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect();
    assert_eq!(found.len(), 1, "consul-template.hcl: expected one {key} = \"...\"");
    found[0].clone()
}

/// `key = [ "a", "b" ]` in consul-template.hcl (on one line).
pub fn hcl_list(key: &str) -> Vec<String> {
    let src = read(&kube_dir().join("consul-template.hcl"));
    let found: Vec<Vec<String>> = src
        .lines()
        .map(str::trim)
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| serde_json::from_str(v.trim()).expect("an HCL list of strings"))
        .collect();
    assert_eq!(found.len(), 1, "consul-template.hcl: expected one {key} = [...]");
    found[0].clone()
}
