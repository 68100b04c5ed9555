//! README.md's examples, run verbatim: the server is started as the README's first command starts
//! it (only the port differs: `KEYROUTER_ADDRESS=127.0.0.1:0`), every `curl` and `keyrouter`
//! example is run as written (with `localhost:8080` given the real port, and `keyrouter` the
//! built binary), and each one's output must equal the block the README shows after it. The
//! README cannot drift from the program without this failing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Keyrouter, BIN};

/// A fenced block of README.md: its info string, its text and the line it starts on.
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

#[test]
fn readme_examples_run_verbatim_and_answer_what_the_readme_shows() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = blocks(&readme);

    // The first two commands: start the service, run the tests.
    let start = blocks.iter().find(|b| b.lang == "sh").expect("README has a first command");
    let args = start.text.trim().strip_prefix("cargo run --release -- ").expect("the first command runs the service");
    let test_command = blocks.iter().filter(|b| b.lang == "sh").nth(1).expect("a second command").text.trim();
    assert_eq!(test_command, "cargo test", "the README's second command runs the tests");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.starts_with(test_command)), ".ci/run runs the README's test command");

    let mut cmd = Command::new(BIN);
    cmd.args(args.split_whitespace()).current_dir(repo()).env("KEYROUTER_ADDRESS", "127.0.0.1:0");
    let services = repo().join("deploy/services.example.toml");
    let server = Keyrouter::spawn(cmd, tempfile::tempdir().unwrap(), services);

    let mut checked = 0;
    for (i, block) in blocks.iter().enumerate().filter(|(_, b)| is_example(b)) {
        let shown = blocks.get(i + 1).filter(|b| b.lang == "json" || b.lang == "text").unwrap_or_else(|| {
            panic!("README.md:{}: an example without its output (a json or text block)", block.line)
        });
        for line in block.text.lines() {
            let (ok, got) = run(line, server.port);
            assert!(ok, "README.md:{}: `{line}` failed; output:\n{got}", block.line);
            assert!(
                same_output(&shown.lang, &shown.text, &got),
                "README.md:{}: `{line}` answers\n{got}\nbut README.md:{} shows\n{}",
                block.line,
                shown.line,
                shown.text
            );
            checked += 1;
        }
    }
    // The README's examples: three equivalent lookups, a batch, /table, `lookup`, `check`.
    assert!(checked >= 7, "only {checked} README examples found: did the parser break?");
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
