//! The examples of README.md and of every file in docs/, run verbatim: the server is started as
//! the README's first command starts it (only the port differs: `KEYROUTER_ADDRESS=127.0.0.1:0`),
//! every `curl` and `keyrouter` example is run as written (with `localhost:8080` given the real
//! port, and `keyrouter` the built binary), and each one's output must equal the block the
//! document shows after it. The documentation cannot drift from the program without this failing.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Keyrouter, BIN};

/// A fenced block of a Markdown file: its info string, its text and the line it starts on.
struct Block {
    indent: usize,
    lang: String,
    text: String,
    line: usize,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(lang)) => {
                let indent = line.len() - trimmed.len();
                open = Some(Block { indent, lang: lang.trim().to_string(), text: String::new(), line: i + 1 })
            }
            (Some(_), Some(_)) => out.push(open.take().expect("open block")),
            (Some(b), None) => {
                // Blocks inside list items are indented; their text is not.
                b.text.push_str(line.get(b.indent..).unwrap_or(trimmed));
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An example the test runs: every line is a `curl` to the README's server or a `keyrouter`
/// command.
fn is_example(block: &Block) -> bool {
    block.lang == "sh"
        && block.text.lines().all(|l| {
            (l.starts_with("curl ") && l.contains("localhost:8080"))
                || l.starts_with("keyrouter check ")
                || l.starts_with("keyrouter lookup ")
                || l.starts_with("keyrouter diff ")
        })
}

fn run(line: &str, port: u16) -> (bool, String) {
    let line = line.replace("localhost:8080", &format!("localhost:{port}"));
    let line = match line.strip_prefix("keyrouter ") {
        Some(rest) => format!("'{BIN}' {rest}"),
        None => line,
    };
    let out = Command::new("sh").arg("-c").arg(&line).current_dir(repo()).output().expect("sh runs");
    // `keyrouter diff` exits 1 when the files differ, as diff(1) does.
    let ok = out.status.success() || (line.contains(" diff ") && out.status.code() == Some(1));
    (ok, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn same_output(lang: &str, shown: &str, got: &str) -> bool {
    match lang {
        "json" => {
            let shown: serde_json::Value = serde_json::from_str(shown).expect("the README's JSON parses");
            serde_json::from_str::<serde_json::Value>(got).is_ok_and(|g| g == shown)
        }
        _ => shown.trim_end() == got.trim_end(),
    }
}

/// README.md, then every Markdown file in docs/, as `(name, text)`.
fn documents() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    docs.sort();
    names.extend(docs.into_iter().map(|n| format!("docs/{n}")));
    names.into_iter().map(|n| (n.clone(), std::fs::read_to_string(repo().join(&n)).unwrap())).collect()
}

/// The README's first two commands: the one that starts the service, and the test command.
fn first_two_commands() -> (String, String) {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut sh = blocks(&readme).into_iter().filter(|b| b.lang == "sh");
    let start = sh.next().expect("README has a first command").text.trim().to_string();
    let test = sh.next().expect("a second command").text.trim().to_string();
    (start, test)
}

#[test]
fn the_readme_starts_the_example_file_then_runs_the_tests_as_ci_does() {
    let (start, test) = first_two_commands();
    assert_eq!(start, "cargo run --release -- --services deploy/services.example.toml");
    assert_eq!(test, ".ci/test", "the README's second command runs the tests");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == test), ".ci/run runs the README's test command");
    let script = std::fs::read_to_string(repo().join(".ci/test")).unwrap();
    assert!(script.contains("KEYROUTER_TEST_ALL=1 cargo test --locked"), ".ci/test runs every test");
    // Every `keyrouter` example comes after the quick start installs the binary.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let sh: Vec<Block> = blocks(&readme).into_iter().filter(|b| b.lang == "sh").collect();
    let install =
        sh.iter().find(|b| b.text.trim() == "cargo install --locked --path .").expect("the quick start installs");
    let first_use =
        sh.iter().find(|b| b.text.lines().any(|l| l.starts_with("keyrouter "))).expect("a keyrouter example");
    assert!(install.line < first_use.line, "README.md:{}: uses `keyrouter` before installing it", first_use.line);
}

#[test]
fn documentation_examples_run_verbatim_and_answer_what_the_documents_show() {
    if !common::require_tool("curl") {
        return;
    }
    let (start, _) = first_two_commands();
    let args = start.strip_prefix("cargo run --release -- ").expect("the first command runs the service");
    let mut cmd = Command::new(BIN);
    cmd.args(args.split_whitespace()).current_dir(repo()).env("KEYROUTER_ADDRESS", "127.0.0.1:0");
    let services = repo().join("deploy/services.example.toml");
    let server = Keyrouter::spawn(cmd, tempfile::tempdir().unwrap(), services);

    let mut checked = 0;
    let mut files_with_examples = Vec::new();
    for (name, text) in documents() {
        let blocks = blocks(&text);
        let before = checked;
        for (i, block) in blocks.iter().enumerate().filter(|(_, b)| is_example(b)) {
            let shown = blocks.get(i + 1).filter(|b| b.lang == "json" || b.lang == "text").unwrap_or_else(|| {
                panic!("{name}:{}: an example without its output (a json or text block)", block.line)
            });
            for line in block.text.lines() {
                let (ok, got) = run(line, server.port);
                assert!(ok, "{name}:{}: `{line}` failed; output:\n{got}", block.line);
                assert!(
                    same_output(&shown.lang, &shown.text, &got),
                    "{name}:{}: `{line}` answers\n{got}\nbut {name}:{} shows\n{}",
                    block.line,
                    shown.line,
                    shown.text
                );
                checked += 1;
            }
        }
        if checked > before {
            files_with_examples.push(name);
        }
    }
    // Three equivalent lookups, a batch, /table, `lookup`, `check`, `diff`, the JSON index.
    assert!(checked >= 12, "only {checked} examples found: did the parser break?");
    for name in ["README.md", "docs/http-api.md", "docs/operating.md", "docs/planning.md"] {
        assert!(files_with_examples.iter().any(|f| f == name), "no example of {name} ran: {files_with_examples:?}");
    }
}

#[test]
fn a_changed_output_is_noticed() {
    assert!(same_output("json", r#"["a","b"]"#, "[\"a\", \"b\"]\n"));
    assert!(!same_output("json", r#"["a","b"]"#, r#"["b","a"]"#));
    assert!(!same_output("json", r#"["a","b"]"#, "not json"));
    assert!(same_output("text", "x: OK\n  y\n", "x: OK\n  y\n"));
    assert!(!same_output("text", "x: OK\n", "x: OK\n  y\n"));
    let b = blocks("text\n```sh\ncurl http://localhost:8080/x\n```\n\n```json\n[1]\n```\n");
    assert_eq!(b.len(), 2);
    assert!(is_example(&b[0]) && b[1].lang == "json" && b[1].line == 6);
    let _ = Path::new(BIN);
}
