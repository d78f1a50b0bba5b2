import {
  authenticate,
  createPrincipal,
  createToken,
  getPrincipal,
  hashToken,
  hasRole,
  listPrincipals,
  listTokens,
  parseRoles,
  parseTtl,
  PrincipalExistsError,
  revokeToken,
  UnknownPrincipalError,
  upsertPrincipal,
} from '../../lib/principals';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

test('a token authenticates as its principal; only its sha256 is stored', async () => {
  await createPrincipal(db.pool, { id: 'alice', roles: ['requester'] });
  const token = await createToken(db.pool, 'alice', 'laptop');
  expect(token).toMatch(/^nhi_[A-Za-z0-9_-]{43}$/);
  expect(await authenticate(db.pool, token)).toEqual({ id: 'alice', roles: ['requester'] });

  const { rows } = await db.pool.query('SELECT token_sha256, label FROM api_tokens WHERE principal_id = $1', ['alice']);
  expect(rows).toEqual([{ token_sha256: hashToken(token), label: 'laptop' }]);
  expect(JSON.stringify(rows)).not.toContain(token);
});

test('unknown, malformed and revoked tokens are rejected', async () => {
  await createPrincipal(db.pool, { id: 'bob', roles: ['approver'] });
  const token = await createToken(db.pool, 'bob');
  expect(await authenticate(db.pool, `nhi_${'A'.repeat(43)}`)).toBeNull();
  expect(await authenticate(db.pool, 'not-a-token')).toBeNull();
  expect(await authenticate(db.pool, `${token}x`)).toBeNull();
  expect(await authenticate(db.pool, "nhi_' OR 1=1 --")).toBeNull();

  expect(await revokeToken(db.pool, token)).toBe(true);
  expect(await revokeToken(db.pool, token)).toBe(false); // already revoked: harmless
  expect(await authenticate(db.pool, token)).toBeNull();
});

test('revocation by token id; other tokens of the principal keep working', async () => {
  await createPrincipal(db.pool, { id: 'carol', roles: ['approver'] });
  const a = await createToken(db.pool, 'carol', 'a');
  const b = await createToken(db.pool, 'carol', 'b');
  const tokens = await listTokens(db.pool, 'carol');
  expect(tokens.map((t) => t.label)).toEqual(['a', 'b']);
  expect(await revokeToken(db.pool, tokens[0].id)).toBe(true);
  expect(await authenticate(db.pool, a)).toBeNull();
  expect(await authenticate(db.pool, b)).not.toBeNull();
  expect(await revokeToken(db.pool, 'nonsense')).toBe(false);
});

test('last_used_at is set on use and not rewritten on every request', async () => {
  await createPrincipal(db.pool, { id: 'dave', roles: ['detector'] });
  const token = await createToken(db.pool, 'dave');
  expect((await listTokens(db.pool, 'dave'))[0].lastUsedAt).toBeNull();
  await authenticate(db.pool, token);
  const first = (await listTokens(db.pool, 'dave'))[0].lastUsedAt;
  expect(first).not.toBeNull();
  await authenticate(db.pool, token);
  expect((await listTokens(db.pool, 'dave'))[0].lastUsedAt).toBe(first);
});

test('createPrincipal refuses a taken id; upsert replaces roles; roles are validated and normalised', async () => {
  await createPrincipal(db.pool, { id: 'erin', roles: ['requester'] });
  await expect(createPrincipal(db.pool, { id: 'erin', roles: ['admin'] })).rejects.toBeInstanceOf(PrincipalExistsError);
  await upsertPrincipal(db.pool, { id: 'erin', roles: ['deployer', 'requester', 'deployer'] });
  expect(await getPrincipal(db.pool, 'erin')).toEqual({ id: 'erin', roles: ['requester', 'deployer'] });
  await expect(upsertPrincipal(db.pool, { id: 'erin', roles: ['root' as never] })).rejects.toThrow();
  await expect(upsertPrincipal(db.pool, { id: 'bad id!', roles: [] })).rejects.toThrow();
  expect(await getPrincipal(db.pool, 'nobody')).toBeNull();
});

test('a token for an unknown principal is refused clearly', async () => {
  await expect(createToken(db.pool, 'ghost')).rejects.toBeInstanceOf(UnknownPrincipalError);
});

test('listPrincipals counts active tokens', async () => {
  await createPrincipal(db.pool, { id: 'frank', roles: ['admin'] });
  const t = await createToken(db.pool, 'frank');
  await createToken(db.pool, 'frank');
  await revokeToken(db.pool, t);
  const frank = (await listPrincipals(db.pool)).find((p) => p.id === 'frank');
  expect(frank).toMatchObject({ id: 'frank', roles: ['admin'], activeTokens: 1 });
});

test('roles: admin implies every role; parseRoles names bad roles', () => {
  expect(hasRole({ roles: ['admin'] }, 'approver')).toBe(true);
  expect(hasRole({ roles: ['requester'] }, 'approver')).toBe(false);
  expect(hasRole({ roles: ['requester'] }, 'approver', 'requester')).toBe(true);
  expect(parseRoles(' approver,requester ,approver')).toEqual(['requester', 'approver']);
  expect(() => parseRoles('approver,boss')).toThrow(/unknown role "boss"; valid roles: requester, approver, deployer, detector, admin/);
  expect(() => parseRoles(' , ')).toThrow(/no roles/);
});

test('issue 13: tokens expire — 90 days by default, --ttl sets it; an expired token no longer authenticates', async () => {
  await createPrincipal(db.pool, { id: 'ttl-user', roles: ['detector'] });
  const normal = await createToken(db.pool, 'ttl-user', 'default');
  const short = await createToken(db.pool, 'ttl-user', 'short', { ttlSeconds: 120 });
  const [d, s] = await listTokens(db.pool, 'ttl-user');
  const days = (t: { createdAt: string; expiresAt: string }) => (Date.parse(t.expiresAt) - Date.parse(t.createdAt)) / 86_400_000;
  expect(Math.round(days(d))).toBe(90);
  expect(Math.round(days(s) * 86_400)).toBe(120);
  expect(await authenticate(db.pool, short)).not.toBeNull();
  // Its end has come (the database's clock decides): refused like a revoked one.
  await db.pool.query(`UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE label = 'short'`);
  expect(await authenticate(db.pool, short)).toBeNull();
  expect(await authenticate(db.pool, normal)).not.toBeNull();
  await expect(createToken(db.pool, 'ttl-user', undefined, { ttlSeconds: 0 })).rejects.toThrow(/ttl/);
  expect(parseTtl('90d')).toBe(90 * 86_400);
  expect(parseTtl('30m')).toBe(1800);
  for (const bad of ['0d', '10s', '731d', '1y', '-5m', '']) expect(() => parseTtl(bad)).toThrow(/duration/);
});
