//! Every Kubernetes manifest, and what `kubectl kustomize` builds from them, validates offline
//! against the Kubernetes API schemas in strict mode (unknown fields are errors), with the
//! kubernetes-validate package from PyPI.
//!
//! The validator is installed by this test into a virtual environment under target/ the first
//! time (python3 -m venv, then pip install: a minute or so) and reused afterwards. A manifest that
//! does not validate fails the test; so does a validator that cannot be installed.

#[path = "support/manifests.rs"]
mod manifests;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use manifests::*;
use serde_json::Value;

/// The oldest Kubernetes the manifests are for: native sidecars (on by default since 1.29), the
/// `sleep` pre-stop action and ContainerResource autoscaling metrics (stable in 1.30).
const KUBERNETES_VERSION: &str = "1.30.0";

/// Pinned, so that a new release of the validator cannot change the verdict unnoticed.
const VALIDATOR: &str = "kubernetes-validate==1.37.0";

/// The virtual environment's python, with the validator installed.
fn validator_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(install_validator).clone()
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn install_validator() -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = base.join(VALIDATOR.replace("==", "-"));
    let python = venv.join("bin/python");
    let marker = venv.join(".installed");
    std::fs::create_dir_all(base).unwrap();
    // One installer at a time, across test processes too.
    let lock = File::create(base.join("kubernetes-validate.lock")).unwrap();
    // SAFETY: flock(2) on a descriptor we own; released when `lock` is dropped.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    if marker.exists() && python.exists() {
        return python;
    }
    // A half-made environment from an interrupted run: start over.
    let _ = std::fs::remove_dir_all(&venv);
    let python3 = std::env::var("KEYROUTER_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        Command::new(&python3).args(["-m", "venv"]).arg(&venv),
        "creating a virtual environment (on Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-input", VALIDATOR]),
        &format!("pip install {VALIDATOR}"),
    );
    std::fs::write(&marker, VALIDATOR).unwrap();
    python
}

/// Runs the validator in strict mode on `files`: (success, combined output).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(validator_python())
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            KUBERNETES_VERSION,
        ])
        .args(files)
        .output()
        .expect("running kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `kind/name` as kubernetes-validate names a resource.
fn resource_id(m: &Value) -> String {
    format!(
        "{}/{}",
        m["kind"].as_str().unwrap().to_ascii_lowercase(),
        m["metadata"]["name"].as_str().unwrap()
    )
}

/// Validates `files` and requires a pass for every document in them: the validator only warns
/// (and exits 0) for a kind it has no schema for, which must not count as valid.
fn assert_all_valid(files: &[PathBuf]) {
    let (ok, output) = validate(files);
    assert!(
        ok,
        "kubernetes-validate --strict -k {KUBERNETES_VERSION} failed:\n{output}"
    );
    let mut expected = 0;
    for f in files {
        for doc in yaml_docs(&read(f), &f.display().to_string()) {
            expected += 1;
            let line = format!(
                "{} passed for resource {} against version",
                f.display(),
                resource_id(&doc)
            );
            assert!(output.contains(&line), "no pass for {line:?}:\n{output}");
        }
    }
    let passes = output.matches(" passed for resource ").count();
    assert_eq!(passes, expected, "{output}");
    assert!(
        !output.contains("WARN") && !output.contains("ERROR"),
        "{output}"
    );
}

#[test]
fn every_manifest_validates_against_the_api_schemas_in_strict_mode() {
    let mut files: Vec<PathBuf> = resources().iter().map(|f| kube_dir().join(f)).collect();
    // The ConfigMap is generated by kustomize from files: validate it as kustomize builds it.
    let dir = tempfile::tempdir().unwrap();
    let cm = dir.path().join("configmap.yaml");
    std::fs::write(
        &cm,
        serde_json::to_string_pretty(&generated_config_map()).unwrap(),
    )
    .unwrap();
    files.push(cm);
    assert_eq!(files.len(), 6);
    assert_all_valid(&files);
}

#[test]
fn the_validator_rejects_an_unknown_field_and_a_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = read(&kube_dir().join("deployment.yaml"));
    assert!(deployment.contains("readinessProbe:"));
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        deployment.replace("readinessProbe:", "readinesProbe:"),
    )
    .unwrap();
    let (ok, output) = validate(std::slice::from_ref(&typo));
    assert!(!ok, "an unknown field passed strict validation:\n{output}");
    assert!(output.contains("readinesProbe"), "{output}");

    let service = read(&kube_dir().join("service.yaml"));
    let bad_port = dir.path().join("port.yaml");
    std::fs::write(&bad_port, service.replace("port: 8080", "port: eighty")).unwrap();
    let (ok, output) = validate(std::slice::from_ref(&bad_port));
    assert!(!ok, "a string port passed:\n{output}");
}

#[test]
fn what_kubectl_apply_k_applies_validates_and_wires_the_generated_configmap() {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(kube_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is needed to build the kustomization (kubectl kustomize): {e}")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("built.yaml");
    std::fs::write(&file, &built).unwrap();
    assert_all_valid(std::slice::from_ref(&file));

    let docs = yaml_docs(&built, "kubectl kustomize");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in [
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceAccount",
    ] {
        assert_eq!(
            kinds.iter().filter(|k| **k == kind).count(),
            1,
            "{kind} in {kinds:?}"
        );
    }
    let find = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap();

    // The generated ConfigMap: hashed name, the files' exact content, mounted by the pod.
    let cm = find("ConfigMap");
    let (base, files) = config_map_generator();
    let name = cm["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with(&format!("{base}-")) && name.len() > base.len() + 1,
        "{name}: expected a content hash suffix"
    );
    for f in &files {
        assert_eq!(
            cm["data"][f].as_str(),
            Some(read(&kube_dir().join(f)).as_str()),
            "{f}"
        );
    }
    assert_eq!(
        cm["data"]["services.toml.tmpl"].as_str(),
        Some(read(&repo().join("services.toml.tmpl")).as_str())
    );
    let pod = &find("Deployment")["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"] == name),
        "the Deployment does not mount {name}"
    );
    let image = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "keyrouter")
        .unwrap()["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "{image}"
    );
}
