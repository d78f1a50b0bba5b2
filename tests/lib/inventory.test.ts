import { createHash } from 'node:crypto';
import {
  createNhi,
  getNhi,
  listCredentialFingerprints,
  listNhis,
  newNhiSchema,
  NhiConflictError,
  updateStatus,
  type NewNhi,
} from '../../lib/inventory';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const nhi = (id: string, extra: Partial<NewNhi> = {}): NewNhi => ({
  id,
  kind: 'service_account',
  owner: 'team-payments',
  connector: 'postgres',
  externalRef: id,
  ...extra,
});

test('create fills defaults and get returns the same record', async () => {
  const created = await createNhi(db.pool, nhi('svc_payments', { tags: ['pci'], usageBaseline: 12.5, exposureHints: [{ repository: 'acme/payments', secretType: 'postgres' }] }));
  expect(created).toMatchObject({
    id: 'svc_payments',
    kind: 'service_account',
    criticality: 'medium',
    status: 'active',
    tags: ['pci'],
    usageBaseline: 12.5,
    dependents: [],
    exposureHints: [{ repository: 'acme/payments', secretType: 'postgres' }],
  });
  expect(await getNhi(db.pool, 'svc_payments')).toEqual(created);
  expect(await getNhi(db.pool, 'nope')).toBeNull();
  expect(await getNhi(db.pool, 'NOT A SLUG')).toBeNull();
});

test('duplicates are a typed conflict: same id, or same connector identity', async () => {
  await createNhi(db.pool, nhi('ci_deployer'));
  await expect(createNhi(db.pool, nhi('ci_deployer', { externalRef: 'other' }))).rejects.toThrow(new NhiConflictError('NHI ci_deployer already exists', 'ci_deployer'));
  await expect(createNhi(db.pool, nhi('ci_deployer2', { externalRef: 'ci_deployer' }))).rejects.toBeInstanceOf(NhiConflictError);
});

test('the schema mirrors the table constraints (bad input never reaches Postgres)', () => {
  expect(newNhiSchema.safeParse(nhi('Bad_Id')).success).toBe(false);
  expect(newNhiSchema.safeParse(nhi('ok_id', { kind: 'robot' as never })).success).toBe(false);
  expect(newNhiSchema.safeParse(nhi('ok_id', { owner: 'a\u0000b' })).success).toBe(false);
  expect(newNhiSchema.safeParse({ ...nhi('ok_id'), extra: 1 }).success).toBe(false);
  expect(newNhiSchema.safeParse(nhi('ok_id', { usageBaseline: -1 })).success).toBe(false);
});

test('list filters and pages by id', async () => {
  for (const id of ['agent_a', 'agent_b', 'agent_c']) await createNhi(db.pool, nhi(id, { kind: 'ai_agent', owner: 'team-ai' }));
  const first = await listNhis(db.pool, { kind: 'ai_agent', limit: 2 });
  expect(first.items.map((n) => n.id)).toEqual(['agent_a', 'agent_b']);
  expect(first.nextCursor).toBe('agent_b');
  const second = await listNhis(db.pool, { kind: 'ai_agent', limit: 2, cursor: first.nextCursor! });
  expect(second.items.map((n) => n.id)).toEqual(['agent_c']);
  expect(second.nextCursor).toBeNull();
  expect((await listNhis(db.pool, { owner: 'team-ai', status: 'active' })).items).toHaveLength(3);
  expect((await listNhis(db.pool, { owner: 'team-ai', status: 'throttled' })).items).toHaveLength(0);
});

test('updateStatus sets, compares-and-sets, and is idempotent', async () => {
  await createNhi(db.pool, nhi('partner_acme', { kind: 'integration' }));
  expect((await updateStatus(db.pool, 'partner_acme', 'offboarding', { from: 'active' }))?.status).toBe('offboarding');
  // A retry of the same transition still succeeds.
  expect((await updateStatus(db.pool, 'partner_acme', 'offboarding', { from: 'active' }))?.status).toBe('offboarding');
  // A transition from the wrong state does not happen.
  expect(await updateStatus(db.pool, 'partner_acme', 'throttled', { from: 'active' })).toBeNull();
  expect((await getNhi(db.pool, 'partner_acme'))?.status).toBe('offboarding');
  expect((await updateStatus(db.pool, 'partner_acme', 'offboarded'))?.status).toBe('offboarded');
  expect(await updateStatus(db.pool, 'ghost', 'active')).toBeNull();
});

test('credential fingerprints come from the secret store, newest first, without values', async () => {
  await createNhi(db.pool, nhi('agent_reports', { kind: 'ai_agent' }));
  const fp = (v: string) => createHash('sha256').update(v).digest('hex');
  await db.pool.query(
    `INSERT INTO secrets (nhi_id, version, status, fingerprint, iv, auth_tag, ciphertext, activated_at)
     VALUES ('agent_reports', 1, 'retired', $1, '\\x00', '\\x00', '\\x00', now()), ('agent_reports', 2, 'active', $2, '\\x00', '\\x00', '\\x00', now())`,
    [fp('old'), fp('new')],
  );
  const creds = await listCredentialFingerprints(db.pool, 'agent_reports');
  expect(creds.map((c) => [c.version, c.status, c.fingerprint])).toEqual([
    [2, 'active', fp('new')],
    [1, 'retired', fp('old')],
  ]);
  for (const c of creds) expect(Object.keys(c).sort()).toEqual(['activatedAt', 'createdAt', 'fingerprint', 'ref', 'retiredAt', 'status', 'version']);
});

test('dependents may be names or records (who owns them, why they matter)', async () => {
  const nhi = await createNhi(db.pool, {
    id: 'partner_dep',
    kind: 'integration',
    owner: 'team-x',
    connector: 'postgres',
    externalRef: 'partner_dep',
    dependents: ['nightly-export', { id: 'invoice-sync', kind: 'integration', owner: 'team-finance', description: 'pulls invoices' }],
  });
  expect((await getNhi(db.pool, nhi.id))?.dependents).toEqual(['nightly-export', { id: 'invoice-sync', kind: 'integration', owner: 'team-finance', description: 'pulls invoices' }]);
});
