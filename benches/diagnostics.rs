//! Services files full of errors: finding every diagnostic must cost time linear in the file,
//! like parsing a valid file of the same size (measured beside them in the same run).
//!
//! `cargo bench --bench diagnostics`; compare each `errors/*` case with `valid/*`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keyrouter::table::config;

/// `n` entries with no `Name`: one structural error each (27 bytes an entry, 1 MB for 40 000).
fn nameless(n: usize) -> String {
    "[[Services]]\nNodes = [\"a\"]\n".repeat(n)
}

/// `n` services all named "a": every one after the first is a duplicate.
fn duplicates(n: usize) -> String {
    "[[Services]]\nName = \"a\"\n".repeat(n)
}

/// One service with `n` nodes of weight 0: one error per node.
fn bad_weights(n: usize) -> String {
    let mut s = String::from("[[Services]]\nName = \"a\"\nNodes = [\n");
    for i in 0..n {
        s.push_str(&format!("  {{ Node = \"n{i}\", Weight = 0 }},\n"));
    }
    s.push_str("]\n");
    s
}

/// `n` entries without `Name` in one inline array on one line: every column is on that line.
fn one_line(n: usize) -> String {
    let mut s = String::from("Services = [");
    s.push_str(&"{ Nodes = [] }, ".repeat(n));
    s.push_str("]\n");
    s
}

/// `n` lines of one letter each: a TOML syntax error per line.
fn letters(n: usize) -> String {
    "a\n".repeat(n)
}

/// `n` valid services, for comparison.
fn valid(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("[[Services]]\nName = \"s{i}\"\nNodes = [\"a\"]\n"));
    }
    s
}

/// A case: its name, the file it makes for a size, and whether that file is valid.
type Case = (&'static str, fn(usize) -> String, bool);

fn diagnostics(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.sample_size(10);
    let cases: [Case; 6] = [
        ("errors/nameless", nameless, false),
        ("errors/duplicates", duplicates, false),
        ("errors/bad_weights", bad_weights, false),
        ("errors/one_line", one_line, false),
        ("errors/letters", letters, false),
        ("valid/services", valid, true),
    ];
    for (name, make, ok) in cases {
        for n in [10_000usize, 40_000, 80_000] {
            let src = make(n);
            assert_eq!(config::parse(&src, "b.toml").is_ok(), ok, "{name} n={n}");
            group.throughput(Throughput::Bytes(src.len() as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &src, |b, src| {
                b.iter(|| black_box(config::parse(black_box(src), "b.toml").is_ok()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, diagnostics);
criterion_main!(benches);
