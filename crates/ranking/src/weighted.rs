//! The weighted ranking at nearly the speed of the unweighted one, with exactly its answers.
//!
//! A weighted score is `-w / ln(u)` (see [`super::hash::weighted_score`]), and libm's `ln` costs
//! several times a node's hash: computed for every node, it made the weighted path many times
//! slower than the unweighted one (figures in `benches/README.md`).
//! But almost every node loses to the current k-th best, and proving that needs no logarithm:
//!
//! with `t = 1 - u` (exact: `t = (!raw >> 12) + ½` steps of 2⁻⁵², like `u`),
//! `-ln(u) = -ln(1 - t) = t + t²/2 + t³/3 + … ≥ t`, so the score is at most `w / t`. Each node
//! gets `r = t / w` (a multiplication by a precomputed `1/w`, vectorized like the unweighted
//! scores); a node whose `r` exceeds `(1 + MARGIN) / s_k`, `s_k` the exact score of the current
//! k-th best, scores below `s_k` and is skipped. Only the others get their exact libm score and
//! go through the same comparison as before.
//!
//! Rounding: `t` is exact, its product with `fl(1/w)` carries a relative error of a few 2⁻⁵³,
//! libm's `log` is within one ulp and the final division within half an ulp: together below
//! 2⁻⁴⁸ relative. `MARGIN = 1e-12` (≈ 2⁻⁴⁰) covers that 250 times over, so a skipped node
//! always has an exact score strictly below `s_k`: the answer is the one of scoring every node
//! exactly. `tests` below and `crates/ranking/tests/ranking/props.rs` compare both on many random tables.
//!
//! The bound is tight where it matters: a node can only win when `-ln(u) ≤ w / s_k`, which is
//! small once the k best are good (about `k / n` of the total weight), and there `t` differs
//! from `-ln(u)` by about `t²/2`: the candidates that pass the bound and then lose are a
//! fraction of order `w / s_k` of those that win. (`t + t²/2`, tighter still, cost a tenth more
//! at 10 000 nodes for no fewer candidates that matter.)

use std::cmp::Ordering;

use super::hash::{score, simd_dispatch, weighted_score, Simd};
use super::table::is_excluded;
use super::topk::{offer, walk_blocks, Candidate, BLOCK, INLINE};

/// Relative slack between the bound and the exact score, far above every rounding error.
const MARGIN: f64 = 1e-12;

/// `2^52` and `2^52 - ½`: `f64::from_bits(m | EXP_52) - HALF_BELOW` is `m + ½` exactly for
/// `m < 2^52`, without a u64 → f64 conversion (which AVX2 lacks).
const EXP_52: u64 = 0x4330_0000_0000_0000;
const HALF_BELOW: f64 = 4_503_599_627_370_495.5;
const STEP: f64 = 1.0 / (1u64 << 52) as f64;
/// 2^52, by which [`crate::hash::avx512::skip_blocks_weighted`] takes the limit.
const TWO_52: f64 = (1u64 << 52) as f64;

/// `t / w` for the node with raw score `raw` and `inv_weight = 1/w`: at most `-ln(u)/w`.
#[inline(always)]
pub fn bound(raw: u64, inv_weight: f64) -> f64 {
    let t = (f64::from_bits((!raw >> 12) | EXP_52) - HALF_BELOW) * STEP;
    t * inv_weight
}

/// The inverse of a weight for [`bound`]; 0 (never skipped) where it would not be finite.
pub fn inverse(weight: f64) -> f64 {
    let inv = 1.0 / weight;
    if inv.is_finite() {
        inv
    } else {
        0.0
    }
}

/// Raw scores and bounds of a block of nodes; returns whether any bound is at most `limit`.
/// Inlined into the scan, which is compiled for each SIMD level ([`top_k`]).
///
/// The test is folded as a lane mask with an OR, which stays in a vector register: the smallest
/// bound (`f64::min`, whose NaN rule kept it scalar) was a chain of 32 dependent minimums per
/// block, half of a 10 000-node lookup's time in perf annotate.
#[inline(always)]
fn fill_portable(
    key_hash: u64,
    hashes: &[u64],
    inv_weights: &[f64],
    raw: &mut [u64],
    bounds: &mut [f64],
    limit: f64,
) -> bool {
    let mut any = 0u64;
    for ((r, &h), (b, &inv)) in raw.iter_mut().zip(hashes).zip(bounds.iter_mut().zip(inv_weights)) {
        *r = score(key_hash, h);
        *b = bound(*r, inv);
        any |= if *b <= limit { u64::MAX } else { 0 };
    }
    any != 0
}

/// The exact weighted score and its tie-breakers, as the comparison sees it.
pub type Score = (f64, u64);

/// Calls `emit` with the indexes of the `k` best nodes (`k <= INLINE`) other than those at
/// `excluded` (sorted positions), best first, by the exact weighted order `better` (score, then
/// raw hash, then node string), skipping the nodes whose bound proves they lose.
#[allow(clippy::too_many_arguments)] // the ranking's inputs, as the unweighted top_k's
pub fn top_k<B, E>(
    simd: Simd,
    key_hash: u64,
    hashes: &[u64],
    weights: Weights<'_>,
    excluded: &[u32],
    k: usize,
    better: B,
    emit: E,
) where
    B: Fn(&Candidate<Score>, &Candidate<Score>) -> Ordering,
    E: FnMut(usize),
{
    simd_dispatch! {
        simd,
        fn rank<B: Fn(&Candidate<Score>, &Candidate<Score>) -> Ordering, E: FnMut(usize)>(
            simd: Simd,
            key_hash: u64,
            hashes: &[u64],
            weights: Weights<'_>,
            excluded: &[u32],
            k: usize,
            better: B,
            emit: E,
        ) {
            // The AVX-512 build passes over blocks without a candidate in intrinsics.
            #[cfg(target_arch = "x86_64")]
            let wide = simd == Simd::Avx512 && crate::hash::has_avx512();
            #[cfg(not(target_arch = "x86_64"))]
            let _ = simd;
            scan(
                key_hash,
                hashes,
                weights.of,
                weights.inverse,
                excluded,
                k,
                #[inline(always)]
                |start: usize, end: usize, limit: &f64| {
                    #[cfg(target_arch = "x86_64")]
                    if wide {
                        // SAFETY: `wide`: the CPU has avx512f and avx512dq.
                        return unsafe {
                            crate::hash::avx512::skip_blocks_weighted(
                                key_hash,
                                &hashes[start..end],
                                &weights.inverse[start..end],
                                limit * TWO_52,
                            )
                        };
                    }
                    // AVX2 and portable builds bound every block (AVX2 has no u64 -> f64).
                    let _ = (start, end, limit);
                    0
                },
                better,
                emit,
            )
        }
    }
}

/// Each node's weight and its [`inverse`], in the order of the hashes.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    pub of: &'a [f64],
    pub inverse: &'a [f64],
}

/// [`top_k`] for one SIMD level: always inlined into the level's function, with whole blocks of
/// a constant length (straight-line scoring code, as in the unweighted scan) and the partial
/// last block apart. Once k nodes are in, `skip(start, end, limit)` may pass over whole blocks
/// from `start` (before `end`) in which no node's bound is within `limit`: it returns how many.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the scan's inputs, and the level's skip
fn scan(
    key_hash: u64,
    hashes: &[u64],
    weights: &[f64],
    inv_weights: &[f64],
    excluded: &[u32],
    k: usize,
    skip: impl Fn(usize, usize, &f64) -> usize,
    better: impl Fn(&Candidate<Score>, &Candidate<Score>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
    let n = hashes.len();
    let k = k.min(n).min(INLINE);
    if k == 0 {
        return;
    }
    let mut buf = [Candidate::<Score>::default(); INLINE];
    let buf = &mut buf[..k];
    let (mut raw, mut bounds) = ([0u64; BLOCK], [0f64; BLOCK]);
    let mut filled = 0;
    // A node whose bound is above `limit` cannot beat `buf[k - 1]`.
    let mut limit = f64::INFINITY;
    walk_blocks(
        n,
        #[inline(always)]
        |start, len| {
            let end = start + len;
            let any = fill_portable(
                key_hash,
                &hashes[start..end],
                &inv_weights[start..end],
                &mut raw[..len],
                &mut bounds[..len],
                limit,
            );
            if any {
                for j in 0..len {
                    let i = start + j;
                    // Excluded nodes are left out here, where few nodes get: the k best of the
                    // others, without selecting k + excluded and dropping them after.
                    if bounds[j] > limit || is_excluded(excluded, i) {
                        continue;
                    }
                    let c = Candidate { score: (weighted_score(raw[j], weights[i]), raw[j]), index: i as u32 };
                    if offer(buf, &mut filled, c, &better) && filled == k {
                        limit = (1.0 + MARGIN) / buf[k - 1].score.0;
                    }
                }
            }
            (filled == k).then_some(limit)
        },
        skip,
    );
    buf.iter().for_each(|c| emit(c.index as usize));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{mix, unit_interval};

    #[test]
    fn the_bound_is_never_above_the_exact_logarithm() {
        let mut raw = 0x1234_5678_9abc_def0u64;
        let edges = [0u64, 1 << 12, u64::MAX, u64::MAX - (1 << 12), 1 << 63, (1 << 63) - 1];
        for i in 0..200_000u64 {
            raw = if (i as usize) < edges.len() { edges[i as usize] } else { mix(raw.wrapping_add(i)) };
            let exact = -libm::log(unit_interval(raw));
            let b = bound(raw, 1.0);
            assert!(b <= exact * (1.0 + 1e-15), "raw {raw:#x}: bound {b} above -ln(u) {exact}");
            assert!(b > 0.0);
        }
    }

    #[test]
    fn t_is_exactly_one_minus_u() {
        for raw in [0u64, 1 << 12, 12345 << 12, u64::MAX, 1 << 63] {
            let t = (f64::from_bits((!raw >> 12) | EXP_52) - HALF_BELOW) * STEP;
            assert_eq!(t, 1.0 - unit_interval(raw), "{raw:#x}");
        }
    }

    #[test]
    fn every_simd_level_picks_what_exact_scores_sorted_do() {
        use crate::hash::hash_str;
        use crate::weighted_order;
        for len in [1, 7, 31, 32, 33, 64, 100, 1000, 10_000] {
            let nodes: Vec<String> = (0..len).map(|i| format!("node-{i}")).collect();
            let hashes: Vec<u64> = nodes.iter().map(|n| hash_str(n)).collect();
            let weights: Vec<f64> = (0..len).map(|i| 0.5 + (i % 13) as f64 / 3.0).collect();
            let inv: Vec<f64> = weights.iter().map(|&w| inverse(w)).collect();
            for key in ["", "ryans", "user:42"] {
                let kh = hash_str(key);
                let mut exact: Vec<usize> = (0..len).collect();
                let s = |i: usize| (weighted_score(score(kh, hashes[i]), weights[i]), score(kh, hashes[i]));
                exact.sort_by(|&a, &b| {
                    s(b).0.total_cmp(&s(a).0).then(s(b).1.cmp(&s(a).1)).then(nodes[a].cmp(&nodes[b]))
                });
                for k in [1, 3, 10, 32] {
                    for simd in Simd::available() {
                        let mut picked = Vec::new();
                        let w = Weights { of: &weights, inverse: &inv };
                        top_k(simd, kh, &hashes, w, &[], k, weighted_order(&nodes), |i| picked.push(i));
                        assert_eq!(picked, exact[..k.min(len)], "{simd:?}: {len} nodes, key {key:?}, top {k}");
                    }
                }
            }
        }
    }

    /// The AVX-512 skip passes over a block only if the scan would offer none of its nodes,
    /// and stops at one where its own test finds a node within the limit.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_avx512_skip_passes_over_only_blocks_the_scan_would_skip() {
        use crate::hash::{has_avx512, hash_str, mix};
        if !has_avx512() {
            crate::say_not_tested(
                "the_avx512_skip_passes_over_only_blocks_the_scan_would_skip",
                "this CPU lacks avx512f or avx512dq, so the AVX-512 weighted skip was not tested",
            );
            return;
        }
        let n = 2000;
        let hashes: Vec<u64> = (0..n).map(|i| hash_str(&format!("node-{i}"))).collect();
        let inv: Vec<f64> = (0..n).map(|i| inverse(0.5 + (i % 13) as f64 / 3.0)).collect();
        let whole = n - n % BLOCK;
        let (mut passed_over, mut stops) = (0, 0);
        for key in 0..300u64 {
            let kh = mix(key);
            for limit in [1e-4, 1e-3, 3e-3, 1e-2, 1e-1] {
                let mut at = 0;
                while at < whole {
                    // SAFETY: has_avx512() above.
                    let passed = unsafe {
                        crate::hash::avx512::skip_blocks_weighted(
                            kh,
                            &hashes[at..whole],
                            &inv[at..whole],
                            limit * TWO_52,
                        )
                    };
                    for i in at..at + passed * BLOCK {
                        let b = bound(score(kh, hashes[i]), inv[i]);
                        assert!(b > limit, "key {key}, limit {limit}: node {i} (bound {b}) passed over");
                    }
                    passed_over += passed;
                    at += passed * BLOCK;
                    if at < whole {
                        let near =
                            (at..at + BLOCK).any(|i| bound(score(kh, hashes[i]), inv[i]) <= limit * (1.0 + 1e-12));
                        assert!(
                            near,
                            "key {key}, limit {limit}: stopped at block {} without a node within it",
                            at / BLOCK
                        );
                        stops += 1;
                        at += BLOCK;
                    }
                }
            }
        }
        assert!(passed_over > 10_000 && stops > 1_000, "{passed_over} blocks passed over, {stops} stops");
    }

    #[test]
    fn inverse_of_a_tiny_weight_never_skips() {
        assert_eq!(inverse(f64::MIN_POSITIVE / 4.0), 0.0);
        assert_eq!(inverse(2.0), 0.5);
    }
}
