//! Top-k selection without sorting all candidates.
//!
//! Scores are computed a block at a time (so the unweighted scorer can use SIMD), then scanned.
//! For `k <= INLINE` the best candidates live in a sorted array on the stack. Once it is full,
//! almost every candidate loses against the current k-th best in one comparison (only about
//! `k * ln(n / k)` of `n` candidates ever get in), so the scan costs little more than scoring.
//! Larger `k` score every candidate into a vector, partition around the k-th best
//! (`select_nth_unstable_by`, linear) and sort only those k: O(n + k log k).

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
/// into `out` and returns whether any of them may rank before a candidate of score `threshold`:
/// false only if every score is below it (true is always allowed, and `None` asks for no
/// skipping). `better(a, b)` is a total order in which `Ordering::Greater` means `a` ranks
/// before `b`, scores first, so a block whose scores are all below the k-th best's cannot
/// change the answer.
///
/// Always inlined: the caller may be compiled for a SIMD level (see
/// [`super::hash::top_k_unweighted`]), and only what is inlined into it is compiled for it.
#[inline(always)]
pub fn top_k<S: Copy + Default>(
    n: usize,
    k: usize,
    fill: impl Fn(usize, &mut [S], Option<&S>) -> bool,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
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
/// Once the buffer is full, each candidate is compared with a copy of the k-th best held in
/// registers, and the buffer is touched only by the rare candidate that gets in: with the
/// comparison against `buf[k - 1]` in memory (which every insertion may change) the loop spilled
/// and reloaded its state, ~14 instructions a candidate instead of ~5.
#[inline(always)]
fn scan<S: Copy + Default, const N: usize>(
    n: usize,
    k: usize,
    fill: impl Fn(usize, &mut [S], Option<&S>) -> bool,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
    let mut buf = [Candidate::<S>::default(); N];
    let buf = &mut buf[..k];
    let mut block = [S::default(); BLOCK];
    let mut filled = 0;
    for start in (0..n).step_by(BLOCK) {
        let scores = &mut block[..BLOCK.min(n - start)];
        // Once the buffer is full, a block whose scores are all below the k-th best's cannot
        // change the answer (an equal score can, by the tie-break). The scorer decides that
        // as it scores, without a horizontal maximum per block (a fifth of the time at 10 000
        // nodes when it returned one).
        let threshold = (filled == k).then(|| buf[k - 1].score);
        if !fill(start, scores, threshold.as_ref()) {
            continue;
        }
        let candidate = |j: usize| Candidate { score: scores[j], index: (start + j) as u32 };
        // Filling: every candidate gets in.
        let mut j = 0;
        while filled < k && j < scores.len() {
            offer(buf, &mut filled, candidate(j), &better);
            j += 1;
        }
        if j == scores.len() {
            continue;
        }
        let mut worst = buf[k - 1];
        let mut rest = &scores[j..];
        let mut at = start + j;
        // Skips to the next candidate that beats the k-th best: a load and a compare each.
        while let Some(skip) = rest
            .iter()
            .enumerate()
            .position(|(o, &score)| better(&Candidate { score, index: (at + o) as u32 }, &worst) == Ordering::Greater)
        {
            let c = Candidate { score: rest[skip], index: (at + skip) as u32 };
            offer(buf, &mut filled, c, &better);
            worst = buf[k - 1];
            rest = &rest[skip + 1..];
            at += skip + 1;
        }
    }
    buf[..filled].iter().for_each(|c| emit(c.index as usize));
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
                threshold.is_none_or(|t| out.iter().any(|s| s >= t))
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
    fn empty_and_zero() {
        assert!(pick(&[], 3).is_empty());
        assert!(pick(&[1, 2], 0).is_empty());
    }
}
