// The top-k scan of a service, and the key's XXH64, in WebAssembly: at 10 000 nodes a lookup
// in plain JavaScript costs ~110 µs, a third of an HTTP round trip, since JavaScript has no
// 64-bit integer multiply; this program takes ~7 µs (11 for a weighted service), and hashes a
// key ten times faster (clients/js/bench.mjs, docs/clients.md).
//
// Every node is first tested against the k-th best so far by the top 32 bits of its score
// alone, and only a node that may reach it is scored in full and offered to the sorted buffer
// of the k best. The top 32 bits of fmix64(x) are those of its second product: the last
// `x ^= x >> 33` leaves them alone. Products of 64-bit numbers cut in 32-bit halves need, of
// the 32 x 32-bit partial products, only the full low one (`extmul`) and the low halves of the
// two cross ones (`i32x4.mul`). Each loop tests 8 nodes that way in 32-bit SIMD lanes and, at
// the same time, 2 more in scalar 64-bit arithmetic: the vector units and the integer
// multiplier work side by side, which measured 5.4 µs per 10 000 nodes against 6.8 for SIMD
// alone and 13 for scalar alone (Node 20, AMD EPYC).
//
// Weighted services test each node against a bound of its own. Since -ln(u) >= 1 - u, a node's
// weighted score -w / ln(u) is at most w / (1 - u): it can reach the k-th best T only if
// 1 - u <= w c, c = (1 + 1e-9) / T, the margin far wider than any rounding. With u below
// (top + 1) / 2^32, top its score's top 32 bits, 1 - u is above ~top / 2^32, so a node whose
// ~top exceeds w c 2^32 cannot enter. That test runs per lane in f32, on ~top halved (so that
// a signed conversion, one instruction, takes it) against w c 2^31 from a weight and a c
// rounded up, plus a margin of 4096 where f32 rounds by at most a few hundred: it never drops
// a node that could enter. A node that passes gets its exact score, -w / log(u), with fdlibm's
// log (`$log`, line for line the `e_log.c` the specification names; u is always a normal
// number in (0, 1)).
//
// A tie (two equal scores, or equal weighted scores and scores: two identities with the same
// XXH64, which a table is never expected to have) stops the scan with -1, and the caller ranks
// in JavaScript, which orders ties by identity as the specification says.
//
// Layout of one service in the memory, for `iters` = ceil(n / 10) loops (nodes past n are
// padding, never offered): the first 8 * iters nodes as two u32 arrays, high halves at `hp` and
// low halves at `lp`; then every node's hash as a u64 at `xp` (the scalar part reads nodes
// 8 * iters .. 10 * iters there, the full scoring any node); for a weighted service then the
// weights rounded up as f32 at `wp` (10 * iters of them) and exact as f64 at `vp`. The hashes
// are stored after the first step of fmix64, `x ^= x >> 33`, which is linear:
// (h ^ key) ^ ((h ^ key) >> 33) is (h ^ h >> 33) ^ (key ^ key >> 33), so the key is transformed
// once per lookup instead.

import { R } from "./hash.js";
import { assemble } from "./wasm.js";

/** The largest k the scan's buffer holds; larger k rank in JavaScript. */
export const SCAN_K = 32;

// The buffer of the k best, at `out`: scores (u64; weighted scores as f64 for a weighted
// service), then a weighted service's scores (u64), then the node indexes (u32).
const RAW = SCAN_K * 8;
const IDX = SCAN_K * 16;
const OUT_BYTES = SCAN_K * 20;
/** Keys up to this many bytes are hashed in WebAssembly, longer ones in JavaScript. */
const KEY_BYTES = 4096;
const encoder = new TextEncoder();

// fmix64's multipliers, whole and in 32-bit halves.
const C1 = "0xff51afd7ed558ccd";
const C1H = "0xff51afd7";
const C1L = "0xed558ccd";
const C2 = "0xc4ceb9fe1a85ec53";
const C2H = "0xc4ceb9fe";
const C2L = "0x1a85ec53";
// XXH64's primes.
const P1 = "0x9e3779b185ebca87";
const P2 = "0xc2b2ae3d27d4eb4f";
const P3 = "0x165667b19e3779f9";
const P4 = "0x85ebca77c2b2ae63";
const P5 = "0x27d4eb2f165667c5";
const splat = (c) => `v128.const i32x4 ${c} ${c} ${c} ${c}`;
const ODD = "i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31"; // high halves of 2 x 2 u64
const EVEN = "i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27"; // low halves
/** An f64 constant given by its bits, as docs/ranking.md gives fdlibm's. */
const f64bits = (hex) => `i64.const ${hex}\n    f64.reinterpret_i64`;
// The weighted bound's margin, 4096 (f32 bits), in units of 2^-31 of u.
const F32_MARGIN = "0x45800000";

/**
 * A mask of the 4 nodes at `offset` bytes into the loop's block whose score's top 32 bits reach
 * the threshold (the same for all, $thrv; or each one's own, from its weight, for a weighted
 * service), left on the stack as 4 bits.
 */
const fourLanes = (offset, weighted) => `
    local.get $hq
    v128.load offset=${offset}
    local.get $vkh
    v128.xor
    local.set $a          ;; high halves of x
    local.get $lq
    v128.load offset=${offset}
    local.get $vkl
    v128.xor
    local.set $b          ;; low halves of x
    ;; x *= C1: high = hi(b * C1L) + lo(b * C1H) + lo(a * C1L), low = lo(b * C1L)
    local.get $b
    ${splat(C1L)}
    i64x2.extmul_low_i32x4_u
    local.set $pl
    local.get $b
    ${splat(C1L)}
    i64x2.extmul_high_i32x4_u
    local.set $ph
    local.get $pl
    local.get $ph
    ${ODD}
    local.get $b
    ${splat(C1H)}
    i32x4.mul
    i32x4.add
    local.get $a
    ${splat(C1L)}
    i32x4.mul
    i32x4.add
    local.set $a          ;; high halves of x * C1
    ;; x ^= x >> 33: the high half stays, the low one takes high >> 1
    local.get $pl
    local.get $ph
    ${EVEN}
    local.get $a
    i32.const 1
    i32x4.shr_u
    v128.xor
    local.set $b
    ;; the high half of x * C2
    local.get $b
    ${splat(C2L)}
    i64x2.extmul_low_i32x4_u
    local.set $pl
    local.get $b
    ${splat(C2L)}
    i64x2.extmul_high_i32x4_u
    local.set $ph
    local.get $pl
    local.get $ph
    ${ODD}
    local.get $b
    ${splat(C2H)}
    i32x4.mul
    i32x4.add
    local.get $a
    ${splat(C2L)}
    i32x4.mul
    i32x4.add
    ${
      weighted
        ? `;; u can reach 1 - w c only if ~top, the distance to 1 in units of 2^-32, is at most
    ;; w c 2^32: compared halved (a signed conversion, cheap) in f32, with a margin
    v128.not
    i32.const 1
    i32x4.shr_u
    f32x4.convert_i32x4_s
    local.get $wq
    v128.load offset=${offset}
    local.get $vc
    f32x4.mul
    ${splat(F32_MARGIN)}
    f32x4.add
    f32x4.le
    i32x4.bitmask`
        : `local.get $thrv
    i32x4.ge_u
    i32x4.bitmask`
    }`;

/** Whether the score of the node at `offset` bytes past $sp may reach the threshold (0 or 1). */
const oneScalar = (offset, weighted) => `
    local.get $sp
    i64.load offset=${offset}
    local.get $key
    i64.xor
    i64.const ${C1}
    i64.mul
    local.tee $x
    local.get $x
    i64.const 33
    i64.shr_u
    i64.xor
    i64.const ${C2}
    i64.mul
    ${
      weighted
        ? `;; as the lanes', in f64 from the same f32 values: (~score) >> 33 <= w c 2^31 + margin
    i64.const -1
    i64.xor
    i64.const 33
    i64.shr_u
    f64.convert_i64_s
    local.get $wsp
    f32.load offset=${offset / 2}
    f64.promote_f32
    local.get $c
    f64.mul
    f64.const 4096
    f64.add
    f64.le`
        : `local.get $thr64
    i64.ge_u`
    }`;

/**
 * $offer or $woffer: offers node $i to the buffer of the k best, best first, by score ($s) or
 * by weighted score ($ws) then score. When the buffer is full a node is compared with the k-th
 * best first, which it replaces if better.
 */
const offerFunction = (weighted) => `
  (func $${weighted ? "woffer" : "offer"} (param $i i32)${weighted ? " (param $ws f64)" : ""} (param $s i64)
    (local $at i32) (local $p i32) (local $ps i64)${weighted ? " (local $pws f64)" : ""}
    global.get $filled
    global.get $k
    i32.lt_u
    if
      global.get $filled
      local.set $at
      global.get $filled
      i32.const 1
      i32.add
      global.set $filled
    else
      global.get $k
      local.set $at
    end
    block $placed
      loop $shift
        local.get $at
        i32.eqz
        br_if $placed
        global.get $out
        local.get $at
        i32.const 3
        i32.shl
        i32.add
        i32.const 8
        i32.sub
        local.tee $p          ;; the node at - 1${weighted ? `: its weighted score, its score ${RAW} bytes further
        f64.load
        local.set $pws
        local.get $p
        i64.load offset=${RAW}
        local.set $ps
        local.get $ws
        local.get $pws
        f64.lt
        local.get $ws
        local.get $pws
        f64.eq
        local.get $s
        local.get $ps
        i64.lt_u
        i32.and
        i32.or` : `
        i64.load
        local.set $ps
        local.get $s
        local.get $ps
        i64.lt_u`}
        br_if $placed          ;; below it
        ${weighted ? `local.get $ws
        local.get $pws
        f64.eq
        local.get $s
        local.get $ps
        i64.eq
        i32.and` : `local.get $s
        local.get $ps
        i64.eq`}
        if
          i32.const 1
          global.set $tie
          return
        end
        local.get $at
        global.get $k
        i32.lt_u
        if                    ;; moves down; the k-th best, when full, just drops out
          local.get $p
          ${weighted ? `local.get $pws
          f64.store offset=8
          local.get $p
          local.get $ps
          i64.store offset=${RAW + 8}` : `local.get $ps
          i64.store offset=8`}
          global.get $out
          local.get $at
          i32.const 2
          i32.shl
          i32.add
          local.tee $p
          local.get $p
          i32.load offset=${IDX - 4}
          i32.store offset=${IDX}
        end
        local.get $at
        i32.const 1
        i32.sub
        local.set $at
        br $shift
      end
    end
    local.get $at
    global.get $k
    i32.ge_u
    if                        ;; below the k-th best
      return
    end
    global.get $out
    local.get $at
    i32.const 3
    i32.shl
    i32.add
    ${weighted ? `local.tee $p
    local.get $ws
    f64.store
    local.get $p
    local.get $s
    i64.store offset=${RAW}` : `local.get $s
    i64.store`}
    global.get $out
    local.get $at
    i32.const 2
    i32.shl
    i32.add
    local.get $i
    i32.store offset=${IDX}
    global.get $filled
    global.get $k
    i32.eq
    if                        ;; the new k-th best is the threshold
      global.get $out
      global.get $k
      i32.const 3
      i32.shl
      i32.add
      i32.const 8
      i32.sub
      ${weighted ? "f64.load\n      global.set $wthr" : "i64.load\n      global.set $thr"}
    end
  )`;

/** $scan or $wscan: the loop, from loop $t on, to the first that may hold a node to offer. */
const scanFunction = (weighted) => `
  ;; From loop $t on, the first loop with a node whose score may reach the threshold: returns
  ;; it, its nodes' bits in $bits (see $hits); or $iters. A function of its own without calls,
  ;; so that its vectors stay in registers.
  (func $${weighted ? "wscan" : "scan"} (param $hp i32) (param $lp i32) (param $xp i32) (param $t i32) (param $iters i32)
      (param $kh i32) (param $kl i32) (param $thrhi i32) (param $wp i32) (param $cf f32) (result i32)
    (local $hq i32) (local $lq i32) (local $sp i32) (local $wq i32) (local $wsp i32) (local $bits i32)
    (local $key i64) (local $thr64 i64) (local $x i64) (local $c f64)
    (local $vkh v128) (local $vkl v128) (local $thrv v128) (local $vc v128) (local $a v128) (local $b v128)
    (local $pl v128) (local $ph v128)
    local.get $t
    local.get $iters
    i32.ge_u
    if
      local.get $iters
      return
    end
    local.get $kh
    i64.extend_i32_u
    i64.const 32
    i64.shl
    local.get $kl
    i64.extend_i32_u
    i64.or
    local.set $key
    local.get $thrhi
    i64.extend_i32_u
    i64.const 32
    i64.shl
    local.set $thr64
    local.get $kh
    i32x4.splat
    local.set $vkh
    local.get $kl
    i32x4.splat
    local.set $vkl
    local.get $thrhi
    i32x4.splat
    local.set $thrv
    local.get $cf
    f32x4.splat
    local.set $vc
    local.get $cf
    f64.promote_f32
    local.set $c
    local.get $t
    i32.const 5
    i32.shl
    local.tee $hq
    local.get $wp
    i32.add
    local.set $wq          ;; weight of node 8t
    local.get $hq
    local.get $lp
    i32.add
    local.set $lq
    local.get $hq
    local.get $hp
    i32.add
    local.set $hq
    local.get $iters
    i32.const 6
    i32.shl
    local.get $t
    i32.const 4
    i32.shl
    i32.add
    local.get $xp
    i32.add
    local.set $sp          ;; node 8 * iters + 2t
    local.get $iters
    i32.const 5
    i32.shl
    local.get $t
    i32.const 3
    i32.shl
    i32.add
    local.get $wp
    i32.add
    local.set $wsp         ;; its weight
    loop $next
      ${fourLanes(0, weighted)}
      ${fourLanes(16, weighted)}
      i32.const 4
      i32.shl
      i32.or
      ${oneScalar(0, weighted)}
      i32.const 8
      i32.shl
      i32.or
      ${oneScalar(8, weighted)}
      i32.const 9
      i32.shl
      i32.or
      local.tee $bits
      if
        local.get $bits
        global.set $bits
        local.get $t
        return
      end
      local.get $hq
      i32.const 32
      i32.add
      local.set $hq
      local.get $lq
      i32.const 32
      i32.add
      local.set $lq
      local.get $wq
      i32.const 32
      i32.add
      local.set $wq
      local.get $sp
      i32.const 16
      i32.add
      local.set $sp
      local.get $wsp
      i32.const 8
      i32.add
      local.set $wsp
      local.get $t
      i32.const 1
      i32.add
      local.tee $t
      local.get $iters
      i32.lt_u
      br_if $next
    end
    local.get $iters
  )`;

/** $hits or $whits: offers each node of loop $t that $bits marks, through $node or $wnode. */
const hitsFunction = (weighted) => `
  ;; Offers the nodes of loop $t whose bit is set in $bits: bits 0-7 for the 8 SIMD lanes,
  ;; nodes 8t..8t+7; bits 8-9 for the 2 scalar ones, nodes 8 * iters + 2t and the next.
  (func $${weighted ? "whits" : "hits"} (param $bits i32) (param $t i32) (param $iters i32)
    (local $j i32)
    loop $bit
      local.get $bits
      i32.ctz
      local.tee $j
      local.get $t
      i32.const 3
      i32.shl
      i32.add
      local.get $j
      i32.const 8
      i32.sub
      local.get $iters
      i32.const 3
      i32.shl
      i32.add
      local.get $t
      i32.const 1
      i32.shl
      i32.add
      local.get $j
      i32.const 8
      i32.lt_u
      select
      call $${weighted ? "wnode" : "node"}
      local.get $bits
      local.get $bits
      i32.const 1
      i32.sub
      i32.and
      local.tee $bits
      br_if $bit
    end
  )`;

/** $top or $wtop: the lookup, exported. */
const topFunction = (weighted) => `
  ;; The k best of a ${weighted ? "weighted" : "unweighted"} service for a key: their indexes at out + ${IDX},
  ;; best first. Returns how many (min(k, nodes not excluded)), or -1 on a tie.
  ;; $kl is the key hash's low half after x ^= x >> 33 (see the layout above).
  (func $${weighted ? "wtop" : "top"} (export "${weighted ? "wtop" : "top"}") (param $hp i32) (param $lp i32) (param $xp i32)
      (param $wp i32) (param $vp i32) (param $iters i32) (param $n i32)
      (param $kh i32) (param $kl i32) (param $k i32) (param $skip i32) (param $out i32) (result i32)
    (local $t i32) (local $cf f32)
    local.get $kh
    i64.extend_i32_u
    i64.const 32
    i64.shl
    local.get $kl
    i64.extend_i32_u
    i64.or
    global.set $key
    local.get $xp
    global.set $xp
    local.get $vp
    global.set $vp
    local.get $n
    global.set $n
    local.get $k
    global.set $k
    local.get $skip
    global.set $skip
    local.get $out
    global.set $out
    i32.const 0
    global.set $filled
    i64.const 0
    global.set $thr
    i32.const 0
    global.set $tie
    block $done
      loop $next
        ${
          weighted
            ? `;; c 2^31, c = (1 + 1e-9) / T, rounded up to f32; infinite (every node) until k are in
        i32.const 0x7f800000
        f32.reinterpret_i32
        local.set $cf
        global.get $filled
        global.get $k
        i32.eq
        if
          f64.const 1.000000001
          global.get $wthr
          f64.div
          f64.const 2147483648
          f64.mul
          f64.const 1.00000095367431640625
          f64.mul
          f32.demote_f64
          local.set $cf
        end`
            : ""
        }
        local.get $hp
        local.get $lp
        local.get $xp
        local.get $t
        local.get $iters
        local.get $kh
        local.get $kl
        global.get $thr
        i64.const 32
        i64.shr_u
        i32.wrap_i64
        local.get $wp
        local.get $cf
        call $${weighted ? "wscan" : "scan"}
        local.tee $t
        local.get $iters
        i32.ge_u
        br_if $done
        global.get $bits
        local.get $t
        local.get $iters
        call $${weighted ? "whits" : "hits"}
        global.get $tie
        if
          i32.const -1
          return
        end
        local.get $t
        i32.const 1
        i32.add
        local.set $t
        br $next
      end
    end
    global.get $filled
  )`;

/** The program, in the WebAssembly text format (`wasm.js` assembles it). */
export const SCAN_WAT = `
(module
  (memory (export "memory") 1)
  (global $key (mut i64) (i64.const 0))
  (global $thr (mut i64) (i64.const 0))   ;; the k-th best score once k are in
  (global $wthr (mut f64) (f64.const 0))  ;; the k-th best weighted score once k are in
  (global $filled (mut i32) (i32.const 0))
  (global $k (mut i32) (i32.const 0))
  (global $n (mut i32) (i32.const 0))
  (global $xp (mut i32) (i32.const 0))
  (global $vp (mut i32) (i32.const 0))
  (global $skip (mut i32) (i32.const 0))  ;; n bytes, 1 for an excluded node; 0: none
  (global $out (mut i32) (i32.const 0))
  (global $tie (mut i32) (i32.const 0))
  (global $bits (mut i32) (i32.const 0))  ;; the nodes of the loop $scan stopped at

${offerFunction(false)}
${offerFunction(true)}

  ;; The score of node $i: fmix64 of its hash (stored after the first step) ^ the key.
  (func $score (param $i i32) (result i64)
    (local $x i64)
    local.get $i
    i32.const 3
    i32.shl
    global.get $xp
    i32.add
    i64.load
    global.get $key
    i64.xor
    i64.const ${C1}
    i64.mul
    local.tee $x
    local.get $x
    i64.const 33
    i64.shr_u
    i64.xor
    i64.const ${C2}
    i64.mul
    local.tee $x
    local.get $x
    i64.const 33
    i64.shr_u
    i64.xor
  )

  ;; Whether node $i is to be ranked: not padding, not excluded.
  (func $eligible (param $i i32) (result i32)
    local.get $i
    global.get $n
    i32.ge_u
    if
      i32.const 0
      return
    end
    global.get $skip
    if
      global.get $skip
      local.get $i
      i32.add
      i32.load8_u
      if
        i32.const 0
        return
      end
    end
    i32.const 1
  )

  ;; Scores node $i in full and offers it, if eligible.
  (func $node (param $i i32)
    local.get $i
    call $eligible
    if
      local.get $i
      local.get $i
      call $score
      call $offer
    end
  )

  ;; Scores node $i in full, weighted, and offers it, if eligible:
  ;; -weight / log(u), u = ((score >> 12) + 0.5) * 2^-52.
  (func $wnode (param $i i32)
    (local $s i64)
    local.get $i
    call $eligible
    if
      local.get $i
      local.get $i
      i32.const 3
      i32.shl
      global.get $vp
      i32.add
      f64.load
      f64.neg
      local.get $i
      call $score
      local.tee $s
      i64.const 12
      i64.shr_u
      f64.convert_i64_u
      f64.const 0.5
      f64.add
      ${f64bits("0x3cb0000000000000")}  ;; 2^-52
      f64.mul
      call $log
      f64.div
      local.get $s
      call $woffer
    end
  )

  ;; XXH64 round: rotl(acc + input * P2, 31) * P1.
  (func $round (param $acc i64) (param $input i64) (result i64)
    local.get $acc
    local.get $input
    i64.const ${P2}
    i64.mul
    i64.add
    i64.const 31
    i64.rotl
    i64.const ${P1}
    i64.mul
  )

  ;; XXH64 merge round: (acc ^ round(0, val)) * P1 + P4.
  (func $merge (param $acc i64) (param $val i64) (result i64)
    local.get $acc
    i64.const 0
    local.get $val
    call $round
    i64.xor
    i64.const ${P1}
    i64.mul
    i64.const ${P4}
    i64.add
  )

  ;; XXH64 of the $len bytes at $p with $seed, as the xxHash specification defines it.
  (func $xxh64 (export "xxh64") (param $p i32) (param $len i32) (param $seed i64) (result i64)
    (local $end i32) (local $h i64) (local $v1 i64) (local $v2 i64) (local $v3 i64) (local $v4 i64)
    local.get $p
    local.get $len
    i32.add
    local.set $end
    local.get $len
    i32.const 32
    i32.ge_u
    if
      local.get $seed
      i64.const ${P1}
      i64.add
      i64.const ${P2}
      i64.add
      local.set $v1
      local.get $seed
      i64.const ${P2}
      i64.add
      local.set $v2
      local.get $seed
      local.set $v3
      local.get $seed
      i64.const ${P1}
      i64.sub
      local.set $v4
      loop $stripe
        local.get $v1
        local.get $p
        i64.load
        call $round
        local.set $v1
        local.get $v2
        local.get $p
        i64.load offset=8
        call $round
        local.set $v2
        local.get $v3
        local.get $p
        i64.load offset=16
        call $round
        local.set $v3
        local.get $v4
        local.get $p
        i64.load offset=24
        call $round
        local.set $v4
        local.get $p
        i32.const 32
        i32.add
        local.tee $p
        i32.const 32
        i32.add
        local.get $end
        i32.le_u
        br_if $stripe
      end
      local.get $v1
      i64.const 1
      i64.rotl
      local.get $v2
      i64.const 7
      i64.rotl
      i64.add
      local.get $v3
      i64.const 12
      i64.rotl
      i64.add
      local.get $v4
      i64.const 18
      i64.rotl
      i64.add
      local.get $v1
      call $merge
      local.get $v2
      call $merge
      local.get $v3
      call $merge
      local.get $v4
      call $merge
      local.set $h
    else
      local.get $seed
      i64.const ${P5}
      i64.add
      local.set $h
    end
    local.get $h
    local.get $len
    i64.extend_i32_u
    i64.add
    local.set $h
    block $words
      loop $word
        local.get $p
        i32.const 8
        i32.add
        local.get $end
        i32.gt_u
        br_if $words
        local.get $h
        i64.const 0
        local.get $p
        i64.load
        call $round
        i64.xor
        i64.const 27
        i64.rotl
        i64.const ${P1}
        i64.mul
        i64.const ${P4}
        i64.add
        local.set $h
        local.get $p
        i32.const 8
        i32.add
        local.set $p
        br $word
      end
    end
    local.get $p
    i32.const 4
    i32.add
    local.get $end
    i32.le_u
    if
      local.get $h
      local.get $p
      i64.load32_u
      i64.const ${P1}
      i64.mul
      i64.xor
      i64.const 23
      i64.rotl
      i64.const ${P2}
      i64.mul
      i64.const ${P3}
      i64.add
      local.set $h
      local.get $p
      i32.const 4
      i32.add
      local.set $p
    end
    block $bytes
      loop $byte
        local.get $p
        local.get $end
        i32.ge_u
        br_if $bytes
        local.get $h
        local.get $p
        i64.load8_u
        i64.const ${P5}
        i64.mul
        i64.xor
        i64.const 11
        i64.rotl
        i64.const ${P1}
        i64.mul
        local.set $h
        local.get $p
        i32.const 1
        i32.add
        local.set $p
        br $byte
      end
    end
    ;; avalanche
    local.get $h
    local.get $h
    i64.const 33
    i64.shr_u
    i64.xor
    i64.const ${P2}
    i64.mul
    local.tee $h
    local.get $h
    i64.const 29
    i64.shr_u
    i64.xor
    i64.const ${P3}
    i64.mul
    local.tee $h
    local.get $h
    i64.const 32
    i64.shr_u
    i64.xor
  )

  ;; The key hash of the $len bytes at $p (XXH64 with KEY_SEED), its halves stored at $p + $len
  ;; rounded up to 8: what a lookup ranks by.
  (func $hashKey (export "hashKey") (param $p i32) (param $len i32)
    local.get $p
    local.get $len
    i32.add
    i32.const 7
    i32.add
    i32.const -8
    i32.and
    local.get $p
    local.get $len
    i64.const 0x6b6579726f757465
    call $xxh64
    i64.store
  )

  ;; fdlibm's __ieee754_log (e_log.c), for a normal positive $x (the only ones it is given),
  ;; line for line as clients/js/src/log.js and the Rust libm crate compute it.
  (func $log (export "log") (param $x f64) (result f64)
    (local $bits i64) (local $hx i32) (local $k i32) (local $i i32)
    (local $f f64) (local $s f64) (local $dk f64) (local $z f64) (local $w f64) (local $r f64) (local $hfsq f64)
    local.get $x
    i64.reinterpret_f64
    local.tee $bits
    i64.const 32
    i64.shr_u
    i32.wrap_i64
    local.tee $hx
    i32.const 20
    i32.shr_s
    i32.const 1023
    i32.sub
    local.set $k
    local.get $hx
    i32.const 0x000fffff
    i32.and
    local.tee $hx
    i32.const 0x95f64
    i32.add
    i32.const 0x100000
    i32.and
    local.set $i
    ;; normalize x or x / 2: high word hx | (i ^ 0x3ff00000)
    local.get $hx
    local.get $i
    i32.const 0x3ff00000
    i32.xor
    i32.or
    i64.extend_i32_u
    i64.const 32
    i64.shl
    local.get $bits
    i64.const 0xffffffff
    i64.and
    i64.or
    f64.reinterpret_i64
    f64.const 1
    f64.sub
    local.set $f
    local.get $k
    local.get $i
    i32.const 20
    i32.shr_s
    i32.add
    local.tee $k
    f64.convert_i32_s
    local.set $dk
    ;; -2^-20 < f < 2^-20
    local.get $hx
    i32.const 2
    i32.add
    i32.const 0x000fffff
    i32.and
    i32.const 3
    i32.lt_s
    if
      local.get $f
      f64.const 0
      f64.eq
      if
        local.get $k
        i32.eqz
        if
          f64.const 0
          return
        end
        local.get $dk
        ${f64bits("0x3fe62e42fee00000")}  ;; ln2_hi
        f64.mul
        local.get $dk
        ${f64bits("0x3dea39ef35793c76")}  ;; ln2_lo
        f64.mul
        f64.add
        return
      end
      local.get $f
      local.get $f
      f64.mul
      f64.const 0.5
      ${f64bits("0x3fd5555555555555")}  ;; 0.33333333333333333
      local.get $f
      f64.mul
      f64.sub
      f64.mul
      local.set $r
      local.get $k
      i32.eqz
      if
        local.get $f
        local.get $r
        f64.sub
        return
      end
      local.get $dk
      ${f64bits("0x3fe62e42fee00000")}
      f64.mul
      local.get $r
      local.get $dk
      ${f64bits("0x3dea39ef35793c76")}
      f64.mul
      f64.sub
      local.get $f
      f64.sub
      f64.sub
      return
    end
    local.get $f
    f64.const 2
    local.get $f
    f64.add
    f64.div
    local.tee $s
    local.get $s
    f64.mul
    local.tee $z
    local.get $z
    f64.mul
    local.set $w
    local.get $hx
    i32.const 0x6147a
    i32.sub
    i32.const 0x6b851
    local.get $hx
    i32.sub
    i32.or
    local.set $i
    ;; R = t2 + t1: t2 = z (Lg1 + w (Lg3 + w (Lg5 + w Lg7))), t1 = w (Lg2 + w (Lg4 + w Lg6))
    local.get $z
    ${f64bits("0x3fe5555555555593")}  ;; Lg1
    local.get $w
    ${f64bits("0x3fd2492494229359")}  ;; Lg3
    local.get $w
    ${f64bits("0x3fc7466496cb03de")}  ;; Lg5
    local.get $w
    ${f64bits("0x3fc2f112df3e5244")}  ;; Lg7
    f64.mul
    f64.add
    f64.mul
    f64.add
    f64.mul
    f64.add
    f64.mul
    local.get $w
    ${f64bits("0x3fd999999997fa04")}  ;; Lg2
    local.get $w
    ${f64bits("0x3fcc71c51d8e78af")}  ;; Lg4
    local.get $w
    ${f64bits("0x3fc39a09d078c69f")}  ;; Lg6
    f64.mul
    f64.add
    f64.mul
    f64.add
    f64.mul
    f64.add
    local.set $r
    local.get $i
    i32.const 0
    i32.gt_s
    if
      f64.const 0.5
      local.get $f
      f64.mul
      local.get $f
      f64.mul
      local.set $hfsq
      local.get $k
      i32.eqz
      if
        ;; f - (hfsq - s (hfsq + R))
        local.get $f
        local.get $hfsq
        local.get $s
        local.get $hfsq
        local.get $r
        f64.add
        f64.mul
        f64.sub
        f64.sub
        return
      end
      ;; dk ln2_hi - ((hfsq - (s (hfsq + R) + dk ln2_lo)) - f)
      local.get $dk
      ${f64bits("0x3fe62e42fee00000")}
      f64.mul
      local.get $hfsq
      local.get $s
      local.get $hfsq
      local.get $r
      f64.add
      f64.mul
      local.get $dk
      ${f64bits("0x3dea39ef35793c76")}
      f64.mul
      f64.add
      f64.sub
      local.get $f
      f64.sub
      f64.sub
      return
    end
    local.get $k
    i32.eqz
    if
      ;; f - s (f - R)
      local.get $f
      local.get $s
      local.get $f
      local.get $r
      f64.sub
      f64.mul
      f64.sub
      return
    end
    ;; dk ln2_hi - ((s (f - R) - dk ln2_lo) - f)
    local.get $dk
    ${f64bits("0x3fe62e42fee00000")}
    f64.mul
    local.get $s
    local.get $f
    local.get $r
    f64.sub
    f64.mul
    local.get $dk
    ${f64bits("0x3dea39ef35793c76")}
    f64.mul
    f64.sub
    local.get $f
    f64.sub
    f64.sub
  )
${hitsFunction(false)}
${hitsFunction(true)}
${scanFunction(false)}
${scanFunction(true)}
${topFunction(false)}
${topFunction(true)}
)`;

let compiled; // a WebAssembly.Module; null where WebAssembly (or its SIMD) is unavailable

/** The compiled program, or null where this runtime cannot run it (no WebAssembly, no SIMD,
 * or a Content-Security-Policy without 'wasm-unsafe-eval'). */
function program() {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(assemble(SCAN_WAT));
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/**
 * Compiles the program off the main thread, ahead of the first table (Client.connect awaits
 * it): some browsers refuse to compile a module of more than 4 KiB synchronously on the main
 * thread, which `Table.fromJSON` alone would have to. Never rejects.
 */
export async function prepareScan() {
  if (compiled !== undefined) return;
  try {
    compiled = await WebAssembly.compile(assemble(SCAN_WAT));
  } catch {
    compiled ??= null;
  }
}

/** Where one service's hashes (and weights) are in a Scanner's memory. */
class Slot {
  constructor(scanner, weighted, hp, lp, xp, wp, vp, iters, n) {
    this.scanner = scanner;
    this.weighted = weighted;
    this.hp = hp;
    this.lp = lp;
    this.xp = xp;
    this.wp = wp;
    this.vp = vp;
    this.iters = iters;
    this.n = n;
  }

  /**
   * The indexes of the k best nodes for the key hash (kh, kl) among those `skip` does not
   * mark, best first; null on a tie (rank in JavaScript then).
   * @param {number} kh
   * @param {number} kl
   * @param {number} k at most SCAN_K and the number of eligible nodes
   * @param {Uint8Array | null} skip
   * @returns {number[] | null}
   */
  top(kh, kl, k, skip) {
    const s = this.scanner;
    if (skip) s.bytes.set(skip, s.skip);
    const found = (this.weighted ? s.wtop : s.top)(
      this.hp,
      this.lp,
      this.xp,
      this.wp,
      this.vp,
      this.iters,
      this.n,
      kh,
      (kl ^ (kh >>> 1)) >>> 0,
      k,
      skip ? s.skip : 0,
      s.out,
    );
    if (found < 0) return null;
    const indexes = new Array(found);
    for (let i = 0; i < found; i += 1) indexes[i] = s.indexes[i];
    return indexes;
  }
}

const f32 = new Float32Array(1);
/** `w` rounded up to an f32 (the bound must not fall below the exact one): w (1 + 2^-20) to nearest. */
const f32Above = (w) => {
  f32[0] = w * (1 + 2 ** -20);
  return f32[0];
};

/** The node hashes (and weights) of a table's services laid out in one WebAssembly memory for the scan. */
export class Scanner {
  /**
   * A scanner for the services (its `slots` in the same order), or null where WebAssembly
   * cannot run here or the memory cannot grow to hold them.
   * @param {{idH: Uint32Array, idL: Uint32Array, weighted: boolean, weights: number[]}[]} services
   * @returns {Scanner | null}
   */
  static create(services) {
    const module = program();
    if (!module) return null;
    try {
      return new Scanner(new WebAssembly.Instance(module, {}), services);
    } catch {
      return null;
    }
  }

  constructor(instance, services) {
    this.top = instance.exports.top;
    this.hash = instance.exports.hashKey;
    this.xxh64 = instance.exports.xxh64; // (pointer, length, seed as a BigInt) -> BigInt
    this.wtop = instance.exports.wtop;
    this.log = instance.exports.log;
    const layout = [];
    let end = 0;
    let widest = 0;
    for (const { idH, weighted } of services) {
      const n = idH.length;
      const iters = Math.max(1, Math.ceil(n / 10));
      const hp = end;
      const lp = hp + 32 * iters;
      const xp = lp + 32 * iters;
      const wp = xp + 80 * iters;
      const vp = wp + 40 * iters;
      end = weighted ? (vp + 8 * n + 15) & ~15 : wp;
      layout.push([hp, lp, xp, wp, vp, iters, n]);
      widest = Math.max(widest, n);
    }
    this.skip = end;
    this.out = (end + widest + 15) & ~15;
    this.key = this.out + OUT_BYTES;
    const bytes = this.key + KEY_BYTES + 8;
    const memory = instance.exports.memory;
    const pages = Math.ceil(bytes / 65536) - memory.buffer.byteLength / 65536;
    if (pages > 0) memory.grow(pages);
    this.bytes = new Uint8Array(memory.buffer);
    this.keyBytes = this.bytes.subarray(this.key, this.key + KEY_BYTES);
    const words = (this.words = new Uint32Array(memory.buffer));
    this.indexes = new Uint32Array(memory.buffer, this.out + IDX, SCAN_K);
    const floats = new Float32Array(memory.buffer);
    const doubles = new Float64Array(memory.buffer);
    this.slots = services.map(({ idH, idL, weighted, weights }, s) => {
      const [hp, lp, xp, wp, vp, iters, n] = layout[s];
      for (let i = 0; i < n; i += 1) {
        const h = idH[i];
        const l = (idL[i] ^ (h >>> 1)) >>> 0; // x ^= x >> 33, on the hash
        if (i < 8 * iters) {
          words[hp / 4 + i] = h;
          words[lp / 4 + i] = l;
        }
        words[xp / 4 + 2 * i] = l; // little-endian u64
        words[xp / 4 + 2 * i + 1] = h;
        if (weighted) {
          floats[wp / 4 + i] = f32Above(weights[i]);
          doubles[vp / 8 + i] = weights[i];
        }
      }
      return new Slot(this, weighted, hp, lp, xp, wp, vp, iters, n);
    });
  }

  /**
   * The key hash of `key` (XXH64 of its UTF-8 bytes with KEY_SEED) into `R`, as `xxh64` in
   * hash.js gives it, 10 times faster; false, leaving R alone, for a key of more than
   * KEY_BYTES bytes.
   * @param {string} key
   */
  hashKey(key) {
    const { read, written } = encoder.encodeInto(key, this.keyBytes);
    if (read < key.length) return false;
    this.hash(this.key, written);
    const at = (this.key + written + 7) >>> 2 & ~1;
    R[0] = this.words[at + 1];
    R[1] = this.words[at];
    return true;
  }
}
