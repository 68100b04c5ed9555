//! Top-k selection without sorting all candidates.
//!
//! Scores are computed a block at a time (so the unweighted scorer can use SIMD), then scanned.
//! For `k <= INLINE` the best candidates live in a sorted array on the stack. Once it is full,
//! almost every candidate loses against the current k-th best in one comparison (only about
//! `k * ln(n / k)` of `n` candidates ever get in), so the scan costs little more than scoring.
//! Larger `k` score every candidate into a vector, partition around the k-th best
//! (`select_nth_unstable_by`, linear) and sort only those k: O(n + k log k).
//!
//! Few candidates and a small `k` (the usual lookup: tens of nodes, top 1 to 3) take
//! [`top_k_small`] instead: a vectorized network keeps each lane's best, with no branch per
//! candidate, which costs less than the first block's offers and their mispredicted branches.

use std::cmp::Ordering;

/// Largest `k` served from the stack buffer, without allocating.
pub const INLINE: usize = 32;

/// Candidates scored per call of the block scorer.
pub const BLOCK: usize = 32;

/// A scored candidate: `score` orders it, `index` names the node.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Candidate<S> {
    pub score: S,
    pub index: u32,
}

/// Calls `emit` with the indexes of the `k` best of `n` candidates, best first.
///
/// `fill(start, out, threshold)` writes the scores of candidates `start .. start + out.len()`
/// (at most [`BLOCK`], 32) into `out` and returns a bit for each, bit `i` for `out[i]`, set when
/// it may rank before a candidate of score `threshold`: clear only if its score is below it (a
/// set bit is always allowed, and `None` asks for every bit). `better(a, b)` is a total order
/// in which `Ordering::Greater` means `a` ranks before `b`, scores first, so a candidate whose
/// score is below the k-th best's cannot change the answer (an equal one can, by the tie-break).
///
/// Always inlined: the caller may be compiled for a SIMD level (see
/// [`super::hash::top_k_unweighted`]), and only what is inlined into it is compiled for it.
#[inline(always)]
pub fn top_k<S: Copy + Default>(
    n: usize,
    k: usize,
    fill: impl Fn(usize, &mut [S], Option<&S>) -> u32,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
    const { assert!(BLOCK <= 32, "one bit per candidate of a block in a u32") };
    let k = k.min(n);
    if k == 0 {
        return;
    }
    if k > INLINE {
        let mut scores = vec![S::default(); n];
        for (b, chunk) in scores.chunks_mut(BLOCK).enumerate() {
            fill(b * BLOCK, chunk, None);
        }
        let mut all: Vec<Candidate<S>> =
            scores.into_iter().enumerate().map(|(i, score)| Candidate { score, index: i as u32 }).collect();
        let best_first = |a: &Candidate<S>, b: &Candidate<S>| better(b, a);
        if k < n {
            all.select_nth_unstable_by(k - 1, best_first);
            all.truncate(k);
        }
        all.sort_unstable_by(best_first);
        all.iter().for_each(|c| emit(c.index as usize));
        return;
    }

    // The buffer lives on the stack and is initialised every lookup: size it to k.
    match k {
        0..=4 => scan::<S, 4>(n, k, fill, better, emit),
        5..=8 => scan::<S, 8>(n, k, fill, better, emit),
        _ => scan::<S, INLINE>(n, k, fill, better, emit),
    }
}

/// The stack-buffer selection for `k <= N`.
///
/// The scorer returns a bit per candidate of the block that may beat the k-th best so far (all
/// of them while the buffer fills), and only those are offered: at 100 nodes and top 3 that is
/// a handful of the 68 candidates after the first block. Comparing every candidate instead, with
/// a data-dependent branch each, was two thirds of a 100-node lookup's time (perf annotate).
#[inline(always)]
fn scan<S: Copy + Default, const N: usize>(
    n: usize,
    k: usize,
    fill: impl Fn(usize, &mut [S], Option<&S>) -> u32,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
    let mut buf = [Candidate::<S>::default(); N];
    let buf = &mut buf[..k];
    let mut block = [S::default(); BLOCK];
    let mut filled = 0;
    for_each_block(
        n,
        #[inline(always)]
        |start, len| {
            let scores = &mut block[..len];
            let threshold = (filled == k).then(|| buf[k - 1].score);
            // Bits past the block's end mean nothing.
            let mut may_beat = fill(start, scores, threshold.as_ref()) & (u32::MAX >> (BLOCK - len));
            while may_beat != 0 {
                let j = may_beat.trailing_zeros() as usize;
                may_beat &= may_beat - 1;
                offer(buf, &mut filled, Candidate { score: scores[j], index: (start + j) as u32 }, &better);
            }
        },
    );
    buf[..filled].iter().for_each(|c| emit(c.index as usize));
}

/// Calls `block(start, len)` for each block of [`BLOCK`] of `n` candidates: the whole blocks,
/// then the partial one. Always inlined, and so is `block` where the caller marks its closure
/// `#[inline(always)]`: with the length a constant in the first call, the scoring loop of a
/// whole block compiles to straight-line code without remainder loops (those were a fifth of
/// the instructions at 10 000 nodes). Both scans use it, this module's and the weighted one.
#[inline(always)]
pub fn for_each_block(n: usize, mut block: impl FnMut(usize, usize)) {
    let whole = n - n % BLOCK;
    for start in (0..whole).step_by(BLOCK) {
        block(start, BLOCK);
    }
    if whole < n {
        block(whole, n - whole);
    }
}

/// Largest number of candidates [`top_k_small`] takes (two 64-bit masks).
pub const SMALL_N: usize = 128;

/// Largest `k` [`top_k_small`] takes.
pub const SMALL_K: usize = 4;

/// The top `k` of a few scores without a data-dependent branch per candidate. A key is a score
/// made signed with its order kept (`(score ^ 1 << 63) as i64`), since AVX2 compares only signed
/// 64-bit lanes. Writes the indexes of the `k` largest keys, largest first, to `picked[..k]`
/// and returns true, or returns false when the keys alone cannot tell (two of the top `k + 1`
/// are equal, and the caller's tie-break decides).
///
/// One pass keeps the `k` largest keys of each of 4 lanes (key `i` in lane `i % 4`) with a
/// compare-exchange network, which vectorizes; the `k`-th largest of those `4 k` is the `k`-th
/// largest key, and a second pass finds the keys at least that large. At 100 nodes and top 3 a
/// lookup with it took 1 743 instructions against the block scan's 2 370 (callgrind), whose
/// offers also mispredicted on most of the first block's 32 candidates. Takes at most
/// [`SMALL_N`] keys and `1 <= k <= SMALL_K`.
#[inline(always)]
pub fn top_k_small(keys: &[i64], k: usize, picked: &mut [u32; SMALL_K]) -> bool {
    debug_assert!(keys.len() <= SMALL_N && k <= keys.len());
    match k {
        1 => top_by_lanes::<1>(keys, picked),
        2 => top_by_lanes::<2>(keys, picked),
        3 => top_by_lanes::<3>(keys, picked),
        4 => top_by_lanes::<4>(keys, picked),
        _ => false,
    }
}

/// Lanes of the network in [`top_k_small`]: four 64-bit keys fill an AVX2 register.
const LANES: usize = 4;

#[inline(always)]
fn top_by_lanes<const K: usize>(keys: &[i64], picked: &mut [u32; SMALL_K]) -> bool {
    // top[j][l]: the (j+1)-th largest key of lane l so far.
    let mut top = [[i64::MIN; LANES]; K];
    let mut insert = |mut v: [i64; LANES]| {
        for t in top.iter_mut() {
            for l in 0..LANES {
                let (hi, lo) = if v[l] > t[l] { (v[l], t[l]) } else { (t[l], v[l]) };
                t[l] = hi;
                v[l] = lo;
            }
        }
    };
    let mut chunks = keys.chunks_exact(LANES);
    for c in chunks.by_ref() {
        insert([c[0], c[1], c[2], c[3]]);
    }
    let mut last = [i64::MIN; LANES];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    insert(last);
    // The K-th largest key: merge the lanes' sorted columns K steps deep (a row of i64::MIN
    // below them, so that a step may go past a column's end). Selects, not branches, here and
    // below: the comparisons go either way at random, and mispredicted branches were a third of
    // the time of a 100-node lookup.
    let mut rows = [[i64::MIN; LANES]; SMALL_K + 1];
    rows[..K].copy_from_slice(&top);
    let mut depth = [0usize; LANES];
    let mut kth = i64::MIN;
    for _ in 0..K {
        let (mut lane, mut best) = (0, rows[depth[0]][0]);
        for (l, &d) in depth.iter().enumerate().skip(1) {
            let v = rows[d][l];
            lane = if v > best { l } else { lane };
            best = best.max(v);
        }
        kth = best;
        depth[lane] += 1;
    }
    // Exactly K keys at least that large, or the K-th ties with the next.
    let mut bits = [0u64; SMALL_N / 64];
    for (b, chunk) in bits.iter_mut().zip(keys.chunks(64)) {
        *b = chunk.iter().enumerate().fold(0u64, |b, (i, &s)| b | u64::from(s >= kth) << i);
    }
    finish::<K>(keys, bits, picked)
}

/// The end of [`top_k_small`] at every SIMD level: from the bits of the keys at least the K-th
/// largest, the K picks, largest first, or false if the bits are not exactly K or two picks are
/// equal.
#[inline(always)]
fn finish<const K: usize>(keys: &[i64], bits: [u64; SMALL_N / 64], picked: &mut [u32; SMALL_K]) -> bool {
    if bits.iter().map(|b| b.count_ones()).sum::<u32>() != K as u32 {
        return false;
    }
    let [mut low, mut high] = bits;
    for slot in picked[..K].iter_mut() {
        let in_low = low != 0;
        *slot = if in_low { low.trailing_zeros() } else { 64 + high.trailing_zeros() };
        low &= if in_low { low - 1 } else { u64::MAX };
        high &= if in_low { u64::MAX } else { high.wrapping_sub(1) };
    }
    // Largest first, by a sorting network; equal keys are for the caller's tie-break.
    let key = |i: u32| keys[i as usize];
    let mut exchange = |i: usize, j: usize| {
        let (a, b) = (picked[i], picked[j]);
        let swap = key(a) < key(b);
        picked[i] = if swap { b } else { a };
        picked[j] = if swap { a } else { b };
    };
    match K {
        2 => exchange(0, 1),
        3 => [(0, 1), (1, 2), (0, 1)].into_iter().for_each(|(i, j)| exchange(i, j)),
        4 => [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)].into_iter().for_each(|(i, j)| exchange(i, j)),
        _ => {}
    }
    (1..K).fold(true, |distinct, i| distinct & (key(picked[i - 1]) != key(picked[i])))
}

/// [`top_k_small`] in AVX2 intrinsics: the same network and checks, with the bits as compare
/// and `movemask` and the merge as a vector maximum, where LLVM made shifts by variable amounts
/// and scalar loads of the portable code. At 100 nodes, top 3: 1 642 instructions a lookup
/// against 1 743, and about 0.87x the time.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, SMALL_K, SMALL_N};

    /// [`super::top_k_small`] for `keys.len()` a multiple of 4 (pad with `i64::MIN`).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn top_k_small(keys: &[i64], k: usize, picked: &mut [u32; SMALL_K]) -> bool {
        debug_assert!(keys.len() <= SMALL_N && keys.len().is_multiple_of(LANES) && k <= keys.len());
        match k {
            1 => by_lanes::<1>(keys, picked),
            2 => by_lanes::<2>(keys, picked),
            3 => by_lanes::<3>(keys, picked),
            4 => by_lanes::<4>(keys, picked),
            _ => false,
        }
    }

    /// The largest of four lanes, in every lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn max_all(v: __m256i) -> __m256i {
        let v = max(v, _mm256_permute4x64_epi64::<0b01_00_11_10>(v));
        max(v, _mm256_permute4x64_epi64::<0b10_11_00_01>(v))
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn max(a: __m256i, b: __m256i) -> __m256i {
        _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(b, a))
    }

    /// Keys `4 q .. 4 q + 4`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn quad(keys: &[i64], q: usize) -> __m256i {
        debug_assert!(q * LANES + LANES <= keys.len());
        // SAFETY (of the caller): q < keys.len() / 4.
        _mm256_loadu_si256(keys.as_ptr().add(q * LANES).cast())
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn by_lanes<const K: usize>(keys: &[i64], picked: &mut [u32; SMALL_K]) -> bool {
        let quads = keys.len() / LANES;
        // top[j]: lane by lane, the (j+1)-th largest key so far.
        let mut top = [_mm256_set1_epi64x(i64::MIN); K];
        for q in 0..quads {
            let mut v = quad(keys, q);
            for t in top.iter_mut() {
                let gt = _mm256_cmpgt_epi64(v, *t);
                let hi = _mm256_blendv_epi8(*t, v, gt);
                v = _mm256_blendv_epi8(v, *t, gt);
                *t = hi;
            }
        }
        // The K-th largest: K times, take the largest head of the lanes' columns and move that
        // column up. Equal heads move up together, and then the count in `finish` declines.
        let mut kth = i64::MIN;
        for _ in 0..K {
            let best = max_all(top[0]);
            kth = _mm256_extract_epi64::<0>(best);
            let taken = _mm256_cmpeq_epi64(top[0], best);
            for j in 0..K {
                let below = if j + 1 < K { top[j + 1] } else { _mm256_set1_epi64x(i64::MIN) };
                top[j] = _mm256_blendv_epi8(top[j], below, taken);
            }
        }
        // The keys at least that large (> kth - 1): a bit each.
        let Some(below) = kth.checked_sub(1) else { return false };
        let below = _mm256_set1_epi64x(below);
        let at_least = |q| _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(quad(keys, q), below))) as u64;
        let (mut low, mut high) = (0, 0);
        for q in 0..quads.min(16) {
            low |= at_least(q) << (q * LANES);
        }
        for q in 16..quads {
            high |= at_least(q) << ((q - 16) * LANES);
        }
        let bits = [low, high];
        super::finish::<K>(keys, bits, picked)
    }
}

/// The bits a `fill` of [`top_k`] may return for `scores`: bit `i` set when `scores[i]` is at
/// least `threshold`, every bit for `None` (at most [`BLOCK`] scores).
#[inline(always)]
pub fn bits_at_least<S: PartialOrd>(scores: &[S], threshold: Option<&S>) -> u32 {
    debug_assert!(scores.len() <= 32, "one bit per score");
    match threshold {
        None => u32::MAX.checked_shr(32 - scores.len() as u32).unwrap_or(0),
        Some(t) => scores.iter().enumerate().fold(0, |bits, (i, s)| bits | u32::from(s >= t) << i),
    }
}

/// Offers `c` to `buf`, the best `filled` candidates so far, best first (`buf.len()` is k):
/// while filling every candidate gets in, then only one that beats the k-th best, which it
/// replaces. Returns whether `c` got in.
#[inline(always)]
pub fn offer<S: Copy>(
    buf: &mut [Candidate<S>],
    filled: &mut usize,
    c: Candidate<S>,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
) -> bool {
    let k = buf.len();
    let mut at = if *filled < k {
        *filled += 1;
        *filled - 1
    } else if better(&c, &buf[k - 1]) == Ordering::Greater {
        k - 1
    } else {
        return false;
    };
    while at > 0 && better(&c, &buf[at - 1]) == Ordering::Greater {
        buf[at] = buf[at - 1];
        at -= 1;
    }
    buf[at] = c;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(scores: &[u64], k: usize) -> Vec<usize> {
        let mut out = Vec::new();
        top_k(
            scores.len(),
            k,
            |start, out: &mut [u64], threshold: Option<&u64>| {
                out.copy_from_slice(&scores[start..start + out.len()]);
                bits_at_least(out, threshold)
            },
            |a, b| a.score.cmp(&b.score).then(b.index.cmp(&a.index)),
            |i| out.push(i),
        );
        out
    }

    fn by_sorting(scores: &[u64], k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].cmp(&scores[a]).then(a.cmp(&b)));
        idx.truncate(k);
        idx
    }

    #[test]
    fn matches_a_full_sort_for_every_k() {
        // More than a block, with ties.
        let scores: Vec<u64> = (0..150u64).map(|i| super::super::hash::mix(i) % 40).collect();
        for k in 0..=160 {
            // Crosses INLINE, so both paths are checked.
            assert_eq!(pick(&scores, k), by_sorting(&scores, k), "k={k}");
        }
    }

    #[test]
    fn small_selection_picks_what_a_sort_does_or_declines() {
        // The portable code on the keys as they are and padded to a multiple of 4 with
        // i64::MIN (as the ranking calls it), and the AVX2 code, padded, where the CPU has it.
        type Select = fn(&[i64], usize, &mut [u32; SMALL_K]) -> bool;
        let mut ways: Vec<(&str, bool, Select)> =
            vec![("portable", false, top_k_small), ("portable", true, top_k_small)];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected on this CPU.
            ways.push(("avx2", true, |keys, k, picked| unsafe { avx2::top_k_small(keys, k, picked) }));
        }
        for (name, pad, select) in ways {
            // Small ranges, so that ties come up often, and i64::MIN (the lanes' start) too.
            let (mut declined, mut picked_some) = (0, 0);
            for seed in 0..4000u64 {
                let n = 1 + (seed % SMALL_N as u64) as usize;
                let k = 1 + (seed / 7 % SMALL_K as u64) as usize;
                if k > n {
                    continue;
                }
                let range = [3, 50, 1 << 20, u64::MAX][(seed / 3 % 4) as usize];
                let mut keys: Vec<i64> = (0..n as u64)
                    .map(|i| {
                        let r = super::super::hash::mix(seed << 16 ^ i) % range;
                        if r == 0 {
                            i64::MIN
                        } else {
                            (r as i64).wrapping_sub((range / 2) as i64)
                        }
                    })
                    .collect();
                if pad {
                    keys.resize(n.next_multiple_of(4), i64::MIN);
                }
                // Padding counts as keys: a tie with it may decline, never pick a pad.
                let mut sorted = keys.clone();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                let tie = sorted[..(k + 1).min(keys.len())].windows(2).any(|w| w[0] == w[1]);
                let mut picked = [0u32; SMALL_K];
                if !select(&keys, k, &mut picked) {
                    assert!(tie, "{name}: declined without a tie: {keys:?}, k {k}");
                    declined += 1;
                    continue;
                }
                assert!(!tie, "{name}: picked despite a tie: {keys:?}, k {k}");
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| keys[b].cmp(&keys[a]).then(a.cmp(&b)));
                let got: Vec<usize> = picked[..k].iter().map(|&i| i as usize).collect();
                assert_eq!(got, order[..k], "{name}: keys {keys:?}, k {k}");
                picked_some += 1;
            }
            assert!(declined > 100 && picked_some > 1000, "{name}: declined {declined}, picked {picked_some}");
        }
    }

    #[test]
    fn empty_and_zero() {
        assert!(pick(&[], 3).is_empty());
        assert!(pick(&[1, 2], 0).is_empty());
    }
}
