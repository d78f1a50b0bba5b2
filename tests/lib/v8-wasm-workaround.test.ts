// The V8 abort that killed workers holding thousands of JIT windows (lib/v8-wasm-workaround.ts),
// reproduced by a script of its own: without the workaround it aborts the process on the Node
// versions whose V8 has the bug; with the policy engine loaded first (as every worker and API
// process does) it runs to the end.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.join(__dirname, '../..');
const script = path.join(__dirname, 'wasm-lazy-deopt.js');
const major = Number(process.versions.node.split('.')[0]);
// Seen abort on 20.20 and 22.23; 24.22 runs it to the end.
const affected = major < 24;

const node = (args: string[]) => spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });

describe('the V8 deoptimisation abort on calls into Wasm', () => {
  it(`${affected ? 'aborts' : 'does not abort'} this Node (${process.version}) without the workaround`, () => {
    const r = node([script]);
    if (affected) {
      expect(r.signal).toBe('SIGTRAP');
      expect(r.stderr).toContain('unreachable code');
      expect(r.stderr).toContain('DoComputeBuiltinContinuation');
    } else {
      expect(r.status).toBe(0);
    }
  });

  it('is avoided once the policy engine is loaded', () => {
    const r = node(['-r', '@swc-node/register', '-e', `require('./lib/policy-engine'); require(${JSON.stringify(script)});`]);
    expect(r.stderr).not.toContain('unreachable code');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('survived 400002');
  });
});
