//! What the documentation promises about the command line and the deployment holds: booleans from
//! the environment, errors that name the variable the user set, a man page with no dangling
//! references, one Kubernetes minimum version everywhere, and deploy steps that work with kubectl.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Keyrouter, BIN};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn keyrouter(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(repo());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The server with a services file that does not exist: it parses its flags and variables, then
/// exits 1 (cannot read the file), or 2 if a flag or variable is bad.
const SERVE_MISSING: &[&str] = &["--services", "/nonexistent/services.toml", "--address", "127.0.0.1:0"];

#[test]
fn boolean_variables_take_the_usual_spellings() {
    for value in ["1", "true", "yes", "on", "TRUE", "Yes", "0", "false", "no", "off"] {
        let out = keyrouter(SERVE_MISSING, &[("KEYROUTER_WATCH", value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "KEYROUTER_WATCH={value}: {stderr}");
        assert!(stderr.contains("cannot read services file"), "KEYROUTER_WATCH={value}: {stderr}");
    }
}

#[test]
fn keyrouter_watch_1_turns_watching_on_and_0_off() {
    let toml = common::services(&[("bar", &["a", "b"])]);
    let watching = |value: &str| {
        let dir = tempfile::tempdir().unwrap();
        let services = dir.path().join("services.toml");
        std::fs::write(&services, &toml).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--services").arg(&services).args(["--address", "127.0.0.1:0"]).env("KEYROUTER_WATCH", value);
        let k = Keyrouter::spawn(cmd, dir, services);
        k.log().contains("watching ")
    };
    assert!(watching("1"));
    assert!(!watching("0"));
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let out = keyrouter(SERVE_MISSING, &[("KEYROUTER_WATCH", "maybe")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: KEYROUTER_WATCH=maybe: "), "{stderr}");
    // `check` has no --watch, so it does not read the variable.
    let out = keyrouter(&["check", "--services", "deploy/services.example.toml"], &[("KEYROUTER_WATCH", "maybe")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = keyrouter(&["--services", "deploy/services.example.toml"], &[("KEYROUTER_LOG_LEVEL", "loud")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: KEYROUTER_LOG_LEVEL=loud: "), "{stderr}");
    assert!(stderr.contains("use TRACE, DEBUG, INFO, WARN or ERROR"), "{stderr}");

    // The same bad value on the command line is reported as clap reports flags.
    let out = keyrouter(&["--log-level", "loud"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("KEYROUTER_LOG_LEVEL"), "{stderr}");
    assert!(stderr.contains("'--log-level <LEVEL>'"), "{stderr}");
}

#[test]
fn the_man_page_documents_the_subcommands_and_shows_argument_names() {
    let out = keyrouter(&["--help-man"], &[]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    for dangling in [r"keyrouter\-check(1)", r"keyrouter\-lookup(1)", r"keyrouter\-help(1)"] {
        assert!(!page.contains(dangling), "the page refers to {dangling}, which nothing installs");
    }
    let synopsis = page.split(".SH SYNOPSIS").nth(1).and_then(|s| s.split(".SH ").next()).unwrap();
    for shown in [r"\fB\-\-services\fR \fIFILE\fR", r"\fB\-\-address\fR \fIADDR\fR", r"\fB\-\-workers\fR \fIN\fR"] {
        assert!(synopsis.contains(shown), "SYNOPSIS lacks {shown}:\n{synopsis}");
    }
    assert!(synopsis.contains(r"\fBkeyrouter check\fR") && synopsis.contains(r"\fBkeyrouter lookup\fR"));
    // Each line shows the flags that command accepts: `diff` has no --services.
    let diff = synopsis.lines().find(|l| l.starts_with(r"\fBkeyrouter diff\fR")).expect("a diff line");
    assert!(!diff.contains(r"\-\-services\fR") && diff.contains(r"\fB\-\-samples\fR \fIN\fR"), "{diff}");
    assert!(synopsis.contains(r"\fB\-\-request\-timeout\fR \fIDURATION\fR"), "{synopsis}");
    let commands = page.split(".SH COMMANDS").nth(1).expect("a COMMANDS section");
    assert!(commands.contains(r#".SS "keyrouter check""#) && commands.contains(r#".SS "keyrouter lookup""#));
    assert!(commands.contains(r"\fISERVICE\fR") && commands.contains(r"\fB\-\-max\fR \fIN\fR"));
}

/// Kubernetes features the manifests use, with the first version that has them on by default.
const FEATURES: &[(&str, &str, (u32, u32))] = &[
    ("native sidecar", "restartPolicy: Always", (1, 29)),
    ("preStop sleep action", "sleep:", (1, 30)),
    ("ContainerResource HPA metric", "type: ContainerResource", (1, 30)),
    ("autoscaling/v2", "apiVersion: autoscaling/v2", (1, 23)),
    ("policy/v1 PodDisruptionBudget", "apiVersion: policy/v1", (1, 21)),
    ("NetworkPolicy", "kind: NetworkPolicy", (1, 7)),
];

#[test]
fn one_kubernetes_minimum_version_everywhere_and_it_is_what_the_manifests_need() {
    let dir = repo().join("deploy/kubernetes");
    let mut manifests = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            manifests.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let needed = FEATURES.iter().filter(|(_, marker, _)| manifests.contains(marker)).map(|f| f.2).max().unwrap();
    assert!(needed >= (1, 30), "the feature table no longer finds the features the manifests use");
    let version = format!("{}.{}", needed.0, needed.1);

    let readme = std::fs::read_to_string(repo().join("docs/deploying.md")).unwrap();
    assert!(readme.contains(&format!("Kubernetes {version} or later")), "docs/deploying.md states another minimum");
    let deployment = std::fs::read_to_string(dir.join("deployment.yaml")).unwrap();
    assert!(deployment.lines().next().unwrap().contains(&format!("Kubernetes >= {version}")));
    let validate = std::fs::read_to_string(repo().join("tests/integration/kubernetes.rs")).unwrap();
    assert!(
        validate.contains(&format!("\"{version}.0\"")),
        "tests/integration/kubernetes.rs validates against another version"
    );
    // No other version is named as a minimum anywhere.
    for (name, text) in [("docs/deploying.md", &readme), ("deploy/kubernetes", &manifests)] {
        for other in ["1.27", "1.28", "1.29", "1.31"] {
            for phrase in [format!("Kubernetes >= {other}"), format!("Kubernetes {other} or later")] {
                assert!(!text.contains(&phrase), "{name} says {phrase}");
            }
        }
    }
}

#[test]
fn the_documented_image_step_works_with_kubectl_alone() {
    if !common::require_tool("kubectl") {
        return;
    }
    let readme = std::fs::read_to_string(repo().join("docs/deploying.md")).unwrap();
    let step = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("sed -i ") && l.contains("kustomization.yaml"))
        .expect("docs/deploying.md shows how to set the image");
    assert!(!readme.contains("kustomize edit"), "kubectl does not include `kustomize edit`");
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("deploy/kubernetes");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(repo().join("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        // The base is the files; directories are opt-in components.
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    let ran = Command::new("sh").arg("-c").arg(step).current_dir(work.path()).status().unwrap();
    assert!(ran.success(), "{step}");
    let out = Command::new("kubectl").arg("kustomize").arg(&copy).output().expect("kubectl runs");
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version = env!("CARGO_PKG_VERSION");
    assert!(rendered.contains(&format!("image: registry.example.com/keyrouter:{version}")), "{rendered}");
}

#[test]
fn the_deploying_doc_installs_the_binary_before_the_local_one_liner() {
    let readme = std::fs::read_to_string(repo().join("docs/deploying.md")).unwrap();
    let install =
        readme.find("cargo install --locked --path .").expect("docs/deploying.md says how to install keyrouter");
    let one_liner = readme.find("consul-template -template").expect("the local one-liner");
    assert!(install < one_liner);
}

#[test]
fn check_lists_every_error_in_the_file_structural_ones_included() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s3.toml");
    std::fs::write(
        &file,
        "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x\", Weight = 0 }]\n[[Services]]\nName = \"a\"\n\
         [[Services]]\nNodes = [\"y\"]\n[[Services]]\nName = \"b\"\nNode = [\"z\"]\n",
    )
    .unwrap();
    let out = keyrouter(&["check", "--services", file.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("s3.toml:")).collect();
    assert_eq!(errors.len(), 4, "{stderr}");
    for (line, needle) in
        [(3, "Weight"), (5, "already defined"), (6, "missing field `Name`"), (10, "unknown field `Node`")]
    {
        assert!(
            errors.iter().any(|e| e.contains(&format!("s3.toml:{line}:")) && e.contains(needle)),
            "no error at line {line} ({needle}):\n{stderr}"
        );
    }
}

#[test]
fn the_documented_synopsis_shows_exactly_the_flags_each_command_accepts() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(repo().join("docs/operating.md")).unwrap();
    let section = readme.split("## Command line\n").nth(1).expect("a Command line section");
    let block = section.split("```").nth(1).expect("a synopsis block");
    // Continuation lines (indented) belong to the line above.
    let mut lines: Vec<String> = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        match lines.last_mut() {
            Some(last) if line.starts_with(' ') => last.push_str(line),
            _ => lines.push(line.to_string()),
        }
    }
    let cli = keyrouter::cli::Cli::command();
    let mut seen = Vec::new();
    for line in lines.iter().filter(|l| !l.starts_with("keyrouter --version")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let cmd = match words.get(1) {
            Some(&name) if !name.starts_with('[') => cli.find_subcommand(name).expect(name),
            _ => &cli,
        };
        let shown: std::collections::BTreeSet<String> = words
            .iter()
            .map(|w| w.trim_start_matches('['))
            .filter(|w| w.starts_with("--"))
            .map(|w| w.trim_end_matches(']').to_string())
            .collect();
        let accepted: std::collections::BTreeSet<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !["help", "version", "help-long", "help-man"].contains(l))
            .map(|l| format!("--{l}"))
            .collect();
        assert_eq!(shown, accepted, "docs/operating.md synopsis of `{}`", cmd.get_name());
        seen.push(cmd.get_name().to_string());
    }
    assert_eq!(seen, ["keyrouter", "check", "lookup", "diff"]);
}
