//! Top-k selection without sorting all candidates.
//!
//! For `k <= INLINE` the best candidates live in a sorted array on the stack. Once it is full,
//! almost every candidate loses against the current k-th best in one comparison (only about
//! `k * ln(n / k)` of `n` candidates ever get in), so the scan costs little more than scoring.
//! Larger `k` score every candidate into a vector, partition around the k-th best
//! (`select_nth_unstable_by`, linear) and sort only those k: O(n + k log k).

use std::cmp::Ordering;

/// Largest `k` served from the stack buffer, without allocating.
pub const INLINE: usize = 32;

/// A scored candidate: `score` orders it, `index` names the node.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Candidate<S> {
    pub score: S,
    pub index: u32,
}

/// Calls `emit` with the indexes of the `k` best of `n` candidates, best first.
///
/// `score(i)` gives candidate `i`'s score and `better(a, b)` is a total order in which
/// `Ordering::Greater` means `a` ranks before `b`.
#[inline]
pub fn top_k<S: Copy + Default>(
    n: usize,
    k: usize,
    score: impl Fn(usize) -> S,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
    let k = k.min(n);
    if k == 0 {
        return;
    }
    let at = |i: usize| Candidate { score: score(i), index: i as u32 };
    if k > INLINE {
        let mut all: Vec<Candidate<S>> = (0..n).map(at).collect();
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
        ..=4 => scan::<S, 4>(n, k, at, better, emit),
        ..=8 => scan::<S, 8>(n, k, at, better, emit),
        _ => scan::<S, INLINE>(n, k, at, better, emit),
    }
}

/// The stack-buffer selection for `k <= N`.
#[inline(always)]
fn scan<S: Copy + Default, const N: usize>(
    n: usize,
    k: usize,
    at: impl Fn(usize) -> Candidate<S>,
    better: impl Fn(&Candidate<S>, &Candidate<S>) -> Ordering,
    mut emit: impl FnMut(usize),
) {
    let mut buf = [Candidate::<S>::default(); N];
    let buf = &mut buf[..k];
    // Fill with the first k, kept sorted best first.
    for i in 0..k {
        let c = at(i);
        let mut j = i;
        while j > 0 && better(&c, &buf[j - 1]) == Ordering::Greater {
            buf[j] = buf[j - 1];
            j -= 1;
        }
        buf[j] = c;
    }
    // Scan the rest against a copy of the current k-th best.
    let mut worst = buf[k - 1];
    for i in k..n {
        let c = at(i);
        if better(&c, &worst) != Ordering::Greater {
            continue;
        }
        let mut j = k - 1;
        while j > 0 && better(&c, &buf[j - 1]) == Ordering::Greater {
            buf[j] = buf[j - 1];
            j -= 1;
        }
        buf[j] = c;
        worst = buf[k - 1];
    }
    buf.iter().for_each(|c| emit(c.index as usize));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(scores: &[u64], k: usize) -> Vec<usize> {
        let mut out = Vec::new();
        top_k(
            scores.len(),
            k,
            |i| scores[i],
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
        let scores: Vec<u64> = (0..50u64).map(|i| super::super::hash::mix(i) % 20).collect();
        for k in 0..=60 {
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
