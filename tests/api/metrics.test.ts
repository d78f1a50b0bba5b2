// GET /metrics on the real things: a JIT window that really expires on the local dev server is seen
// as a started and ended workflow, a revoke and a revocation lag; audit rows of the shapes the
// scenarios write feed containment, drift and escalation series; who may read it; a source that is
// down leaves the scrape answering.
import { randomBytes } from 'node:crypto';
import { Pool } from 'pg';
import pino from 'pino';
import request from 'supertest';
import { createApp } from '../../api/app';
import { isLoopbackAddress } from '../../api/metrics';
import { appendAudit } from '../../lib/audit';
import { loadConfig } from '../../lib/config';
import { createMetrics } from '../../lib/metrics';
import { jitWorkflowId, revokeUpdate, statusQuery, type JitElevationInput } from '../../scenarios/jit/contract';
import { jitElevation } from '../../scenarios/jit/workflow';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';

let w: TestWorld;
let app: ReturnType<typeof createApp>;

const build = (env: Record<string, string> = {}, metrics?: ReturnType<typeof createMetrics>) =>
  createApp({
    pool: w.db.pool,
    temporal: { client: w.env.client, taskQueue: w.taskQueue, namespace: 'default' },
    config: loadConfig({ NODE_ENV: 'test', ...env }),
    logger: pino({ level: 'silent' }),
    metrics,
  });

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'local', runWorker: true });
  await w.addNhi({ id: 'svc_metrics', kind: 'service_account', criticality: 'medium' });
  app = build();
}, 120_000);
afterAll(async () => w?.teardown());

const scrape = async (target = app) => {
  const res = await request(target).get('/metrics');
  expect(res.status).toBe(200);
  return res.text;
};

/** The value of one series, labels given in the order prom-client prints them; 0 when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(/,(?=[a-z_]+=")/) : [];
    if (want.length === have.length && want.every((l) => have.includes(l))) return Number(m[3]);
  }
  return 0;
}

test('Prometheus text: HTTP latency by route pattern, both sources up', async () => {
  await request(app).get('/healthz').expect(200);
  await request(app).get(`/no/such/${randomBytes(4).toString('hex')}`).expect(404);
  const res = await request(app).get('/metrics').expect(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = res.text;
  expect(value(text, 'nhi_http_request_duration_seconds_count', { method: 'GET', route: '/healthz', status: '200' })).toBe(1);
  // Unmatched paths share one label: raw paths would make the series unbounded.
  expect(value(text, 'nhi_http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status: '404' })).toBe(1);
  expect(text).not.toMatch(/route="\/no\/such/);
  expect(value(text, 'nhi_metrics_source_up', { source: 'audit' })).toBe(1);
  expect(value(text, 'nhi_metrics_source_up', { source: 'visibility' })).toBe(1);
  expect(text).toMatch(/^nhi_api_process_resident_memory_bytes /m);
});

test('a JIT elevation revoked early: started and ended, its revoke and receipt counted, no lag sample', async () => {
  const before = await scrape();
  const input: JitElevationInput = {
    version: 1,
    nhiId: 'svc_metrics',
    entitlements: ['estate_readonly'],
    justification: 'metrics test window',
    durationMinutes: 30,
    requestedBy: 'alice',
    requestedAt: new Date().toISOString(),
    settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 2 },
  };
  const workflowId = jitWorkflowId(input.nhiId, randomBytes(4).toString('hex'));
  const handle = await w.env.client.workflow.start(jitElevation, { taskQueue: w.taskQueue, workflowId, args: [{ authority: w.sign(workflowId, 'start', 'alice'), ...input }] });
  await waitFor('active', async () => (await handle.query(statusQuery)).state === 'active');
  const running = await waitFor('the open window in visibility', async () => {
    const text = await scrape();
    return value(text, 'nhi_workflows_running', { scenario: 'jit' }) === 1 ? text : null;
  });
  expect(value(running, 'nhi_workflows_started', { scenario: 'jit' })).toBe(1);
  await handle.executeUpdate(revokeUpdate, { args: [{ by: 'alice', reason: 'done', authority: w.sign(workflowId, 'revoke', 'alice') }] });
  const result = await handle.result();
  expect({ state: result.state, endReason: result.endReason }).toEqual({ state: 'revoked', endReason: 'revoked_early' });

  const jit = { scenario: 'jit' };
  // Visibility is eventually consistent: wait for the closed run to be counted.
  const after = await waitFor('the closed run in visibility', async () => {
    const text = await scrape();
    return value(text, 'nhi_workflows_ended', { ...jit, outcome: 'completed' }) === 1 ? text : null;
  });
  expect(value(before, 'nhi_workflows_started', jit)).toBe(0);
  expect(value(after, 'nhi_workflows_started', jit)).toBe(1);
  expect(value(after, 'nhi_workflows_running', jit)).toBe(0);
  expect(value(after, 'nhi_audit_events_total', { ...jit, action: 'entitlement.grant', outcome: 'granted' })).toBe(1);
  expect(value(after, 'nhi_audit_events_total', { ...jit, action: 'entitlement.revoke', outcome: 'revoked' })).toBe(1);
  expect(value(after, 'nhi_audit_events_total', { ...jit, action: 'elevation.receipt', outcome: 'no_standing_access' })).toBe(1);
  // Lag is measured from a window's end; an early revoke has none (metrics-revocation-lag.test.ts has the expiry).
  expect(value(after, 'nhi_revocation_lag_seconds_count', jit)).toBe(0);
  expect(value(after, 'nhi_escalations_total', { ...jit, action: 'revocation.escalate' })).toBe(0);
}, 60_000);

test('audit rows feed containment, revocation lag from an extended end, drift and escalations', async () => {
  const before = await scrape();
  const wf = `metrics-feed-${randomBytes(4).toString('hex')}`;
  const row = (stepId: string, over: Partial<Parameters<typeof appendAudit>[1]>) => appendAudit(w.db.pool, { workflowId: wf, stepId, actor: 'system', action: 'x', outcome: 'x', ...over });
  await row('close', { scenario: 'leak', action: 'leak.incident_close', outcome: 'contained', details: { receivedToContainedMs: 250, detectedToContainedMs: 900 } });
  await row('escalate:1', { scenario: 'leak', action: 'leak.escalate', outcome: 'escalated' });
  await row('drift', { scenario: 'drift', action: 'access.drift', outcome: 'reverted' });
  // Granted until an hour ago, extended to end 2 s ago: the lag is measured from the extended end.
  const { rows } = await w.db.pool.query<{ now: Date }>('SELECT now() AS now');
  const dbNow = rows[0].now.getTime();
  await row('grant', { scenario: 'jit', action: 'entitlement.grant', outcome: 'granted', target: { expiresAt: new Date(dbNow - 3_600_000).toISOString() } });
  await row('extend', { scenario: 'jit', action: 'elevation.extend', outcome: 'extended', details: { expiresAt: new Date(dbNow - 2_000).toISOString() } });
  await row('release', { scenario: 'jit', action: 'entitlement.revoke', outcome: 'revoked', target: { reason: 'window_expired' } });
  // An early revoke has no window end to be late for.
  await row('release-early', { scenario: 'jit', action: 'entitlement.revoke', outcome: 'revoked', target: { reason: 'revoked_early' } });
  const after = await scrape();
  const delta = (name: string, labels: Record<string, string>) => value(after, name, labels) - value(before, name, labels);

  expect(delta('nhi_containment_duration_seconds_count', { scenario: 'leak', from: 'received' })).toBe(1);
  expect(delta('nhi_containment_duration_seconds_sum', { scenario: 'leak', from: 'received' })).toBeCloseTo(0.25);
  expect(delta('nhi_containment_duration_seconds_sum', { scenario: 'leak', from: 'detected' })).toBeCloseTo(0.9);
  expect(delta('nhi_containment_duration_seconds_bucket', { scenario: 'leak', from: 'received', le: '0.25' })).toBe(1);
  expect(delta('nhi_containment_duration_seconds_bucket', { scenario: 'leak', from: 'received', le: '0.1' })).toBe(0);
  expect(delta('nhi_escalations_total', { scenario: 'leak', action: 'leak.escalate' })).toBe(1);
  expect(delta('nhi_reconcile_drift_found_total', { outcome: 'reverted' })).toBe(1);
  expect(delta('nhi_revocation_lag_seconds_count', { scenario: 'jit' })).toBe(1);
  // From the extension's end (≥ 2 s), not the grant's (≥ 3600 s); the bound only tells the two apart.
  const lag = delta('nhi_revocation_lag_seconds_sum', { scenario: 'jit' });
  expect(lag).toBeGreaterThanOrEqual(2);
  expect(lag).toBeLessThan(3600);
  expect(delta('nhi_audit_events_total', { scenario: 'jit', action: 'entitlement.revoke', outcome: 'revoked' })).toBe(2);

  // Each row is counted once, however often it is scraped.
  const again = await scrape();
  expect(value(again, 'nhi_escalations_total', { scenario: 'leak', action: 'leak.escalate' })).toBe(value(after, 'nhi_escalations_total', { scenario: 'leak', action: 'leak.escalate' }));
});

test('two scrapes at once count each new row once', async () => {
  const base = await scrape();
  const wf = `metrics-race-${randomBytes(4).toString('hex')}`;
  for (let i = 0; i < 5; i++) await appendAudit(w.db.pool, { workflowId: wf, stepId: `s${i}`, scenario: 'drift', actor: 'system', action: 'access.drift', outcome: 'reported' });
  await Promise.all([scrape(), scrape(), scrape()]);
  const after = await scrape();
  expect(value(after, 'nhi_reconcile_drift_found_total', { outcome: 'reported' }) - value(base, 'nhi_reconcile_drift_found_total', { outcome: 'reported' })).toBe(5);
});

test('rows appended before the first scrape are counted (the cursor starts with the app)', async () => {
  const metrics = createMetrics({ pool: w.db.pool, client: w.env.client, taskQueue: w.taskQueue, processMetrics: false });
  const fresh = build({}, metrics);
  // Let the cursor's start query land before the row, as it does when an app starts.
  await waitFor('the cursor set', async () => (await w.db.pool.query("SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT max(seq)%'")).rowCount === 0);
  await new Promise((r) => setTimeout(r, 100));
  await appendAudit(w.db.pool, { workflowId: `metrics-early-${randomBytes(4).toString('hex')}`, stepId: 'e', scenario: 'offboarding', actor: 'system', action: 'enforcement.escalate', outcome: 'escalated' });
  const text = await scrape(fresh);
  expect(value(text, 'nhi_escalations_total', { scenario: 'offboarding', action: 'enforcement.escalate' })).toBe(1);
  expect(text).not.toMatch(/^nhi_api_process/m);
});

describe('who may read /metrics', () => {
  test.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', true],
    ['10.0.0.5', false],
    ['::ffff:10.0.0.5', false],
    ['fe80::1', false],
    ['::', false],
    ['128.0.0.1', false],
    ['', false],
    [undefined, false],
  ])('loopback(%p) = %p', (address, loopback) => {
    expect(isLoopbackAddress(address)).toBe(loopback);
  });

  test('with METRICS_TOKEN every caller needs it, loopback included; the answer is the one error shape', async () => {
    const token = randomBytes(24).toString('hex');
    const guarded = build({ METRICS_TOKEN: token });
    const none = await request(guarded).get('/metrics').expect(401);
    expect(none.body.error.code).toBe('unauthenticated');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.text).not.toMatch(/nhi_/);
    await request(guarded).get('/metrics').set('Authorization', `Bearer ${token}x`).expect(401);
    await request(guarded).get('/metrics').set('Authorization', `Basic ${token}`).expect(401);
    const ok = await request(guarded).get('/metrics').set('Authorization', `Bearer ${token}`).expect(200);
    expect(ok.text).toMatch(/^# TYPE nhi_http_request_duration_seconds histogram/m);
  });

  test('a METRICS_TOKEN shorter than 32 characters stops the start', () => {
    expect(() => loadConfig({ NODE_ENV: 'test', METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
  });
});

test('a source that is down is reported down and the scrape still answers', async () => {
  const dead = new Pool({ connectionString: 'postgresql://nobody@127.0.0.1:1/none', connectionTimeoutMillis: 500 });
  try {
    const metrics = createMetrics({ pool: dead, client: w.env.client, taskQueue: w.taskQueue, processMetrics: false });
    const text = await scrape(createApp({ pool: dead, temporal: { client: w.env.client, taskQueue: w.taskQueue, namespace: 'default' }, config: loadConfig({ NODE_ENV: 'test' }), logger: pino({ level: 'silent' }), metrics }));
    expect(value(text, 'nhi_metrics_source_up', { source: 'audit' })).toBe(0);
    expect(value(text, 'nhi_metrics_source_up', { source: 'visibility' })).toBe(1);
  } finally {
    await dead.end();
  }
});
