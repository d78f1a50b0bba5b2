// The V8 abort of lib/v8-wasm-workaround.ts in a few lines (run by v8-wasm-workaround.test.ts): a
// hot JS function calls into Wasm that returns a JS object (externref) and calls back into JS; the
// callback changes a field's representation that the caller's optimised code relies on, so the
// caller is deoptimised while the Wasm call is still on the stack. Node 20/22 abort on the return.
// The module: (import "env" "cb" (func (param externref) (result externref)))
//             (func (export "f") (param externref) (result externref) local.get 0 call 0)
const bytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x06, 0x01, 0x60, 0x01, 0x6f, 0x01, 0x6f, // type: (externref) -> externref
  0x02, 0x0a, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x02, 0x63, 0x62, 0x00, 0x00, // import env.cb
  0x03, 0x02, 0x01, 0x00, // one function of that type
  0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x01, // export it as f
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x10, 0x00, 0x0b, // body: local.get 0, call cb
]);
let trigger = false;
const shape = { x: 1 };
const other = { x: 2 };
function cb(a) {
  if (trigger) other.x = 1.5; // Smi → double for every object of this map: dependent code is deoptimised
  return a;
}
const { f } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { cb } }).exports;
function caller(a) {
  const r = f(a);
  return r.x + shape.x;
}
let sum = 0;
for (let i = 0; i < 200_000; i++) sum += caller(shape);
trigger = true;
sum += caller(shape);
process.stdout.write(`survived ${sum}\n`);
