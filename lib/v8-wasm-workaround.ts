// Node 20 and 22 (V8 11–12) abort the whole process — "Fatal error … unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation — when optimised code that inlined a call into Wasm
// returning a JS object (an externref, as every Cedar call does) is deoptimised while that call is
// on the stack. A worker deciding thousands of elevations met it within minutes; Node 24's V8 no
// longer does. Not inlining JS→Wasm calls avoids it; calls then go through V8's generic wrapper,
// at no cost measurable beside a Cedar decision (docs/performance.md). V8 flags are per process, so
// this covers the workflow thread too. Reproducer: tests/lib/v8-wasm-workaround.test.ts.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');
