//! Ranking core speed: lookups at several table sizes against a naive baseline measured in the
//! same run (hash the whole key+node string per node, sort every node), and table building.
//!
//! `cargo bench --bench ranking`; compare `fast` with `naive` in the same group.

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keyrouter_ranking::{Algorithm, NodeSpec, Service, ServiceSpec, Table};

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
        weighted_spec.nodes[0] = NodeSpec::weighted(list[0].clone(), 2.0);
        let (weighted, _) = Service::build(weighted_spec).unwrap();
        // Every node its own weight, from 0.5 to 10.
        let varied_spec = ServiceSpec {
            name: "v".into(),
            nodes: list
                .iter()
                .enumerate()
                .map(|(i, n)| NodeSpec::weighted(n.clone(), 0.5 + (i * 7919 % 96) as f64 / 10.0))
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

/// What the vector units allow: the scoring loop (load, mix, store, compare with the k-th best)
/// over 10 000 node hashes in whole 32-node blocks as the ranking runs them (9 984 of them), without the
/// selection, and the mixing function alone on 24 values kept in registers (no loads or
/// stores), both compiled for AVX2 where the CPU has it. Their time per node beside
/// `lookup/n=10000/fast/top3`'s is how far the ranking is from the hardware's limit
/// (benches/wrk/README.md, "Ranking against the vector units").
fn limits(c: &mut Criterion) {
    use keyrouter_ranking::hash::{fill_scores_portable, hash_str, mix, Simd};
    use keyrouter_ranking::topk::BLOCK;
    let hashes: Vec<u64> = nodes(10_000).iter().map(|n| hash_str(n)).collect();
    let mut group = c.benchmark_group("limit");
    group.throughput(Throughput::Elements(hashes.len() as u64));
    let simd = Simd::detect();
    let key = hash_str("user:1");

    /// Whole blocks, a constant length each, with a threshold no score reaches (the common
    /// case at 10 000 nodes: the block is skipped).
    #[inline(always)]
    fn blocks(key: u64, hashes: &[u64]) -> u32 {
        // A `for` loop: a `fold` with three callers was no longer inlined, and compiled without
        // the caller's features ran at half the speed.
        let (mut out, mut bits) = ([0u64; BLOCK], 0);
        for h in hashes.chunks_exact(BLOCK) {
            bits |= fill_scores_portable(key, h, &mut out, Some(u64::MAX));
        }
        bits
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn blocks_avx2(key: u64, hashes: &[u64]) -> u32 {
        blocks(key, hashes)
    }
    group.bench_function("scoring loop, 10000 nodes", |b| {
        b.iter(|| {
            #[cfg(target_arch = "x86_64")]
            if simd != Simd::Portable {
                // SAFETY: `Simd::detect` found AVX2 (or AVX-512, which implies it) on this CPU.
                return black_box(unsafe { blocks_avx2(black_box(key), &hashes) });
            }
            black_box(blocks(black_box(key), &hashes))
        })
    });

    // The same loop compiled for AVX-512 (autovectorized, as `lookup` ran it there before), and
    // the AVX-512 build's pass over blocks without a hit (`hash::avx512::skip_blocks`: scores in
    // registers, unsigned compares into masks, nothing stored).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn blocks_avx512(key: u64, hashes: &[u64]) -> u32 {
        blocks(key, hashes)
    }
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 {
        group.bench_function("scoring loop, 10000 nodes, AVX-512 autovectorized", |b| {
            // SAFETY: `Simd::detect` found avx512f and avx512dq on this CPU.
            b.iter(|| black_box(unsafe { blocks_avx512(black_box(key), &hashes) }))
        });
        group.bench_function("scoring loop, 10000 nodes, AVX-512 skip", |b| {
            b.iter(|| {
                let threshold = black_box(u64::MAX);
                // SAFETY: `Simd::detect` found avx512f and avx512dq on this CPU.
                black_box(unsafe {
                    keyrouter_ranking::hash::avx512::skip_blocks::<false>(black_box(key), &hashes, threshold)
                })
            })
        });
    }

    /// 100 rounds of the mixing function over 24 independent values: enough in flight to fill
    /// the pipelines, few enough to stay in (AVX2: six) registers.
    #[inline(always)]
    fn rounds(state: &mut [u64; 24], key: u64) {
        for _ in 0..100 {
            for x in state.iter_mut() {
                *x = mix(*x ^ key);
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rounds_avx2(state: &mut [u64; 24], key: u64) {
        rounds(state, key)
    }
    group.throughput(Throughput::Elements(2400));
    let mut state: [u64; 24] = std::array::from_fn(|i| i as u64);
    group.bench_function("mixing alone, in registers", |b| {
        b.iter(|| {
            #[cfg(target_arch = "x86_64")]
            if simd == Simd::Avx2 {
                // SAFETY: `Simd::detect` found AVX2 on this CPU.
                unsafe { rounds_avx2(&mut state, black_box(key)) };
                return black_box(state[0]);
            }
            rounds(&mut state, black_box(key));
            black_box(state[0])
        })
    });
    group.finish();
}

/// Algorithm 2 against algorithm 1, in the same run: top-3 lookups at 100 and 10 000 nodes with
/// short keys and 64-byte keys, and a table build of 1 000 000 nodes. Its target: within 1.05x
/// for lookups and 1.1x for builds (`cargo bench -p keyrouter-ranking -- algorithm`).
fn algorithms(c: &mut Criterion) {
    let short: Vec<String> = (0..1024).map(|i| format!("user:{i}")).collect();
    let long: Vec<String> = (0..1024).map(|i| format!("{i:064}")).collect();
    for n in [100usize, 10_000] {
        let mut group = c.benchmark_group(format!("algorithm/lookup/n={n}"));
        for algorithm in Algorithm::ALL {
            let (service, _) = Service::build_with(ServiceSpec::new("s", nodes(n)), algorithm).unwrap();
            for (name, keys) in [("short key", &short), ("64-byte key", &long)] {
                let mut i = 0;
                group.bench_function(BenchmarkId::new(format!("v{algorithm}"), name), |b| {
                    b.iter(|| {
                        i = (i + 1) % keys.len();
                        black_box(service.lookup(black_box(&keys[i]), 1, 3).unwrap())
                    })
                });
            }
        }
        group.finish();
    }
    let mut group = c.benchmark_group("algorithm/build");
    group.sample_size(10);
    let million = vec![ServiceSpec::new("million", nodes(1_000_000))];
    for algorithm in Algorithm::ALL {
        group.bench_function(BenchmarkId::new(format!("v{algorithm}"), "1 service x 1000000 nodes"), |b| {
            b.iter(|| Table::build_with(algorithm, black_box(million.clone())).unwrap())
        });
    }
    group.finish();
}

/// Lookup options against a plain lookup, in the same run: top-3 lookups at 100 and 10 000 nodes
/// in 3 zones, plain, excluding one node, and with `spread=zone`, weighted and not. Target: at
/// most 1.2x plain (`cargo bench -p keyrouter-ranking -- options`).
fn options(c: &mut Criterion) {
    use keyrouter_ranking::{LookupOptions, Spread};
    let keys: Vec<String> = (0..1024).map(|i| format!("user:{i}")).collect();
    for n in [100usize, 10_000] {
        let mut group = c.benchmark_group(format!("options/n={n}"));
        for weighted in [false, true] {
            let spec = ServiceSpec {
                name: "s".into(),
                nodes: nodes(n)
                    .into_iter()
                    .enumerate()
                    .map(|(i, node)| {
                        let weight = if weighted { 0.5 + (i * 7919 % 96) as f64 / 10.0 } else { 1.0 };
                        NodeSpec::weighted(node, weight).with_zone(["eu-1a", "eu-1b", "eu-1c"][i % 3])
                    })
                    .collect(),
            };
            let (service, _) = Service::build_with(spec, Algorithm::V2).unwrap();
            let excluded = [service.nodes()[n / 2].as_str()];
            let variants = [
                ("plain", LookupOptions::default()),
                ("exclude-1", LookupOptions { exclude: &excluded, spread: Spread::None }),
                ("spread=zone", LookupOptions { exclude: &[], spread: Spread::Zone }),
            ];
            for (name, opts) in variants {
                let mut i = 0;
                let id = BenchmarkId::new(if weighted { "weighted" } else { "unweighted" }, name);
                group.bench_function(id, |b| {
                    b.iter(|| {
                        i = (i + 1) % keys.len();
                        black_box(service.lookup_with(black_box(&keys[i]), 1, 3, &opts).unwrap())
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, lookups, building, limits, algorithms, options);
criterion_main!(benches);
