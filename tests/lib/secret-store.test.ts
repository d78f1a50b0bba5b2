// The secret store on real Postgres: AES-256-GCM at rest, versions, one active, references only.
import { randomBytes } from 'node:crypto';
import { hmslHash, sha256Hex } from '../../lib/fingerprints';
import { fingerprint, generateCredential, TableSecretStore } from '../../lib/secret-store';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
let store: TableSecretStore;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query("INSERT INTO nhis (id, kind, owner, connector, external_ref) VALUES ('svc_a', 'service_account', 'team', 'postgres', 'svc_a')");
  store = new TableSecretStore(db.pool, randomBytes(32));
});
afterAll(async () => db?.drop());

test('values are encrypted at rest and only a reference and fingerprint come back', async () => {
  const value = generateCredential();
  const ref = await store.putPending('svc_a', value);
  expect(ref).toMatchObject({ nhiId: 'svc_a', version: 1, status: 'pending', fingerprint: fingerprint(value) });
  expect(JSON.stringify(ref)).not.toContain(value);
  const { rows } = await db.pool.query('SELECT ciphertext FROM secrets WHERE id = $1', [ref.ref]);
  expect(rows[0].ciphertext.toString('utf8')).not.toContain(value);
  expect(await store.reveal(ref.ref)).toBe(value);
});

test('activate retires the previous version; exactly one is active; activate is idempotent', async () => {
  const v1 = (await store.list('svc_a'))[0];
  await store.activate(v1.ref);
  const v2 = await store.putPending('svc_a', generateCredential());
  await store.activate(v2.ref);
  await store.activate(v2.ref);
  const all = await store.list('svc_a');
  expect(all.map((s) => s.status)).toEqual(['retired', 'active']);
  expect((await store.active('svc_a'))?.ref).toBe(v2.ref);
});

test('discard drops a pending value and never touches the active one', async () => {
  const p = await store.putPending('svc_a', generateCredential());
  await store.discard(p.ref);
  await expect(store.reveal(p.ref)).rejects.toThrow(/no stored value/);
  const active = await store.active('svc_a');
  await store.discard(active!.ref);
  expect((await store.get(active!.ref))?.status).toBe('active');
});

test('another key cannot decrypt; deleteAll erases values but keeps fingerprints', async () => {
  const active = (await store.active('svc_a'))!;
  await expect(new TableSecretStore(db.pool, randomBytes(32)).reveal(active.ref)).rejects.toThrow();
  expect((await store.findByFingerprint(active.fingerprint))[0].ref).toBe(active.ref);
  expect(await store.deleteAll('svc_a')).toBeGreaterThan(0);
  await expect(store.reveal(active.ref)).rejects.toThrow(/no stored value/);
  expect((await store.findByFingerprint(active.fingerprint))[0].status).toBe('deleted');
});

test("an AWS key's id and secret half are found alone, by fingerprint only: nothing of either is kept in clear", async () => {
  await db.pool.query("INSERT INTO nhis (id, kind, owner, connector, external_ref) VALUES ('svc_k', 'service_account', 'team', 'aws', 'user/k')");
  const [id, secret] = ['AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'];
  const ref = await store.putPending('svc_k', `${id}:${secret}`, { credentialId: id, secret });
  const refs = async (p: Promise<{ ref: string }[]>) => (await p).map((r) => r.ref);
  expect(await refs(store.findByFingerprint(sha256Hex(secret)))).toEqual([ref.ref]);
  expect(await refs(store.findByHmsl(hmslHash(secret)))).toEqual([ref.ref]);
  expect(await refs(store.findByFingerprint(sha256Hex(`${id}:${secret}`)))).toEqual([ref.ref]);
  expect(await refs(store.findByCredentialId('svc_k', id))).toEqual([ref.ref]);
  // The id names a credential of its own NHI only.
  expect(await store.findByCredentialId('svc_a', id)).toEqual([]);
  const { rows } = await db.pool.query('SELECT * FROM secret_fingerprints WHERE secret_id = $1', [ref.ref]);
  expect(rows).toHaveLength(3);
  expect(JSON.stringify(rows)).not.toMatch(new RegExp(`${id}|${secret.replace(/\//g, '\\/')}`));
});
