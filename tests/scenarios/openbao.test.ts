// The scenarios through the API on the demo estate's OpenBao AppRole (partner-sync, a third-party
// integration) on `bao server -dev`, a real worker on the Temporal dev server. Each assertion logs
// in to OpenBao with the AppRole's secret-ids, or reads the role with the root token.
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import request from 'supertest';
import { createRotationActivities } from '../../scenarios/leak/rotation';
import { createApiWorld, type ApiWorld } from '../helpers/api-world';
import { attachLocalOpenBao, type OpenBaoWorld } from '../helpers/openbao-world';
import { waitFor } from '../helpers/wait';

let api: ApiWorld;
let bao: OpenBaoWorld;
const NHI = 'bao-partner-sync';
const ROLE = 'partner-sync';

beforeAll(async () => {
  api = await createApiWorld({
    // A second detector: the first one's reports within the cool-down are merged, not rotated again.
    principals: { 'detector-2': ['detector'] },
    setup: async (w) => {
      bao = await attachLocalOpenBao(w);
    },
  });
}, 120_000);

afterAll(async () => {
  await api?.teardown();
  await bao?.stop();
});

const activeSecretId = async () => api.w.secrets.reveal((await api.w.secrets.active(NHI))!.ref);
const policies = async () => (await bao.root.request<{ data: { token_policies: string[] } }>('GET', `auth/approle/role/${ROLE}`))!.data.token_policies.sort();
const until = (what: string, path: string, ok: (b: any) => boolean) =>
  waitFor(what, async () => {
    const r = await request(api.app).get(path).set(api.as('alice'));
    return r.status === 200 && ok(r.body) ? r.body : null;
  }, 60_000);

test('JIT: a Vault policy attached to the AppRole for the window after one approval, detached on revoke', async () => {
  const res = await api.post('/v1/elevations', 'alice', { nhiId: NHI, entitlements: ['bao_kv_read'], justification: 'read the partner catalogue once', durationMinutes: 30 });
  expect(res.status).toBe(202);
  expect(await policies()).toEqual(['nhi-demo-kv-write']);
  expect((await api.post(`/v1/elevations/${res.body.id}/approve`, 'bob', {})).status).toBe(200);
  await until('active', `/v1/elevations/${res.body.id}`, (b) => b.state === 'active');
  expect(await policies()).toEqual(['nhi-demo-kv-read', 'nhi-demo-kv-write']);
  const done = await api.post(`/v1/elevations/${res.body.id}/revoke`, 'alice', { reason: 'read it' });
  expect(done.body).toMatchObject({ state: 'revoked' });
  expect(await policies()).toEqual(['nhi-demo-kv-write']);
});

test('anomaly: the throttle swaps the write policy for the read one; clear restores exactly', async () => {
  const report = await api.post('/v1/anomalies', 'detector-bot', { nhiId: NHI, observedRate: 900, baselineRate: 20, source: 'siem:audit-log', detail: 'burst of writes' });
  expect(report.status).toBe(202);
  await until('throttled', `/v1/anomalies/${NHI}`, (b) => b.state === 'throttled_l1');
  expect(await policies()).toEqual(['nhi-demo-kv-read', 'nhi-throttle-limit-2']);
  expect(await bao.login(ROLE, await activeSecretId())).toBe('ok');
  const cleared = await api.post(`/v1/anomalies/${NHI}/clear`, 'bob', { reason: 'partner backfill' });
  expect(cleared.status).toBe(200);
  expect(cleared.body).toMatchObject({ state: 'cleared', restored: { exact: true } });
  expect(await policies()).toEqual(['nhi-demo-kv-write']);
});

test('leak: a new secret-id issued and stored, the leaked one destroyed and refused by OpenBao', async () => {
  const leaked = await activeSecretId();
  expect(await bao.login(ROLE, leaked)).toBe('ok');
  const res = await api.post('/v1/leaks', 'detector-bot', { nhiId: NHI, source: 'trufflehog', severity: 'high' });
  expect(res.status).toBe(202);
  const s = await until('contained', `/v1/leaks/${NHI}`, (b) => b.state === 'contained');
  expect(s.verification).toMatchObject({ oldCredential: 'denied', newCredential: 'granted' });
  const fresh = await activeSecretId();
  expect(fresh).not.toBe(leaked);
  expect(await bao.login(ROLE, leaked)).toMatch(/invalid role or secret ID/);
  expect(await bao.login(ROLE, fresh)).toBe('ok');
  // The containment ended the role's tokens from before the rotation (the probe tokens are revoked too).
  expect(await bao.connector.listSessions(ROLE)).toHaveLength(1);
  await bao.connector.invalidateSessions(ROLE);
});

test('leak, crash window: a secret-id OpenBao issued that the store never kept is destroyed by the retried staging', async () => {
  const leaked = await activeSecretId();
  const a = { incidentId: randomUUID(), nhiId: NHI, rotationId: `rot-${randomUUID()}` };
  const run = <R>(fn: (x: typeof a) => Promise<R>) => new MockActivityEnvironment({ workflowExecution: { workflowId: `leak-${NHI}`, runId: randomUUID() } } as never).run(fn, a) as Promise<R>;
  let stray = '';
  // The worker dies right after OpenBao issued the secret-id, before the secret store kept it.
  const secrets = Object.assign(Object.create(api.w.secrets), {
    putPending: async (_nhiId: string, value: string) => {
      stray = value;
      throw new Error('worker died before the secret store kept the secret-id');
    },
  });
  await expect(run(createRotationActivities({ ...api.w.deps, secrets }).stageLeakCredential)).rejects.toThrow('worker died');
  expect(await bao.login(ROLE, stray)).toBe('ok');

  const acts = createRotationActivities(api.w.deps);
  await run(acts.stageLeakCredential);
  // Asked with the root token, not by logging in: failed logins count towards OpenBao's lockout of the role.
  const known = (secretId: string) => bao.root.request<{ data?: unknown }>('POST', `auth/approle/role/${ROLE}/secret-id/lookup`, { secret_id: secretId }).then((r) => Boolean(r?.data));
  expect(await known(stray)).toBe(false);
  await run(acts.applyLeakCredential);
  const fresh = await activeSecretId();
  expect(await bao.connector.listCredentialIds(ROLE)).toHaveLength(1);
  expect([await known(fresh), await known(leaked), await known(stray)]).toEqual([true, false, false]);
  expect(await bao.login(ROLE, fresh)).toBe('ok');
  await bao.connector.invalidateSessions(ROLE);
});

test('offboarding × leak on one AppRole: a leak during grace rotates the secret-id behind the login block, verified up to it; abort lets the new one in', async () => {
  const leaked = await activeSecretId();
  const off = await api.post('/v1/offboardings', 'admin', { nhiId: NHI, reason: 'partnership under review', graceDays: 1, watchDays: 1 });
  expect(off.status).toBe(202);
  await until('grace', `/v1/offboardings/${off.body.id}`, (b) => b.state === 'grace');
  expect(await bao.login(ROLE, leaked)).toMatch(/unauthorized by CIDR/);

  const before = (await request(api.app).get(`/v1/leaks/${NHI}`).set(api.as('alice'))).body.runId;
  // Another detector (the first one's reports are in their cool-down: merged, not rotated again).
  expect((await api.post('/v1/leaks', 'detector-2', { nhiId: NHI, source: 'gitleaks', severity: 'critical' })).status).toBe(202);
  const s = await until('contained', `/v1/leaks/${NHI}`, (b) => b.state === 'contained' && b.runId !== before);
  // The new secret-id is valid (Vault checked it before the CIDR block), the leaked one is destroyed.
  expect(s.verification).toMatchObject({ oldCredential: 'denied', newCredential: 'inconclusive', limitedBy: { restriction: 'login_disabled' } });
  const fresh = await activeSecretId();
  expect(await bao.login(ROLE, leaked)).toMatch(/invalid role or secret ID/);
  expect(await bao.login(ROLE, fresh)).toMatch(/unauthorized by CIDR/);

  const aborted = await api.post(`/v1/offboardings/${off.body.id}/abort`, 'admin', { reason: 'partnership renewed' });
  expect([200, 202]).toContain(aborted.status);
  await until('aborted', `/v1/offboardings/${off.body.id}`, (b) => b.state === 'aborted');
  // The state reads aborted a moment before the workflow closes: the next offboarding waits for it.
  await api.w.env.client.workflow.getHandle(off.body.id).result();
  expect(await bao.login(ROLE, fresh)).toBe('ok');
  expect(await bao.login(ROLE, leaked)).toMatch(/invalid role or secret ID/);
  expect(await policies()).toEqual(['nhi-demo-kv-write']);
});

test('offboarding an AppRole: policies detached, every secret-id destroyed, every token revoked; login by the old secret-id refused', async () => {
  const old = await activeSecretId();
  expect(await bao.login(ROLE, old)).toBe('ok');
  const res = await api.post('/v1/offboardings', 'admin', { nhiId: NHI, reason: 'partnership ended', graceDays: 0, watchDays: 0 });
  expect(res.status).toBe(202);
  await until('completed', `/v1/offboardings/${res.body.id}`, (b) => b.state === 'completed');
  expect(await bao.login(ROLE, old)).toMatch(/invalid role or secret ID/);
  expect(await policies()).not.toContain('nhi-demo-kv-write');
  expect(await bao.connector.listSessions(ROLE)).toEqual([]);
  expect((await bao.root.request('LIST', `auth/approle/role/${ROLE}/secret-id`)) ?? null).toBeNull();
  expect(await api.w.secrets.active(NHI)).toBeNull();
  expect(await api.w.inventoryStatus(NHI)).toBe('offboarded');
});
