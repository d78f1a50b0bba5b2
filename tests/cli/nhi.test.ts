// The `nhi` bin, run as a newcomer would: a child process against a real database.
import { authenticate } from '../../lib/principals';
import { nhi } from '../helpers/cli';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

test('token create prints exactly one line, the token, which authenticates with those roles', async () => {
  const r = await nhi(['token', 'create', '--principal', 'alice', '--roles', 'approver,requester'], { DATABASE_URL: db.url });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^nhi_[A-Za-z0-9_-]{43}\n$/);
  expect(await authenticate(db.pool, r.stdout.trim())).toEqual({ id: 'alice', roles: ['requester', 'approver'] });
});

test('token create on an existing principal sets its roles to the ones given', async () => {
  const r = await nhi(['token', 'create', '--principal', 'alice', '--roles', 'admin'], { DATABASE_URL: db.url });
  expect(r.code).toBe(0);
  expect(await authenticate(db.pool, r.stdout.trim())).toEqual({ id: 'alice', roles: ['admin'] });
});

test('bad roles: non-zero exit, a clear message, nothing on stdout, nothing written', async () => {
  const r = await nhi(['token', 'create', '--principal', 'mallory', '--roles', 'requester,superuser'], { DATABASE_URL: db.url });
  expect(r.code).not.toBe(0);
  expect(r.stdout).toBe('');
  expect(r.stderr).toContain('unknown role "superuser"; valid roles: requester, approver, deployer, detector, admin');
  const { rowCount } = await db.pool.query("SELECT 1 FROM principals WHERE id = 'mallory'");
  expect(rowCount).toBe(0);
});

test('missing options and bad principal ids are usage errors', async () => {
  const missing = await nhi(['token', 'create', '--principal', 'bob'], { DATABASE_URL: db.url });
  expect(missing.code).not.toBe(0);
  expect(missing.stderr).toContain("required option '--roles <r1,r2>' not specified");
  const badId = await nhi(['token', 'create', '--principal', 'bob smith', '--roles', 'requester'], { DATABASE_URL: db.url });
  expect(badId.code).not.toBe(0);
  expect(badId.stderr).toContain('--principal');
});

test('an unreachable database is explained, with the password masked', async () => {
  const r = await nhi(['token', 'create', '--principal', 'bob', '--roles', 'requester'], { DATABASE_URL: 'postgres://postgres:s3cret@127.0.0.1:1/nhi' });
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr).toContain('cannot reach PostgreSQL at postgres://postgres:***@127.0.0.1:1/nhi');
  expect(r.stderr).not.toContain('s3cret');
});

test('invalid configuration names the variable', async () => {
  const r = await nhi(['principals', 'list'], { DATABASE_URL: 'mysql://nope' });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('DATABASE_URL');
});

test('principals list shows principals, roles and token counts', async () => {
  await nhi(['token', 'create', '--principal', 'deploy-bot', '--roles', 'deployer'], { DATABASE_URL: db.url });
  const r = await nhi(['principals', 'list', '--json'], { DATABASE_URL: db.url });
  expect(r.code).toBe(0);
  const list = JSON.parse(r.stdout);
  expect(list).toEqual([
    expect.objectContaining({ id: 'alice', roles: ['admin'], activeTokens: 2 }),
    expect.objectContaining({ id: 'deploy-bot', roles: ['deployer'], activeTokens: 1 }),
  ]);
  const table = await nhi(['principals', 'list'], { DATABASE_URL: db.url });
  expect(table.stdout.split('\n')[0]).toMatch(/^PRINCIPAL\s+ROLES\s+TOKENS\s+LAST USED$/);
});

test('token list shows ids, never tokens; token revoke by id stops the token', async () => {
  const created = await nhi(['token', 'create', '--principal', 'ci-bot', '--roles', 'deployer', '--label', 'pipeline'], { DATABASE_URL: db.url });
  const token = created.stdout.trim();
  const listed = await nhi(['token', 'list', '--principal', 'ci-bot', '--json'], { DATABASE_URL: db.url });
  expect(listed.code).toBe(0);
  expect(listed.stdout).not.toContain(token);
  const [info] = JSON.parse(listed.stdout);
  expect(info).toMatchObject({ principalId: 'ci-bot', label: 'pipeline', revokedAt: null });

  const revoked = await nhi(['token', 'revoke', info.id], { DATABASE_URL: db.url });
  expect(revoked.code).toBe(0);
  expect(await authenticate(db.pool, token)).toBeNull();
  const again = await nhi(['token', 'revoke', info.id], { DATABASE_URL: db.url });
  expect(again.code).toBe(1);
  expect(again.stderr).toContain('no active token matches');
});

test('issue 13: token create --ttl sets the expiry; a bad --ttl is refused and creates nothing', async () => {
  const r = await nhi(['token', 'create', '--principal', 'ttl-bot', '--roles', 'detector', '--ttl', '12h', '--label', 'ttl'], { DATABASE_URL: db.url });
  expect(r.code).toBe(0);
  const { rows } = await db.pool.query<{ hours: number }>(`SELECT round(extract(epoch FROM expires_at - created_at) / 3600)::int AS hours FROM api_tokens WHERE label = 'ttl'`);
  expect(rows).toEqual([{ hours: 12 }]);
  const bad = await nhi(['token', 'create', '--principal', 'ttl-bot2', '--roles', 'detector', '--ttl', 'forever'], { DATABASE_URL: db.url });
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toMatch(/duration like 90d/);
  expect((await db.pool.query("SELECT 1 FROM principals WHERE id = 'ttl-bot2'")).rowCount).toBe(0);
});
