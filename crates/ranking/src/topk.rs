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
//! [`crate::small`] instead.

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
/// `skip(start, end, threshold)`, asked before each whole block from `start` once the k best
/// so far are known, returns how many of the whole blocks from `start` (to `end`) hold no
/// candidate of score at least `threshold`: those are passed over without `fill`, and `0` is
/// always allowed (the AVX-512 build answers it in one tight loop, [`super::hash::avx512`]).
///
/// Always inlined: the caller may be compiled for a SIMD level (see
/// [`super::hash::top_k_unweighted`]), and only what is inlined into it is compiled for it.
#[inline(always)]
pub fn top_k<S: Copy + Default>(
    n: usize,
    k: usize,
    fill: impl Fn(usize, &mut [S], Option<&S>) -> u32,
    skip: impl Fn(usize, usize, &S) -> usize,
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
        0..=4 => scan::<S, 4>(n, k, fill, skip, better, emit),
        5..=8 => scan::<S, 8>(n, k, fill, skip, better, emit),
        _ => scan::<S, INLINE>(n, k, fill, skip, better, emit),
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
    skip: impl Fn(usize, usize, &S) -> usize,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
    let mut buf = [Candidate::<S>::default(); N];
    let buf = &mut buf[..k];
    let mut block = [S::default(); BLOCK];
    let mut filled = 0;
    walk_blocks(
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
            (filled == k).then(|| buf[k - 1].score)
        },
        skip,
    );
    buf[..filled].iter().for_each(|c| emit(c.index as usize));
}

/// Calls `visit(start, len)` for each block of [`BLOCK`] of `n` candidates: the whole blocks,
/// then the partial one. Once `visit` returns a threshold (the k best so far are known),
/// `skip(start, end, &threshold)` is asked first how many whole blocks from `start` (before
/// `end`) hold no candidate within it, and those are passed over (0 is always allowed). Always
/// inlined, and so is `visit` where the caller marks its closure `#[inline(always)]`: with the
/// length a constant in the first call, the scoring loop of a whole block compiles to
/// straight-line code without remainder loops. Both scans walk their blocks with it, this
/// module's and the weighted one.
#[inline(always)]
pub fn walk_blocks<T>(
    n: usize,
    mut visit: impl FnMut(usize, usize) -> Option<T>,
    skip: impl Fn(usize, usize, &T) -> usize,
) {
    let whole = n - n % BLOCK;
    let mut at = 0;
    let mut threshold = None;
    while at < whole {
        if let Some(t) = &threshold {
            let passed = skip(at, whole, t);
            debug_assert!(passed <= (whole - at) / BLOCK, "skip passed the end");
            at += BLOCK * passed;
            if at == whole {
                break;
            }
        }
        threshold = visit(at, BLOCK);
        at += BLOCK;
    }
    if whole < n {
        visit(whole, n - whole);
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
        pick_skipping(scores, k, false)
    }

    /// With `skipping`, `skip` passes over every whole block without a score at least the
    /// threshold (as the AVX-512 build does); without, over none.
    fn pick_skipping(scores: &[u64], k: usize, skipping: bool) -> Vec<usize> {
        let mut out = Vec::new();
        top_k(
            scores.len(),
            k,
            |start, out: &mut [u64], threshold: Option<&u64>| {
                out.copy_from_slice(&scores[start..start + out.len()]);
                bits_at_least(out, threshold)
            },
            |start, end, threshold| match skipping {
                true => scores[start..end].chunks(BLOCK).take_while(|b| b.iter().all(|s| s < threshold)).count(),
                false => 0,
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
    fn skipping_blocks_without_a_hit_changes_nothing() {
        // Several whole blocks and a partial one, with ties, and with the best at the end.
        for n in [31, 32, 33, 64, 200, 1000] {
            let mut scores: Vec<u64> = (0..n as u64).map(|i| super::super::hash::mix(i) % 500).collect();
            for k in [1, 2, 3, 4, 5, 8, 9, 32] {
                assert_eq!(pick_skipping(&scores, k, true), by_sorting(&scores, k), "n={n} k={k}");
            }
            scores.iter_mut().rev().take(40).for_each(|s| *s += 1000);
            for k in [1, 3, 8] {
                assert_eq!(pick_skipping(&scores, k, true), by_sorting(&scores, k), "n={n} k={k}, best last");
            }
        }
    }

    #[test]
    fn empty_and_zero() {
        assert!(pick(&[], 3).is_empty());
        assert!(pick(&[1, 2], 0).is_empty());
    }
}
