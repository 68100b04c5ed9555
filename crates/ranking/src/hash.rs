//! The hash behind every ranking decision.
//!
//! A node's score for a key is `mix(key_hash ^ node_hash)`: `key_hash` is computed once per
//! request, `node_hash` once per node when the table is built, and [`mix`] is murmur3's 64-bit
//! finalizer, a full-avalanche permutation, so the per-node work is one XOR, two multiplications
//! and three shifts, and every output bit depends on every bit of both hashes.
//!
//! The string hashes depend on the table's [`Algorithm`]. Algorithm 1 takes them from ahash with
//! fixed seeds; ahash does not promise a stable output across versions or CPU features, so the
//! version is pinned exactly in `Cargo.toml`, and [`super::self_check`] recomputes known answers
//! at startup. Algorithm 2 takes them from XXH64, which has a published specification and
//! implementations in every language, so a client can rank exactly as the server does
//! (`docs/ranking.md` specifies it).

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hasher};
use std::mem::MaybeUninit;

use crate::small::{top_k_small, SMALL_K, SMALL_N};
use crate::topk::{bits_at_least, top_k, Candidate};

/// How keys and node identities become 64-bit hashes; everything after that (mixing, weights,
/// ties, selection) is the same for every algorithm. A new algorithm, never a change to an old
/// one, is how answers may change: its number is part of every fingerprint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// ahash 0.8.12 with fixed seeds: the answers keyrouter has always given (x86-64 and
    /// aarch64 builds without target-cpu flags only; the self-check refuses others).
    #[default]
    V1,
    /// XXH64 with fixed seeds: specified, portable, reproducible in any language.
    V2,
}

/// XXH64 seed of a key's hash in algorithm 2 ("keyroute").
pub const V2_KEY_SEED: u64 = 0x6b65_7972_6f75_7465;
/// XXH64 seed of a node identity's (and a service name's) hash in algorithm 2 ("r rendez").
pub const V2_ID_SEED: u64 = 0x7220_7265_6e64_657a;

impl Algorithm {
    /// Every algorithm, oldest first.
    pub const ALL: [Algorithm; 2] = [Algorithm::V1, Algorithm::V2];

    /// The number a services file names it by (`Algorithm = 2`).
    pub fn number(self) -> u32 {
        match self {
            Algorithm::V1 => 1,
            Algorithm::V2 => 2,
        }
    }

    /// The algorithm numbered `n`, if there is one.
    pub fn from_number(n: i64) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| i64::from(a.number()) == n)
    }

    /// The hash of a lookup's key.
    #[inline]
    pub fn hash_key(self, key: &str) -> u64 {
        match self {
            Algorithm::V1 => hash_str(key),
            Algorithm::V2 => xxhash_rust::xxh64::xxh64(key.as_bytes(), V2_KEY_SEED),
        }
    }

    /// The hash of a node's identity (its Id, or its address when it has none), and of the
    /// other strings fingerprints cover (addresses, service names).
    #[inline]
    pub fn hash_id(self, id: &str) -> u64 {
        match self {
            Algorithm::V1 => hash_str(id),
            Algorithm::V2 => xxhash_rust::xxh64::xxh64(id.as_bytes(), V2_ID_SEED),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// Fixed seeds of algorithm 1: the digits are arbitrary but may never change, since every key
/// would move (other seeds are another [`Algorithm`]).
const SEEDS: ahash::RandomState = ahash::RandomState::with_seeds(
    0x6b65_7972_6f75_7465, // "keyroute"
    0x7220_7265_6e64_657a, // "r rendez"
    0x766f_7573_2068_7277, // "vous hrw"
    0x0000_0000_0000_0001,
);

/// Hashes a string's bytes with the pinned, seeded ahash (algorithm 1).
#[inline]
pub fn hash_str(s: &str) -> u64 {
    let mut h = SEEDS.build_hasher();
    h.write(s.as_bytes());
    h.finish()
}

/// fmix64's multipliers.
const MIX_1: u64 = 0xff51_afd7_ed55_8ccd;
const MIX_2: u64 = 0xc4ce_b9fe_1a85_ec53;

/// murmur3's fmix64: a bijective mixer with full avalanche.
#[inline(always)]
pub fn mix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(MIX_1);
    k ^= k >> 33;
    k = k.wrapping_mul(MIX_2);
    k ^= k >> 33;
    k
}

/// [`mix`]'s first step, `h ^ (h >> 33)`: it distributes over XOR, so `premix(key_hash) ^
/// premix(node_hash)` is the first step of the node's [`score`], and a table can store each node
/// hash premixed for the AVX-512 skip ([`avx512::skip_blocks`]), which then saves two of its
/// eight operations a vector.
#[inline(always)]
pub fn premix(h: u64) -> u64 {
    h ^ (h >> 33)
}

/// The score of a node for a key, from their precomputed hashes.
#[inline(always)]
pub fn score(key_hash: u64, node_hash: u64) -> u64 {
    mix(key_hash ^ node_hash)
}

/// A SIMD level the unweighted scoring loop is compiled for. The same integer arithmetic at
/// every level, so the same bits; on x86-64 CPUs with AVX-512 (or AVX2) the loop runs
/// vectorized, chosen at run time so that builds stay portable (no target-cpu flags: they
/// would also change ahash's output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    Portable,
    Avx2,
    Avx512,
}

impl Simd {
    /// The widest level this CPU runs.
    #[inline]
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx512() {
                return Simd::Avx512;
            }
            if has_avx2() {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }

    /// Every level this CPU runs: the tests check each against the portable one, not only
    /// the one [`Simd::detect`] picks.
    pub fn available() -> Vec<Simd> {
        [Simd::Portable, Simd::Avx2, Simd::Avx512].into_iter().filter(|s| s.runs_here()).collect()
    }

    /// Whether this CPU has every feature the level is compiled for.
    #[inline]
    fn runs_here(self) -> bool {
        match self {
            Simd::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Whether this CPU has `avx512f` and `avx512dq`, which [`Simd::Avx512`] is compiled for.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq")
}

/// Whether this CPU has `avx2`, which [`Simd::Avx2`] is compiled for.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Runs `$body` compiled for `$simd` (a [`Simd`]), falling back to the portable build when the
/// CPU lacks the level's features: `$body` is the body of an `#[inline(always)]` function of
/// `$args`, which each level's `#[target_feature]` function calls, so that everything it
/// inlines (the scoring loop, the selection) is compiled for that level.
macro_rules! simd_dispatch {
    (
        $simd:expr,
        fn $name:ident $(<$($g:ident: $bound:path),* $(,)?>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block $(,)?
    ) => {{
        #[inline(always)]
        fn $name $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? $body
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512dq")]
        fn avx512 $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
            $name($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn avx2 $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
            $name($($arg),*)
        }
        match $simd {
            // SAFETY: compiled with exactly `avx512f` and `avx512dq`, detected on this CPU.
            #[cfg(target_arch = "x86_64")]
            $crate::hash::Simd::Avx512 if $crate::hash::has_avx512() => unsafe { avx512($($arg),*) },
            // SAFETY: compiled with exactly `avx2`, detected on this CPU.
            #[cfg(target_arch = "x86_64")]
            $crate::hash::Simd::Avx2 if $crate::hash::has_avx2() => unsafe { avx2($($arg),*) },
            _ => $name($($arg),*),
        }
    }};
}

/// For [`super::weighted`], which dispatches its own scan the same way.
pub(crate) use simd_dispatch;

/// Calls `emit` with the indexes of the `k` nodes of `hashes` ranked highest for `key_hash`
/// (unweighted: by [`score`], ties by `better`), best first.
///
/// Up to [`SMALL_N`] nodes and top [`SMALL_K`], the selection is [`top_k_small`] (the
/// block scan when two scores tie). Scoring and selection are compiled together for `simd`:
/// with the scoring loop a function of its own, each block of [`crate::topk::BLOCK`] nodes paid
/// a call, its feature checks and its remainder loops.
///
/// `premixed` is empty, or `hashes` through [`premix`] (which the AVX-512 build then reads in
/// the blocks it passes over).
#[inline]
pub fn top_k_unweighted<B, E>(simd: Simd, key_hash: u64, hashes: &[u64], premixed: &[u64], k: usize, better: B, emit: E)
where
    B: Fn(&Candidate<u64>, &Candidate<u64>) -> Ordering,
    E: FnMut(usize),
{
    simd_dispatch! {
        simd,
        fn rank<B: Fn(&Candidate<u64>, &Candidate<u64>) -> Ordering, E: FnMut(usize)>(
            simd: Simd,
            key_hash: u64,
            hashes: &[u64],
            premixed: &[u64],
            k: usize,
            better: B,
            emit: E,
        ) {
            debug_assert!(premixed.is_empty() || premixed.len() == hashes.len());
            let mut emit = emit;
            let n = hashes.len();
            if n <= SMALL_N && k <= SMALL_K && k <= n {
                let mut buf = [MaybeUninit::<i64>::uninit(); SMALL_N];
                let keys = small_keys(key_hash, hashes, &[], &mut buf);
                let mut picked = [0u32; SMALL_K];
                if select_small(simd, keys, k, &mut picked) {
                    picked[..k].iter().for_each(|&i| emit(i as usize));
                    return;
                }
            }
            // The AVX-512 build scores whole blocks in intrinsics (`avx512`).
            #[cfg(target_arch = "x86_64")]
            let wide = simd == Simd::Avx512 && has_avx512();
            top_k(
                hashes.len(),
                k,
                // Inlined always: a call would be compiled without the level's features.
                #[inline(always)]
                |start, out: &mut [u64], threshold: Option<&u64>| {
                    let hashes = &hashes[start..start + out.len()];
                    #[cfg(target_arch = "x86_64")]
                    if wide {
                        if let (Ok(h), Ok(o)) = (hashes.try_into(), (&mut *out).try_into()) {
                            // SAFETY: `wide`: the CPU has avx512f and avx512dq.
                            return unsafe { avx512::fill_block(key_hash, h, o, threshold.copied()) };
                        }
                    }
                    fill_scores_portable(key_hash, hashes, out, threshold.copied())
                },
                #[inline(always)]
                |start, end, threshold: &u64| {
                    #[cfg(target_arch = "x86_64")]
                    if wide {
                        // SAFETY: `wide`: the CPU has avx512f and avx512dq.
                        return unsafe {
                            match premixed.is_empty() {
                                true => avx512::skip_blocks::<false>(key_hash, &hashes[start..end], *threshold),
                                false => avx512::skip_blocks::<true>(
                                    premix(key_hash),
                                    &premixed[start..end],
                                    *threshold,
                                ),
                            }
                        };
                    }
                    // AVX2 and portable builds score every block, as before (not tried with a
                    // skip: AVX2 has no 64-bit multiplication and no unsigned compare).
                    let _ = (start, end, threshold);
                    0
                },
                better,
                emit,
            )
        }
    }
}

/// The small-input selection's keys: each node's score for `key_hash` as a signed key with the
/// scores' order (AVX2 compares only signed 64-bit lanes), the nodes at `masked` set to the
/// smallest key, padded with it to a multiple of 4 (which the selection takes). Inlined always,
/// so that the scoring loop is compiled for the caller's SIMD level.
#[inline(always)]
fn small_keys<'b>(
    key_hash: u64,
    hashes: &[u64],
    masked: &[u32],
    buf: &'b mut [MaybeUninit<i64>; SMALL_N],
) -> &'b [i64] {
    let n = hashes.len();
    debug_assert!(n <= SMALL_N);
    // Not zeroed first: a memset of the whole buffer was a twentieth of a 100-node lookup.
    for (s, &h) in buf.iter_mut().zip(hashes) {
        s.write((score(key_hash, h) ^ SIGN) as i64);
    }
    let padded = n.next_multiple_of(4);
    for s in &mut buf[n..padded] {
        s.write(i64::MIN);
    }
    for &i in masked {
        if let Some(s) = buf[..n].get_mut(i as usize) {
            s.write(i64::MIN);
        }
    }
    // SAFETY: the loops above wrote the first `padded` (`padded <= SMALL_N`, a multiple of 4),
    // and `MaybeUninit<i64>` has the layout of `i64`.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<i64>(), padded) }
}

/// [`top_k_unweighted`]'s small-input path with the nodes at `masked` (positions in `hashes`)
/// left out: their keys are set below every score before the selection, so an `exclude` entry
/// costs a store instead of a wider selection (`k + excluded`). Calls `emit` and returns true
/// when it applies (at most [`SMALL_N`] nodes, top [`SMALL_K`], no tie at the `k`-th place);
/// returns false, having emitted nothing, otherwise.
#[inline]
pub fn top_k_unweighted_masked(
    simd: Simd,
    key_hash: u64,
    hashes: &[u64],
    k: usize,
    masked: &[u32],
    emit: &mut dyn FnMut(usize),
) -> bool {
    simd_dispatch! {
        simd,
        fn rank(simd: Simd, key_hash: u64, hashes: &[u64], k: usize, masked: &[u32], emit: &mut dyn FnMut(usize)) -> bool {
            let n = hashes.len();
            if n > SMALL_N || k > SMALL_K || k + masked.len() > n {
                return false;
            }
            let mut buf = [MaybeUninit::<i64>::uninit(); SMALL_N];
            let keys = small_keys(key_hash, hashes, masked, &mut buf);
            let mut picked = [0u32; SMALL_K];
            // The k-th largest key is a node's (k <= n - masked): a masked key can be picked only
            // when a node's score ties with it, and then the selection declines.
            if !select_small(simd, keys, k, &mut picked) {
                return false;
            }
            picked[..k].iter().for_each(|&i| emit(i as usize));
            true
        }
    }
}

/// For each zone `z` of an unweighted service whose nodes are grouped by zone (zone `z`'s nodes
/// are `hashes[starts[z]..starts[z + 1]]`, at most [`SMALL_N`] in all), writes the position in
/// `hashes` of the node with the zone's highest score to `best[z]`. Returns false when some
/// zone's highest score is there twice (the caller breaks the tie by identity).
///
/// `spread=zone` on a small service: one scoring pass and a maximum per zone, compiled for
/// `simd` like [`top_k_unweighted`], where ranking each zone on its own paid the selection's
/// setup once per zone.
#[inline]
pub fn zone_maxima(simd: Simd, key_hash: u64, hashes: &[u64], starts: &[u32], best: &mut [u32]) -> bool {
    simd_dispatch! {
        simd,
        fn maxima(key_hash: u64, hashes: &[u64], starts: &[u32], best: &mut [u32]) -> bool {
            debug_assert!(hashes.len() <= SMALL_N && best.len() + 1 == starts.len());
            // Signed keys with the scores' order (AVX2 compares only signed 64-bit lanes), not
            // zeroed first (as in `top_k_unweighted`).
            let mut buf = [MaybeUninit::<i64>::uninit(); SMALL_N];
            for (s, &h) in buf.iter_mut().zip(hashes) {
                s.write((score(key_hash, h) ^ SIGN) as i64);
            }
            // SAFETY: the loop above wrote the first `hashes.len()` (at most `SMALL_N`), and
            // `MaybeUninit<i64>` has the layout of `i64`.
            let keys = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<i64>(), hashes.len()) };
            for (z, b) in best.iter_mut().enumerate() {
                let (start, end) = (starts[z] as usize, starts[z + 1] as usize);
                let zone = &keys[start..end];
                let max = zone.iter().copied().fold(i64::MIN, i64::max);
                let at = zone.iter().position(|&k| k == max).unwrap_or(0);
                if zone[at + 1..].contains(&max) {
                    return false;
                }
                *b = (start + at) as u32;
            }
            true
        }
    }
}

/// [`top_k_small`] for keys padded to a multiple of 4: in AVX2 intrinsics where the CPU has
/// AVX2 and `simd` is not [`Simd::Portable`] (which the tests use for the portable code).
#[inline(always)]
fn select_small(simd: Simd, keys: &[i64], k: usize, picked: &mut [u32; SMALL_K]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Portable && has_avx2() {
        // SAFETY: AVX2 was detected on this CPU.
        return unsafe { crate::small::avx2::top_k_small(keys, k, picked) };
    }
    let _ = simd;
    top_k_small(keys, k, picked)
}

/// The scoring loop without SIMD dispatch (also the reference the tests compare against).
#[inline(always)]
pub fn fill_scores_portable(key_hash: u64, hashes: &[u64], out: &mut [u64], threshold: Option<u64>) -> u32 {
    debug_assert!(out.len() <= 32, "one bit per score");
    // First only whether any score reaches the threshold, folded with an OR as the scores are
    // computed: it vectorizes with no chain between lanes, and at 10 000 nodes almost every
    // block stops here. (A maximum per block cost a horizontal reduction, a fifth of the time
    // there; a bit per score computed in the vector loop, a fifth more.)
    // `s >= threshold` as a signed comparison of sign-flipped values (AVX2 compares only signed
    // 64-bit lanes), and `>` against `threshold - 1` because `>` is the one it has (a threshold
    // of 0 lets every score through, like none); folded as a lane mask, which an OR keeps in a
    // vector register.
    let Some((threshold, below)) = threshold.and_then(|t| Some((t, t.checked_sub(1)?))) else {
        for (o, &h) in out.iter_mut().zip(hashes) {
            *o = score(key_hash, h);
        }
        return bits_at_least(out, None);
    };
    let below = (below ^ SIGN) as i64;
    let mut any = 0u64;
    for (o, &h) in out.iter_mut().zip(hashes) {
        let s = score(key_hash, h);
        *o = s;
        any |= if (s ^ SIGN) as i64 > below { u64::MAX } else { 0 };
    }
    if any == 0 {
        return 0;
    }
    bits_at_least(out, Some(&threshold))
}

const SIGN: u64 = 1 << 63;

/// The AVX-512 build's pass over the blocks that cannot change a lookup's answer.
///
/// At 10 000 nodes and top 3, about 20 of the 312 blocks hold a score at least the k-th best so
/// far; the rest need only the answer "none". The autovectorized [`fill_scores_portable`]
/// stores each block's 32 scores and folds an OR of sign-flipped signed comparisons (the form
/// AVX2 has) before it can say so, and the selection's per-block bookkeeping runs around every
/// block. Here one tight loop keeps the scores in registers, compares unsigned 64-bit lanes into
/// mask registers, and stops only at a block with a hit, which the selection then scores in
/// full ([`avx512::fill_block`]: the masks are the bits it returns, where the portable loop
/// compares the 32 stored scores again one by one). At 10 000 nodes a top-3 lookup took 0.77x
/// the time of the autovectorized scan, 0.65x with premixed hashes
/// (crates/ranking/benches/README.md).
#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use std::arch::x86_64::*;

    use crate::topk::BLOCK;

    /// Lanes of a vector.
    const LANES: usize = 8;

    /// [`super::fill_scores_portable`] for a whole block: the same scores and bits (`None` asks
    /// for every bit, as a threshold of 0 does), the scores stored only when a bit is set.
    ///
    /// # Safety
    /// Callers compiled without the features call it in `unsafe`: the CPU must have `avx512f`
    /// and `avx512dq` ([`super::has_avx512`]).
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    pub fn fill_block(key_hash: u64, hashes: &[u64; BLOCK], out: &mut [u64; BLOCK], threshold: Option<u64>) -> u32 {
        const { assert!(BLOCK == 4 * LANES, "four vectors a block, a byte of mask each") };
        let key = _mm512_set1_epi64(key_hash as i64);
        let threshold = _mm512_set1_epi64(threshold.unwrap_or(0) as i64);
        let (vectors, _) = hashes.as_chunks::<LANES>();
        let scores: [__m512i; 4] = std::array::from_fn(|i| {
            // SAFETY: `vectors[i]` is 64 readable bytes, and the load has no alignment requirement.
            let h = unsafe { _mm512_loadu_si512(vectors[i].as_ptr().cast()) };
            mix(_mm512_xor_si512(h, key))
        });
        let mut bits = 0u32;
        for (i, s) in scores.iter().enumerate() {
            bits |= u32::from(_mm512_cmpge_epu64_mask(*s, threshold)) << (i * LANES);
        }
        if bits != 0 {
            let (vectors, _) = out.as_chunks_mut::<LANES>();
            for (v, s) in vectors.iter_mut().zip(scores) {
                // SAFETY: `v` is 64 writable bytes, and the store has no alignment requirement.
                unsafe { _mm512_storeu_si512(v.as_mut_ptr().cast(), s) };
            }
        }
        bits
    }

    /// How many whole blocks at the start of `hashes` hold no node whose [`super::score`] for
    /// `key_hash` is at least `threshold` (all of them when none does). It may stop early, at a
    /// block without such a score, only when one of its scores has the top 33 bits of
    /// `threshold` (about 2^-33 a node): the caller scores the block it stops at in full.
    /// `PREMIXED`: `key_hash` and `hashes` went through [`super::premix`], mix's first step.
    ///
    /// # Safety
    /// Callers compiled without the features call it in `unsafe`: the CPU must have `avx512f`
    /// and `avx512dq` ([`super::has_avx512`]).
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    pub fn skip_blocks<const PREMIXED: bool>(key_hash: u64, hashes: &[u64], threshold: u64) -> usize {
        const { assert!(BLOCK.is_multiple_of(LANES), "whole vectors a block") };
        let key = _mm512_set1_epi64(key_hash as i64);
        // mix's last step, `s ^ (s >> 33)`, keeps the top 33 bits of `s`: a score at least
        // `threshold` comes from an `s` at least `threshold` with its low 31 bits cleared.
        // Comparing `s` so saves two of the ten operations a vector (the loop alone: 0.8x the
        // time), and premixed hashes two more (a top-3 lookup of 10 000 nodes: 0.85x).
        let threshold = _mm512_set1_epi64((threshold & !((1 << 31) - 1)) as i64);
        let (blocks, _) = hashes.as_chunks::<BLOCK>();
        for (b, block) in blocks.iter().enumerate() {
            let (vectors, _) = block.as_chunks::<LANES>();
            let mut any = 0u8;
            for v in vectors {
                // SAFETY: `v` is 64 readable bytes, and the load has no alignment requirement.
                let h = unsafe { _mm512_loadu_si512(v.as_ptr().cast()) };
                let x = _mm512_xor_si512(h, key);
                let s = if PREMIXED { mix_middle(x) } else { mix_but_last(x) };
                any |= _mm512_cmpge_epu64_mask(s, threshold);
            }
            if any != 0 {
                return b;
            }
        }
        blocks.len()
    }

    /// How many whole blocks at the start of `hashes` hold no node that a weighted scan with
    /// the limit `limit_2_52 / 2^52` would offer ([`crate::weighted`]): all of them when none.
    /// Its test, `(!s >> 12) / w <= limit_2_52` on each score `s`, is the scan's
    /// `((!s >> 12) + ½) 2^-52 / w <= limit` without the half step (the product rounds
    /// monotonically, and scaling by 2^52 is exact), so a node it passes over would have been
    /// passed over by the scan too: the answer does not change. `inv_weights` as `hashes`.
    ///
    /// # Safety
    /// Callers compiled without the features call it in `unsafe`: the CPU must have `avx512f`
    /// and `avx512dq` ([`super::has_avx512`]).
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    pub fn skip_blocks_weighted(key_hash: u64, hashes: &[u64], inv_weights: &[f64], limit_2_52: f64) -> usize {
        const { assert!(BLOCK.is_multiple_of(LANES), "whole vectors a block") };
        debug_assert_eq!(hashes.len(), inv_weights.len());
        let key = _mm512_set1_epi64(key_hash as i64);
        let ones = _mm512_set1_epi64(-1);
        let limit = _mm512_set1_pd(limit_2_52);
        let (blocks, _) = hashes.as_chunks::<BLOCK>();
        let (inverses, _) = inv_weights.as_chunks::<BLOCK>();
        for (b, (block, inverse)) in blocks.iter().zip(inverses).enumerate() {
            let (vectors, _) = block.as_chunks::<LANES>();
            let (inverse, _) = inverse.as_chunks::<LANES>();
            let mut any = 0u8;
            for (v, w) in vectors.iter().zip(inverse) {
                // SAFETY: `v` and `w` are 64 readable bytes each, and the loads have no alignment
                // requirement.
                let (h, inv) = unsafe { (_mm512_loadu_si512(v.as_ptr().cast()), _mm512_loadu_pd(w.as_ptr())) };
                let s = mix(_mm512_xor_si512(h, key));
                // `!s >> 12` is below 2^52: its conversion is exact.
                let t = _mm512_cvtepu64_pd(_mm512_srli_epi64::<12>(_mm512_xor_si512(s, ones)));
                any |= _mm512_cmp_pd_mask::<_CMP_LE_OQ>(_mm512_mul_pd(t, inv), limit);
            }
            if any != 0 {
                return b;
            }
        }
        blocks.len()
    }

    /// [`super::mix`] on eight lanes.
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    fn mix(k: __m512i) -> __m512i {
        let k = mix_but_last(k);
        _mm512_xor_si512(k, _mm512_srli_epi64::<33>(k))
    }

    /// [`mix`] without its last step (`k ^ (k >> 33)`).
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    fn mix_but_last(k: __m512i) -> __m512i {
        mix_middle(_mm512_xor_si512(k, _mm512_srli_epi64::<33>(k)))
    }

    /// [`mix`] without its first and last steps.
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    fn mix_middle(k: __m512i) -> __m512i {
        let k = _mm512_mullo_epi64(k, _mm512_set1_epi64(super::MIX_1 as i64));
        let k = _mm512_xor_si512(k, _mm512_srli_epi64::<33>(k));
        _mm512_mullo_epi64(k, _mm512_set1_epi64(super::MIX_2 as i64))
    }
}

/// Maps a 64-bit score to `u` uniform in the open interval (0, 1): the top 52 bits, offset by
/// half a step. `v + 0.5` with `v < 2^52` is exact in an f64, so neither 0 nor 1 can come out
/// (with 53 bits the top value would round to exactly 1, and `ln(1) = 0`).
#[inline(always)]
pub fn unit_interval(score: u64) -> f64 {
    const STEP: f64 = 1.0 / (1u64 << 52) as f64;
    ((score >> 12) as f64 + 0.5) * STEP
}

/// The smallest weight a node may have (see [`MAX_WEIGHT`]).
pub const MIN_WEIGHT: f64 = 1e-6;

/// The largest weight a node may have. Inside `MIN_WEIGHT..=MAX_WEIGHT` the share formula of
/// [`weighted_score`] holds numerically; outside it, it need not:
///
/// - `u` comes from [`unit_interval`], so `E = -ln(u)` lies in about `[1.1e-16, 36.7]` and a
///   score `w / E` in `[0.027 w, 9.0e15 w]`. Near `f64::MAX` the quotient overflows to `+inf`
///   for many keys (for `w = f64::MAX`, whenever `E < 1`: 63 % of them), infinities tie, and
///   the tie is broken by the raw hash instead of the weight: 2 : 1 came out as 1.58 : 1 in the
///   field, 1.55 : 1 in tests/integration/weight_range.rs. Near the smallest floats it would round into
///   the subnormals and lose precision. The range keeps every score inside `[2.7e-8, 9.0e21]`,
///   far from both.
/// - The finer limit is the ratio of two weights. A node `r` times lighter than another wins
///   when its `E` is below about `r` times the other's, and the grid of `u` resolves `E` near 0
///   only in steps of `2^-52 ≈ 2.2e-16`. A ratio of at most `MAX_WEIGHT / MIN_WEIGHT = 1e12`
///   keeps the smallest possible share (1e-12) within about 2e-4 (relative) of its true value;
///   at a ratio of 1e15 the error would be about 20 %, and it grows from there.
///
/// Weights are relative (only their ratios matter), so any sensible set of weights can be
/// scaled into the range.
pub const MAX_WEIGHT: f64 = 1e6;

/// Whether `w` is a weight the ranking accepts: finite, in `MIN_WEIGHT..=MAX_WEIGHT`.
#[inline]
pub fn weight_in_range(w: f64) -> bool {
    (MIN_WEIGHT..=MAX_WEIGHT).contains(&w)
}

/// Weighted rendezvous score: `-weight / ln(u)`. It is positive and finite for a weight in
/// [`MIN_WEIGHT`]`..=`[`MAX_WEIGHT`], and increasing in `u`, so equal weights keep the
/// unweighted order.
///
/// For one key, node i wins with probability `w_i / sum(w)`: with `E_i = -ln(u_i)`
/// exponentially distributed, the node with the largest `w_i / E_i` is the one with the
/// smallest `E_i / w_i`, an exponential of rate `w_i`, and the minimum of independent
/// exponentials is the one of rate `w_i` with probability `w_i / sum(w)`.
///
/// The logarithm is libm's, which gives the same bits on every platform.
#[inline(always)]
pub fn weighted_score(score: u64, weight: f64) -> f64 {
    -weight / libm::log(unit_interval(score))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`fill_scores_portable`] compiled for `simd` (the ranking inlines it into its own
    /// per-level function), so that each level's scores and bits are checked on their own.
    fn fill_scores(simd: Simd, key_hash: u64, hashes: &[u64], out: &mut [u64], threshold: Option<u64>) -> u32 {
        simd_dispatch! {
            simd,
            fn fill(key_hash: u64, hashes: &[u64], out: &mut [u64], threshold: Option<u64>) -> u32 {
                fill_scores_portable(key_hash, hashes, out, threshold)
            }
        }
    }

    #[test]
    fn unit_interval_is_open() {
        assert!(unit_interval(0) > 0.0);
        assert!(unit_interval(u64::MAX) < 1.0);
        assert!(unit_interval(u64::MAX) > unit_interval(u64::MAX - (1 << 12)));
    }

    #[test]
    fn weighted_score_is_monotonic_in_the_hash() {
        let mut last = 0.0;
        for s in [0u64, 1 << 12, 1 << 40, 1 << 63, u64::MAX] {
            let w = weighted_score(s, 1.0);
            assert!(w.is_finite() && w > last, "{s}: {w} after {last}");
            last = w;
        }
    }

    #[test]
    fn vectorized_scores_equal_the_portable_ones() {
        let hashes: Vec<u64> = (0..1000u64).map(|i| mix(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
        let levels = Simd::available();
        eprintln!("SIMD levels this CPU runs: {levels:?}");
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(levels.contains(&Simd::Avx2), std::is_x86_feature_detected!("avx2"));
            let avx512 = std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq");
            assert_eq!(levels.contains(&Simd::Avx512), avx512);
            if !avx512 {
                crate::say_not_tested(
                    "vectorized_scores_equal_the_portable_ones",
                    "this CPU lacks avx512f or avx512dq, so the AVX-512 scoring was not compared",
                );
            }
        }
        // The automatic choice too, so a level added to the dispatch but not to the list shows.
        for simd in levels.into_iter().chain([Simd::detect()]) {
            for key in ["", "ryans", "user:42", "ключ"] {
                let kh = hash_str(key);
                for len in [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 1000] {
                    // Scores and bits, a block of up to 32 at a time (as the selection asks).
                    let (mut fast, mut reference) = (vec![0; len], vec![0; len]);
                    for start in (0..len).step_by(32) {
                        let end = (start + 32).min(len);
                        let (h, f, r) = (&hashes[start..end], &mut fast[start..end], &mut reference[start..end]);
                        assert_eq!(fill_scores(simd, kh, h, f, None), u32::MAX >> (32 - h.len()), "{simd:?}");
                        fill_scores_portable(kh, h, r, None);
                        assert_eq!(f, r, "{simd:?}: key {key:?}, {len} nodes");
                        // The bits at and around the block's largest, smallest and middle scores.
                        let mut sorted = r.to_vec();
                        sorted.sort();
                        let (min, mid, max) = (sorted[0], sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
                        for threshold in [0, 1, min, min.saturating_add(1), mid, max, max.saturating_add(1), u64::MAX] {
                            let want =
                                r.iter().enumerate().filter(|(_, &s)| s >= threshold).fold(0, |m, (i, _)| m | 1 << i);
                            let got = fill_scores(simd, kh, h, f, Some(threshold));
                            assert_eq!(got, want, "{simd:?}: threshold {threshold}, block at {start} of {len}");
                        }
                    }
                    // The whole selection compiled for the level picks what a full sort does.
                    for k in [1, 2, 3, 4, 5, 10, 32, 33, 100] {
                        let mut picked = Vec::new();
                        let order =
                            |a: &Candidate<u64>, b: &Candidate<u64>| a.score.cmp(&b.score).then(b.index.cmp(&a.index));
                        top_k_unweighted(simd, kh, &hashes[..len], &[], k, order, |i| picked.push(i));
                        let mut sorted: Vec<usize> = (0..len).collect();
                        sorted.sort_by(|&a, &b| reference[b].cmp(&reference[a]).then(a.cmp(&b)));
                        sorted.truncate(k);
                        assert_eq!(picked, sorted, "{simd:?}: key {key:?}, {len} nodes, top {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn avx512_skip_passes_exactly_the_blocks_without_a_top_33_bit_hit() {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            use crate::topk::BLOCK;
            let hashes: Vec<u64> = (0..10_000u64).map(|i| mix(i ^ 0x5eed)).collect();
            let premixed: Vec<u64> = hashes.iter().map(|&h| premix(h)).collect();
            for key in ["", "ryans", "user:42"] {
                let kh = hash_str(key);
                let scores: Vec<u64> = hashes.iter().map(|&h| score(kh, h)).collect();
                let blocks: Vec<&[u64]> = scores.chunks_exact(BLOCK).collect();
                for at in [0, 1, 7, 100, blocks.len() - 1] {
                    let max = *blocks[at].iter().max().unwrap();
                    let low = (1u64 << 31) - 1;
                    let thresholds = [0, 1, max - 1, max, max + 1, max & !low, (max | low) + 1, u64::MAX];
                    for from in [0, at / 2, at] {
                        for t in thresholds {
                            // Exactly: blocks before the first with a score's top 33 bits at
                            // least the threshold's; never past a block with a real hit.
                            let top = |s: &u64| s >> 31;
                            let want = blocks[from..].iter().take_while(|b| b.iter().all(|s| top(s) < t >> 31)).count();
                            let exact = blocks[from..].iter().take_while(|b| b.iter().all(|&s| s < t)).count();
                            // SAFETY: `has_avx512` found avx512f and avx512dq on this CPU.
                            let got = unsafe { avx512::skip_blocks::<false>(kh, &hashes[from * BLOCK..], t) };
                            assert_eq!(got, want, "{key:?}: from block {from}, threshold {t:#x}");
                            assert!(got <= exact, "{key:?}: passed a block with a hit");
                            // SAFETY: as above.
                            let got = unsafe { avx512::skip_blocks::<true>(premix(kh), &premixed[from * BLOCK..], t) };
                            assert_eq!(got, want, "{key:?}: premixed, from block {from}, threshold {t:#x}");
                        }
                    }
                }
                // Through the selection, against the portable build, at 10 000 nodes.
                let order = |a: &Candidate<u64>, b: &Candidate<u64>| a.score.cmp(&b.score).then(b.index.cmp(&a.index));
                for k in [1, 2, 3, 4, 5, 8, 10, 32] {
                    let (mut wide, mut premixed_wide, mut portable) = (Vec::new(), Vec::new(), Vec::new());
                    top_k_unweighted(Simd::Avx512, kh, &hashes, &[], k, order, |i| wide.push(i));
                    top_k_unweighted(Simd::Avx512, kh, &hashes, &premixed, k, order, |i| premixed_wide.push(i));
                    top_k_unweighted(Simd::Portable, kh, &hashes, &premixed, k, order, |i| portable.push(i));
                    assert_eq!(wide, portable, "{key:?}: top {k} of 10 000");
                    assert_eq!(premixed_wide, portable, "{key:?}: premixed, top {k} of 10 000");
                }
            }
            return;
        }
        crate::say_not_tested(
            "avx512_skip_passes_exactly_the_blocks_without_a_top_33_bit_hit",
            "this CPU lacks avx512f or avx512dq, so the AVX-512 skip was not compared",
        );
    }

    #[test]
    fn zone_maxima_finds_each_zones_best_at_every_simd_level_and_declines_ties() {
        for simd in Simd::available() {
            for n in [1usize, 2, 5, 31, 32, 33, 100, 128] {
                let hashes: Vec<u64> = (0..n as u64).map(|i| mix(i ^ 0xabcd)).collect();
                for zones in [1usize, 2, 3, 7] {
                    // Zone boundaries spread over the nodes (some zones may be empty of none).
                    let starts: Vec<u32> = (0..=zones).map(|z| (z * n / zones) as u32).collect();
                    if starts.windows(2).any(|w| w[0] == w[1]) {
                        continue;
                    }
                    for key in ["", "ryans", "user:42"] {
                        let kh = hash_str(key);
                        let mut best = vec![0u32; zones];
                        assert!(zone_maxima(simd, kh, &hashes, &starts, &mut best), "{simd:?}");
                        for z in 0..zones {
                            let range = starts[z] as usize..starts[z + 1] as usize;
                            let want = range.max_by_key(|&i| score(kh, hashes[i])).unwrap();
                            assert_eq!(best[z] as usize, want, "{simd:?}: {n} nodes, zone {z} of {zones}, {key:?}");
                        }
                    }
                }
            }
            // The same hash twice in a zone: declined when those two are the zone's best.
            let hashes = [5u64, 7, 7, 1];
            let mut best = [0u32; 2];
            let mut ties = 0;
            for key in 0..50u64 {
                let kh = mix(key);
                let tie = score(kh, 7) > score(kh, 1);
                ties += usize::from(tie);
                assert_eq!(zone_maxima(simd, kh, &hashes, &[0, 1, 4], &mut best), !tie, "{simd:?}");
            }
            assert!((5..45).contains(&ties), "{ties} ties of 50");
        }
    }

    #[test]
    fn mix_is_not_the_identity_and_spreads_bits() {
        // One flipped input bit flips about half of the output bits.
        let mut total = 0;
        for bit in 0..64 {
            total += (mix(12345) ^ mix(12345 ^ (1 << bit))).count_ones();
        }
        let mean = total as f64 / 64.0;
        assert!((28.0..36.0).contains(&mean), "mean flipped bits {mean}");
    }
}
