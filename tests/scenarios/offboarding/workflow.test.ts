// Offboarding on the time-skipping server, against real Postgres roles: grace and watch periods pass
// in milliseconds. Assertions read pg_roles, pg_auth_members and pg_stat_activity, and log in. Other
// scenarios are stood in for at the ledger level (commitIntent + reconcile under their owner ids).
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createActivities } from '../../../activities';
import { adminOptionGrantSql } from '../../../connectors/postgres-roles';
import type { Connector } from '../../../connectors/types';
import { activeIntents, commitIntent, releaseIntents, type IntentSpec } from '../../../enforcement/intents';
import { reconcile } from '../../../enforcement/reconciler';
import { probeTargetFromUrl } from '../../../lib/estate';
import { updateStatus } from '../../../lib/inventory';
import { offboarding } from '../../../scenarios/offboarding/workflow';
import { abortUpdate, confirmUpdate, offboardingWorkflowId, statusQuery, type OffboardingInput, type OffboardingState } from '../../../scenarios/offboarding/contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../../workflows/search-attributes';
import { waitFor } from '../../helpers/wait';
import { createTestWorld, type TestWorld } from '../../helpers/world';
import { keepHistory } from '../../helpers/histories';

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
  const workflowId = offboardingWorkflowId(i.nhiId);
  // As the API starts it: requestedBy signed for this start.
  return w.env.client.workflow.start(offboarding, { taskQueue, workflowId, args: [{ authority: w.sign(workflowId, 'start', i.requestedBy), ...i }] });
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

let step = 0;
/** What another scenario's workflow does: commit (or release) its own intent, then reconcile. */
async function asOwner(owner: string, nhiId: string, change: { commit: IntentSpec } | 'release') {
  return reconcile({ pool: w.db.pool, connectors: w.deps.connectors }, nhiId, { workflowId: owner, stepId: `t${++step}`, scenario: 'test', actor: 'test', reason: 'test' }, async (c) => {
    if (change === 'release') await releaseIntents(c, nhiId, owner);
    else await commitIntent(c, nhiId, owner, change.commit);
  });
}
const THROTTLE_L1: IntentSpec = { kind: 'restrict', restriction: 'throttle', level: 1, connectionLimit: 2 };

/** Active intents other than the baseline, as owner:subject. */
async function ledger(nhiId: string) {
  const i = await activeIntents(w.db.pool, nhiId);
  return [...i.grants.map((g) => `${g.owner}:grant:${g.entitlement}`), ...i.restrictions.map((r) => `${r.owner}:${r.restriction}`)].sort();
}

async function auditOf(nhiId: string, requestId: string) {
  const { rows } = await w.db.pool.query(
    `SELECT step_id, action, outcome, decision, readback, details FROM audit_events WHERE nhi_id = $1 AND step_id LIKE $2 ORDER BY seq`,
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

  // No snapshot: the offboarding's intents are in the ledger, the baseline was captured by the first reconcile.
  const wf = offboardingWorkflowId('partner_acme');
  expect(grace).not.toHaveProperty('snapshot');
  expect(grace.intents).toMatchObject({ owner: wf, restrictions: ['login_disabled', 'offboarded'] });
  expect(await ledger('partner_acme')).toEqual([`${wf}:login_disabled`, `${wf}:offboarded`]);
  expect((await activeIntents(w.db.pool, 'partner_acme')).baseline).toEqual({ entitlements: ['estate_readonly'], canLogin: true, connectionLimit: -1 });
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
  // Finalisation changed the baseline, audited; the 'offboarded' intent stays.
  expect((await activeIntents(w.db.pool, 'partner_acme')).baseline).toEqual({ entitlements: [], canLogin: false, connectionLimit: -1 });
  expect(await ledger('partner_acme')).toEqual([`${wf}:offboarded`]);
  expect(watching.intents?.restrictions).toEqual(['offboarded']);
  // Temporal UI: current details say where the watch stands.
  const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  expect(meta.currentDetails).toMatch(/\*\*watching\*\*.*partner_acme[\s\S]*next check \d{4}-/);

  // Someone re-grants access by hand, outside the orchestrator.
  await grantByConnector('partner_acme', 'estate_writer');
  await w.estateAdmin.query(`ALTER ROLE ${w.role('partner_acme')} LOGIN CONNECTION LIMIT 5`);
  expect(await w.memberships('partner_acme')).toEqual([w.ent('estate_writer')]);

  // The next daily check is a reconcile: it reverts all of it.
  await w.env.sleep('1 day');
  await waitFor(
    'drift reverted',
    async () => {
      const r = await w.roleState('partner_acme');
      return r.memberships.length === 0 && !r.rolcanlogin && r.rolconnlimit === -1;
    },
    60_000,
  );
  const drift = await waitFor('drift notification', async () => w.notifier.sent.find((n) => n.kind === 'offboarding.drift' && n.nhiId === 'partner_acme'));
  expect(drift.text).toMatch(/estate_writer/);

  const result = await handle.result(); // time skips to the end of the watch
  expect(result.state).toBe('completed');
  expect(result.watch.checks).toBe(3);
  expect(result.runs).toBe(1); // continued as new after 2 checks
  await keepHistory(w.env.client, 'offboarding-finalised-drift-reverted-first-run', handle.workflowId, handle.firstExecutionRunId);
  await keepHistory(w.env.client, 'offboarding-watch-continued-as-new', handle.workflowId);
  expect(result.watch.driftTotal).toBe(3);
  expect(result.watch.drift.map((x) => x.kind).sort()).toEqual(['connection_limit', 'entitlement', 'login_enabled']);
  expect(await w.roleState('partner_acme')).toEqual({ rolcanlogin: false, rolconnlimit: -1, memberships: [] });
  // The workflow is over; the NHI stays offboarded: a grant wished for later is withheld.
  const late = await asOwner('jit-late', 'partner_acme', { commit: { kind: 'grant', entitlement: 'estate_writer' } });
  expect(late.desired.withheld).toEqual([{ entitlement: 'estate_writer', by: [wf] }]);
  expect(await w.roleState('partner_acme')).toEqual({ rolcanlogin: false, rolconnlimit: -1, memberships: [] });
  await asOwner('jit-late', 'partner_acme', 'release');

  const audit = await auditOf('partner_acme', requestId);
  const steps = audit.map((a) => a.step_id.slice(requestId.length + 1));
  expect(steps).toEqual([
    'policy',
    'inventory:offboarding',
    'disable:1:login:reconcile',
    'disable:1:entitlements:reconcile',
    'disable:1:sessions',
    'stop-scenarios',
    'attestation',
    'watch:pre-finalise:reconcile',
    'watch:pre-finalise',
    'finalise:reconcile',
    'baseline',
    'finalise',
    'watch:1:reconcile',
    'watch:1',
    'watch:2:reconcile',
    'watch:2',
    'watch:3:reconcile',
    'watch:3',
    'completed',
  ]);
  const byStep = (s: string) => audit.find((a) => a.step_id === `${requestId}:${s}`);
  expect(byStep('disable:1:login:reconcile')).toMatchObject({ action: 'access.reconcile', outcome: 'converged', readback: { changes: { login: [true, false], revoked: [] } } });
  expect(byStep('disable:1:entitlements:reconcile')).toMatchObject({ action: 'access.reconcile', outcome: 'converged', readback: { changes: { revoked: ['estate_readonly'] } } });
  expect(byStep('attestation')).toMatchObject({ action: 'offboarding.attestation', outcome: 'no_standing_access' });
  expect(byStep('baseline')).toMatchObject({
    action: 'baseline.set',
    outcome: 'emptied',
    decision: { previous: { entitlements: ['estate_readonly'], canLogin: true, connectionLimit: -1 }, baseline: { entitlements: [], canLogin: false, connectionLimit: -1 } },
  });
  // Drift: reverted by the reconcile, and recorded as drift.
  expect(byStep('watch:1:reconcile')).toMatchObject({ outcome: 'converged', readback: { changes: { revoked: ['estate_writer'], login: [true, false], connectionLimit: [5, -1] } } });
  expect(byStep('watch:1')).toMatchObject({ action: 'watch.check', outcome: 'drift_reverted' });
  expect(byStep('watch:1')?.details.drift.map((d: { kind: string }) => d.kind).sort()).toEqual(['connection_limit', 'entitlement', 'login_enabled']);
  expect(byStep('watch:2')?.outcome).toBe('clean');
  expect(byStep('watch:2:reconcile')?.outcome).toBe('already_converged');
  expect(JSON.stringify(audit)).not.toContain(password);
}, 180_000);

test('a connector failure mid-disable is retried and the final state is consistent', async () => {
  await w.addNhi({ id: 'svc_flaky', kind: 'service_account' });
  await grantByConnector('svc_flaky', 'estate_readonly');
  await grantByConnector('svc_flaky', 'estate_writer');
  const password = await w.issueCredential('svc_flaky');
  const real = createActivities(w.deps);
  // The reconciler's connector: part of the change reaches the target, then the connection drops.
  const dropping = new Proxy(w.connector, {
    get(target, prop, receiver) {
      if (prop !== 'apply') return Reflect.get(target, prop, receiver);
      return async (identity: string) => {
        await target.revoke(identity, 'estate_readonly').catch(() => undefined);
        throw new Error('connection reset by peer (injected)');
      };
    },
  }) as Connector;
  const crashing = createActivities({ ...w.deps, connectors: { get: () => dropping, configuredConnectors: () => ['postgres'] } });
  let calls = 0;
  const queue = `${w.taskQueue}-flaky`;
  const flaky = await w.createWorker(
    {
      // Twice: the intent is committed, part of the revocation reaches the target, then the failure.
      revokeEntitlements: async (a: Parameters<typeof real.revokeEntitlements>[0]) => {
        calls++;
        return (calls <= 2 ? crashing : real).revokeEntitlements(a);
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
    // The baseline was captured before any change: the partial revocation did not shrink it.
    expect((await activeIntents(w.db.pool, 'svc_flaky')).baseline).toEqual({ entitlements: [], canLogin: false, connectionLimit: -1 });
    const { rows: base } = await w.db.pool.query(`SELECT decision FROM audit_events WHERE step_id = $1`, [`${result.requestId}:baseline`]);
    expect(base[0].decision.previous).toEqual({ entitlements: ['estate_readonly', 'estate_writer'], canLogin: true, connectionLimit: -1 });
    expect(result.attestation?.outcome).toBe('no_standing_access');
    expect(await w.memberships('svc_flaky')).toEqual([]);
    expect((await roleRow('svc_flaky')).rolcanlogin).toBe(false);
    expect(await w.login('svc_flaky', password)).not.toBe('ok');
    expect((await w.secrets.list('svc_flaky')).map((c) => c.status)).toEqual(['deleted']);
    const { rows } = await w.db.pool.query('SELECT status FROM nhis WHERE id = $1', ['svc_flaky']);
    expect(rows[0].status).toBe('offboarded');
    // One audit row for the step, whatever the retries.
    const steps = (await auditOf('svc_flaky', result.requestId)).map((a) => a.step_id);
    expect(steps.filter((s) => s.endsWith(':disable:1:entitlements:reconcile'))).toHaveLength(1);
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
  // Login is off while the revocation waits, and everything the connector can remove is gone: only
  // the blocked membership is left.
  expect(await w.roleState('svc_stuck')).toMatchObject({ rolcanlogin: false });
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

test('cancelling during grace compensates like an abort: the intents are released and the baseline is back, verified', async () => {
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
  expect(await roleRow('svc_cancel')).toEqual({ rolcanlogin: true, rolconnlimit: -1 });
  expect(await w.login('svc_cancel', password)).toBe('ok');
  expect(await ledger('svc_cancel')).toEqual([]);
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
  await keepHistory(w.env.client, 'offboarding-denied', handle.workflowId);
  expect(await w.memberships('svc_denied')).toEqual([w.ent('estate_readonly')]);
  expect((await roleRow('svc_denied')).rolcanlogin).toBe(true);
  const { rows } = await w.db.pool.query('SELECT status FROM nhis WHERE id = $1', ['svc_denied']);
  expect(rows[0].status).toBe('active');
});

/** An NHI the connector administers, with these memberships and a password from the store. */
async function nhiWith(id: string, entitlements: string[]) {
  await w.addNhi({ id, kind: 'service_account' });
  for (const e of entitlements) await grantByConnector(id, e);
  return w.issueCredential(id);
}

const groups = (...names: string[]) => names.map((n) => w.ent(n));

describe('issue 9 case 3: offboarding a throttled NHI, then abort', () => {
  test('the throttle is released meanwhile (its workflow was superseded): abort brings back the baseline exactly, no throttle', async () => {
    const nhi = 'svc_thr_released';
    const password = await nhiWith(nhi, ['estate_readonly', 'estate_writer']);
    const before = await w.roleState(nhi);
    expect(before).toMatchObject({ rolcanlogin: true, rolconnlimit: -1 });
    expect(before.memberships.map((m) => m.group)).toEqual(groups('estate_readonly', 'estate_writer'));

    // The anomaly workflow's throttle, at the ledger level, and its inventory status.
    await asOwner('anomaly-test', nhi, { commit: THROTTLE_L1 });
    await updateStatus(w.db.pool, nhi, 'throttled');
    expect(await w.roleState(nhi)).toMatchObject({ rolcanlogin: true, rolconnlimit: 2 });
    expect(await w.memberships(nhi)).toEqual(groups('estate_readonly'));

    const handle = await start({ nhiId: nhi, graceDays: 5, watchDays: 5 });
    const grace = await untilState(handle, 'grace');
    expect(grace.previousStatus).toBe('throttled');
    expect(await w.roleState(nhi)).toEqual({ rolcanlogin: false, rolconnlimit: 2, memberships: [] });
    // The offboarding did not touch the throttle: it is still owned by its workflow.
    const wf = offboardingWorkflowId(nhi);
    expect(await ledger(nhi)).toEqual(['anomaly-test:throttle', `${wf}:login_disabled`, `${wf}:offboarded`]);

    // Superseded, the anomaly workflow releases its own throttle and reconciles: still offboarded.
    await asOwner('anomaly-test', nhi, 'release');
    expect(await w.roleState(nhi)).toEqual({ rolcanlogin: false, rolconnlimit: -1, memberships: [] });

    const aborted = await handle.executeUpdate(abortUpdate, { args: [{ by: 'admin', authority: w.sign(handle.workflowId, 'abort', 'admin'), reason: 'wrong NHI' }] });
    expect(aborted).toMatchObject({ state: 'aborted', restored: { canLogin: true, connectionLimit: -1, entitlements: ['estate_readonly', 'estate_writer'] } });
    expect(await w.roleState(nhi)).toEqual(before);
    expect(await w.login(nhi, password)).toBe('ok');
    expect(await ledger(nhi)).toEqual([]);
    // No throttle is owned any more: the status is not `throttled` either.
    expect(await w.inventoryStatus(nhi)).toBe('active');
  });

  test('the throttle is still held (its case still runs): abort brings the throttled state back, because its owner still wants it', async () => {
    const nhi = 'svc_thr_held';
    const password = await nhiWith(nhi, ['estate_readonly', 'estate_writer']);
    const before = await w.roleState(nhi);
    await asOwner('anomaly-test2', nhi, { commit: THROTTLE_L1 });
    await updateStatus(w.db.pool, nhi, 'throttled');
    const throttled = await w.roleState(nhi);
    expect(throttled).toMatchObject({ rolcanlogin: true, rolconnlimit: 2 });
    expect(throttled.memberships.map((m) => m.group)).toEqual(groups('estate_readonly'));

    const handle = await start({ nhiId: nhi, graceDays: 5, watchDays: 5 });
    await untilState(handle, 'grace');
    expect(await w.roleState(nhi)).toEqual({ rolcanlogin: false, rolconnlimit: 2, memberships: [] });

    const aborted = await handle.executeUpdate(abortUpdate, { args: [{ by: 'admin', authority: w.sign(handle.workflowId, 'abort', 'admin'), reason: 'wrong NHI' }] });
    expect(aborted.state).toBe('aborted');
    // Exactly the throttled state: read access (L1), connection limit 2, login on. And it is owned.
    expect(await w.roleState(nhi)).toEqual(throttled);
    expect(await w.login(nhi, password)).toBe('ok');
    expect(await ledger(nhi)).toEqual(['anomaly-test2:throttle']);
    expect(await w.inventoryStatus(nhi)).toBe('throttled');

    // When its owner clears it, the baseline comes back exactly.
    await asOwner('anomaly-test2', nhi, 'release');
    expect(await w.roleState(nhi)).toEqual(before);
  });
});

test('abort during grace never cuts what others want: a live JIT grant comes back with the baseline', async () => {
  const nhi = 'svc_jit_live';
  const password = await nhiWith(nhi, ['estate_readonly']);
  const baseline = await w.roleState(nhi);
  await asOwner('jit-test', nhi, { commit: { kind: 'grant', entitlement: 'estate_writer' } });
  const elevated = await w.roleState(nhi);
  expect(elevated.memberships.map((m) => m.group)).toEqual(groups('estate_readonly', 'estate_writer'));

  const handle = await start({ nhiId: nhi, graceDays: 5, watchDays: 5 });
  const grace = await untilState(handle, 'grace');
  expect(await w.roleState(nhi)).toEqual({ rolcanlogin: false, rolconnlimit: -1, memberships: [] });
  // Withheld, not removed: the elevation's intent is still in the ledger.
  const wf = offboardingWorkflowId(nhi);
  expect(await ledger(nhi)).toEqual(['jit-test:grant:estate_writer', `${wf}:login_disabled`, `${wf}:offboarded`]);
  expect(grace.disable.entitlements?.detail.withheld).toEqual([
    { entitlement: 'estate_readonly', by: [wf] },
    { entitlement: 'estate_writer', by: [wf] },
  ]);
  expect(grace.attestation?.dependents).toEqual([]);

  const aborted = await handle.executeUpdate(abortUpdate, { args: [{ by: 'admin', authority: w.sign(handle.workflowId, 'abort', 'admin'), reason: 'still needed' }] });
  expect(aborted.state).toBe('aborted');
  expect(await w.roleState(nhi)).toEqual(elevated);
  await keepHistory(w.env.client, 'offboarding-aborted-in-grace', handle.workflowId);
  expect(await w.login(nhi, password)).toBe('ok');
  expect(await w.inventoryStatus(nhi)).toBe('active');
  // The audit trail says what the release reconciled to.
  const { rows } = await w.db.pool.query(`SELECT decision, readback FROM audit_events WHERE workflow_id = $1 AND step_id = $2`, [wf, `${aborted.requestId}:restore`]);
  expect(rows[0].decision.desired).toMatchObject({ entitlements: ['estate_readonly', 'estate_writer'], canLogin: true, restrictedBy: [] });
  expect(rows[0].readback.probe).toMatchObject({ access: 'granted' });

  // The elevation ends on its own: releasing its intent takes exactly its grant.
  await asOwner('jit-test', nhi, 'release');
  expect(await w.roleState(nhi)).toEqual(baseline);
});

test('issue 13 finding 1: an offboarding started straight on Temporal with requestedBy "admin" and no signature is denied; nothing changes', async () => {
  await w.addNhi({ id: 'svc_unsigned', kind: 'service_account' });
  await grantByConnector('svc_unsigned', 'estate_readonly');
  const i = input({ nhiId: 'svc_unsigned', requestedBy: 'admin' });
  const handle = await w.env.client.workflow.start(offboarding, { taskQueue: w.taskQueue, workflowId: offboardingWorkflowId(i.nhiId), args: [i] });
  const result = await handle.result();
  expect(result.state).toBe('denied');
  expect(result.decision?.reasons.join(' ')).toMatch(/start refused: start needs a signed principal/);
  expect(await w.memberships('svc_unsigned')).toEqual([w.ent('estate_readonly')]);
  expect((await roleRow('svc_unsigned')).rolcanlogin).toBe(true);
  expect(await w.inventoryStatus('svc_unsigned')).toBe('active');
});

test('abort and confirm take no authority from the message: forged roles are refused and audited', async () => {
  const nhi = 'svc_forged';
  const password = await nhiWith(nhi, ['estate_readonly']);
  const before = await w.roleState(nhi);
  const handle = await start({ nhiId: nhi, graceDays: 5, watchDays: 5 });
  const grace = await untilState(handle, 'grace');

  // issue 13: mallory is no principal at all, alice only a requester; both claim admin. 'admin' is
  // an admin, but these come straight to Temporal (the Temporal UI, the CLI): nobody signed them.
  for (const by of ['mallory', 'alice', 'admin']) {
    await expect(handle.executeUpdate(abortUpdate, { args: [{ by, roles: ['admin'], reason: 'let me back in' }] })).rejects.toMatchObject({
      cause: { type: 'NotAllowed', message: expect.stringMatching(new RegExp(`^${by} may not abort`)) },
    });
    await expect(handle.executeUpdate(confirmUpdate, { args: [{ by, roles: ['admin'] }] })).rejects.toMatchObject({ cause: { type: 'NotAllowed' } });
  }
  const s = await handle.query(statusQuery);
  expect(s).toMatchObject({ state: 'grace' });
  expect(s.abort).toBeUndefined();
  expect(s.confirmedBy).toBeUndefined();
  expect(await w.roleState(nhi)).toEqual({ rolcanlogin: false, rolconnlimit: -1, memberships: [] });
  expect(await w.login(nhi, password)).toBe('28000');
  const refused = (await auditOf(nhi, grace.requestId)).filter((a) => a.outcome === 'refused');
  expect(refused).toHaveLength(6);
  expect(refused[0]).toMatchObject({ action: 'offboarding.abort', details: { claimedRoles: ['admin'], claimedBy: 'mallory' } });

  // The real admin, with no roles in the message: accepted, and access is back.
  const aborted = await handle.executeUpdate(abortUpdate, { args: [{ by: 'admin', authority: w.sign(handle.workflowId, 'abort', 'admin'), reason: 'kept' }] });
  expect(aborted).toMatchObject({ state: 'aborted', abort: { by: 'admin' } });
  expect(await w.roleState(nhi)).toEqual(before);
  expect(await w.login(nhi, password)).toBe('ok');
});

test('issue 13: a high NHI needs a minimum grace and a second person — too short a grace is denied, the requester\'s own confirm is refused, and after the grace it waits for another admin', async () => {
  const nhi = 'svc_important';
  await w.addNhi({ id: nhi, kind: 'service_account', criticality: 'high' });
  await grantByConnector(nhi, 'estate_readonly');

  // Started directly (as from the Temporal UI) with no grace: denied by policy, nothing changes.
  const denied = await (await start({ nhiId: nhi, graceDays: 0 })).result();
  expect(denied).toMatchObject({ state: 'denied', decision: { allowed: false, reasons: [expect.stringMatching(/at least 1 day\(s\) of grace/)] } });
  expect((await roleRow(nhi)).rolcanlogin).toBe(true);

  const handle = await start({ nhiId: nhi, graceDays: 1, watchDays: 1 });
  const grace = await untilState(handle, 'grace');
  expect(grace.decision).toMatchObject({ minGraceDays: 1, secondPersonRequired: true });
  await expect(handle.executeUpdate(confirmUpdate, { args: [{ by: 'admin', authority: w.sign(handle.workflowId, 'confirm', 'admin'), comment: 'me again' }] })).rejects.toMatchObject({
    cause: { type: 'NotAllowed', message: expect.stringMatching(/second person/) },
  });

  await w.env.sleep('25 hours'); // the grace is over: still not finalised
  const waiting = await waitFor('awaiting a second person', async () => {
    const s = await handle.query(statusQuery);
    return s.awaitingSecondPerson ? s : null;
  }, 30_000);
  expect(waiting.state).toBe('grace');
  expect(waiting.confirmedBy).toBeUndefined();
  expect(waiting.finalisedAt).toBeUndefined();
  expect((await w.db.pool.query('SELECT count(*)::int AS n FROM secrets WHERE nhi_id = $1 AND status = $2', [nhi, 'deleted'])).rows[0].n).toBe(0);

  const watching = await handle.executeUpdate(confirmUpdate, { args: [{ by: 'admin-2', authority: w.sign(handle.workflowId, 'confirm', 'admin-2'), comment: 'second pair of eyes' }] });
  expect(watching).toMatchObject({ state: 'watching', confirmedBy: 'admin-2', awaitingSecondPerson: false });
  expect(await w.inventoryStatus(nhi)).toBe('offboarded');
  await handle.cancel();
});
