//! Top-k selection without sorting all candidates.
//!
//! For `k <= INLINE` the best candidates live in a sorted array on the stack (insertion into it
//! costs nothing for the vast majority of candidates, which lose against the current k-th best
//! with a single comparison). Larger `k` use a binary heap of size `k`: O(N log k).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Largest `k` served from the stack buffer.
pub const INLINE: usize = 8;

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
    if k <= INLINE {
        let mut buf = [Candidate::<S>::default(); INLINE];
        let mut len = 0;
        for i in 0..n {
            let c = Candidate {
                score: score(i),
                index: i as u32,
            };
            let mut j = if len < k {
                len += 1;
                len - 1
            } else if better(&c, &buf[k - 1]) == Ordering::Greater {
                k - 1
            } else {
                continue;
            };
            while j > 0 && better(&c, &buf[j - 1]) == Ordering::Greater {
                buf[j] = buf[j - 1];
                j -= 1;
            }
            buf[j] = c;
        }
        for c in &buf[..len] {
            emit(c.index as usize);
        }
        return;
    }

    // Min-heap of the k best so far: the root is the worst of them.
    struct Worst<'a, S, F>(Candidate<S>, &'a F);
    impl<S, F: Fn(&Candidate<S>, &Candidate<S>) -> Ordering> PartialEq for Worst<'_, S, F> {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other) == Ordering::Equal
        }
    }
    impl<S, F: Fn(&Candidate<S>, &Candidate<S>) -> Ordering> Eq for Worst<'_, S, F> {}
    impl<S, F: Fn(&Candidate<S>, &Candidate<S>) -> Ordering> PartialOrd for Worst<'_, S, F> {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl<S, F: Fn(&Candidate<S>, &Candidate<S>) -> Ordering> Ord for Worst<'_, S, F> {
        fn cmp(&self, other: &Self) -> Ordering {
            (self.1)(&other.0, &self.0)
        }
    }

    let mut heap = BinaryHeap::with_capacity(k);
    for i in 0..n {
        let c = Candidate {
            score: score(i),
            index: i as u32,
        };
        if heap.len() < k {
            heap.push(Worst(c, &better));
        } else if let Some(mut worst) = heap.peek_mut() {
            if better(&c, &worst.0) == Ordering::Greater {
                *worst = Worst(c, &better);
            }
        }
    }
    // Ascending in `Worst` order is best first.
    for w in heap.into_sorted_vec() {
        emit(w.0.index as usize);
    }
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
        let scores: Vec<u64> = (0..50u64)
            .map(|i| super::super::hash::mix(i) % 20)
            .collect();
        for k in 0..=60 {
            assert_eq!(pick(&scores, k), by_sorting(&scores, k), "k={k}");
        }
    }

    #[test]
    fn empty_and_zero() {
        assert!(pick(&[], 3).is_empty());
        assert!(pick(&[1, 2], 0).is_empty());
    }
}
