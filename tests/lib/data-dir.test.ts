// Issue 13: the data folder is private (0700 folders, 0600 files), production refuses the dev
// secret-store key file, and demo tokens reach only a terminal. Folders live inside the repository
// (.data-test-*, git-ignored), never outside it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { productionProblems, secureDataDir } from '../../lib/data-dir';
import { loadConfig } from '../../lib/config';
import { projectRoot } from '../../lib/paths';
import { demoTokenLines } from '../../scripts/demo-tokens';

const dirs: string[] = [];
const freshDir = () => {
  const d = path.join(projectRoot, `.data-test-${randomBytes(4).toString('hex')}`);
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const mode = (p: string) => statSync(p).mode & 0o777;

test('secureDataDir makes a world-readable temporal.db and its folders private', () => {
  const dir = freshDir();
  mkdirSync(path.join(dir, 'postgres', 'base'), { recursive: true, mode: 0o755 });
  writeFileSync(path.join(dir, 'temporal.db'), 'x', { mode: 0o644 });
  writeFileSync(path.join(dir, 'postgres', 'base', '1'), 'x', { mode: 0o640 });
  chmodSync(dir, 0o755);
  const changed = secureDataDir(dir);
  expect(changed.length).toBe(5); // the folder, temporal.db, postgres, postgres/base, its file
  expect(mode(dir)).toBe(0o700);
  expect(mode(path.join(dir, 'temporal.db'))).toBe(0o600);
  expect(mode(path.join(dir, 'postgres'))).toBe(0o700);
  expect(mode(path.join(dir, 'postgres', 'base', '1'))).toBe(0o600);
  expect(secureDataDir(dir)).toEqual([]); // idempotent
  // As root with the embedded PostgreSQL (run as the postgres user): the top folder only traversable.
  expect(secureDataDir(dir, { traversable: true })).toEqual([dir]);
  expect(mode(dir)).toBe(0o711);
});

test('production refuses the dev key file beside the data, a missing key and demo mode', () => {
  const dir = freshDir();
  mkdirSync(dir);
  const key = randomBytes(32).toString('base64');
  const authority = randomBytes(32).toString('base64');
  const prod = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'production', DATA_DIR: dir, AUTHORITY_KEY: authority, ...env });
  expect(productionProblems(prod({ SECRET_STORE_KEY: key }))).toEqual([]);
  expect(productionProblems(prod({}))).toEqual([expect.stringMatching(/SECRET_STORE_KEY is required/)]);
  expect(productionProblems(prod({ SECRET_STORE_KEY: key, AUTHORITY_KEY: '' }))).toEqual([expect.stringMatching(/AUTHORITY_KEY is required in production/)]);
  writeFileSync(path.join(dir, 'secret-store.key'), key + '\n', { mode: 0o600 });
  expect(productionProblems(prod({ SECRET_STORE_KEY: key }))).toEqual([expect.stringMatching(/secret-store\.key is the dev secret-store key, and SECRET_STORE_KEY is that key/)]);
  expect(productionProblems(prod({ SECRET_STORE_KEY: randomBytes(32).toString('hex'), DEMO: 'true' }))).toEqual([
    expect.stringMatching(/is the dev secret-store key: a production key never sits beside/),
    expect.stringMatching(/DEMO must be off/),
  ]);
  expect(productionProblems(loadConfig({ NODE_ENV: 'development', DATA_DIR: dir }))).toEqual([]);
});

test('npm start in production with the dev key file stops before starting anything', async () => {
  const dir = freshDir();
  mkdirSync(dir);
  const key = randomBytes(32).toString('base64');
  writeFileSync(path.join(dir, 'secret-store.key'), key + '\n', { mode: 0o600 });
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', '@swc-node/register', 'scripts/start.ts'], {
      cwd: projectRoot,
      env: { ...process.env, NODE_ENV: 'production', DATA_DIR: dir, SECRET_STORE_KEY: key, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', TEMPORAL_ADDRESS: '127.0.0.1:1' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/refusing to start in production:\n- .*secret-store\.key is the dev secret-store key/);
}, 60_000);

test('demo tokens are printed only to a terminal; otherwise the banner says where they are', () => {
  const a = { tokens: { alice: 'nhi_secret' }, principals: [{ id: 'alice', roles: ['requester' as const] }], dataDir: '/d', api: 'http://x' };
  expect(demoTokenLines({ ...a, tty: true }).join('\n')).toContain('nhi_secret');
  const piped = demoTokenLines({ ...a, tty: false }).join('\n');
  expect(piped).not.toContain('nhi_secret');
  expect(piped).toContain('/d/demo-tokens.json');
});
