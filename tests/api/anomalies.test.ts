// Anomaly throttling end to end through the HTTP API: real worker, real Temporal dev server (Updates,
// Schedules), real Postgres roles. Assertions read pg_roles / pg_auth_members, log in as the role,
// and open real sessions for the collector to count.
import request from 'supertest';
import { ensureUsageCollectorSchedule } from '../../lib/usage';
import { leakWorkflowId } from '../../workflows/leakContainment.contract';
import { waitFor } from '../helpers/wait';
import { createApiWorld, type ApiWorld } from '../helpers/api-world';
import type { TestWorld } from '../helpers/world';

let api: ApiWorld;
let w: TestWorld;

beforeAll(async () => {
  api = await createApiWorld();
  w = api.w;
}, 120_000);

afterAll(async () => api?.teardown());

const as = (who: string) => api.as(who);
const post = (path: string, who: string, payload: unknown) => api.post(path, who, payload);
const get = (path: string, who = 'alice') => api.get(path, who);
const MINUTE = 60_000;
const minuteAgo = (n: number) => new Date(Math.floor(Date.now() / MINUTE) * MINUTE - n * MINUTE + 1000).toISOString();

async function untilState(nhiId: string, state: string) {
  return waitFor(`anomaly ${nhiId} ${state}`, async () => {
    const r = await get(`/v1/anomalies/${nhiId}`);
    return r.body.state === state ? r.body : null;
  }, 30_000);
}

const roleState = (nhiId: string) => w.roleState(nhiId);

test('bad input: item-level errors by index, 400 when nothing is valid, 413 over 5000, roles, 404/409', async () => {
  const now = new Date().toISOString();
  const r = await post('/v1/usage', 'detector-bot', [
    { nhiId: 'ci_deployer', at: now, count: 3, operation: 'SELECT' },
    { nhiId: 'nobody_here', at: now, count: 1 },
    { nhiId: 'ci_deployer', at: now, count: -4 },
    { nhiId: 'ci_deployer', at: new Date(Date.now() + 3_600_000).toISOString(), count: 1 },
    { nhiId: 'ci_deployer', at: now, count: 1e12 },
    { nhiId: 'ci_deployer', at: 'yesterday', count: 1, extra: true },
    { nhiId: 'ci_deployer', at: now },
  ]);
  expect(r.status).toBe(202);
  expect(r.body.accepted).toBe(2);
  expect(r.body.rejected).toBe(5);
  const byIndex = (i: number) => r.body.errors.filter((e: { index: number }) => e.index === i).map((e: { path: string; message: string }) => `${e.path}: ${e.message}`);
  expect(byIndex(1)).toEqual(['body.1.nhiId: unknown NHI nobody_here']);
  expect(byIndex(2)[0]).toMatch(/^body\.2\.count: /);
  expect(byIndex(3)).toEqual(['body.3.at: more than 5 minutes in the future']);
  expect(byIndex(4)[0]).toMatch(/^body\.4\.count: /);
  expect(byIndex(5)).toEqual(expect.arrayContaining([expect.stringMatching(/^body\.5\.at: /), 'body.5.extra: unknown field']));
  const { rows } = await w.db.pool.query('SELECT sum(count)::int AS n FROM usage_buckets WHERE nhi_id = $1', ['ci_deployer']);
  expect(rows[0].n).toBe(4); // 3 + the default count of 1

  const none = await post('/v1/usage', 'detector-bot', [{ nhiId: 'nobody_here', at: now, count: 1 }]);
  expect(none.status).toBe(400);
  expect(none.body.error).toMatchObject({ code: 'validation_error', issues: [{ path: 'body.0.nhiId', message: 'unknown NHI nobody_here' }] });
  expect((await post('/v1/usage', 'detector-bot', [])).status).toBe(400);
  expect((await post('/v1/usage', 'detector-bot', { nhiId: 'ci_deployer' })).status).toBe(400);
  const big = await post('/v1/usage', 'detector-bot', Array.from({ length: 5001 }, () => ({ nhiId: 'ci_deployer', at: now })));
  expect(big.status).toBe(413);
  expect(big.body.error.code).toBe('payload_too_large');
  expect((await post('/v1/usage', 'alice', [{ nhiId: 'ci_deployer', at: now }])).status).toBe(403);

  const report = { nhiId: 'ci_deployer', observedRate: 100, baselineRate: 5, source: 'siem:test' };
  expect((await post('/v1/anomalies', 'detector-bot', { ...report, nhiId: 'nobody_here' })).body.error.issues).toEqual([{ path: 'body.nhiId', message: 'unknown NHI nobody_here' }]);
  expect((await post('/v1/anomalies', 'detector-bot', { ...report, observedRate: -1 })).status).toBe(400);
  expect((await post('/v1/anomalies', 'detector-bot', { ...report, source: 'bad source!' })).status).toBe(400);
  expect((await post('/v1/anomalies', 'bob', report)).status).toBe(403);

  expect((await get('/v1/anomalies/ci_deployer')).status).toBe(404);
  expect((await get('/v1/anomalies/NOT_A_SLUG')).status).toBe(400);
  expect((await post('/v1/anomalies/ci_deployer/clear', 'bob', { reason: 'false positive' })).status).toBe(404);
  expect((await post('/v1/anomalies/ci_deployer/confirm', 'bob', {})).status).toBe(404);
  expect((await post('/v1/anomalies/ci_deployer/clear', 'bob', {})).status).toBe(400);

  // Documented from the same schemas.
  const doc = (await request(api.app).get('/openapi.json')).body;
  for (const p of ['/v1/usage', '/v1/usage/{nhiId}', '/v1/anomalies', '/v1/anomalies/{nhiId}', '/v1/anomalies/{nhiId}/clear', '/v1/anomalies/{nhiId}/confirm', '/v1/anomalies/{nhiId}/approve-throttle']) {
    expect(doc.paths[p]).toBeDefined();
  }
});

test('usage history then a spike: throttled and verified at the target; another report joins; clear restores exactly', async () => {
  const nhiId = 'partner_acme';
  await w.connector.grant(w.role(nhiId), 'estate_writer');
  const before = await roleState(nhiId);

  const historyBatch = Array.from({ length: 60 }, (_, i) => ({ nhiId, at: minuteAgo(60 - i), count: 5, operation: 'SELECT' }));
  const h = await post('/v1/usage', 'detector-bot', historyBatch);
  expect(h.status).toBe(202);
  expect(h.body).toMatchObject({ accepted: 60, rejected: 0, anomalies: [] });

  const spike = await post('/v1/usage', 'detector-bot', [{ nhiId, at: new Date().toISOString(), count: 300, operation: 'COPY' }]);
  expect(spike.status).toBe(202);
  expect(spike.body.anomalies).toEqual([expect.objectContaining({ nhiId, observedRate: 300, workflowId: `anomaly-${nhiId}` })]);
  expect(spike.body.anomalies[0].threshold).toBeCloseTo(15, 0);

  const s = await untilState(nhiId, 'throttled_l1');
  expect(s.evidence[0]).toMatchObject({ source: 'usage', kind: 'detector', observedRate: 300, baselineSource: 'history', reportedBy: 'detector-bot' });
  const throttled = await roleState(nhiId);
  expect(throttled.rolconnlimit).toBe(2);
  expect(throttled.memberships.map((m: { group: string }) => m.group)).toEqual([w.ent('estate_readonly')]);
  expect(await w.inventoryStatus(nhiId)).toBe('throttled');

  // The usage view shows the buckets and the learnt baseline.
  const usage = await get(`/v1/usage/${nhiId}?minutes=90`);
  expect(usage.status).toBe(200);
  expect(usage.body.buckets.at(-1).count).toBeGreaterThanOrEqual(300);
  expect(usage.body.baseline).toMatchObject({ mean: expect.closeTo(5, 3), samples: 60 });

  // A second spike in the same minute is not signalled twice; an external report joins as evidence.
  const again = await post('/v1/usage', 'detector-bot', [{ nhiId, at: new Date().toISOString(), count: 50 }]);
  expect(again.body.anomalies).toEqual([]);
  const joined = await post('/v1/anomalies', 'detector-bot', { nhiId, observedRate: 310, baselineRate: 5, source: 'siem:splunk', eventId: 'finding-1', detail: 'bulk export' });
  expect(joined.status).toBe(202);
  await post('/v1/anomalies', 'detector-bot', { nhiId, observedRate: 310, baselineRate: 5, source: 'siem:splunk', eventId: 'finding-1' });
  const both = await waitFor('joined', async () => {
    const r = await get(`/v1/anomalies/${nhiId}`);
    return r.body.evidenceCount === 2 && r.body.duplicates === 1 ? r.body : null;
  });
  expect(both.runId).toBe(s.runId);

  // Only approvers (and admins) clear; the clear answers once access is back, exactly.
  expect((await post(`/v1/anomalies/${nhiId}/clear`, 'detector-bot', { reason: 'expected batch job' })).status).toBe(403);
  const cleared = await post(`/v1/anomalies/${nhiId}/clear`, 'bob', { reason: 'expected quarterly batch job' });
  expect(cleared.status).toBe(200);
  expect(cleared.body).toMatchObject({ state: 'cleared', level: 0, cleared: { by: 'bob', reason: 'expected quarterly batch job' }, restored: { exact: true } });
  expect(await roleState(nhiId)).toEqual(before);
  expect(await w.inventoryStatus(nhiId)).toBe('active');
  // The incident is closed right after the state turns cleared (the answer may come in between).
  const inc = await waitFor('incident resolved', async () => {
    const { rows } = await w.db.pool.query('SELECT status, closed_at FROM incidents WHERE id = $1', [cleared.body.incidentId]);
    return rows[0]?.status === 'resolved' ? rows : null;
  });
  expect(inc[0].closed_at).toBeTruthy();

  // Finished: clear and confirm are conflicts now.
  expect((await post(`/v1/anomalies/${nhiId}/clear`, 'bob', { reason: 'again' })).status).toBe(409);
  expect((await post(`/v1/anomalies/${nhiId}/confirm`, 'bob', {})).status).toBe(409);
});

test('confirm: leak containment runs as a child — the old password fails — then the throttle is lifted', async () => {
  const nhiId = 'agent_reports';
  const before = await roleState(nhiId);
  const oldPassword = await w.activePassword(nhiId);
  expect(await w.login(nhiId, oldPassword)).toBe('ok');
  const r = await post('/v1/anomalies', 'detector-bot', { nhiId, observedRate: 900, baselineRate: 20, source: 'siem:splunk', detail: 'prompt-injected agent exporting tables' });
  expect(r.status).toBe(202);
  await untilState(nhiId, 'throttled_l1');
  expect((await roleState(nhiId)).rolconnlimit).toBe(2);

  expect((await post(`/v1/anomalies/${nhiId}/confirm`, 'alice', {})).status).toBe(403);
  const c = await post(`/v1/anomalies/${nhiId}/confirm`, 'bob', { comment: 'exfiltration confirmed' });
  expect(c.status).toBe(200);
  expect(c.body.confirmed).toMatchObject({ by: 'bob', comment: 'exfiltration confirmed' });
  expect(c.body.containment).toMatchObject({ workflowId: leakWorkflowId(nhiId), mode: 'started' });

  const s = await untilState(nhiId, 'escalated');
  expect(s.containment.state).toBe('contained');
  expect(await w.login(nhiId, oldPassword)).toBe('28P01');
  expect(await w.login(nhiId, await w.activePassword(nhiId))).toBe('ok');
  expect(await roleState(nhiId)).toEqual(before);
  expect(await w.inventoryStatus(nhiId)).toBe('active');
  const leak = await get(`/v1/leaks/${nhiId}`);
  expect(leak.body).toMatchObject({ state: 'contained', alerts: [expect.objectContaining({ action: 'confirmed', reportedBy: 'bob' })] });
});

test('a critical NHI waits for a person: approve-throttle applies level 1, clear restores', async () => {
  const nhiId = 'svc_payments';
  const before = await roleState(nhiId);
  await post('/v1/anomalies', 'detector-bot', { nhiId, observedRate: 500, baselineRate: 50, source: 'siem:splunk' });
  const waiting = await untilState(nhiId, 'awaiting_confirmation');
  expect(waiting.level).toBe(0);
  expect(await roleState(nhiId)).toEqual(before);

  expect((await post(`/v1/anomalies/${nhiId}/approve-throttle`, 'detector-bot', {})).status).toBe(403);
  const a = await post(`/v1/anomalies/${nhiId}/approve-throttle`, 'bob', { comment: 'looks like a runaway job' });
  expect(a.status).toBe(200);
  expect(a.body).toMatchObject({ state: 'throttled_l1', level: 1, throttleApproved: { by: 'bob' } });
  expect((await roleState(nhiId)).rolconnlimit).toBe(2);
  expect((await roleState(nhiId)).memberships).toEqual([]); // svc_payments holds only estate_writer
  expect((await post(`/v1/anomalies/${nhiId}/approve-throttle`, 'bob', {})).status).toBe(409);

  const cleared = await post(`/v1/anomalies/${nhiId}/clear`, 'admin', { reason: 'job fixed' });
  expect(cleared.status).toBe(200);
  expect(await roleState(nhiId)).toEqual(before);
});

test('the collector schedule turns real sessions into usage buckets', async () => {
  const nhiId = 'ci_deployer';
  const password = await w.activePassword(nhiId);
  const sessions = await Promise.all([1, 2, 3].map(() => w.connectAs(nhiId, password)));
  const scheduleId = `usage-collector-${w.prefix}`;
  try {
    const { created } = await ensureUsageCollectorSchedule(w.env.client, { taskQueue: w.taskQueue, scheduleId, paused: true, input: { version: 1, intervalSeconds: 60 } });
    expect(created).toBe(true);
    // Again: brought up to date, not duplicated.
    expect((await ensureUsageCollectorSchedule(w.env.client, { taskQueue: w.taskQueue, scheduleId, paused: true, input: { version: 1, intervalSeconds: 60 } })).created).toBe(false);
    await w.env.client.schedule.getHandle(scheduleId).trigger();
    const row = await waitFor('collector sample', async () => {
      const { rows } = await w.db.pool.query('SELECT minute, count, detail FROM usage_collections WHERE nhi_id = $1 ORDER BY minute DESC LIMIT 1', [nhiId]);
      return rows[0];
    }, 30_000);
    const { rows: live } = await w.estateAdmin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [w.role(nhiId)]);
    expect(live[0].n).toBeGreaterThanOrEqual(3);
    expect(row.detail.sessions).toBeGreaterThanOrEqual(3);
    expect(row.detail.newSessions).toBeGreaterThanOrEqual(3);
    expect(Number(row.count)).toBe(row.detail.sessions + row.detail.newSessions);
    const { rows: bucket } = await w.db.pool.query('SELECT count FROM usage_buckets WHERE nhi_id = $1 AND minute = $2', [nhiId, row.minute]);
    expect(Number(bucket[0].count)).toBeGreaterThanOrEqual(Number(row.count));
  } finally {
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
    await w.env.client.schedule.getHandle(scheduleId).delete().catch(() => undefined);
  }
});
