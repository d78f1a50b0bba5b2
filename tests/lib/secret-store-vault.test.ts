// The secret store with its values in OpenBao's KV v2 (bao server -dev from the pinned PyPI
// package), the ledger on real Postgres. Assertions read OpenBao directly with the root token:
// the active credential is where workloads fetch it, pending and retired versions are kept apart,
// discard and deleteAll erase them for good, and the table holds no value. AppRole login works too.
import { fingerprint, generateCredential } from '../../lib/secret-store';
import { VaultSecretStore } from '../../lib/secret-store-vault';
import { VaultClient } from '../../lib/vault';
import { startLocalOpenBao, type LocalOpenBao } from '../../local-servers/openbao';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
let bao: LocalOpenBao;
let root: VaultClient;
let store: VaultSecretStore;

beforeAll(async () => {
  [db, bao] = await Promise.all([createTestDatabase(), startLocalOpenBao()]);
  await db.pool.query("INSERT INTO nhis (id, kind, owner, connector, external_ref) VALUES ('svc_a', 'service_account', 'team', 'postgres', 'svc_a'), ('svc_b', 'service_account', 'team', 'postgres', 'svc_b')");
  root = new VaultClient({ addr: bao.addr, auth: { token: bao.token } });
  store = new VaultSecretStore(db.pool, root, { mount: 'secret', prefix: 'nhi' });
}, 60_000);
afterAll(async () => {
  await bao?.stop();
  await db?.drop();
});

const read = async (path: string) => (await root.request<{ data: { data: Record<string, unknown> } }>('GET', `secret/data/${path}`))?.data.data ?? null;

test('a pending version lives in OpenBao, not in the table; activate publishes it where workloads read', async () => {
  const value = generateCredential();
  const ref = await store.putPending('svc_a', value);
  expect(ref).toMatchObject({ version: 1, status: 'pending', fingerprint: fingerprint(value) });
  const { rows } = await db.pool.query('SELECT ciphertext FROM secrets WHERE id = $1', [ref.ref]);
  expect(rows[0].ciphertext).toBeNull();
  expect(await read('nhi/svc_a/versions/1')).toEqual({ value });
  expect(await read('nhi/svc_a')).toBeNull();
  expect(await store.reveal(ref.ref)).toBe(value);

  await store.activate(ref.ref);
  expect(await read('nhi/svc_a')).toEqual({ value, version: 1, fingerprint: fingerprint(value) });
});

test('rotation: the new version is published, the retired one kept apart and still revealable', async () => {
  const old = (await store.active('svc_a'))!;
  const value = generateCredential();
  const next = await store.putPending('svc_a', value);
  expect((await read('nhi/svc_a'))?.version).toBe(1);
  await store.activate(next.ref);
  await store.activate(next.ref);
  expect(await read('nhi/svc_a')).toEqual({ value, version: 2, fingerprint: fingerprint(value) });
  expect((await store.list('svc_a')).map((s) => s.status)).toEqual(['retired', 'active']);
  expect(await store.reveal(old.ref)).toEqual((await read('nhi/svc_a/versions/1'))?.value);
});

test('discard erases a pending value from OpenBao; the active one is untouched', async () => {
  const p = await store.putPending('svc_a', generateCredential());
  await store.discard(p.ref);
  expect(await read(`nhi/svc_a/versions/${p.version}`)).toBeNull();
  await expect(store.reveal(p.ref)).rejects.toThrow(/no stored value/);
  const active = (await store.active('svc_a'))!;
  await store.discard(active.ref);
  expect((await read('nhi/svc_a'))?.version).toBe(active.version);
});

test('deleteAll erases every copy in OpenBao and keeps fingerprints in the ledger; a retry is harmless', async () => {
  const active = (await store.active('svc_a'))!;
  expect(await store.deleteAll('svc_a')).toBeGreaterThan(0);
  expect(await read('nhi/svc_a')).toBeNull();
  for (const v of [1, 2, 3]) expect(await read(`nhi/svc_a/versions/${v}`)).toBeNull();
  expect(await root.request('GET', 'secret/metadata/nhi/svc_a')).toBeNull();
  expect((await store.findByFingerprint(active.fingerprint))[0].status).toBe('deleted');
  expect(await store.deleteAll('svc_a')).toBe(0);
});

test('AppRole login: the store works with a role limited to its prefix, and nothing outside it', async () => {
  await root.request('POST', 'sys/auth/approle', { type: 'approle' });
  const policy = 'path "secret/data/nhi/*" { capabilities = ["create", "update", "read"] }\npath "secret/metadata/nhi/*" { capabilities = ["delete"] }';
  await root.request('PUT', 'sys/policies/acl/nhi-orchestrator', { policy });
  await root.request('POST', 'auth/approle/role/nhi-orchestrator', { token_policies: ['nhi-orchestrator'], token_ttl: '5m' });
  const roleId = (await root.request<{ data: { role_id: string } }>('GET', 'auth/approle/role/nhi-orchestrator/role-id'))!.data.role_id;
  const secretId = (await root.request<{ data: { secret_id: string } }>('POST', 'auth/approle/role/nhi-orchestrator/secret-id', {}))!.data.secret_id;
  const viaRole = new VaultSecretStore(db.pool, new VaultClient({ addr: bao.addr, auth: { roleId, secretId } }), { mount: 'secret', prefix: 'nhi' });
  const value = generateCredential();
  const ref = await viaRole.putPending('svc_b', value);
  await viaRole.activate(ref.ref);
  expect(await read('nhi/svc_b')).toMatchObject({ value });
  const outside = new VaultClient({ addr: bao.addr, auth: { roleId, secretId } });
  await expect(outside.request('GET', 'secret/data/other/thing')).rejects.toMatchObject({ status: 403 });
  // The error names the path and status, never a value.
  const err = await outside.request('POST', 'secret/data/other/thing', { data: { value } }).catch((e: Error) => e);
  expect(String((err as Error).message)).not.toContain(value);
});
