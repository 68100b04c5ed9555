//! Top-k of a few candidates (the usual lookup: tens of nodes, top 1 to 4) without a
//! data-dependent branch per candidate.
//!
//! The block scan in [`crate::topk`] offers each of the first block's candidates through a sorted
//! insertion, and most of those branches mispredict when scores are random. Here a vectorized
//! compare-exchange network keeps each lane's best instead, which costs less (the figures are in
//! `benches/README.md`). The portable code is the reference for the AVX2 code, and the tests
//! compare the two on every CPU that has AVX2.

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
/// largest key, and a second pass finds the keys at least that large. Takes at most [`SMALL_N`]
/// keys and `1 <= k <= SMALL_K`.
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

// The AVX2 code reads keys four at a time, and callers pad to a multiple of 4 up to SMALL_N.
const _: () = assert!(SMALL_N.is_multiple_of(LANES) && SMALL_N <= 128, "two 64-bit masks of whole quads");

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
/// and scalar loads of the portable code.
///
/// Every function is safe and `#[target_feature(enable = "avx2")]`: inside them the intrinsics
/// are safe to call, and a caller without AVX2 enabled needs `unsafe` and a detected CPU.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, SMALL_K, SMALL_N};

    /// [`super::top_k_small`] for `keys.len()` a multiple of 4 (pad with `i64::MIN`).
    ///
    /// # Safety
    /// Callers compiled without AVX2 call it in `unsafe`: the CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub fn top_k_small(keys: &[i64], k: usize, picked: &mut [u32; SMALL_K]) -> bool {
        let (quads, rest) = keys.as_chunks::<LANES>();
        debug_assert!(keys.len() <= SMALL_N && rest.is_empty() && k <= keys.len());
        match k {
            1 => by_lanes::<1>(keys, quads, picked),
            2 => by_lanes::<2>(keys, quads, picked),
            3 => by_lanes::<3>(keys, quads, picked),
            4 => by_lanes::<4>(keys, quads, picked),
            _ => false,
        }
    }

    /// The largest of four lanes, in every lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn max_all(v: __m256i) -> __m256i {
        let v = max(v, _mm256_permute4x64_epi64::<0b01_00_11_10>(v));
        max(v, _mm256_permute4x64_epi64::<0b10_11_00_01>(v))
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn max(a: __m256i, b: __m256i) -> __m256i {
        _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(b, a))
    }

    /// Four keys in a register.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load(quad: &[i64; LANES]) -> __m256i {
        // SAFETY: `quad` is 32 readable bytes, and the load has no alignment requirement.
        unsafe { _mm256_loadu_si256(quad.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn by_lanes<const K: usize>(keys: &[i64], quads: &[[i64; LANES]], picked: &mut [u32; SMALL_K]) -> bool {
        // top[j]: lane by lane, the (j+1)-th largest key so far.
        let mut top = [_mm256_set1_epi64x(i64::MIN); K];
        for quad in quads {
            let mut v = load(quad);
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
        // The keys at least that large (> kth - 1): a bit each, quads 0..16 in the low mask.
        let Some(below) = kth.checked_sub(1) else { return false };
        let below = _mm256_set1_epi64x(below);
        let at_least = |quad| _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(load(quad), below))) as u64;
        // Two loops rather than one with a branch on `q`, which the compiler keeps inside the
        // loop (the ranking benches at 100 nodes showed it).
        let (first, second) = quads.split_at(quads.len().min(16));
        let (mut low, mut high) = (0u64, 0u64);
        for (q, quad) in first.iter().enumerate() {
            low |= at_least(quad) << (q * LANES);
        }
        for (q, quad) in second.iter().enumerate() {
            high |= at_least(quad) << (q * LANES);
        }
        super::finish::<K>(keys, [low, high], picked)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
        } else {
            crate::say_not_tested(
                "small_selection_picks_what_a_sort_does_or_declines",
                "this CPU has no AVX2, so the AVX2 selection was not compared",
            );
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
                        let r = crate::hash::mix(seed << 16 ^ i) % range;
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
}
