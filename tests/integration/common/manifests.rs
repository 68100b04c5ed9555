//! Reading the deployment files: the Kubernetes manifests under deploy/kubernetes (YAML, as
//! JSON values), the kustomization, and the consul-template configuration (HCL, as JSON values).

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

/// consul-template.hcl, parsed by hcl-rs into JSON values: blocks become objects
/// (`config["template"]["destination"]`), lists arrays.
pub fn consul_template_config() -> Value {
    let path = kube_dir().join("consul-template.hcl");
    hcl::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: invalid HCL: {e}", path.display()))
}

/// The one `template` block of consul-template.hcl.
pub fn consul_template_stanza() -> Value {
    let template = consul_template_config()["template"].clone();
    assert!(template.is_object(), "consul-template.hcl: expected one template block, got {template}");
    template
}

/// A string setting of the `template` block.
pub fn template_string(key: &str) -> String {
    let v = &consul_template_stanza()[key];
    v.as_str().unwrap_or_else(|| panic!("consul-template.hcl: template.{key} is not a string: {v}")).to_string()
}
