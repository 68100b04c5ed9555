// The top-k scan of an unweighted service in WebAssembly: at 10 000 nodes a lookup in plain
// JavaScript costs ~110 µs, a quarter of an HTTP round trip, since JavaScript has no 64-bit
// integer multiply; this scan costs ~6 µs (clients/js/bench.mjs, docs/clients.md).
//
// Every node is first tested against the k-th best score so far by the top 32 bits of its
// score alone, and only a node that may reach it is scored in full and offered to the sorted
// buffer of the k best. The top 32 bits of fmix64(x) are those of its second product: the last
// `x ^= x >> 33` leaves them alone. Products of 64-bit numbers cut in 32-bit halves need, of
// the 32 x 32-bit partial products, only the full low one (`extmul`) and the low halves of the
// two cross ones (`i32x4.mul`). Each loop tests 8 nodes that way in 32-bit SIMD lanes and, at
// the same time, 2 more in scalar 64-bit arithmetic: the vector units and the integer
// multiplier work side by side, which measured 5.4 µs per 10 000 nodes against 6.8 for SIMD
// alone and 13 for scalar alone (Node 20, AMD EPYC).
//
// A tie between two scores (two identities with the same XXH64, which a table is never expected
// to have) stops the scan with -1, and the caller ranks in JavaScript, which orders ties by
// identity as the specification says.
//
// Layout of one service in the memory, for `iters` = ceil(n / 10) loops (nodes past n are
// padding, never offered): the first 8 * iters nodes as two u32 arrays, high halves at `hp` and
// low halves at `lp`; then every node's hash as a u64 at `xp` (the scalar part reads nodes
// 8 * iters .. 10 * iters there, the full scoring any node). The hashes are stored after the
// first step of fmix64, `x ^= x >> 33`, which is linear: (h ^ key) ^ ((h ^ key) >> 33) is
// (h ^ h >> 33) ^ (key ^ key >> 33), so the key is transformed once per lookup instead.

import { assemble } from "./wasm.js";

/** The largest k the scan's buffer holds; larger k rank in JavaScript. */
export const SCAN_K = 32;

const OUT_BYTES = SCAN_K * 8 + SCAN_K * 4; // k scores (u64), then k node indexes (u32)

// fmix64's multipliers, whole and in 32-bit halves.
const C1 = "0xff51afd7ed558ccd";
const C1H = "0xff51afd7";
const C1L = "0xed558ccd";
const C2 = "0xc4ceb9fe1a85ec53";
const C2H = "0xc4ceb9fe";
const C2L = "0x1a85ec53";
const splat = (c) => `v128.const i32x4 ${c} ${c} ${c} ${c}`;
const ODD = "i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31"; // high halves of 2 x 2 u64
const EVEN = "i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27"; // low halves

/** The top 32 bits of the scores of the 4 nodes at `offset` bytes into the block, into $m (a mask of those >= $thrv). */
const fourLanes = (offset, m) => `
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
    local.get $thrv
    i32x4.ge_u
    local.set ${m}`;

/** Whether the 64-bit score of the node at `offset` bytes past $sp may reach the threshold. */
const oneScalar = (offset) => `
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
    local.get $thr64
    i64.ge_u`;

/** The program, in the WebAssembly text format (`wasm.js` assembles it). */
export const SCAN_WAT = `
(module
  (memory (export "memory") 1)
  (global $key (mut i64) (i64.const 0))
  (global $thr (mut i64) (i64.const 0))   ;; the k-th best score once k are in
  (global $filled (mut i32) (i32.const 0))
  (global $k (mut i32) (i32.const 0))
  (global $n (mut i32) (i32.const 0))
  (global $xp (mut i32) (i32.const 0))
  (global $skip (mut i32) (i32.const 0))  ;; n bytes, 1 for an excluded node; 0: none
  (global $out (mut i32) (i32.const 0))
  (global $tie (mut i32) (i32.const 0))
  (global $bits (mut i32) (i32.const 0))  ;; the nodes of the loop $scan stopped at

  ;; Offers node $i of score $s to the buffer of the k best, best first.
  (func $offer (param $i i32) (param $s i64)
    (local $at i32) (local $p i32) (local $prev i64)
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
      local.get $s
      global.get $thr
      i64.lt_u
      if
        return
      end
      local.get $s
      global.get $thr
      i64.eq
      if
        i32.const 1
        global.set $tie
        return
      end
      global.get $k
      i32.const 1
      i32.sub
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
        local.tee $p          ;; &scores[at]; scores[at - 1] is 8 bytes before
        i32.const 8
        i32.sub
        local.tee $p
        i64.load
        local.set $prev
        local.get $s
        local.get $prev
        i64.lt_u
        br_if $placed
        local.get $s
        local.get $prev
        i64.eq
        if
          i32.const 1
          global.set $tie
          return
        end
        local.get $p
        local.get $prev
        i64.store offset=8
        global.get $out
        local.get $at
        i32.const 2
        i32.shl
        i32.add
        local.tee $p          ;; indexes[at] is at out + ${SCAN_K * 8} + 4 * at
        local.get $p
        i32.load offset=${SCAN_K * 8 - 4}
        i32.store offset=${SCAN_K * 8}
        local.get $at
        i32.const 1
        i32.sub
        local.set $at
        br $shift
      end
    end
    global.get $out
    local.get $at
    i32.const 3
    i32.shl
    i32.add
    local.get $s
    i64.store
    global.get $out
    local.get $at
    i32.const 2
    i32.shl
    i32.add
    local.get $i
    i32.store offset=${SCAN_K * 8}
    global.get $filled
    global.get $k
    i32.eq
    if
      global.get $out
      global.get $k
      i32.const 3
      i32.shl
      i32.add
      i32.const 8
      i32.sub
      i64.load
      global.set $thr
    end
  )

  ;; Scores node $i in full and offers it, unless it is padding or excluded.
  (func $node (param $i i32)
    (local $x i64)
    local.get $i
    global.get $n
    i32.ge_u
    if
      return
    end
    global.get $skip
    if
      global.get $skip
      local.get $i
      i32.add
      i32.load8_u
      if
        return
      end
    end
    local.get $i
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
    call $offer
  )

  ;; Offers the nodes of loop $t whose bit is set in $bits: bits 0-7 for the 8 SIMD lanes,
  ;; nodes 8t..8t+7; bits 8-9 for the 2 scalar ones, nodes 8 * iters + 2t and the next.
  (func $hits (param $bits i32) (param $t i32) (param $iters i32)
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
      call $node
      local.get $bits
      local.get $bits
      i32.const 1
      i32.sub
      i32.and
      local.tee $bits
      br_if $bit
    end
  )

  ;; From loop $t on, the first loop with a node whose score may reach the threshold, whose high
  ;; half is $thrhi: returns it, its nodes' bits in $bits (see $hits); or $iters. A function of
  ;; its own without calls, so that its vectors stay in registers.
  (func $scan (param $hp i32) (param $lp i32) (param $xp i32) (param $t i32) (param $iters i32)
      (param $kh i32) (param $kl i32) (param $thrhi i32) (result i32)
    (local $hq i32) (local $lq i32) (local $sp i32) (local $bits i32)
    (local $key i64) (local $thr64 i64) (local $x i64)
    (local $vkh v128) (local $vkl v128) (local $thrv v128) (local $a v128) (local $b v128)
    (local $pl v128) (local $ph v128) (local $m1 v128) (local $m2 v128)
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
    local.get $t
    i32.const 5
    i32.shl
    local.tee $hq
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
    loop $next
      ${fourLanes(0, "$m1")}
      ${fourLanes(16, "$m2")}
      local.get $m1
      i32x4.bitmask
      local.get $m2
      i32x4.bitmask
      i32.const 4
      i32.shl
      i32.or
      ${oneScalar(0)}
      i32.const 8
      i32.shl
      i32.or
      ${oneScalar(8)}
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
      local.get $sp
      i32.const 16
      i32.add
      local.set $sp
      local.get $t
      i32.const 1
      i32.add
      local.tee $t
      local.get $iters
      i32.lt_u
      br_if $next
    end
    local.get $iters
  )

  ;; The k best of a service for a key: their indexes at out + ${SCAN_K * 8}, best first.
  ;; Returns how many (min(k, nodes not excluded)), or -1 on a tie of two scores.
  ;; $kl is the key hash's low half after x ^= x >> 33 (see the layout above).
  (func $top (export "top") (param $hp i32) (param $lp i32) (param $xp i32) (param $iters i32) (param $n i32)
      (param $kh i32) (param $kl i32) (param $k i32) (param $skip i32) (param $out i32) (result i32)
    (local $t i32)
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
        call $scan
        local.tee $t
        local.get $iters
        i32.ge_u
        br_if $done
        global.get $bits
        local.get $t
        local.get $iters
        call $hits
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
  )
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

/** Where one service's hashes are in a Scanner's memory. */
class Slot {
  constructor(scanner, hp, lp, xp, iters, n) {
    this.scanner = scanner;
    this.hp = hp;
    this.lp = lp;
    this.xp = xp;
    this.iters = iters;
    this.n = n;
  }

  /**
   * The indexes of the k best nodes for the key hash (kh, kl) among those `skip` does not
   * mark, best first; null on a tie of two scores (rank in JavaScript then).
   * @param {number} kh
   * @param {number} kl
   * @param {number} k at most SCAN_K and the number of eligible nodes
   * @param {Uint8Array | null} skip
   * @returns {number[] | null}
   */
  top(kh, kl, k, skip) {
    const s = this.scanner;
    if (skip) s.bytes.set(skip, s.skip);
    const found = s.top(this.hp, this.lp, this.xp, this.iters, this.n, kh, (kl ^ (kh >>> 1)) >>> 0, k, skip ? s.skip : 0, s.out);
    if (found < 0) return null;
    const indexes = new Array(found);
    for (let i = 0; i < found; i += 1) indexes[i] = s.indexes[i];
    return indexes;
  }
}

/** The node hashes of a table's services laid out in one WebAssembly memory for the scan. */
export class Scanner {
  /**
   * A scanner for the services, each given by its node hashes as high and low halves (its
   * `slots` in the same order), or null where WebAssembly cannot run here or the memory cannot
   * grow to hold them.
   * @param {{idH: Uint32Array, idL: Uint32Array}[]} services
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
    const layout = [];
    let end = 0;
    let widest = 0;
    for (const { idH } of services) {
      const n = idH.length;
      const iters = Math.max(1, Math.ceil(n / 10));
      const hp = end;
      const lp = hp + 32 * iters;
      const xp = lp + 32 * iters;
      end = xp + 80 * iters;
      layout.push([hp, lp, xp, iters, n]);
      widest = Math.max(widest, n);
    }
    this.skip = end;
    this.out = (end + widest + 15) & ~15;
    const bytes = this.out + OUT_BYTES;
    const memory = instance.exports.memory;
    const pages = Math.ceil(bytes / 65536) - memory.buffer.byteLength / 65536;
    if (pages > 0) memory.grow(pages);
    this.bytes = new Uint8Array(memory.buffer);
    this.indexes = new Uint32Array(memory.buffer, this.out + SCAN_K * 8, SCAN_K);
    const words = new Uint32Array(memory.buffer);
    this.slots = services.map(({ idH, idL }, s) => {
      const [hp, lp, xp, iters, n] = layout[s];
      for (let i = 0; i < n; i += 1) {
        const h = idH[i];
        const l = (idL[i] ^ (h >>> 1)) >>> 0; // x ^= x >> 33, on the hash
        if (i < 8 * iters) {
          words[hp / 4 + i] = h;
          words[lp / 4 + i] = l;
        }
        words[xp / 4 + 2 * i] = l; // little-endian u64
        words[xp / 4 + 2 * i + 1] = h;
      }
      return new Slot(this, hp, lp, xp, iters, n);
    });
  }
}
