//! Ranking core speed: lookups at several table sizes against a naive baseline measured in the
//! same run (hash the whole key+node string per node, sort every node), and table building.
//!
//! `cargo bench --bench ranking`; compare `fast` with `naive` in the same group.

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keyrouter::ranking::{NodeSpec, Service, ServiceSpec, Table};

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("10.0.{}.{}:8080", i / 256, i % 256)).collect()
}

/// The obvious implementation: one string hash per node per lookup, then a full sort.
fn naive<'a>(nodes: &'a [String], key: &str, k: usize) -> Vec<&'a str> {
    let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let mut scored: Vec<(u64, &str)> = nodes
        .iter()
        .map(|n| {
            let mut h = state.build_hasher();
            h.write(key.as_bytes());
            h.write(n.as_bytes());
            (h.finish(), n.as_str())
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(k).map(|(_, n)| n).collect()
}

fn lookups(c: &mut Criterion) {
    let keys: Vec<String> = (0..1024).map(|i| format!("user:{i}")).collect();
    for n in [10usize, 100, 1_000, 10_000] {
        let list = nodes(n);
        let (service, _) = Service::build(ServiceSpec::new("s", list.iter().cloned())).unwrap();
        let mut weighted_spec = ServiceSpec::new("w", list.iter().cloned());
        weighted_spec.nodes[0] = NodeSpec { node: list[0].clone(), weight: 2.0 };
        let (weighted, _) = Service::build(weighted_spec).unwrap();
        // Every node its own weight, from 0.5 to 10.
        let varied_spec = ServiceSpec {
            name: "v".into(),
            nodes: list
                .iter()
                .enumerate()
                .map(|(i, n)| NodeSpec { node: n.clone(), weight: 0.5 + (i * 7919 % 96) as f64 / 10.0 })
                .collect(),
        };
        let (varied, _) = Service::build(varied_spec).unwrap();
        let mut group = c.benchmark_group(format!("lookup/n={n}"));
        group.throughput(Throughput::Elements(n as u64));
        for k in [1usize, 3, 10] {
            let mut i = 0;
            group.bench_function(BenchmarkId::new("fast", format!("top{k}")), |b| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    black_box(service.lookup(black_box(&keys[i]), 1, k as u64).unwrap())
                })
            });
            if k == 3 {
                group.bench_function(BenchmarkId::new("weighted", format!("top{k}")), |b| {
                    b.iter(|| {
                        i = (i + 1) % keys.len();
                        black_box(weighted.lookup(black_box(&keys[i]), 1, k as u64).unwrap())
                    })
                });
                group.bench_function(BenchmarkId::new("weighted-varied", format!("top{k}")), |b| {
                    b.iter(|| {
                        i = (i + 1) % keys.len();
                        black_box(varied.lookup(black_box(&keys[i]), 1, k as u64).unwrap())
                    })
                });
            }
            group.bench_function(BenchmarkId::new("naive", format!("top{k}")), |b| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    black_box(naive(&list, black_box(&keys[i]), k))
                })
            });
        }
        group.finish();
    }
}

fn building(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(20);
    let many: Vec<ServiceSpec> = (0..100).map(|s| ServiceSpec::new(format!("svc{s}"), nodes(100))).collect();
    group.bench_function("100 services x 100 nodes", |b| b.iter(|| Table::build(black_box(many.clone())).unwrap()));
    let ten_k = vec![ServiceSpec::new("big", nodes(10_000))];
    group.bench_function("1 service x 10000 nodes", |b| b.iter(|| Table::build(black_box(ten_k.clone())).unwrap()));
    let huge = vec![ServiceSpec::new("huge", nodes(100_000))];
    group.bench_function("1 service x 100000 nodes", |b| b.iter(|| Table::build(black_box(huge.clone())).unwrap()));
    group.finish();
}

criterion_group!(benches, lookups, building);
criterion_main!(benches);
