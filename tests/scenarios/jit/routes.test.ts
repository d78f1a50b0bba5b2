// JIT elevation end to end through the HTTP API: real worker, real Temporal dev server (Updates),
// real Postgres roles. Assertions read role membership from Postgres itself.
import pino from 'pino';
import request from 'supertest';
import { createApp } from '../../../api/app';
import { jitSettings } from '../../../api/scenarios';
import { loadConfig } from '../../../lib/config';
import { createElevationRouter } from '../../../scenarios/jit/routes';
import { commitIntent, releaseIntents } from '../../../enforcement/intents';
import { reconcile } from '../../../enforcement/reconciler';
import { createApiWorld, type ApiWorld } from '../../helpers/api-world';
import type { TestWorld } from '../../helpers/world';
import { waitFor } from '../../helpers/wait';
import { keepHistory } from '../../helpers/histories';

let api: ApiWorld;
let w: TestWorld;
let app: ApiWorld['app'];

beforeAll(async () => {
  api = await createApiWorld({
    setup: async (world) => {
      await world.addNhi({ id: 'svc_etl', kind: 'service_account', criticality: 'medium' });
      await world.addNhi({ id: 'svc_sync', kind: 'service_account', criticality: 'medium' });
      await world.addNhi({ id: 'svc_hot', kind: 'service_account', criticality: 'medium' });
      await world.addNhi({ id: 'svc_wait', kind: 'service_account', criticality: 'medium' });
    },
  });
  ({ w, app } = api);
}, 120_000);

afterAll(async () => api?.teardown());

const as = (who: string) => api.as(who);
const body = (over: Record<string, unknown> = {}) => ({
  nhiId: 'svc_etl',
  entitlements: ['estate_readonly'],
  justification: 'investigate the failed nightly export',
  durationMinutes: 60,
  ...over,
});

const post = (path: string, who: string, payload: unknown, headers: Record<string, string> = {}) => api.post(path, who, payload, headers);
async function state(id: string) {
  return (await request(app).get(`/v1/elevations/${id}`).set(as('alice'))).body;
}
async function untilState(id: string, s: string) {
  return waitFor(`${id} ${s}`, async () => ((await state(id)).state === s ? state(id) : null));
}
async function runningFor(nhiId: string) {
  const { rows } = await w.db.pool.query('SELECT count(*)::int AS n FROM audit_events WHERE nhi_id = $1', [nhiId]);
  return rows[0].n as number;
}

describe('bad input: a precise 400 and no workflow started', () => {
  test.each([
    ['unknown NHI', { nhiId: 'nobody_here' }, 'body.nhiId', /unknown NHI/],
    ['unknown entitlement', { entitlements: ['estate_root'] }, 'body.entitlements', /unknown entitlement estate_root/],
    ['zero duration', { durationMinutes: 0 }, 'body.durationMinutes', /./],
    ['over the policy maximum', { entitlements: ['estate_readonly'], durationMinutes: 600 }, 'body.durationMinutes', /at most 480 minutes/],
    ['startAt in the past', { startAt: new Date(Date.now() - 3_600_000).toISOString() }, 'body.startAt', /past/],
    ['startAt too far ahead', { startAt: new Date(Date.now() + 8 * 86_400_000).toISOString() }, 'body.startAt', /7 days/],
    ['short justification', { justification: 'because' }, 'body.justification', /./],
    ['unknown field', { requestedBy: 'mallory' }, 'body.requestedBy', /unknown field/],
    ['repeated entitlement', { entitlements: ['estate_readonly', 'estate_readonly'] }, 'body.entitlements', /repeat/],
  ])('%s', async (_name, over, path, message) => {
    const before = await runningFor('svc_etl');
    const res = await post('/v1/elevations', 'alice', body(over));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    const issue = res.body.error.issues.find((i: { path: string }) => i.path === path);
    expect(issue?.message).toMatch(message);
    expect(await runningFor('svc_etl')).toBe(before);
  });

  test('401 without a token, 403 for a principal without the requester role', async () => {
    expect((await request(app).post('/v1/elevations').send(body())).status).toBe(401);
    const res = await post('/v1/elevations', 'bob', body());
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
  });

  test('unknown elevation → 404', async () => {
    const res = await post('/v1/elevations/jit-svc_etl-0123456789ab/approve', 'bob', {});
    expect(res.status).toBe(404);
  });

  test('a malformed elevation id is a 404 (it names nothing), as the docs say', async () => {
    for (const path of ['/v1/elevations/not-an-id', '/v1/elevations/JIT-X/approve', '/v1/elevations/jit-svc_etl-zz/revoke']) {
      const res = path.endsWith('not-an-id') ? await request(app).get(path).set(as('alice')) : await post(path, 'bob', {});
      expect(res.status).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'not_found', message: expect.stringMatching(/^no elevation /) });
    }
  });

  test('a duration far beyond policy gets the policy\'s limit, not a generic "too big"', async () => {
    const res = await post('/v1/elevations', 'alice', body({ durationMinutes: 100_000 }));
    expect(res.status).toBe(400);
    expect(res.body.error.issues).toEqual([{ path: 'body.durationMinutes', message: expect.stringMatching(/^at most 480 minutes for this request \(policy: /) }]);
  });
});

test('denied by policy: 403 denied_by_policy with the policy\'s reasons; the decision is recorded', async () => {
  const res = await post('/v1/elevations', 'alice', body({ nhiId: 'agent_reports', entitlements: ['estate_writer'], durationMinutes: 30 }));
  expect(res.status).toBe(403);
  expect(res.body.error.code).toBe('denied_by_policy');
  expect(res.body.error.message).toMatch(/estate_writer is granted only to service accounts and integrations/);
  expect(res.body.error.issues).toContainEqual({ path: 'policy', message: 'estate_writer is granted only to service accounts and integrations' });
  const id = String(res.headers.location).split('/').pop() as string;
  expect((await state(id)).state).toBe('denied');
  expect(await w.memberships('agent_reports')).not.toContain(w.ent('estate_writer'));
});

test('auto-approved request: granted at the target, "I\'m done" revokes and verifies', async () => {
  const res = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_sync', changeId: 'CHG-100' }));
  expect(res.status).toBe(202);
  expect(res.body.workflowId).toMatch(/^jit-svc_sync-[0-9a-f]{12}$/);
  const s = await untilState(res.body.id, 'active');
  expect(s.decision.outcome).toBe('auto_approve');
  expect(await w.memberships('svc_sync')).toContain(w.ent('estate_readonly'));
  // The inventory's read-back says the same as Postgres.
  const access = await request(app).get('/v1/nhis/svc_sync/access').set(as('alice'));
  expect(access.status).toBe(200);
  expect(access.body).toMatchObject({ nhiId: 'svc_sync', connector: 'postgres', exists: true, canLogin: true, entitlements: ['estate_readonly'] });
  expect((await request(app).get('/v1/nhis/nobody_here/access').set(as('alice'))).status).toBe(404);

  const done = await post(`/v1/elevations/${res.body.id}/revoke`, 'alice', { reason: 'finished early' });
  expect(done.status).toBe(200);
  expect(done.body).toMatchObject({ state: 'revoked', endReason: 'revoked_early', endedBy: 'alice' });
  expect(await w.memberships('svc_sync')).not.toContain(w.ent('estate_readonly'));
  expect((await request(app).get('/v1/nhis/svc_sync/access').set(as('alice'))).body.entitlements).toEqual([]);

  const again = await post(`/v1/elevations/${res.body.id}/revoke`, 'alice', {});
  expect(again.status).toBe(409);
});

test('Idempotency-Key: the same key and body give the same workflow; another body is refused', async () => {
  const key = { 'Idempotency-Key': `k-${Date.now()}` };
  const first = await post('/v1/elevations', 'alice', body({ durationMinutes: 30 }), key);
  const second = await post('/v1/elevations', 'alice', body({ durationMinutes: 30 }), key);
  expect(first.status).toBe(202);
  expect(second.status).toBe(202);
  expect(second.body.workflowId).toBe(first.body.workflowId);
  expect(second.body.idempotentReplay).toBe(true);
  const other = await post('/v1/elevations', 'alice', body({ durationMinutes: 45 }), key);
  expect(other.status).toBe(422);
  await request(app).post(`/v1/elevations/${first.body.id}/cancel`).set(as('alice'));
});

test('two distinct approvers for estate_admin on a critical NHI; no self-approval; one principal counts once', async () => {
  const res = await post('/v1/elevations', 'erin', body({ nhiId: 'svc_payments', entitlements: ['estate_admin'], ticket: 'CHG-2001', durationMinutes: 60 }));
  expect(res.status).toBe(202);
  const id = res.body.id;
  const pending = await untilState(id, 'awaiting_approval');
  expect(pending.requiredApprovals).toBe(2);

  const self = await post(`/v1/elevations/${id}/approve`, 'erin', {});
  expect(self.status).toBe(403);
  expect(self.body.error.message).toMatch(/own request/);

  const notApprover = await post(`/v1/elevations/${id}/approve`, 'alice', {});
  expect(notApprover.status).toBe(403);

  const one = await post(`/v1/elevations/${id}/approve`, 'bob', { comment: 'ok for the migration' });
  expect(one.status).toBe(200);
  expect(one.body.approvals).toHaveLength(1);
  expect(one.body.state).toBe('awaiting_approval');
  expect((await post(`/v1/elevations/${id}/approve`, 'bob', {})).status).toBe(409);
  expect(await w.memberships('svc_payments')).not.toContain(w.ent('estate_admin'));

  // The deciding approval answers once the grant is read back from the target, never 'granting'.
  const two = await post(`/v1/elevations/${id}/approve`, 'carol', {});
  expect(two.status).toBe(200);
  expect(two.body.state).toBe('active');
  expect(two.body.entitlements).toEqual([expect.objectContaining({ entitlement: 'estate_admin', present: true })]);
  expect(await w.memberships('svc_payments')).toContain(w.ent('estate_admin'));

  const end = await post(`/v1/elevations/${id}/revoke`, 'bob', { reason: 'approver ends it' });
  expect(end.body.state).toBe('revoked');
  expect(await w.memberships('svc_payments')).not.toContain(w.ent('estate_admin'));
  await keepHistory(w.env.client, 'jit-approved-by-two-revoked-early', res.body.workflowId);
});

test('a deciding approval that outlasts the wait answers 202 with the status so far and a Location to poll', async () => {
  // The same API with no patience for the grant's read-back.
  const impatient = createApp({
    pool: w.db.pool,
    temporal: { client: w.env.client, taskQueue: w.taskQueue, namespace: 'default' },
    config: { API_BODY_LIMIT: '1mb' },
    logger: pino({ level: 'silent' }),
    extraRouters: [
      createElevationRouter({
        pool: w.db.pool,
        client: w.env.client,
        taskQueue: w.taskQueue,
        authorityKey: w.deps.authorityKey,
        policy: w.deps.policy,
        grantableEntitlements: (c) => w.deps.connectors.get(c).listGrantableEntitlements(),
        settings: jitSettings(loadConfig({ NODE_ENV: 'test' })),
        approveWaitMs: 0,
      }),
    ],
  });
  const res = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_wait', entitlements: ['estate_writer'], durationMinutes: 30 }));
  const id = res.body.id;
  await untilState(id, 'awaiting_approval');
  const approved = await request(impatient).post(`/v1/elevations/${id}/approve`).set(as('bob')).send({});
  expect(approved.status).toBe(202);
  expect(approved.headers.location).toBe(`/v1/elevations/${id}`);
  expect(approved.body.approvals).toEqual([expect.objectContaining({ by: 'bob' })]);
  await untilState(id, 'active');
  expect(await w.memberships('svc_wait')).toContain(w.ent('estate_writer'));
  expect((await post(`/v1/elevations/${id}/revoke`, 'alice', {})).body.state).toBe('revoked');
});

test('deny ends the request; approving afterwards is a 409', async () => {
  const res = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_etl', entitlements: ['estate_writer'], durationMinutes: 30 }));
  const id = res.body.id;
  await untilState(id, 'awaiting_approval');
  const d = await post(`/v1/elevations/${id}/deny`, 'bob', { reason: 'use the read replica instead' });
  expect(d.status).toBe(200);
  await untilState(id, 'denied');
  expect((await post(`/v1/elevations/${id}/approve`, 'carol', {})).status).toBe(409);
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_writer'));
  await keepHistory(w.env.client, 'jit-denied-by-approver', res.body.workflowId);
});

test('extend within the maximum moves the expiry; beyond it is refused with the reason', async () => {
  const res = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_etl', durationMinutes: 60 }));
  const id = res.body.id;
  const s = await untilState(id, 'active');
  const ok = await post(`/v1/elevations/${id}/extend`, 'alice', { minutes: 60, reason: 'backfill is slower than planned' });
  expect(ok.status).toBe(200);
  expect(Date.parse(ok.body.expiresAt) - Date.parse(s.expiresAt)).toBe(60 * 60_000);
  const tooLong = await post(`/v1/elevations/${id}/extend`, 'alice', { minutes: 400 });
  expect(tooLong.status).toBe(400);
  expect(tooLong.body.error.code).toBe('policy_denied');
  expect(tooLong.body.error.message).toMatch(/8 hours/);
  const notRequester = await post(`/v1/elevations/${id}/extend`, 'dave', { minutes: 10 });
  expect(notRequester.status).toBe(403);
  await post(`/v1/elevations/${id}/revoke`, 'alice', {});
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
  await keepHistory(w.env.client, 'jit-extended-then-revoked', res.body.workflowId);
});

test('closing a change window reaches only that change\'s elevations', async () => {
  const a1 = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_etl', changeId: 'CHG-A' }));
  const a2 = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_sync', changeId: 'CHG-A' }));
  const b = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_sync', changeId: 'CHG-B' }));
  for (const r of [a1, a2, b]) await untilState(r.body.id, 'active');

  expect((await post('/v1/change-windows/CHG-A/close', 'alice', {})).status).toBe(403);
  const closed = await waitFor('visibility', async () => {
    const r = await post('/v1/change-windows/CHG-A/close', 'deploy-bot', { reason: 'deploy finished' });
    return r.body.reached === 2 ? r : null;
  });
  expect(closed.body.workflowIds.sort()).toEqual([a1.body.id, a2.body.id].sort());
  await untilState(a1.body.id, 'revoked');
  await untilState(a2.body.id, 'revoked');
  expect((await state(a1.body.id)).endReason).toBe('change_window_closed');
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
  // CHG-B still holds svc_sync's access.
  expect((await state(b.body.id)).state).toBe('active');
  expect(await w.memberships('svc_sync')).toContain(w.ent('estate_readonly'));

  const list = await waitFor('list', async () => {
    const r = await request(app).get('/v1/elevations?nhiId=svc_sync&state=active').set(as('alice'));
    return r.body.items?.some((i: { id: string }) => i.id === b.body.id) ? r : null;
  });
  expect(list.status).toBe(200);
  await post(`/v1/elevations/${b.body.id}/revoke`, 'alice', {});
  expect(await w.memberships('svc_sync')).not.toContain(w.ent('estate_readonly'));
});

test('ending an elevation: another requester is refused (403) whatever it claims; an admin may', async () => {
  const res = await post('/v1/elevations', 'alice', body({ nhiId: 'svc_etl', durationMinutes: 60 }));
  const id = res.body.id;
  await untilState(id, 'active');
  // dave holds the requester role but did not request it; the route sends no roles, the workflow looks them up.
  const refused = await post(`/v1/elevations/${id}/revoke`, 'dave', { reason: 'not mine' });
  expect(refused.status).toBe(403);
  expect(refused.body.error.code).toBe('forbidden');
  expect(refused.body.error.message).toMatch(/dave may not end this elevation/);
  expect((await state(id)).state).toBe('active');
  expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));

  const ended = await post(`/v1/elevations/${id}/revoke`, 'admin', { reason: 'admin ends it' });
  expect(ended.status).toBe(200);
  expect(ended.body).toMatchObject({ state: 'revoked', endedBy: 'admin' });
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
});

test('an elevation approved while a throttle holds the NHI: no 500, it ends rolled_back (access withheld), nothing granted', async () => {
  const nhi = 'svc_hot';
  const rdeps = { pool: w.db.pool, connectors: w.deps.connectors };
  const ctx = (stepId: string) => ({ workflowId: 'anomaly-api-test', stepId, scenario: 'anomaly', actor: 'test', reason: 'throttle under test' });
  await reconcile(rdeps, nhi, ctx('throttle'), (c) => commitIntent(c, nhi, 'anomaly-api-test', { kind: 'restrict', restriction: 'throttle', level: 1, connectionLimit: 2 }));
  const throttled = await w.roleState(nhi);
  try {
    const res = await post('/v1/elevations', 'alice', body({ nhiId: nhi, entitlements: ['estate_writer'], durationMinutes: 30 }));
    expect(res.status).toBe(202);
    await untilState(res.body.id, 'awaiting_approval');
    const approved = await post(`/v1/elevations/${res.body.id}/approve`, 'bob', {});
    expect(approved.status).toBe(200);
    const end = await untilState(res.body.id, 'rolled_back');
    expect(end.failure).toMatch(/estate_writer is withheld from svc_hot by anomaly-api-test \(throttle\)/);
    expect(end.grantedAt).toBeUndefined();
    expect(await w.memberships(nhi)).not.toContain(w.ent('estate_writer'));
    expect(await w.roleState(nhi)).toEqual(throttled);
  } finally {
    await reconcile(rdeps, nhi, ctx('clear'), (c) => releaseIntents(c, nhi, 'anomaly-api-test').then(() => undefined));
  }
  expect(await w.roleState(nhi)).toMatchObject({ rolconnlimit: -1, memberships: [] });
});
