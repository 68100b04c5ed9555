//! The repository itself: nothing large is tracked (generated files belong under `target/` or a
//! temporary directory), and every relative link in the documentation leads to a file, and
//! every `#anchor` to a heading of it.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Largest tracked file allowed, images aside.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[test]
fn no_tracked_file_but_images_is_over_1_mb() {
    if !common::require_tool("git") {
        return;
    }
    let out = Command::new("git").args(["ls-files", "-z"]).current_dir(repo()).output().unwrap();
    if !common::require("a git checkout (git ls-files)", out.status.success()) {
        return;
    }
    let files: Vec<String> =
        out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()).map(|f| String::from_utf8_lossy(f).into()).collect();
    assert!(files.len() > 50, "git ls-files listed only {} files", files.len());
    let image = |f: &str| [".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"].iter().any(|e| f.ends_with(e));
    let too_big: Vec<String> = files
        .iter()
        .filter(|f| !image(f))
        // A file deleted from the work tree but still in the index is not shipped here.
        .filter_map(|f| std::fs::metadata(repo().join(f)).ok().map(|m| (f, m.len())))
        .filter(|(_, len)| *len > MAX_FILE_BYTES)
        .map(|(f, len)| format!("{f}: {len} bytes"))
        .collect();
    assert!(too_big.is_empty(), "tracked files over {MAX_FILE_BYTES} bytes:\n{}", too_big.join("\n"));
}

/// The documentation whose links are checked: README.md, CHANGELOG.md, CONTRIBUTING.md, every
/// file in docs/, and the load-test harness's README.
fn documents() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["README.md", "CHANGELOG.md", "CONTRIBUTING.md", "benches/wrk/README.md"]
        .iter()
        .map(|f| repo().join(f))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// The text outside fenced code blocks, line by line (fenced lines blanked, so numbers hold).
fn prose(text: &str) -> Vec<String> {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return String::new();
            }
            if fenced {
                String::new()
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// A line without its inline code spans.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join("")
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a Markdown file's headings give (the second of two equal headings gets `-1`).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else { continue };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(&heading.replace('`', ""));
        let mut anchor = base.clone();
        let mut n = 0;
        while out.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        out.insert(anchor);
    }
    out
}

/// `(line, target)` of every inline link and image in the prose.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in prose(text).iter().enumerate() {
        let line = without_code(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((i + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let name = file.strip_prefix(repo()).unwrap_or(file).display().to_string();
    let mut problems = Vec::new();
    for (line, target) in links(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let dest = if path.is_empty() { file.to_path_buf() } else { file.parent().unwrap().join(path) };
        if !dest.exists() {
            problems.push(format!("{name}:{line}: {target}: no such file"));
            continue;
        }
        if !anchor.is_empty() {
            let dest_text = std::fs::read_to_string(&dest).unwrap_or_default();
            if !anchors(&dest_text).contains(anchor) {
                problems.push(format!("{name}:{line}: {target}: no heading gives #{anchor}"));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_in_the_documentation_resolves() {
    let files = documents();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        checked += links(&std::fs::read_to_string(file).unwrap()).len();
        problems.extend(broken_links(file));
    }
    assert!(checked > 20, "only {checked} links found in {} files: is the scanner broken?", files.len());
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn the_link_checker_notices_a_missing_file_and_a_missing_heading() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("a.md");
    std::fs::write(dir.path().join("b.md"), "# Title\n\n## Weight range, `1e-6`\n\n```\n# Not a heading\n```\n")
        .unwrap();
    std::fs::write(
        &doc,
        "[ok](b.md) [ok](b.md#weight-range-1e-6) [`code`](b.md#title) [self](#here)\n# Here\n\
         [no](c.md) [no](b.md#not-a-heading)\n```\n[fenced](nowhere.md)\n```\n`[span](nowhere.md)`\n",
    )
    .unwrap();
    let problems = broken_links(&doc);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains(":3: c.md: no such file"), "{problems:?}");
    assert!(problems[1].contains(":3: b.md#not-a-heading: no heading gives"), "{problems:?}");
}
