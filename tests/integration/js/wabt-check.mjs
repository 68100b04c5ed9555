// Whether clients/js/src/wasm.js assembles as wabt's wat2wasm does: the scan's program, and a
// function made of every instruction the assembler knows (not type-checked: only the encoding
// is compared).
//
//   node wabt-check.mjs DIR     (DIR: where `npm install wabt` put node_modules)
//
// Prints "same: N bytes" per module, or the first difference and exits 1.

import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { SCAN_WAT } from "../../../clients/js/src/scan.js";
import { SIMPLE_INSTRUCTIONS, assemble } from "../../../clients/js/src/wasm.js";

const wabt = await (await import(pathToFileURL(join(process.argv[2], "node_modules/wabt/index.js")).href)).default();

const every = `(module
  (memory (export "m") 1)
  (global $g (mut i64) (i64.const -5))
  (func $f (export "f") (param $p i32) (result i32) (local $a i64) (local $b i64) (local $v v128)
    block $out
      loop $again
        ${SIMPLE_INSTRUCTIONS.filter((op) => op !== "end" && op !== "else").join("\n        ")}
        i32.load offset=12
        v128.load offset=300
        i32.const -1
        i32.const 2147483647
        i64.const 0xffffffffffffffff
        i64.const -9223372036854775808
        v128.const i32x4 0x80000000 1 -1 0xdeadbeef
        i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31
        local.get $p
        local.tee $p
        local.set $a
        global.get $g
        global.set $g
        call $f
        if
          br $again
        else
          br_if $out
        end
      end
    end
  )
)`;

let failed = false;
for (const [name, text] of [
  ["scan", SCAN_WAT],
  ["every instruction", every],
]) {
  const parsed = wabt.parseWat(`${name}.wat`, text, { simd: true });
  const theirs = new Uint8Array(parsed.toBinary({}).buffer);
  const ours = assemble(text);
  const at = theirs.findIndex((b, i) => b !== ours[i]);
  if (at < 0 && theirs.length === ours.length) {
    console.log(`${name}: same: ${ours.length} bytes`);
  } else {
    const d = at < 0 ? Math.min(theirs.length, ours.length) : at;
    console.log(`${name}: differ at byte ${d} of ${theirs.length} (wabt) / ${ours.length} (ours): wabt ${[...theirs.slice(d, d + 8)]} ours ${[...ours.slice(d, d + 8)]}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
