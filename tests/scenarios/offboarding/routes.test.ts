// Offboarding end to end through the HTTP API: real worker, real Temporal dev server (Updates and
// visibility), real Postgres roles. Assertions read pg_roles / pg_auth_members and log in.
import { createToken, upsertPrincipal } from '../../../lib/principals';
import { abortUpdate, statusQuery } from '../../../scenarios/offboarding/contract';
import { waitFor } from '../../helpers/wait';
import { createApiWorld, type ApiWorld } from '../../helpers/api-world';
import type { TestWorld } from '../../helpers/world';

let api: ApiWorld;
let w: TestWorld;

beforeAll(async () => {
  api = await createApiWorld({
    setup: (world) => world.addNhi({ id: 'svc_legacy', kind: 'service_account', criticality: 'medium' }).then(() => undefined),
    scenario: { offboardingSettings: { checkIntervalMinutes: 24 * 60 } },
    // partner_acme's owner, as a principal: policy lets the owner of an integration offboard it.
    principals: { 'team-partnerships': ['requester'] },
  });
  w = api.w;
}, 120_000);

afterAll(async () => api?.teardown());

const post = (path: string, who: string, payload: object) => api.post(path, who, payload);
const get = (path: string, who = 'alice') => api.get(path, who);
const offboard = (who: string, over: Record<string, unknown> = {}) =>
  post('/v1/offboardings', who, { nhiId: 'partner_acme', reason: 'contract with Acme ended', ticket: 'TICKET-9', graceDays: 1, watchDays: 1, ...over });

async function untilState(id: string, state: string) {
  return waitFor(`${id} ${state}`, async () => {
    const r = await get(`/v1/offboardings/${id}`);
    return r.body.state === state ? r.body : null;
  }, 30_000);
}

const roleState = (nhiId: string) => w.roleState(nhiId);

describe('bad input: a clear 4xx and nothing changed', () => {
  test.each([
    ['graceDays above 90', { graceDays: 91 }, 'body.graceDays'],
    ['negative graceDays', { graceDays: -1 }, 'body.graceDays'],
    ['fractional graceDays', { graceDays: 1.5 }, 'body.graceDays'],
    ['watchDays above 730', { watchDays: 731 }, 'body.watchDays'],
    ['watchDays as a string', { watchDays: '30' }, 'body.watchDays'],
    ['no reason', { reason: undefined }, 'body.reason'],
    ['unknown field', { requestedBy: 'mallory' }, 'body.requestedBy'],
  ])('%s → 400', async (_name, over, path) => {
    const res = await offboard('admin', over);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_error');
    expect(res.body.error.issues.map((i: { path: string }) => i.path)).toContain(path);
    expect(await w.inventoryStatus('partner_acme')).toBe('active');
  });

  test('unknown NHI → 404', async () => {
    const res = await offboard('admin', { nhiId: 'nobody_here' });
    expect(res.status).toBe(404);
    expect(res.body.error.message).toMatch(/nobody_here not found/);
  });

  test('policy: not an admin and not the owner → 403 with the reason; the owner of a critical service account neither', async () => {
    const res = await offboard('alice');
    expect(res.status).toBe(403);
    expect(res.body.error.message).toMatch(/only an admin, or the owner of an integration/);
    await upsertPrincipal(w.db.pool, { id: 'team-payments', roles: ['requester'] });
    api.tokens['team-payments'] = await createToken(w.db.pool, 'team-payments');
    const owner = await offboard('team-payments', { nhiId: 'svc_payments' });
    expect(owner.status).toBe(403);
    expect(await w.inventoryStatus('partner_acme')).toBe('active');
    expect(await w.inventoryStatus('svc_payments')).toBe('active');
    await expect(w.env.client.workflow.getHandle('offboard-partner_acme').describe()).rejects.toThrow();
  });

  test('unknown offboarding → 404', async () => {
    expect((await get('/v1/offboardings/offboard-nobody_here')).status).toBe(404);
    expect((await post('/v1/offboardings/offboard-nobody_here/abort', 'admin', { reason: 'oops' })).status).toBe(404);
    // A malformed id names nothing: 404, as for an unknown one (the docs' promise).
    const malformed = await get('/v1/offboardings/not-an-id');
    expect(malformed.status).toBe(404);
    expect(malformed.body.error.message).toBe('no offboarding not-an-id');
    expect((await post('/v1/offboardings/NOT-AN-ID/confirm', 'admin', {})).status).toBe(404);
  });
});

test('abort during grace restores memberships, login and limits exactly; then confirm finalises; abort afterwards is 409', async () => {
  // Something the baseline must bring back besides memberships.
  await w.estateAdmin.query(`ALTER ROLE ${w.role('partner_acme')} CONNECTION LIMIT 7`);
  const password = await w.secrets.reveal((await w.secrets.active('partner_acme'))!.ref);
  const before = await roleState('partner_acme');
  expect(before).toMatchObject({ rolcanlogin: true, rolconnlimit: 7 });
  expect(before.memberships).toEqual([{ group: w.ent('estate_readonly'), grantor: w.connectorRole, admin_option: false, inherit_option: true, set_option: true }]);

  // The owner offboards their own integration.
  const started = await offboard('team-partnerships');
  expect(started.status).toBe(202);
  expect(started.body).toMatchObject({ id: 'offboard-partner_acme', graceDays: 1, watchDays: 1 });
  expect(started.headers.location).toBe('/v1/offboardings/offboard-partner_acme');
  const id = started.body.id;
  const grace = await untilState(id, 'grace');
  expect(grace.attestation.outcome).toBe('no_standing_access');
  expect(await w.inventoryStatus('partner_acme')).toBe('offboarding');
  const disabled = await roleState('partner_acme');
  expect(disabled).toMatchObject({ rolcanlogin: false, memberships: [] });
  expect(await w.login('partner_acme', password)).toBe('28000');

  // Temporal UI: the summary, and the search attributes.
  const d = await w.env.client.workflow.getHandle(id).describe();
  expect(await d.staticSummary()).toBe('Offboard partner_acme (TICKET-9)');
  const meta = await w.env.client.workflow.getHandle(id).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  expect(meta.currentDetails).toMatch(/grace until .*abort \(admin\) releases/);
  const listed = await waitFor('visibility', async () => {
    for await (const wf of w.env.client.workflow.list({ query: `NhiId = "partner_acme" AND Scenario = "offboarding" AND NhiState = "grace"` })) return wf;
    return null;
  });
  expect(listed.workflowId).toBe(id);

  // One at a time.
  const again = await offboard('admin');
  expect(again.status).toBe(409);
  expect(again.body.error.message).toContain('offboard-partner_acme');
  expect(again.headers.location).toBe('/v1/offboardings/offboard-partner_acme');

  const attestation = await get(`/v1/offboardings/${id}/attestation`);
  expect(attestation.status).toBe(200);
  expect(attestation.body.outcome).toBe('no_standing_access');
  expect(attestation.body.checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
  expect(attestation.body.dependents[0].id).toBe('acme-invoice-sync');
  expect(attestation.body.audit.hash).toMatch(/^[0-9a-f]{64}$/);
  expect(attestation.body.intents).toMatchObject({ owner: id, restrictions: ['login_disabled', 'offboarded'] });

  // Only an admin aborts, and with a reason.
  expect((await post(`/v1/offboardings/${id}/abort`, 'team-partnerships', { reason: 'wrong partner' })).status).toBe(403);
  // Issue 13: past the API, straight to Temporal, claiming admin: the workflow looks the roles up itself.
  await expect(
    w.env.client.workflow.getHandle(id).executeUpdate(abortUpdate, { args: [{ by: 'mallory', roles: ['admin'], reason: 'let me back in' }] }),
  ).rejects.toMatchObject({ cause: { type: 'NotAllowed' } });
  expect(await roleState('partner_acme')).toEqual(disabled);
  expect((await get(`/v1/offboardings/${id}`)).body).toMatchObject({ state: 'grace' });
  expect((await post(`/v1/offboardings/${id}/abort`, 'admin', {})).status).toBe(400);
  const aborted = await post(`/v1/offboardings/${id}/abort`, 'admin', { reason: 'Acme renewed the contract' });
  expect(aborted.status).toBe(200);
  expect(aborted.body).toMatchObject({ state: 'aborted', abort: { by: 'admin', reason: 'Acme renewed the contract' } });

  // Exactly as before, read from Postgres; and the stored password works again.
  expect(await roleState('partner_acme')).toEqual(before);
  expect(await w.login('partner_acme', password)).toBe('ok');
  expect(await w.inventoryStatus('partner_acme')).toBe('active');
  expect((await w.secrets.active('partner_acme'))?.status).toBe('active');
  const { rows: restore } = await w.db.pool.query(
    `SELECT readback FROM audit_events WHERE workflow_id = $1 AND step_id = $2`,
    [id, `${aborted.body.requestId}:restore`],
  );
  expect(restore[0].readback.probe).toMatchObject({ access: 'granted' });
  expect((await post(`/v1/offboardings/${id}/abort`, 'admin', { reason: 'twice' })).status).toBe(409);

  // A new offboarding under the same id, once the aborted run has closed; confirm skips the grace period.
  await waitFor('aborted run closed', async () => (await w.env.client.workflow.getHandle(id).describe()).status.name !== 'RUNNING');
  const second = await offboard('admin', { graceDays: 30, watchDays: 1 });
  expect(second.status).toBe(202);
  const grace2 = await untilState(id, 'grace');
  expect(grace2.requestId).not.toBe(aborted.body.requestId);
  expect((await post(`/v1/offboardings/${id}/confirm`, 'alice', {})).status).toBe(403);
  const confirmed = await post(`/v1/offboardings/${id}/confirm`, 'admin', { comment: 'no need to wait' });
  expect(confirmed.status).toBe(200);
  expect(confirmed.body).toMatchObject({ state: 'watching', confirmedBy: 'admin' });
  expect(await w.inventoryStatus('partner_acme')).toBe('offboarded');
  expect((await roleState('partner_acme'))).toMatchObject({ rolcanlogin: false, memberships: [] });
  expect((await w.secrets.list('partner_acme')).every((c) => c.status === 'deleted')).toBe(true);
  expect(await w.login('partner_acme', password)).toBe('28000');

  // Finalised: nothing left to restore, and no second offboarding.
  const late = await post(`/v1/offboardings/${id}/abort`, 'admin', { reason: 'too late' });
  expect(late.status).toBe(409);
  expect(late.body.error.message).toMatch(/finalised/);
  expect((await offboard('admin')).status).toBe(409);
  expect((await post(`/v1/offboardings/${id}/confirm`, 'admin', {})).status).toBe(409);

  // Both runs' attestations are in the audit trail, each under its own request id.
  const { rows } = await w.db.pool.query(`SELECT step_id FROM audit_events WHERE workflow_id = $1 AND action = 'offboarding.attestation' ORDER BY seq`, [id]);
  expect(rows.map((r) => r.step_id)).toEqual([`${aborted.body.requestId}:attestation`, `${grace2.requestId}:attestation`]);
  expect((await get(`/v1/offboardings/${id}/attestation`)).body.requestId).toBe(grace2.requestId);

  // Cancelling the watch ends it; access stays removed.
  const h = w.env.client.workflow.getHandle(id);
  await h.cancel();
  await waitFor('watch cancelled', async () => (await h.describe()).status.name !== 'RUNNING');
  const end = await h.query(statusQuery);
  expect(end).toMatchObject({ state: 'completed', watch: { cancelled: true } });
  expect(await w.inventoryStatus('partner_acme')).toBe('offboarded');
}, 120_000);

test('offboarding while a JIT elevation is active ends the elevation first; abort after completion is 409', async () => {
  const jit = await post('/v1/elevations', 'alice', { nhiId: 'svc_legacy', entitlements: ['estate_readonly'], justification: 'one last data export', durationMinutes: 60 });
  expect(jit.status).toBe(202);
  await waitFor('elevation active', async () => (await get(`/v1/elevations/${jit.body.id}`)).body.state === 'active');
  expect(await w.memberships('svc_legacy')).toEqual([w.ent('estate_readonly')]);
  // Offboarding finds elevations through visibility: wait until it lists this one.
  await waitFor('visibility', async () => (await get('/v1/elevations?nhiId=svc_legacy&state=active')).body.items?.some((i: { id: string }) => i.id === jit.body.id));

  const res = await post('/v1/offboardings', 'admin', { nhiId: 'svc_legacy', reason: 'service retired', graceDays: 0, watchDays: 0 });
  expect(res.status).toBe(202);
  const done = await untilState(res.body.id, 'completed');
  expect(done.otherScenarios.elevations).toEqual([expect.objectContaining({ workflowId: jit.body.id, outcome: 'revoked', state: 'revoked' })]);
  expect(done.otherScenarios.throttles).toMatchObject({ supported: true, ended: [], found: [] });

  const elevation = (await get(`/v1/elevations/${jit.body.id}`)).body;
  expect(elevation).toMatchObject({ state: 'revoked', endReason: 'revoked_early', endedBy: res.body.id });
  expect(await w.memberships('svc_legacy')).toEqual([]);
  const { rows: open } = await w.db.pool.query('SELECT holder FROM grants WHERE nhi_id = $1 AND released_at IS NULL', ['svc_legacy']);
  expect(open).toEqual([]);
  expect(await w.inventoryStatus('svc_legacy')).toBe('offboarded');
  expect((await roleState('svc_legacy')).rolcanlogin).toBe(false);

  // No new elevation for an offboarded NHI, and nothing to abort.
  const after = await post(`/v1/offboardings/${res.body.id}/abort`, 'admin', { reason: 'changed my mind' });
  expect(after.status).toBe(409);
  expect((await post('/v1/offboardings', 'admin', { nhiId: 'svc_legacy', reason: 'again' })).status).toBe(409);
}, 120_000);

test('offboarding an NHI under an anomaly throttle signals the throttle to stop (superseded) and takes over', async () => {
  const report = await post('/v1/anomalies', 'detector-bot', { nhiId: 'agent_reports', observedRate: 900, baselineRate: 20, source: 'siem:test', detail: 'burst of exports' });
  expect(report.status).toBe(202);
  await waitFor('throttled', async () => String((await get('/v1/anomalies/agent_reports')).body.state ?? '').startsWith('throttled'));
  await waitFor('visibility', async () => {
    const { workflows } = await w.env.client.workflowService.listWorkflowExecutions({
      namespace: 'default',
      query: 'WorkflowType = "anomalyThrottling" AND NhiId = "agent_reports" AND ExecutionStatus = "Running"',
    }).then((r) => ({ workflows: r.executions ?? [] }));
    return workflows.length === 1;
  });

  const res = await post('/v1/offboardings', 'admin', { nhiId: 'agent_reports', reason: 'agent decommissioned', graceDays: 0, watchDays: 0 });
  expect(res.status).toBe(202);
  const done = await untilState(res.body.id, 'completed');
  expect(done.otherScenarios.throttles).toMatchObject({ supported: true, found: ['anomaly-agent_reports'], ended: ['anomaly-agent_reports'] });
  await waitFor('superseded', async () => (await get('/v1/anomalies/agent_reports')).body.state === 'superseded');
  expect(await w.memberships('agent_reports')).toEqual([]);
  expect(await w.inventoryStatus('agent_reports')).toBe('offboarded');
  expect((await roleState('agent_reports')).rolcanlogin).toBe(false);
}, 120_000);
