// A WebAssembly assembler for the small subset of the text format that `scan.js` is written in,
// so that the package ships its WebAssembly as readable source and needs no build step or tool.
//
// The subset: one `(module ...)` of `(memory (export "name") pages)`, `(global $name (mut T)
// (T.const v))` (T: i32, i64, f64) and `(func $name (export "name")? (param $p T)* (result T)? (local $l T)* ...)`
// whose body is flat (not folded) instructions, one per line or several, `;;` comments.
// Branch labels are the names of enclosing `block`s and `loop`s; blocks and `if`s have no
// result. The bytes are those `wat2wasm` writes for the same text (without debug names):
// tests/integration/js_client.rs checks it against wabt.

const TYPES = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

// Instructions without immediates, and those with a memory argument (natural alignment, log2).
const PLAIN = {
  else: [0x05],
  end: [0x0b],
  return: [0x0f],
  select: [0x1b],
  "i32.eqz": [0x45],
  "i32.eq": [0x46],
  "i32.lt_s": [0x48],
  "i32.lt_u": [0x49],
  "i32.gt_s": [0x4a],
  "i32.gt_u": [0x4b],
  "i32.le_u": [0x4d],
  "i32.ge_u": [0x4f],
  "i32.ctz": [0x68],
  "i64.eq": [0x51],
  "i64.lt_u": [0x54],
  "i64.ge_u": [0x5a],
  "f64.eq": [0x61],
  "f64.lt": [0x63],
  "f64.le": [0x65],
  "i32.add": [0x6a],
  "i32.sub": [0x6b],
  "i32.and": [0x71],
  "i32.or": [0x72],
  "i32.xor": [0x73],
  "i32.shl": [0x74],
  "i32.shr_s": [0x75],
  "i64.add": [0x7c],
  "i64.sub": [0x7d],
  "i64.mul": [0x7e],
  "i64.and": [0x83],
  "i64.or": [0x84],
  "i64.xor": [0x85],
  "i64.shl": [0x86],
  "i64.shr_u": [0x88],
  "i64.rotl": [0x89],
  "f64.neg": [0x9a],
  "f64.add": [0xa0],
  "f64.sub": [0xa1],
  "f64.mul": [0xa2],
  "f64.div": [0xa3],
  "i32.wrap_i64": [0xa7],
  "i64.extend_i32_u": [0xad],
  "f32.demote_f64": [0xb6],
  "f64.convert_i32_s": [0xb7],
  "f64.convert_i64_u": [0xba],
  "f64.promote_f32": [0xbb],
  "i64.reinterpret_f64": [0xbd],
  "f32.reinterpret_i32": [0xbe],
  "f64.reinterpret_i64": [0xbf],
  "f64.convert_i64_s": [0xb9],
  "f32x4.splat": [0xfd, 0x13],
  "i32x4.splat": [0xfd, 0x11],
  "i32x4.ge_u": [0xfd, 0x40],
  "f32x4.le": [0xfd, 0x45],
  "v128.not": [0xfd, 0x4d],
  "v128.xor": [0xfd, 0x51],
  "i32x4.bitmask": [0xfd, 0xa4, 0x01],
  "i32x4.shr_u": [0xfd, 0xad, 0x01],
  "i32x4.add": [0xfd, 0xae, 0x01],
  "i32x4.mul": [0xfd, 0xb5, 0x01],
  "i64x2.extmul_low_i32x4_u": [0xfd, 0xde, 0x01],
  "i64x2.extmul_high_i32x4_u": [0xfd, 0xdf, 0x01],
  "f32x4.add": [0xfd, 0xe4, 0x01],
  "f32x4.mul": [0xfd, 0xe6, 0x01],
  "f32x4.convert_i32x4_s": [0xfd, 0xfa, 0x01],
};
const MEMORY = {
  "i32.load": [[0x28], 2],
  "i64.load": [[0x29], 3],
  "f32.load": [[0x2a], 2],
  "f64.load": [[0x2b], 3],
  "i32.load8_u": [[0x2d], 0],
  "i64.load8_u": [[0x31], 0],
  "i64.load32_u": [[0x35], 2],
  "i32.store": [[0x36], 2],
  "i64.store": [[0x37], 3],
  "f64.store": [[0x39], 3],
  "v128.load": [[0xfd, 0x00], 4],
};

/** Every instruction the assembler knows without immediates or with a memory argument. */
export const SIMPLE_INSTRUCTIONS = [...Object.keys(PLAIN), ...Object.keys(MEMORY)];

const uleb = (n) => {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
};

/** Signed LEB128 of `n` (a BigInt) taken as a `bits`-bit two's-complement integer. */
const sleb = (n, bits) => {
  let v = BigInt.asIntN(bits, n);
  const out = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};

/** The 8 little-endian bytes of the binary64 nearest to the decimal `text`. */
const f64le = (text) => {
  const value = Number(text);
  if (Number.isNaN(value)) fail(`not a number: ${text}`);
  return [...new Uint8Array(new Float64Array([value]).buffer)];
};

const utf8 = (s) => [...new TextEncoder().encode(s)];
const vec = (items) => [...uleb(items.length), ...items.flat()];
const section = (id, items) => (items.length === 0 ? [] : [id, ...uleb(vec(items).length), ...vec(items)]);

/** The text as a tree: lists for parentheses, strings for atoms; comments dropped. */
function parse(text) {
  const tokens = text.replace(/;;[^\n]*/g, " ").match(/\(|\)|"[^"]*"|[^\s()]+/g) ?? [];
  let at = 0;
  const list = () => {
    const items = [];
    while (at < tokens.length) {
      const t = tokens[at++];
      if (t === "(") items.push(list());
      else if (t === ")") return items;
      else items.push(t);
    }
    return items;
  };
  return list()[0];
}

const integer = (t) => BigInt(t.replace(/_/g, ""));

function fail(message) {
  throw new Error(`wasm assembler: ${message}`);
}

/**
 * The binary module for `text` (the subset above).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function assemble(text) {
  const module = parse(text);
  if (!Array.isArray(module) || module[0] !== "module") fail("expected (module ...)");
  const types = [];
  const typeOf = (params, results) => {
    const bytes = [0x60, ...vec(params.map((t) => [TYPES[t]])), ...vec(results.map((t) => [TYPES[t]]))];
    let i = types.findIndex((b) => b.length === bytes.length && b.every((x, j) => x === bytes[j]));
    if (i < 0) i = types.push(bytes) - 1;
    return i;
  };
  const memories = [];
  const globals = [];
  const globalIndex = new Map();
  const funcs = [];
  const funcIndex = new Map();
  const exports = [];
  // First pass: names, so that a function or global may be used before its definition.
  let funcCount = 0;
  for (const item of module.slice(1)) {
    const named = typeof item[1] === "string" && item[1].startsWith("$");
    if (item[0] === "func" && named) funcIndex.set(item[1], funcCount);
    if (item[0] === "global") globalIndex.set(item[1], globalIndex.size);
    if (item[0] === "func") funcCount += 1;
  }
  for (const item of module.slice(1)) {
    const rest = item.slice(1);
    const name = rest[0]?.startsWith?.("$") ? rest.shift() : null;
    const exported = () => {
      const e = rest.find((x) => Array.isArray(x) && x[0] === "export");
      return e && JSON.parse(e[1]);
    };
    if (item[0] === "memory") {
      const e = exported();
      if (e) exports.push([...vec(utf8(e)), 0x02, ...uleb(memories.length)]);
      memories.push([0x00, ...uleb(Number(rest.at(-1)))]);
    } else if (item[0] === "global") {
      const [[mut, type], [constOp, value]] = rest;
      if (mut !== "mut" || constOp !== `${type}.const`) fail(`global ${name}: expected (mut T) (T.const v)`);
      const init =
        type === "f64" ? [0x44, ...f64le(value)] : [type === "i32" ? 0x41 : 0x42, ...sleb(integer(value), type === "i32" ? 32 : 64)];
      globals.push([TYPES[type], 0x01, ...init, 0x0b]);
    } else if (item[0] === "func") {
      const e = exported();
      if (e) exports.push([...vec(utf8(e)), 0x00, ...uleb(funcs.length)]);
      const locals = new Map();
      const params = [];
      const results = [];
      const declared = [];
      const body = [];
      for (const x of rest) {
        if (!Array.isArray(x)) body.push(x);
        else if (x[0] === "param") {
          locals.set(x[1], locals.size);
          params.push(x[2]);
        } else if (x[0] === "result") results.push(x[1]);
        else if (x[0] === "local") {
          locals.set(x[1], locals.size);
          declared.push(x[2]);
        } else if (x[0] !== "export") fail(`func ${name}: unexpected (${x[0]} ...)`);
      }
      // Locals as runs of one type, as wat2wasm writes them.
      const runs = [];
      for (const t of declared) {
        if (runs.length > 0 && runs.at(-1)[1] === t) runs.at(-1)[0] += 1;
        else runs.push([1, t]);
      }
      const code = [...vec(runs.map(([count, t]) => [...uleb(count), TYPES[t]])), ...instructions(body, name, locals, globalIndex, funcIndex)];
      funcs.push({ type: typeOf(params, results), code: [...uleb(code.length), ...code] });
    } else fail(`unexpected (${item[0]} ...)`);
  }
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(3, funcs.map((f) => uleb(f.type))),
    ...section(5, memories),
    ...section(6, globals),
    ...section(7, exports),
    ...section(10, funcs.map((f) => f.code)),
  ]);
}

/** The code of a flat instruction sequence, ending with the function's `end`. */
function instructions(tokens, func, locals, globals, funcs) {
  const out = [];
  const labels = []; // innermost last; null for an `if`
  let at = 0;
  const next = () => tokens[at++] ?? fail(`func ${func}: unexpected end of body`);
  const index = (map, what) => {
    const t = next();
    if (map.has(t)) return map.get(t);
    if (/^\d+$/.test(t)) return Number(t);
    return fail(`func ${func}: unknown ${what} ${t}`);
  };
  while (at < tokens.length) {
    const op = next();
    if (op in PLAIN) {
      out.push(...PLAIN[op]);
      if (op === "end") labels.pop();
    } else if (op in MEMORY) {
      const [code, align] = MEMORY[op];
      let offset = 0;
      while (/^(offset|align)=/.test(tokens[at] ?? "")) {
        const [key, value] = next().split("=");
        if (key === "offset") offset = Number(value);
        else fail(`func ${func}: only natural alignment is supported`);
      }
      out.push(...code, ...uleb(align), ...uleb(offset));
    } else if (op === "block" || op === "loop" || op === "if") {
      const label = op !== "if" && tokens[at]?.startsWith("$") ? next() : null;
      labels.push(label);
      out.push({ block: 0x02, loop: 0x03, if: 0x04 }[op], 0x40);
    } else if (op === "br" || op === "br_if") {
      const label = next();
      const depth = labels.lastIndexOf(label);
      if (depth < 0) fail(`func ${func}: unknown label ${label}`);
      out.push(op === "br" ? 0x0c : 0x0d, ...uleb(labels.length - 1 - depth));
    } else if (op === "local.get" || op === "local.set" || op === "local.tee") {
      out.push({ "local.get": 0x20, "local.set": 0x21, "local.tee": 0x22 }[op], ...uleb(index(locals, "local")));
    } else if (op === "global.get" || op === "global.set") {
      out.push(op === "global.get" ? 0x23 : 0x24, ...uleb(index(globals, "global")));
    } else if (op === "call") {
      out.push(0x10, ...uleb(index(funcs, "function")));
    } else if (op === "i32.const" || op === "i64.const") {
      out.push(op === "i32.const" ? 0x41 : 0x42, ...sleb(integer(next()), op === "i32.const" ? 32 : 64));
    } else if (op === "f64.const") {
      out.push(0x44, ...f64le(next()));
    } else if (op === "v128.const") {
      if (next() !== "i32x4") fail(`func ${func}: v128.const takes i32x4 lanes`);
      out.push(0xfd, 0x0c);
      for (let i = 0; i < 4; i += 1) {
        const lane = Number(BigInt.asUintN(32, integer(next())));
        out.push(lane & 0xff, (lane >>> 8) & 0xff, (lane >>> 16) & 0xff, lane >>> 24);
      }
    } else if (op === "i8x16.shuffle") {
      out.push(0xfd, 0x0d);
      for (let i = 0; i < 16; i += 1) out.push(Number(next()));
    } else fail(`func ${func}: unknown instruction ${op}`);
  }
  if (labels.length > 0) fail(`func ${func}: ${labels.length} block(s) not closed by end`);
  out.push(0x0b);
  return out;
}
