//! The deployment files agree with each other and with the binary: the kustomization lists every
//! manifest, the probes hit what keyrouter serves on the port it listens on, every argument given
//! to keyrouter (Deployment, Dockerfile, docs/deploying.md) is one its CLI accepts, the sidecar wiring
//! lines up (paths, user, signal), the pod meets the Restricted profile, and the Dockerfile builds
//! a minimal non-root image. Schema validation is in tests/integration/kubernetes.rs.
//!
//! The files are read with parsers for their formats (serde_norway for YAML, hcl-rs for HCL,
//! parse-dockerfile, globset for .dockerignore globs), and the checks are about parts agreeing
//! with each other and with the binary, not about restating values the manifests spell out.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::manifests::*;
use keyrouter::cli::Cli;
use keyrouter::startup::Settings;
use parse_dockerfile::{Command as DockerCommand, Instruction, Source, Stage};
use serde_json::Value;

// ---- helpers ----------------------------------------------------------------------------------

/// Parses `args` (without the program name) with keyrouter's real CLI definition, into the
/// server's settings.
fn parse_cli(args: &[String]) -> Settings {
    let argv = std::iter::once("keyrouter".to_string()).chain(args.iter().cloned());
    Cli::parse_from(argv).unwrap_or_else(|e| panic!("keyrouter rejects {args:?}:\n{e}")).settings()
}

/// `args` with the value of `flag` replaced.
fn with_flag(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let prefix = format!("{flag}=");
    let mut out = Vec::new();
    let mut it = args.iter();
    let mut seen = false;
    while let Some(a) = it.next() {
        if a == flag {
            it.next();
            out.extend([flag.to_string(), value.to_string()]);
            seen = true;
        } else if a.starts_with(&prefix) {
            out.push(format!("{flag}={value}"));
            seen = true;
        } else {
            out.push(a.clone());
        }
    }
    assert!(seen, "{flag} not in {args:?}");
    out
}

/// Runs the real binary with `args`, except that it serves the example services file and listens
/// on a free loopback port (the production path and port are not ours to take here).
fn run_with(args: &[String]) -> common::Keyrouter {
    let dir = tempfile::tempdir().unwrap();
    let services = dir.path().join("services.toml");
    std::fs::copy(repo().join("deploy/services.example.toml"), &services).unwrap();
    let args = with_flag(args, "--services", services.to_str().unwrap());
    let args = with_flag(&args, "--address", "127.0.0.1:0");
    let mut cmd = Command::new(common::BIN);
    cmd.args(&args);
    common::Keyrouter::spawn(cmd, dir, services)
}

fn deployment_args() -> Vec<String> {
    strs(&container("keyrouter")["args"])
}

/// The containerPort a probe or Service port refers to (by name or number).
fn container_port(c: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("a port name or number");
    c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().expect("matchLabels");
    !sel.is_empty() && sel.iter().all(|(k, v)| &labels[k] == v)
}

// ---- kustomization ----------------------------------------------------------------------------

#[test]
fn kustomization_lists_every_manifest_and_nothing_else() {
    let k = kustomization();
    // The tests read the manifests as they are on disk: a field that changes them on the way
    // (patches, overlays, name prefixes) would make them check something else than is applied.
    let known: BTreeSet<&str> = ["apiVersion", "kind", "resources", "configMapGenerator", "images"].into();
    for key in k.as_object().unwrap().keys() {
        assert!(known.contains(key.as_str()), "unexpected kustomization field {key}");
    }

    let resources = resources();
    let (_, generated) = config_map_generator();
    let listed: BTreeSet<String> = resources.iter().chain(&generated).cloned().collect();
    assert_eq!(listed.len(), resources.len() + generated.len(), "listed twice");
    // Directories are opt-in kustomize components (tested below), not part of the base.
    let on_disk: BTreeSet<String> = std::fs::read_dir(kube_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk, "files in deploy/kubernetes vs the kustomization");

    // Every resource file is a manifest (the generator's inputs are not).
    for f in &resources {
        assert!(f.ends_with(".yaml"), "{f}");
    }
    // Every generated file is read by consul-template: its configuration (the sidecar's
    // -config) and the template that configuration names as its source.
    let sidecar = container("consul-template");
    let mut argv = strs(&sidecar["command"]);
    argv.extend(strs(&sidecar["args"]));
    let config = argv.iter().find_map(|a| a.strip_prefix("-config=")).expect("consul-template -config=...");
    let source = template_string("source");
    let used: BTreeSet<String> = [config, source.as_str()].iter().map(|p| file_name(p)).collect();
    assert_eq!(used, generated.iter().cloned().collect(), "the ConfigMap's files vs what consul-template reads");
}

/// The last component of a path.
fn file_name(path: &str) -> String {
    Path::new(path).file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn the_kustomizations_pointer_to_the_docs_leads_to_a_section() {
    let text = read(&kube_dir().join("kustomization.yaml"));
    let comments: String =
        text.lines().filter_map(|l| l.strip_prefix('#')).map(str::trim).collect::<Vec<_>>().join(" ");
    let (_, rest) =
        comments.split_once("docs/deploying.md's section \"").expect("kustomization.yaml points to docs/deploying.md");
    let section = &rest[..rest.find('"').unwrap()];
    let doc = read(&repo().join("docs/deploying.md"));
    assert!(
        doc.lines().any(|l| l.trim_start_matches('#').trim() == section && l.starts_with('#')),
        "docs/deploying.md has no section {section:?}"
    );
}

#[test]
fn the_configmap_template_is_the_repository_template() {
    let root = std::fs::read(repo().join("services.toml.tmpl")).unwrap();
    let copy = std::fs::read(kube_dir().join("services.toml.tmpl")).unwrap();
    assert!(
        root == copy,
        "deploy/kubernetes/services.toml.tmpl differs from services.toml.tmpl: \
         cp services.toml.tmpl deploy/kubernetes/"
    );
}

#[test]
fn the_deployed_image_is_this_version() {
    let images = kustomization()["images"].clone();
    let images = images.as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], container("keyrouter")["image"]);
    assert_eq!(images[0]["newTag"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn manifests_refer_to_each_other() {
    let deployment = of_kind("Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert!(labels_match(selector, pod_labels));

    let service = of_kind("Service");
    assert!(labels_match(&service["spec"]["selector"], pod_labels));
    let keyrouter = container("keyrouter");
    let listen_port = u64::from(parse_cli(&deployment_args()).address.port);
    for p in service["spec"]["ports"].as_array().unwrap() {
        let target = container_port(&keyrouter, &p["targetPort"]);
        assert_eq!(target, listen_port, "Service port {p} does not reach the port keyrouter listens on");
    }

    let pdb = of_kind("PodDisruptionBudget");
    assert!(labels_match(&pdb["spec"]["selector"]["matchLabels"], pod_labels));

    let hpa = of_kind("HorizontalPodAutoscaler");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!((&target["kind"], &target["name"]), (&deployment["kind"], &deployment["metadata"]["name"]));
    let metrics = hpa["spec"]["metrics"].as_array().unwrap();
    assert!(!metrics.is_empty());
    for m in metrics {
        let r = if m["type"] == "ContainerResource" {
            assert_eq!(m["containerResource"]["container"], "keyrouter");
            &m["containerResource"]
        } else {
            assert_eq!(m["type"], "Resource");
            &m["resource"]
        };
        assert_eq!(r["name"], "cpu");
        // Utilization is relative to the request: there must be one.
        assert!(keyrouter["resources"]["requests"]["cpu"].is_string());
    }
    // The replica counts agree: the Deployment starts within the autoscaler's range, and a drain
    // the disruption budget allows leaves a replica serving even at the minimum.
    let (min, max) = (hpa["spec"]["minReplicas"].as_u64().unwrap(), hpa["spec"]["maxReplicas"].as_u64().unwrap());
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    assert!(min <= replicas && replicas <= max, "replicas {replicas} outside the autoscaler's {min}..={max}");
    let max_unavailable = pdb["spec"]["maxUnavailable"].as_u64().expect("the PDB sets maxUnavailable as a count");
    assert!(max_unavailable >= 1, "a PDB that allows no disruption blocks every node drain");
    assert!(min > max_unavailable, "at {min} replicas, {max_unavailable} evictions leave none serving");

    let sa = of_kind("ServiceAccount");
    let spec = pod_spec();
    assert_eq!(spec["serviceAccountName"], sa["metadata"]["name"]);

    let (cm_name, _) = config_map_generator();
    let volumes = spec["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().any(|v| v["configMap"]["name"] == cm_name.as_str()),
        "no volume mounts the generated ConfigMap {cm_name}"
    );
}

// ---- keyrouter's container: arguments, probes -------------------------------------------------

#[test]
fn deployment_args_are_flags_keyrouter_accepts() {
    let keyrouter = container("keyrouter");
    assert!(
        keyrouter.get("command").is_none(),
        "the image's ENTRYPOINT is keyrouter; the Deployment should only pass args"
    );
    let args = deployment_args();
    let cli = parse_cli(&args);
    assert_eq!(cli.address.host, None, "must listen on all interfaces in a pod");

    // Worker threads bounded by the CPU limit (0 would mean one per CPU of the node).
    let limit = keyrouter["resources"]["limits"]["cpu"].as_str().unwrap();
    let limit_cpus: f64 = match limit.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap() / 1000.0,
        None => limit.parse().unwrap(),
    };
    assert!(
        cli.workers >= 1 && cli.workers as f64 <= limit_cpus.ceil(),
        "--workers {} vs CPU limit {limit}",
        cli.workers
    );
    // The grace period covers the preStop sleep and keyrouter's own shutdown timeout.
    let pre_stop = keyrouter["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    let grace = pod_spec()["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        std::time::Duration::from_secs(pre_stop) + cli.shutdown_timeout < std::time::Duration::from_secs(grace),
        "preStop {pre_stop}s + shutdown {:?} must fit in {grace}s",
        cli.shutdown_timeout
    );
}

#[test]
fn probes_hit_what_the_binary_serves_on_the_port_it_listens_on() {
    let keyrouter = container("keyrouter");
    let args = deployment_args();
    let listen_port = parse_cli(&args).address.port as u64;

    // The binary, started with the Deployment's own arguments.
    let kr = run_with(&args);
    let mut probed = Vec::new();
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &keyrouter[probe];
        if p.is_null() {
            continue;
        }
        let http = &p["httpGet"];
        assert!(http.is_object(), "{probe} should be an HTTP probe: {p}");
        let port = container_port(&keyrouter, &http["port"]);
        assert_eq!(port, listen_port, "{probe} port vs --address");
        let path = http["path"].as_str().unwrap();
        let r = kr.get(path);
        assert_eq!(r.status, 200, "{probe} GET {path}: {}", r.text());
        probed.push(probe);
    }
    assert!(probed.contains(&"livenessProbe") && probed.contains(&"readinessProbe"));
    assert_eq!(keyrouter["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(keyrouter["livenessProbe"]["httpGet"]["path"], "/healthz");

    // And it serves the file it was given.
    let r = kr.get("/service/bar?key=k&min=1&max=1");
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---- the consul-template sidecar ----------------------------------------------------------------

#[test]
fn consul_template_is_a_native_sidecar_gating_keyrouter_on_the_rendered_file() {
    let spec = pod_spec();
    let sidecar = container("consul-template");
    assert!(
        spec["initContainers"].as_array().unwrap().iter().any(|c| c["name"] == "consul-template"),
        "consul-template must be an init container"
    );
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar");

    // Where things are mounted, by volume name.
    let mount = |c: &Value, volume: &str| -> (String, bool) {
        let m = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap_or_else(|| panic!("{} does not mount {volume}", c["name"]));
        (m["mountPath"].as_str().unwrap().to_string(), m["readOnly"].as_bool().unwrap_or(false))
    };
    let volumes = spec["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap().clone();

    // consul-template's configuration and template come from the ConfigMap.
    let (cm_name, _) = config_map_generator();
    let cm_volume = volumes.iter().find(|v| v["configMap"]["name"] == cm_name.as_str()).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (config_dir, _) = mount(&sidecar, &cm_volume);
    let mut argv = strs(&sidecar["command"]);
    argv.extend(strs(&sidecar["args"]));
    assert!(argv[0].ends_with("consul-template"), "{argv:?}");
    assert!(argv.contains(&format!("-config={config_dir}/consul-template.hcl")), "{argv:?}");
    assert_eq!(template_string("source"), format!("{config_dir}/services.toml.tmpl"));

    // It renders into a shared emptyDir that keyrouter reads its --services file from.
    let destination = template_string("destination");
    let dest_dir = Path::new(&destination).parent().unwrap().to_str().unwrap();
    let shared = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["emptyDir"].is_object() && mount(&sidecar, v["name"].as_str().unwrap()).0 == dest_dir)
        .unwrap_or_else(|| panic!("no emptyDir mounted at {dest_dir} in consul-template"))["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (sidecar_dir, sidecar_ro) = mount(&sidecar, &shared);
    assert!(!sidecar_ro, "consul-template must be able to write {sidecar_dir}");
    let (keyrouter_dir, keyrouter_ro) = mount(&container("keyrouter"), &shared);
    assert_eq!(keyrouter_dir, dest_dir);
    assert!(keyrouter_ro, "keyrouter only reads the rendered file");
    let cli = parse_cli(&deployment_args());
    assert_eq!(cli.services, Path::new(&destination));
    assert!(volume(&shared)["emptyDir"].is_object());

    // The startup probe passes only once the file is there.
    let probe = strs(&sidecar["startupProbe"]["exec"]["command"]).join(" ");
    assert!(probe.contains(&format!("-s {destination}")), "{probe}");

    // keyrouter follows the renders itself (--watch): no shared process namespace, no signal
    // from the sidecar (issue 28: it weakened the pod's isolation for nothing).
    assert!(cli.watch, "keyrouter must run with --watch");
    assert!(spec.get("shareProcessNamespace").is_none_or(|v| v == false), "{spec}");
    assert!(consul_template_stanza().get("command").is_none(), "consul-template needs no command");

    // Consul's address comes from the environment.
    let env = sidecar["env"].as_array().unwrap();
    let addr = env.iter().find(|e| e["name"] == "CONSUL_HTTP_ADDR").expect("CONSUL_HTTP_ADDR");
    assert!(addr["value"].as_str().is_some_and(|v| !v.is_empty()) || addr["valueFrom"].is_object());
}

// ---- pod security and resources ---------------------------------------------------------------

#[test]
fn the_pod_meets_the_restricted_pod_security_standard() {
    let spec = pod_spec();
    let pod_sc = &spec["securityContext"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(spec[host] != true, "{host}");
    }
    for v in spec["volumes"].as_array().unwrap() {
        let kinds: Vec<&String> = v.as_object().unwrap().keys().filter(|k| *k != "name").collect();
        assert!(
            kinds.iter().all(|k| ["emptyDir", "configMap", "secret", "projected", "downwardAPI"].contains(&k.as_str())),
            "volume type not allowed by Restricted: {v}"
        );
    }
    let all: Vec<Value> = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(spec["containers"].as_array().unwrap())
        .cloned()
        .collect();
    for c in &all {
        let name = &c["name"];
        let sc = &c["securityContext"];
        let effective = |key: &str| {
            if sc[key].is_null() {
                pod_sc[key].clone()
            } else {
                sc[key].clone()
            }
        };
        assert_eq!(effective("runAsNonRoot"), true, "{name}");
        assert!(effective("runAsUser").as_i64() != Some(0), "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert!(sc["privileged"] != true, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert!(strs(&sc["capabilities"]["drop"]).contains(&"ALL".to_string()), "{name}");
        let added = sc["capabilities"]["add"].as_array().cloned().unwrap_or_default();
        assert!(added.iter().all(|a| a == "NET_BIND_SERVICE"), "{name}: {added:?}");
        let seccomp = effective("seccompProfile");
        assert!(seccomp["type"] == "RuntimeDefault" || seccomp["type"] == "Localhost", "{name}: seccomp {seccomp}");
        assert!(c["ports"].as_array().into_iter().flatten().all(|p| p["hostPort"].is_null()));

        let res = &c["resources"];
        for kind in ["requests", "limits"] {
            for r in ["cpu", "memory"] {
                assert!(!res[kind][r].is_null(), "{name}: resources.{kind}.{r}");
            }
        }
    }
    // keyrouter's own container states the whole profile itself.
    let sc = &container("keyrouter")["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(of_kind("ServiceAccount")["automountServiceAccountToken"], false);
    assert_eq!(spec["automountServiceAccountToken"], false);
}

// ---- the container image ----------------------------------------------------------------------

/// deploy/Dockerfile's text (parse it with [`parse_dockerfile::parse`]).
fn dockerfile_text() -> String {
    read(&repo().join("deploy/Dockerfile"))
}

fn parse_dockerfile(text: &str) -> parse_dockerfile::Dockerfile<'_> {
    parse_dockerfile::parse(text).unwrap_or_else(|e| panic!("deploy/Dockerfile does not parse: {e}"))
}

/// An exec-form (JSON array) argument list; `what` names the instruction.
fn exec_form(what: &str, command: &DockerCommand<'_>) -> Vec<String> {
    match command {
        DockerCommand::Exec(args) => args.value.iter().map(|a| a.value.to_string()).collect(),
        DockerCommand::Shell(s) => {
            panic!("{what} must use the exec form (JSON array), not the shell form: {}", s.value)
        }
        other => panic!("{what}: unexpected form {other:?}"),
    }
}

/// The last ENTRYPOINT and CMD of a stage, in exec form.
fn entrypoint_and_cmd(stage: &Stage<'_, '_>) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let (mut entrypoint, mut cmd) = (None, None);
    for i in stage.instructions {
        match i {
            Instruction::Entrypoint(e) => entrypoint = Some(exec_form("ENTRYPOINT", &e.arguments)),
            Instruction::Cmd(c) => cmd = Some(exec_form("CMD", &c.arguments)),
            _ => {}
        }
    }
    (entrypoint, cmd)
}

fn dockerfile_cmd() -> Vec<String> {
    let text = dockerfile_text();
    let file = parse_dockerfile(&text);
    let runtime = file.stages().last().expect("a stage");
    entrypoint_and_cmd(&runtime).1.expect("a CMD")
}

#[test]
fn the_image_is_multi_stage_pinned_and_the_runtime_is_small_and_non_root() {
    let text = dockerfile_text();
    let file = parse_dockerfile(&text);
    let stages: Vec<Stage<'_, '_>> = file.stages().collect();
    assert!(stages.len() >= 2, "multi-stage");
    let mut names = Vec::new();
    for stage in &stages {
        let image = stage.from.image.value.as_ref();
        let tag = image
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("base image {image} is not pinned by a tag"));
        assert!(tag != "latest", "{image}: pin a version, not latest");
        if let Some((_, name)) = &stage.from.as_ {
            names.push(name.value.to_string());
        }
    }

    // The build stage: the Rust toolchain, at least the crate's rust-version, release build.
    let build_from = stages[0].from.image.value.as_ref();
    let toolchain = build_from
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("build stage should be the Rust image: {build_from}"));
    let version = toolchain.split('-').next().unwrap();
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(parse(version) >= parse(env!("CARGO_PKG_RUST_VERSION")), "{version}");
    let release_build = stages[0].instructions.iter().any(|i| match i {
        Instruction::Run(r) => match &r.arguments {
            DockerCommand::Shell(s) => s.value.contains("cargo build --release --locked"),
            DockerCommand::Exec(args) => args
                .value
                .iter()
                .map(|a| a.value.as_ref())
                .collect::<Vec<_>>()
                .join(" ")
                .contains("cargo build --release --locked"),
            _ => false,
        },
        _ => false,
    });
    assert!(release_build, "the build stage runs cargo build --release --locked");

    // The runtime stage: distroless, nothing run in it, the binary copied from the build stage.
    let runtime = stages.last().unwrap();
    let runtime_from = runtime.from.image.value.as_ref();
    assert!(
        runtime_from.starts_with("gcr.io/distroless/cc-") || runtime_from.starts_with("gcr.io/distroless/static-"),
        "{runtime_from}"
    );
    assert!(runtime_from.contains(":nonroot"), "{runtime_from}");
    assert!(
        runtime.instructions.iter().all(|i| !matches!(i, Instruction::Run(_))),
        "the runtime image has no shell: nothing can RUN there"
    );
    let user = runtime
        .instructions
        .iter()
        .rev()
        .find_map(|i| match i {
            Instruction::User(u) => Some(u.arguments.value.to_string()),
            _ => None,
        })
        .expect("a USER");
    let (uid, gid) = user.split_once(':').unwrap_or((&user, ""));
    let uid: u32 = uid.parse().unwrap_or_else(|_| panic!("USER {user}: numeric, so runAsNonRoot can check it"));
    assert!(uid != 0, "USER {user}");
    assert!(gid.is_empty() || gid.parse::<u32>().is_ok_and(|g| g != 0));
    // Kubernetes runs the pod as the same user.
    assert_eq!(pod_spec()["securityContext"]["runAsUser"].as_u64(), Some(uid as u64));

    let (entrypoint, _) = entrypoint_and_cmd(runtime);
    let entrypoint = entrypoint.expect("an ENTRYPOINT");
    assert_eq!(entrypoint.len(), 1, "{entrypoint:?}");
    assert!(entrypoint[0].starts_with('/'), "{entrypoint:?}");
    // The binary cargo builds.
    assert_eq!(Path::new(&entrypoint[0]).file_name(), Path::new(common::BIN).file_name());
    let copied = runtime.instructions.iter().any(|i| match i {
        Instruction::Copy(c) => {
            let from = c.options.iter().find(|f| f.name.value == "from").and_then(|f| f.value.as_ref());
            from.is_some_and(|f| names.iter().any(|n| *n == f.value)) && c.dest.value == entrypoint[0]
        }
        _ => false,
    });
    assert!(copied, "no COPY --from=<build stage> to {}", entrypoint[0]);
    // The port the image documents is the one its default command listens on, and the one the
    // Deployment names as keyrouter's container port.
    let expose: Vec<String> = runtime
        .instructions
        .iter()
        .filter_map(|i| match i {
            Instruction::Expose(e) => Some(e.arguments.iter().map(|a| a.value.to_string())),
            _ => None,
        })
        .flatten()
        .collect();
    let cmd_port = parse_cli(&dockerfile_cmd()).address.port;
    assert_eq!(expose, [cmd_port.to_string()], "EXPOSE vs the CMD's --address");
    let container_ports: Vec<u64> = container("keyrouter")["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    assert_eq!(container_ports, [u64::from(cmd_port)], "the Deployment's containerPort vs EXPOSE");
}

#[test]
fn the_image_default_command_is_accepted_and_serves_what_the_deployment_mounts() {
    let cmd = dockerfile_cmd();
    let cli = parse_cli(&cmd);
    // Without the Deployment's arguments the image reads the same file and listens on the same
    // port as with them.
    let deployed = parse_cli(&deployment_args());
    assert_eq!(cli.services, deployed.services, "the image's default --services vs the Deployment's");
    assert_eq!(cli.address.port, deployed.address.port, "the image's default port vs the Deployment's");
    assert_eq!(cli.address.host, None);
    // The real binary takes the same arguments.
    let kr = run_with(&cmd);
    assert_eq!(kr.get("/readyz").status, 200);
}

#[test]
fn no_target_cpu_flags_anywhere_in_the_build() {
    let mut sources = vec![("deploy/Dockerfile".to_string(), read(&repo().join("deploy/Dockerfile")))];
    for f in [".cargo/config.toml", ".cargo/config"] {
        if let Ok(s) = std::fs::read_to_string(repo().join(f)) {
            sources.push((f.to_string(), s));
        }
    }
    for (f, s) in sources {
        let code: String = s.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
        for bad in ["target-cpu", "target-feature", "+aes"] {
            assert!(!code.contains(bad), "{f} sets {bad}: ahash would hash differently");
        }
    }
}

/// A .dockerignore, applied as Docker applies it: each pattern is a Go `filepath.Match` glob
/// (globset with `*` not crossing `/`), matched against the path and each of its parent
/// directories, relative to the context root; the last pattern that matches decides, and `!`
/// re-includes.
struct DockerIgnore(Vec<(bool, globset::GlobMatcher)>);

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        let patterns = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        DockerIgnore(
            patterns
                .map(|line| {
                    let (negate, pat) = line.strip_prefix('!').map_or((false, line), |p| (true, p));
                    let pat = pat.trim_start_matches('/').trim_end_matches('/');
                    let glob = globset::GlobBuilder::new(pat)
                        .literal_separator(true)
                        .build()
                        .unwrap_or_else(|e| panic!(".dockerignore: {line:?}: {e}"));
                    (negate, glob.compile_matcher())
                })
                .collect(),
        )
    }

    fn ignores(&self, path: &str) -> bool {
        let prefixes: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).chain([path]).collect();
        let mut ignored = false;
        for (negate, glob) in &self.0 {
            if prefixes.iter().any(|p| glob.is_match(p)) {
                ignored = !negate;
            }
        }
        ignored
    }
}

#[test]
fn dockerignore_admits_what_the_build_copies_and_keeps_target_out() {
    let ignore = DockerIgnore::parse(&read(&repo().join(".dockerignore")));
    // Every COPY from the build context (not --from a stage) must reach the daemon...
    let text = dockerfile_text();
    let file = parse_dockerfile(&text);
    let mut copied = Vec::new();
    for i in &file.instructions {
        if let Instruction::Copy(c) = i {
            if c.options.iter().any(|f| f.name.value == "from") {
                continue;
            }
            for src in &c.src {
                match src {
                    Source::Path(p) => copied.push(p.value.to_string()),
                    other => panic!("COPY from a here-document: {other:?}"),
                }
            }
        }
    }
    assert!(copied.contains(&"src".to_string()), "{copied:?}");
    for c in &copied {
        let path = repo().join(c);
        assert!(path.exists(), "COPY {c}: no such file in the repository");
        let probe = if path.is_dir() {
            let first = std::fs::read_dir(&path).unwrap().next().unwrap().unwrap();
            format!("{c}/{}", first.file_name().to_str().unwrap())
        } else {
            c.clone()
        };
        assert!(!ignore.ignores(&probe), "{probe} is excluded from the context");
    }
    // ...and the bulky or private parts must not.
    for p in ["target/debug/keyrouter", ".git/HEAD", "target", "tests/integration/http.rs", ".env"] {
        assert!(ignore.ignores(p), "{p} would be sent to the daemon");
    }
    // The rules around the glob.
    assert!(DockerIgnore::parse("target").ignores("target/x/y"));
    assert!(!DockerIgnore::parse("*\n!src").ignores("src/main.rs"));
    assert!(DockerIgnore::parse("*\n!src").ignores("srcx/main.rs"));
    assert!(!DockerIgnore::parse("tar*").ignores("src/target"));
    assert!(DockerIgnore::parse("*/*.rs").ignores("src/main.rs"));
    assert!(!DockerIgnore::parse("*.rs").ignores("src/main.rs"));
}

// ---- docs/deploying.md ------------------------------------------------------------------------

#[test]
fn the_deploying_docs_local_command_uses_real_files_and_flags() {
    let doc = read(&repo().join("docs/deploying.md"));
    let line =
        doc.lines().find(|l| l.trim_start().starts_with("consul-template -template")).expect("the one-line local run");
    assert!(line.contains("-exec-reload-signal SIGHUP"), "{line}");
    let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    let (template, exec) = (quoted[0], quoted[1]);
    let source = template.split(':').next().unwrap();
    assert!(repo().join(source).is_file(), "{source}");
    let rendered = template.split(':').nth(1).unwrap();
    let argv: Vec<String> = exec.split_whitespace().map(String::from).collect();
    assert_eq!(argv[0], "keyrouter");
    let cli = parse_cli(&argv[1..]);
    assert_eq!(cli.services, Path::new(rendered), "keyrouter must read what is rendered");
    for cmd in ["kubectl apply -k deploy/kubernetes", "docker build -f deploy/Dockerfile"] {
        assert!(doc.contains(cmd), "{cmd}");
    }
}

// ---- the network policy -----------------------------------------------------------------------

/// The NetworkPolicy covers keyrouter's pods and lets in only its clients (by the labels the
/// docs/deploying.md names) and the monitoring namespace, on the port keyrouter listens on; it lets out
/// only Consul (8500/TCP) and DNS (53, UDP and TCP). Self-contained: it uses only the manifest
/// readers.
#[test]
fn the_network_policy_admits_clients_to_the_http_port_and_lets_out_only_consul_and_dns() {
    const CLIENT_LABEL: &str = "keyrouter.io/client";
    let policy = of_kind("NetworkPolicy");
    assert_eq!(policy["apiVersion"], "networking.k8s.io/v1");
    let spec = &policy["spec"];

    // It selects exactly the Deployment's pods.
    let deployment = of_kind("Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = &spec["podSelector"];
    assert!(selector.get("matchExpressions").is_none(), "{selector}");
    let match_labels = selector["matchLabels"].as_object().expect("podSelector.matchLabels");
    assert!(!match_labels.is_empty(), "an empty podSelector would cover every pod of the namespace");
    for (k, v) in match_labels {
        assert_eq!(&pod_labels[k], v, "podSelector {k}={v} vs the pod's labels {pod_labels}");
    }
    assert_eq!(
        match_labels,
        deployment["spec"]["selector"]["matchLabels"].as_object().unwrap(),
        "the policy and the Deployment select the same pods"
    );
    assert_eq!(strs(&spec["policyTypes"]), ["Ingress", "Egress"], "both directions are restricted");

    // The keyrouter container's http port, and the port keyrouter is told to listen on.
    let keyrouter = container("keyrouter");
    let http = keyrouter["ports"].as_array().unwrap().iter().find(|p| p["name"] == "http").expect("a port named http");
    let http_port = http["containerPort"].as_u64().unwrap();
    let listen = parse_cli(&deployment_args()).address.port as u64;
    assert_eq!(http_port, listen, "the http port is the one keyrouter listens on");

    // Ingress: one rule, the http port only, from the client label and the monitoring namespace.
    let ingress = spec["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    let rule = &ingress[0];
    let ports = rule["ports"].as_array().expect("ingress names its ports (none would mean all)");
    assert_eq!(ports.len(), 1);
    let port = &ports[0]["port"];
    let resolved = match (port.as_u64(), port.as_str()) {
        (Some(n), _) => n,
        (None, Some(name)) => {
            assert_eq!(name, "http", "a named port must be the container's http port");
            http_port
        }
        _ => panic!("ingress port {port}"),
    };
    assert_eq!(resolved, http_port);
    assert_eq!(ports[0]["protocol"], "TCP");
    let from = rule["from"].as_array().expect("ingress names its sources (none would mean everyone)");
    let only = |v: &serde_json::Value| -> (String, String) {
        let m = v["matchLabels"].as_object().unwrap_or_else(|| panic!("matchLabels in {v}"));
        assert_eq!(m.len(), 1, "{v}");
        let (k, val) = m.iter().next().unwrap();
        (k.clone(), val.as_str().unwrap().to_string())
    };
    let mut peers = Vec::new();
    for peer in from {
        assert!(peer.get("ipBlock").is_none(), "no address ranges: {peer}");
        match (peer.get("podSelector"), peer.get("namespaceSelector")) {
            (Some(pods), None) => peers.push(("pods", only(pods))),
            (None, Some(ns)) => peers.push(("namespaces", only(ns))),
            _ => panic!("a peer is either labelled pods or labelled namespaces: {peer}"),
        }
    }
    let client = (CLIENT_LABEL.to_string(), "true".to_string());
    let monitoring = ("kubernetes.io/metadata.name".to_string(), "monitoring".to_string());
    assert_eq!(peers, [("pods", client.clone()), ("namespaces", client), ("namespaces", monitoring)]);

    // Egress: Consul's HTTP API and DNS, nothing else.
    let mut egress: Vec<(u64, String)> = Vec::new();
    for rule in spec["egress"].as_array().expect("egress rules") {
        assert!(rule.get("to").is_none_or(|t| !t.as_array().unwrap().is_empty()), "{rule}");
        for p in rule["ports"].as_array().expect("egress names its ports (none would mean all)") {
            assert!(p.get("endPort").is_none(), "{p}");
            egress.push((p["port"].as_u64().expect("a numeric port"), p["protocol"].as_str().unwrap().to_string()));
        }
    }
    egress.sort();
    let want: Vec<(u64, String)> = [(53, "TCP"), (53, "UDP"), (8500, "TCP")].map(|(p, t)| (p, t.to_string())).into();
    assert_eq!(egress, want);
    // consul-template's Consul address uses that port.
    let env = container("consul-template")["env"].clone();
    let addr = env.as_array().unwrap().iter().find(|e| e["name"] == "CONSUL_HTTP_ADDR").unwrap()["value"].clone();
    assert!(addr.as_str().unwrap().ends_with(":8500"), "{addr}");

    // The deployment guide tells clients which label to set.
    let readme = read(&repo().join("docs/deploying.md"));
    assert!(readme.contains(&format!("{CLIENT_LABEL}: \"true\"")), "docs/deploying.md does not name the client label");
    assert!(
        readme.contains("kubernetes.io/metadata.name: monitoring"),
        "docs/deploying.md does not name the monitoring namespace"
    );
}

// ---- monitoring (issue 28) --------------------------------------------------------------------

/// The documents of a file of an opt-in component, by kind.
fn component_doc(component: &str, file: &str) -> Value {
    let path = kube_dir().join("components").join(component).join(file);
    let mut docs = yaml_docs(&read(&path), file);
    assert_eq!(docs.len(), 1, "{file}");
    docs.remove(0)
}

#[test]
fn the_prometheusrule_carries_exactly_the_rule_files_groups() {
    let rule_file: Value =
        serde_norway::from_str(&read(&repo().join("deploy/prometheus/keyrouter.rules.yml"))).unwrap();
    let rule = component_doc("monitoring", "prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["spec"]["groups"], rule_file["groups"], "PrometheusRule vs deploy/prometheus/keyrouter.rules.yml");
    assert_eq!(rule["spec"].as_object().unwrap().len(), 1, "{}", rule["spec"]);
}

#[test]
fn the_podmonitor_and_the_scrape_annotations_reach_metrics_on_the_http_port() {
    let monitor = component_doc("monitoring", "podmonitor.yaml");
    assert_eq!(monitor["kind"], "PodMonitor");
    let template = &of_kind("Deployment")["spec"]["template"];
    assert!(labels_match(&monitor["spec"]["selector"]["matchLabels"], &template["metadata"]["labels"]), "{monitor}");
    let keyrouter = container("keyrouter");
    let endpoints = monitor["spec"]["podMetricsEndpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let port = container_port(&keyrouter, &endpoints[0]["port"]);
    assert_eq!(endpoints[0]["path"], "/metrics");

    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // What the binary serves there is the exposition, with the series the rules use.
    let kr = run_with(&deployment_args());
    let metrics = kr.get("/metrics");
    assert_eq!(metrics.status, 200);
    for series in
        ["keyrouter_ready ", "keyrouter_config_last_reload_successful ", "process_open_fds ", "keyrouter_table_info{"]
    {
        assert!(metrics.text().contains(series), "{series}");
    }
}

/// A Kubernetes quantity in bytes ("33Mi", "1Gi", "512").
fn quantity_bytes(q: &str) -> u64 {
    let units = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap() * factor;
        }
    }
    q.parse().unwrap_or_else(|_| panic!("quantity {q}"))
}

#[test]
fn the_services_volume_holds_two_copies_of_the_largest_file_keyrouter_accepts() {
    let max = parse_cli(&deployment_args()).max_services_bytes;
    let spec = pod_spec();
    let volume = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "services").unwrap().clone();
    assert_eq!(volume["emptyDir"]["medium"], "Memory");
    let size = quantity_bytes(volume["emptyDir"]["sizeLimit"].as_str().unwrap());
    // consul-template writes the new file beside the old one, then renames it over: two copies.
    assert!(size >= 2 * max, "sizeLimit {size} < 2 x --max-services-bytes {max}");
    assert!(size <= 2 * max + (4 << 20), "sizeLimit {size}: more than 2 x --max-services-bytes {max} + 4 MiB");
    // The tmpfs pages count against the writer's memory limit.
    let limit = quantity_bytes(container("consul-template")["resources"]["limits"]["memory"].as_str().unwrap());
    assert!(limit >= size + (64 << 20), "consul-template's memory limit {limit} leaves too little beside {size}");
}

#[test]
fn keyrouter_with_the_deployments_arguments_follows_a_rename_into_place() {
    let kr = run_with(&deployment_args());
    let before = kr.get("/table").json()["fingerprint"].clone();
    // What consul-template does: a new file written beside, renamed over the old.
    let mark = kr.log().len();
    kr.write_services("[[Services]]\n  Name = \"renamed\"\n  Nodes = [\"10.0.0.1:80\"]\n");
    kr.wait_for_log("reloaded", mark);
    assert_ne!(kr.get("/table").json()["fingerprint"], before);
    assert_eq!(kr.get("/service/renamed?key=k").status, 200);
}

#[test]
fn every_component_is_a_kustomize_component_that_uses_all_its_files() {
    let dirs: BTreeSet<String> = std::fs::read_dir(kube_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(dirs, BTreeSet::from(["components".to_string()]), "directories beside the base's files");
    let components = kube_dir().join("components");
    let names: BTreeSet<String> =
        std::fs::read_dir(&components).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    // kubernetes.rs builds and validates each of these (and both together).
    assert_eq!(names, BTreeSet::from(["consul-k8s".to_string(), "monitoring".to_string()]));
    let base_comment = read(&kube_dir().join("kustomization.yaml"));
    for name in &names {
        assert!(
            base_comment.contains(&format!("components/{name} ")),
            "the base's kustomization does not mention {name}"
        );
        let dir = components.join(name);
        let k = component_doc(name, "kustomization.yaml");
        assert_eq!(k["kind"], "Component", "{name}");
        let mut used: BTreeSet<String> = BTreeSet::from(["kustomization.yaml".to_string()]);
        used.extend(k["resources"].as_array().into_iter().flatten().map(|r| r.as_str().unwrap().to_string()));
        for generator in k["configMapGenerator"].as_array().into_iter().flatten() {
            used.extend(strs(&generator["files"]));
        }
        let on_disk: BTreeSet<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(on_disk, used, "{name}: files vs what its kustomization uses");
    }
}
