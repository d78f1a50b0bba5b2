// Offboarding on the time-skipping server, against real Postgres roles: grace and watch periods pass
// in milliseconds. Assertions read pg_roles, pg_auth_members and pg_stat_activity, and log in.
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createActivities } from '../../activities';
import { adminOptionGrantSql } from '../../connectors/postgres-roles';
import { probeTargetFromUrl } from '../../lib/estate';
import { offboarding } from '../../workflows/offboarding';
import { offboardingWorkflowId, statusQuery, type OffboardingInput, type OffboardingState } from '../../workflows/offboarding.contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';

let w: TestWorld;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
}, 120_000);

afterAll(async () => w?.teardown());

function input(over: Partial<OffboardingInput>): OffboardingInput {
  return {
    version: 1,
    nhiId: 'partner_acme',
    reason: 'contract with Acme ended',
    requestedBy: 'admin',
    requestedAt: new Date().toISOString(),
    requestId: randomBytes(4).toString('hex'),
    graceDays: 0,
    watchDays: 0,
    settings: { checkIntervalMinutes: 24 * 60, checksPerRun: 2 },
    ...over,
  };
}

async function start(over: Partial<OffboardingInput>, taskQueue = w.taskQueue) {
  const i = input(over);
  return w.env.client.workflow.start(offboarding, { taskQueue, workflowId: offboardingWorkflowId(i.nhiId), args: [i] });
}

async function untilState(handle: Awaited<ReturnType<typeof start>>, state: OffboardingState) {
  return waitFor(`state ${state}`, async () => {
    const s = await handle.query(statusQuery);
    return s.state === state ? s : null;
  }, 60_000);
}

async function roleRow(nhiId: string) {
  const { rows } = await w.estateAdmin.query<{ rolcanlogin: boolean; rolconnlimit: number }>('SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = $1', [w.role(nhiId)]);
  return rows[0];
}

async function liveSessions(nhiId: string): Promise<number> {
  const { rows } = await w.estateAdmin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [w.role(nhiId)]);
  return rows[0].n;
}

const grantByConnector = (nhiId: string, ent: string) =>
  w.estateAdmin.query(`GRANT ${w.ent(ent)} TO ${w.role(nhiId)} GRANTED BY ${w.connectorRole}`);

async function auditOf(nhiId: string, requestId: string) {
  const { rows } = await w.db.pool.query(
    `SELECT step_id, action, outcome, readback, details FROM audit_events WHERE nhi_id = $1 AND step_id LIKE $2 ORDER BY seq`,
    [nhiId, `${requestId}:%`],
  );
  return rows;
}

test('full run: disable and prove, grace, finalise, watch with a re-grant by hand reverted, continue-as-new', async () => {
  const password = await w.activePassword('partner_acme');
  expect(await w.login('partner_acme', password)).toBe('ok');
  // A live session that offboarding must end.
  const session = new Client({ ...probeTargetFromUrl(w.estateUrl), user: w.role('partner_acme'), password });
  session.on('error', () => undefined);
  await session.connect();
  expect(await liveSessions('partner_acme')).toBe(1);

  const handle = await start({ nhiId: 'partner_acme', ticket: 'TICKET-9', graceDays: 1, watchDays: 3 });
  const grace = await untilState(handle, 'grace');
  const requestId = grace.requestId;

  // The target says: no login, no memberships, no sessions; the stored password is refused.
  expect((await roleRow('partner_acme')).rolcanlogin).toBe(false);
  expect(await w.memberships('partner_acme')).toEqual([]);
  expect(await liveSessions('partner_acme')).toBe(0);
  expect(await w.login('partner_acme', password)).toBe('28000');
  await session.end().catch(() => undefined);

  expect(grace.snapshot).toMatchObject({ exists: true, canLogin: true, entitlements: ['estate_readonly'] });
  expect(grace.disable.sessions?.detail).toMatchObject({ terminated: 1, liveSessions: 0 });
  expect(grace.otherScenarios?.skipped).toMatch(/no Temporal client/);
  expect(grace.otherScenarios?.throttles).toMatchObject({ supported: true, ended: [] });
  expect(grace.attestation?.outcome).toBe('no_standing_access');
  expect(grace.attestation?.checks.map((c) => c.check)).toEqual(['no_entitlements', 'login_disabled', 'credential_refused:v1', 'no_live_sessions']);
  expect(grace.attestation?.checks.find((c) => c.check === 'credential_refused:v1')?.evidence).toMatchObject({ probed: true, access: 'inconclusive', code: '28000' });
  expect(grace.attestation?.dependents).toEqual([expect.objectContaining({ id: 'acme-invoice-sync', impact: expect.stringMatching(/cannot connect.*loses estate_readonly/) })]);
  const { rows: inv } = await w.db.pool.query('SELECT status FROM nhis WHERE id = $1', ['partner_acme']);
  expect(inv[0].status).toBe('offboarding');
  // Secrets never travel: the status carries fingerprints only.
  expect(JSON.stringify(grace)).not.toContain(password);

  const d = await handle.describe();
  expect(d.typedSearchAttributes.get(NhiIdKey)).toBe('partner_acme');
  expect(d.typedSearchAttributes.get(ScenarioKey)).toBe('offboarding');
  expect(d.typedSearchAttributes.get(NhiStateKey)).toBe('grace');

  // The grace period passes: finalised, then watching.
  await w.env.sleep('25 hours');
  const watching = await untilState(handle, 'watching');
  expect(watching.finalisedAt).toBeTruthy();
  expect((await w.secrets.list('partner_acme')).every((c) => c.status === 'deleted')).toBe(true);
  await expect(w.secrets.reveal(watching.credentials[0].ref)).rejects.toThrow(/no stored value/);
  expect(await roleRow('partner_acme')).toMatchObject({ rolcanlogin: false }); // the role stays, NOLOGIN
  const { rows: inv2 } = await w.db.pool.query('SELECT status FROM nhis WHERE id = $1', ['partner_acme']);
  expect(inv2[0].status).toBe('offboarded');
  // Temporal UI: current details say where the watch stands.
  const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  expect(meta.currentDetails).toMatch(/\*\*watching\*\*.*partner_acme[\s\S]*next check \d{4}-/);

  // Someone re-grants access by hand, outside the orchestrator.
  await grantByConnector('partner_acme', 'estate_writer');
  await w.estateAdmin.query(`ALTER ROLE ${w.role('partner_acme')} LOGIN`);
  expect(await w.memberships('partner_acme')).toEqual([w.ent('estate_writer')]);

  // The next daily check reverts it.
  await w.env.sleep('1 day');
  await waitFor('drift reverted', async () => (await w.memberships('partner_acme')).length === 0 && !(await roleRow('partner_acme')).rolcanlogin, 60_000);
  const drift = await waitFor('drift notification', async () => w.notifier.sent.find((n) => n.kind === 'offboarding.drift' && n.nhiId === 'partner_acme'));
  expect(drift.text).toMatch(/estate_writer/);

  const result = await handle.result(); // time skips to the end of the watch
  expect(result.state).toBe('completed');
  expect(result.watch.checks).toBe(3);
  expect(result.runs).toBe(1); // continued as new after 2 checks
  expect(result.watch.driftTotal).toBe(2);
  expect(result.watch.drift.map((x) => x.kind).sort()).toEqual(['entitlement', 'login_enabled']);
  expect(await w.memberships('partner_acme')).toEqual([]);
  expect((await roleRow('partner_acme')).rolcanlogin).toBe(false);

  const audit = await auditOf('partner_acme', requestId);
  const steps = audit.map((a) => a.step_id.slice(requestId.length + 1));
  expect(steps).toEqual([
    'policy',
    'inventory:offboarding',
    'stop-scenarios',
    'snapshot',
    'disable:1:login',
    'disable:1:entitlements',
    'disable:1:sessions',
    'attestation',
    'watch:pre-finalise',
    'finalise',
    'watch:1',
    'watch:2',
    'watch:3',
    'completed',
  ]);
  const byStep = (s: string) => audit.find((a) => a.step_id === `${requestId}:${s}`);
  expect(byStep('attestation')).toMatchObject({ action: 'offboarding.attestation', outcome: 'no_standing_access' });
  expect(byStep('watch:1')).toMatchObject({ action: 'watch.check', outcome: 'drift_reverted' });
  expect(byStep('watch:2')?.outcome).toBe('clean');
  expect(JSON.stringify(audit)).not.toContain(password);
}, 180_000);

test('a connector failure mid-disable is retried and the final state is consistent', async () => {
  await w.addNhi({ id: 'svc_flaky', kind: 'service_account' });
  await grantByConnector('svc_flaky', 'estate_readonly');
  await grantByConnector('svc_flaky', 'estate_writer');
  const password = await w.issueCredential('svc_flaky');
  const real = createActivities(w.deps);
  let calls = 0;
  const queue = `${w.taskQueue}-flaky`;
  const flaky = await w.createWorker(
    {
      // Part of the work reaches the target, then the connection drops: twice.
      revokeEntitlements: async (a: Parameters<typeof real.revokeEntitlements>[0]) => {
        calls++;
        if (calls <= 2) {
          await w.connector.revoke(w.role('svc_flaky'), 'estate_readonly').catch(() => undefined);
          throw new Error('connection reset by peer (injected)');
        }
        return real.revokeEntitlements(a);
      },
    },
    { taskQueue: queue },
  );
  const flakyRunning = flaky.run();
  try {
    const handle = await start({ nhiId: 'svc_flaky', graceDays: 0, watchDays: 0 }, queue);
    const result = await handle.result();
    expect(calls).toBe(3);
    expect(result.state).toBe('completed');
    expect(result.escalations).toEqual([]);
    expect(result.disable.entitlements?.detail).toMatchObject({ held: ['estate_writer'], revoked: ['estate_writer'], entitlements: [] });
    expect(result.attestation?.outcome).toBe('no_standing_access');
    expect(await w.memberships('svc_flaky')).toEqual([]);
    expect((await roleRow('svc_flaky')).rolcanlogin).toBe(false);
    expect(await w.login('svc_flaky', password)).not.toBe('ok');
    expect((await w.secrets.list('svc_flaky')).map((c) => c.status)).toEqual(['deleted']);
    const { rows } = await w.db.pool.query('SELECT status FROM nhis WHERE id = $1', ['svc_flaky']);
    expect(rows[0].status).toBe('offboarded');
    // One audit row for the step, whatever the retries.
    const steps = (await auditOf('svc_flaky', result.requestId)).map((a) => a.step_id);
    expect(steps.filter((s) => s.endsWith(':disable:1:entitlements'))).toHaveLength(1);
  } finally {
    flaky.shutdown();
    await flakyRunning;
  }
}, 120_000);

test('a membership the connector may not revoke is escalated, and revoked once an operator unblocks it', async () => {
  await w.addNhi({ id: 'svc_stuck', kind: 'service_account' });
  await grantByConnector('svc_stuck', 'estate_readonly');
  // What keeps the connector from revoking it: on 16+ a grant by the superuser (revoke_blocked); on 15,
  // where CREATEROLE revokes any grant, the connector losing its ADMIN OPTION on the group role.
  const blockedByGrantor = w.roles.perGrantOptions;
  if (blockedByGrantor) await w.estateAdmin.query(`GRANT ${w.ent('estate_writer')} TO ${w.role('svc_stuck')}`);
  else {
    await grantByConnector('svc_stuck', 'estate_writer');
    await w.estateAdmin.query(`REVOKE ADMIN OPTION FOR ${w.ent('estate_writer')} FROM ${w.connectorRole}`);
  }
  const handle = await start({ nhiId: 'svc_stuck', graceDays: 0, watchDays: 0, settings: { escalationAttempts: 2 } });
  const escalation = await waitFor('escalation', async () => w.notifier.sent.find((n) => n.kind === 'escalation' && n.nhiId === 'svc_stuck'), 60_000);
  expect(escalation.text).toMatch(/revoke entitlements keeps failing/);
  const s = await handle.query(statusQuery);
  expect(s.state).toBe('disabling');
  expect(s.escalations[0].detail).toMatch(/estate_writer/);
  expect(await w.memberships('svc_stuck')).toEqual([w.ent('estate_writer')]);

  // An operator removes the superuser's grant (or gives the ADMIN OPTION back); the next retry goes through.
  if (blockedByGrantor) await w.estateAdmin.query(`REVOKE ${w.ent('estate_writer')} FROM ${w.role('svc_stuck')}`);
  else await w.estateAdmin.query(adminOptionGrantSql(w.roles, w.ent('estate_writer'), w.connectorRole));
  const result = await handle.result();
  expect(result.state).toBe('completed');
  expect(result.attestation?.outcome).toBe('no_standing_access');
  expect(await w.memberships('svc_stuck')).toEqual([]);
  const steps = (await auditOf('svc_stuck', result.requestId)).map((a) => a.action);
  expect(steps).toContain('enforcement.escalate');
}, 120_000);

test('cancelling during grace compensates like an abort: the snapshot is restored and verified', async () => {
  await w.addNhi({ id: 'svc_cancel', kind: 'service_account' });
  await grantByConnector('svc_cancel', 'estate_readonly');
  const password = await w.issueCredential('svc_cancel');
  const handle = await start({ nhiId: 'svc_cancel', graceDays: 5, watchDays: 5 });
  await untilState(handle, 'grace');
  expect(await w.memberships('svc_cancel')).toEqual([]);
  expect(await w.login('svc_cancel', password)).toBe('28000');
  await handle.cancel();
  await expect(handle.result()).rejects.toThrow();
  const s = await handle.query(statusQuery);
  expect(s).toMatchObject({ state: 'aborted', abort: { by: 'temporal (cancel request)' } });
  expect(await w.memberships('svc_cancel')).toEqual([w.ent('estate_readonly')]);
  expect(await w.login('svc_cancel', password)).toBe('ok');
  const { rows } = await w.db.pool.query('SELECT status FROM nhis WHERE id = $1', ['svc_cancel']);
  expect(rows[0].status).toBe('active');
});

test('policy denies (not an admin, not the owner): nothing changes', async () => {
  await w.addNhi({ id: 'svc_denied', kind: 'service_account' });
  await grantByConnector('svc_denied', 'estate_readonly');
  const handle = await start({ nhiId: 'svc_denied', requestedBy: 'alice' });
  const result = await handle.result();
  expect(result.state).toBe('denied');
  expect(result.decision?.determiningPolicies).toContain('offboard-who');
  expect(await w.memberships('svc_denied')).toEqual([w.ent('estate_readonly')]);
  expect((await roleRow('svc_denied')).rolcanlogin).toBe(true);
  const { rows } = await w.db.pool.query('SELECT status FROM nhis WHERE id = $1', ['svc_denied']);
  expect(rows[0].status).toBe('active');
});
