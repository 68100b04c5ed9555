//! services.toml.tmpl, rendered for real: the consul-template emulator in tests/common (a Go
//! text/template engine with consul-template's functions stubbed over a fake Consul catalog)
//! executes the template, and keyrouter's own config parser (and the real binary) read the result.

use crate::common;

use std::collections::BTreeMap;

use common::consul_template::{go_json_string, inst, render, render_in, render_with, Catalog, Instance, TEMPLATE};
use keyrouter::table::config;

/// Parses with keyrouter's own parser: service name -> nodes.
fn table(rendered: &str) -> BTreeMap<String, Vec<String>> {
    let loaded = config::parse(rendered, "rendered services.toml")
        .unwrap_or_else(|e| panic!("rendered file is not a valid services file: {e}\n{rendered}"));
    loaded
        .table
        .names()
        .iter()
        .map(|n| {
            let nodes = loaded.table.get(n).unwrap().nodes().to_vec();
            (n.clone(), nodes)
        })
        .collect()
}

/// TOML 1.0 forbids these raw anywhere (strings and comments alike); newline ends a line and tab
/// is allowed. Checked separately so the test does not depend on one parser's leniency.
fn assert_no_raw_control_chars(rendered: &str) {
    for (i, c) in rendered.char_indices() {
        let bad = (c < ' ' && c != '\n' && c != '\t') || c == '\u{7f}';
        assert!(!bad, "raw control character {c:?} at byte {i}:\n{rendered}");
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn small_catalog_renders_to_this_file() {
    let catalog = Catalog::default()
        .with("api", vec![inst("n2", "10.0.0.2", 9000), inst("n1", "10.0.0.1", 9000)])
        .with("idle", vec![]);
    let expected = "\
# keyrouter services file, rendered by consul-template from Consul's catalog (services.toml.tmpl).
# Do not edit: consul-template rewrites it whenever the catalog changes; keyrouter reloads it
# (SIGHUP from consul-template, or --watch).
# Ranking algorithm 2 (docs/ranking.md); each node's Id is its Consul node and service instance ID,
# its Weight Consul's passing weight (when not 1).
Algorithm = 2

[[Services]]
  Name = \"api\"
  Nodes = [
    { Node = \"10.0.0.1:9000\", Id = \"n1/n1\" },
    { Node = \"10.0.0.2:9000\", Id = \"n2/n2\" },
  ]

[[Services]]
  Name = \"idle\"
  Nodes = [
  ]
";
    assert_eq!(render(&catalog), expected);
}

#[test]
fn healthy_instances_become_nodes_and_an_unhealthy_service_is_empty() {
    let catalog = Catalog::default()
        .with(
            "web",
            vec![
                inst("node-b", "10.0.1.2", 8080),
                inst("node-a", "10.0.1.1", 8080),
                // Two instances on one node, told apart by ID and port.
                inst("node-a", "10.0.1.1", 8081).id("web-2"),
                // The service's own address wins over the node's.
                inst("node-c", "10.0.1.3", 8080).service_address("web-c.internal"),
                inst("node-d", "10.0.1.4", 8080).status("critical"),
                inst("node-e", "10.0.1.5", 8080).status("warning"),
            ],
        )
        .with("db", vec![inst("db-1", "fd00::1", 5432), inst("db-2", "10.0.2.2", 5432).service_address("2001:db8::2")])
        .with("down", vec![inst("x", "10.0.3.1", 80).status("critical")])
        .with("none", vec![])
        .with("consul", vec![inst("server-1", "10.0.0.10", 8300)]);
    let rendered = render(&catalog);
    assert_no_raw_control_chars(&rendered);
    let got = table(&rendered);
    let mut expected = BTreeMap::new();
    expected.insert(
        "web".to_string(),
        strings(&["10.0.1.1:8080", "10.0.1.1:8081", "10.0.1.2:8080", "web-c.internal:8080"]),
    );
    expected.insert("db".to_string(), strings(&["[fd00::1]:5432", "[2001:db8::2]:5432"]));
    expected.insert("down".to_string(), vec![]);
    expected.insert("none".to_string(), vec![]);
    // Consul's own servers are not a service to route keys to.
    assert_eq!(got, expected, "{rendered}");
}

/// Consul's service instance ID is unique on one agent only (it defaults to the service's name):
/// the Id is the node and the ID together, so instances of one service on several nodes with the
/// same ID are still told apart, and an instance that changes address keeps its Id.
#[test]
fn template_ids_are_node_and_instance_id_unique_across_nodes_and_kept_across_addresses() {
    let catalog = Catalog::default().with(
        "web",
        vec![
            inst("node-a", "10.0.1.1", 8080).id("web"),
            inst("node-b", "10.0.1.2", 8080).id("web"),
            inst("node-b", "10.0.1.2", 8081).id("web-2"),
            inst("node-c", "10.0.1.3", 8080).id("quote\"d\u{7f}"),
        ],
    );
    let rendered = render(&catalog);
    assert_no_raw_control_chars(&rendered);
    let loaded = config::parse(&rendered, "rendered").unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(loaded.table.algorithm(), keyrouter::ranking::Algorithm::V2);
    let web = loaded.table.get("web").unwrap();
    let pairs: BTreeMap<&str, &str> =
        web.nodes().iter().map(String::as_str).zip(web.ids().iter().map(String::as_str)).collect();
    let expected: BTreeMap<&str, &str> = [
        ("10.0.1.1:8080", "node-a/web"),
        ("10.0.1.2:8080", "node-b/web"),
        ("10.0.1.2:8081", "node-b/web-2"),
        ("10.0.1.3:8080", "node-c/quote\"d\u{7f}"),
    ]
    .into();
    assert_eq!(pairs, expected, "{rendered}");
    // The same instances at new addresses: same Ids, so every key keeps its node.
    let moved = Catalog::default().with(
        "web",
        vec![
            inst("node-a", "10.9.1.1", 8080).id("web"),
            inst("node-b", "10.9.1.2", 8080).id("web"),
            inst("node-b", "10.9.1.2", 8081).id("web-2"),
            inst("node-c", "10.9.1.3", 8080).id("quote\"d\u{7f}"),
        ],
    );
    let after = config::parse(&render(&moved), "rendered").unwrap();
    let after_web = after.table.get("web").unwrap();
    for i in 0..1000 {
        let key = format!("key-{i}");
        let id_of = |s: &keyrouter::ranking::Service, key: &str| {
            let node = s.lookup(key, 1, 1).unwrap()[0].to_string();
            s.ids()[s.nodes().iter().position(|n| *n == node).unwrap()].clone()
        };
        assert_eq!(id_of(web, &key), id_of(after_web, &key), "{key}");
    }
}

/// Names consul-template's `service` cannot take (each would either stop consul-template or query
/// another service). None of them may reach `service`; each still leaves a valid file, with the
/// name recorded, escaped, in a comment.
const UNQUERYABLE: &[&str] = &[
    "web.v2",
    "has space",
    "quote\"d",
    "back\\slash",
    "tab\there",
    "new\nline",
    "del\u{7f}char",
    "bell\u{7}",
    "<script>&amp;",
    "line\u{2028}sep",
    "ünïcødé",
    "日本語",
    "emoji-🦀",
    "a@dc2",
    "near~x",
    "pipe|any",
    "slash/name",
    "'single'",
    "]] [[Services]]\nName = \"injected\"",
];

#[test]
fn names_service_cannot_query_are_commented_out_not_misread_and_the_file_stays_valid() {
    let mut catalog = Catalog::default().with("plain_name-1", vec![inst("n", "10.0.0.1", 1)]);
    // A service "v2" with the tag "web": what a naive `service "web.v2"` would return.
    catalog = catalog.with("v2", vec![inst("wrong", "10.9.9.9", 9).tags(&["web"])]);
    for name in UNQUERYABLE {
        catalog = catalog.with(name, vec![inst("n", "10.0.0.2", 2)]);
    }
    let (rendered, queries) =
        render_with(TEMPLATE, &catalog).unwrap_or_else(|e| panic!("template failed on odd names: {e}"));
    assert_no_raw_control_chars(&rendered);

    // Only plain names were queried, each as itself (no tag, no datacenter, no filter).
    let queries = queries.lock().unwrap().clone();
    let queried: Vec<&str> = queries.iter().map(|(q, _, _)| q.as_str()).collect();
    assert_eq!(queried, ["plain_name-1", "v2"], "{queries:?}");
    for (q, tag, name) in &queries {
        assert_eq!((tag.as_str(), name.as_str()), ("", q.as_str()));
    }

    let got = table(&rendered);
    let names: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(names, ["plain_name-1", "v2"], "{rendered}");
    assert_eq!(got["v2"], ["10.9.9.9:9"]);

    // Each unqueryable name is in exactly one comment line, as a JSON string that decodes back
    // to the name.
    let commented: Vec<String> = rendered
        .lines()
        .filter_map(|l| l.strip_prefix("# Not served: consul-template's `service` cannot query this name: "))
        .map(|json| {
            // TOML allows \u007f where JSON parsers may balk at nothing: decode as JSON.
            serde_json::from_str::<String>(json)
                .unwrap_or_else(|e| panic!("comment {json:?} is not a JSON string: {e}"))
        })
        .collect();
    let mut expected: Vec<String> = strings(UNQUERYABLE);
    expected.sort();
    let mut commented_sorted = commented.clone();
    commented_sorted.sort();
    assert_eq!(commented_sorted, expected, "{rendered}");
}

#[test]
fn odd_addresses_are_escaped_and_survive_the_round_trip() {
    let odd: &[&'static str] = &[
        "quote\"host",
        "back\\slash",
        "tab\thost",
        "new\nline",
        "del\u{7f}host",
        "nul\u{0}host",
        "esc\u{1b}host",
        "<b>&amp;</b>",
        "ünïcødé.example",
        "日本.example",
        "sep\u{2028}host",
        "🦀.example",
    ];
    let instances: Vec<Instance> = odd
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let node: &'static str = Box::leak(format!("node-{i:02}").into_boxed_str());
            inst(node, "10.0.0.1", 7000 + i as i64).service_address(a)
        })
        .collect();
    let catalog = Catalog::default().with("odd", instances);
    let rendered = render(&catalog);
    assert_no_raw_control_chars(&rendered);
    let got = table(&rendered);
    let expected: Vec<String> = odd.iter().enumerate().map(|(i, a)| format!("{a}:{}", 7000 + i)).collect();
    assert_eq!(got["odd"], expected, "{rendered}");
}

/// The stubs are faithful where it matters: consul-template's grammar rejects or misreads the
/// names the template guards against, and a template without the guard fails or serves the wrong
/// nodes. (If these ever pass with the naive template, the guard tests above prove nothing.)
#[test]
fn without_the_guard_odd_names_break_consul_template() {
    let naive = "{{ range services }}[[Services]]\nName = {{ .Name | toJSON }}\nNodes = [{{ range service .Name }}{{ printf \"%s:%d\" .Address .Port | toJSON }},{{ end }}]\n{{ end }}";

    let quoted = Catalog::default().with("quote\"d", vec![inst("n", "10.0.0.1", 1)]);
    let err = render_with(naive, &quoted).unwrap_err().to_string();
    assert!(err.contains("invalid format"), "{err}");

    let dotted = Catalog::default()
        .with("web.v2", vec![inst("right", "10.0.0.1", 1)])
        .with("v2", vec![inst("wrong", "10.9.9.9", 9).tags(&["web"])]);
    let (rendered, _) = render_with(naive, &dotted).unwrap();
    assert_eq!(table(&rendered)["web.v2"], ["10.9.9.9:9"], "{rendered}");

    // And Go's JSON leaves DEL raw, which TOML does not allow: hence the replaceAll.
    let mut out = String::new();
    go_json_string("a\u{7f}<&>\"\\\n", &mut out);
    assert_eq!(out, "\"a\u{7f}\\u003c\\u0026\\u003e\\\"\\\\\\n\"");
}

#[test]
fn a_missing_field_fails_like_consul_template_structs() {
    let catalog = Catalog::default().with("web", vec![inst("n", "10.0.0.1", 1)]);
    let typo = "{{ range services }}{{ range service .Name }}{{ .ServiceAddress }}{{ end }}{{ end }}";
    assert!(render_with(typo, &catalog).is_err());
}

/// What the pod does: render, start keyrouter on the file, change the catalog, re-render, SIGHUP.
#[test]
fn rendered_file_is_served_and_a_rerender_plus_sighup_reloads_it() {
    let v1 = Catalog::default()
        .with("web", vec![inst("a", "10.0.0.1", 80), inst("b", "10.0.0.2", 80), inst("c", "10.0.0.3", 80)])
        .with("odd name", vec![inst("a", "10.0.0.1", 81)]);
    let kr = common::Keyrouter::start(&render(&v1));
    let nodes = |service: &str| {
        let r = kr.get(&format!("/service/{service}?key=k&min=0&max=100"));
        (r.status, r.json())
    };
    let (status, body) = nodes("web");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 3, "{body}");
    assert_eq!(kr.get("/service/odd%20name").status, 404);

    let v2 = v1
        .clone()
        .with(
            "web",
            vec![inst("a", "10.0.0.1", 80), inst("b", "10.0.0.2", 80).status("critical"), inst("c", "10.0.0.3", 80)],
        )
        .with("new", vec![inst("d", "10.0.0.4", 80)]);
    let before = kr.log().len();
    kr.write_services(&render(&v2));
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", before);
    let (status, body) = nodes("web");
    assert_eq!(status, 200);
    let mut web: Vec<String> = serde_json::from_value(body).unwrap();
    web.sort();
    assert_eq!(web, ["10.0.0.1:80", "10.0.0.3:80"]);
    let (status, body) = nodes("new");
    assert_eq!((status, body), (200, serde_json::json!(["10.0.0.4:80"])));
}

#[test]
fn consuls_passing_weight_becomes_the_nodes_weight_and_1_is_left_out() {
    let catalog = Catalog::default().with(
        "web",
        vec![inst("a", "10.0.0.1", 80).weight(3), inst("b", "10.0.0.2", 80), inst("c", "10.0.0.3", 80).weight(10)],
    );
    let rendered = render(&catalog);
    assert!(rendered.contains(r#"{ Node = "10.0.0.1:80", Id = "a/a", Weight = 3 },"#), "{rendered}");
    assert!(rendered.contains(r#"{ Node = "10.0.0.2:80", Id = "b/b" },"#), "{rendered}");
    let loaded = config::parse(&rendered, "rendered").unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    let web = loaded.table.get("web").unwrap();
    assert_eq!(web.weights(), [3.0, 1.0, 10.0]);
    assert_eq!(web.ids(), ["a/a", "b/b", "c/c"]);
    // The real binary serves them: /table shows the weights.
    let kr = common::Keyrouter::start(&rendered);
    let table = kr.get("/table").json();
    assert_eq!(table["services"][0]["weights"], serde_json::json!([3.0, 1.0, 10.0]), "{table}");

    // A catalog without weights renders as before this option existed: no Weight at all.
    let plain = render(&Catalog::default().with("web", vec![inst("a", "10.0.0.1", 80)]));
    assert!(!plain.contains("Weight ="), "{plain}");
}

#[test]
fn the_tag_filter_keeps_tagged_services_and_queries_only_their_tagged_instances() {
    let catalog = Catalog::default()
        .with(
            "web",
            vec![
                inst("a", "10.0.0.1", 80).tags(&["prod", "v2"]),
                inst("b", "10.0.0.2", 80).tags(&["canary"]),
                inst("c", "10.0.0.3", 80).tags(&["prod"]),
            ],
        )
        .with("batch", vec![inst("d", "10.0.0.4", 80).tags(&["canary"])])
        .with("consul", vec![inst("server-1", "10.0.0.10", 8300).tags(&["prod"])]);
    let (rendered, queries) = render_in(&catalog, &[("KEYROUTER_CONSUL_TAG", "prod")]);
    let got = table(&rendered);
    let expected: BTreeMap<String, Vec<String>> =
        [("web".to_string(), strings(&["10.0.0.1:80", "10.0.0.3:80"]))].into_iter().collect();
    assert_eq!(got, expected, "{rendered}");
    // One query, for the tagged instances of the one service kept.
    let queries = queries.lock().unwrap().clone();
    assert_eq!(queries, [("prod.web".to_string(), "prod".to_string(), "web".to_string())]);

    // Unset or empty: every service but consul, every healthy instance.
    for env in [&[][..], &[("KEYROUTER_CONSUL_TAG", "")][..]] {
        let (rendered, queries) = render_in(&catalog, env);
        let got = table(&rendered);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["batch", "web"], "{rendered}");
        assert_eq!(got["web"].len(), 3);
        assert_eq!(queries.lock().unwrap().len(), 2, "one blocking query per service");
    }
}
