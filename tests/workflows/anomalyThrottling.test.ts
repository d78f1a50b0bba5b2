// Anomaly throttling on the time-skipping server (timers: silence, quiet periods) against real
// Postgres roles: assertions read pg_roles / pg_auth_members / pg_stat_activity and log in.
// Clear/confirm are Updates: they are covered end to end through the API (tests/api/anomalies.test.ts).
import { randomBytes } from 'node:crypto';
import {
  ANOMALY_WORKFLOW_TYPE,
  anomalySignal,
  anomalyWorkflowId,
  statusQuery,
  supersedeSignal,
  type AnomalyEvidence,
  type AnomalyState,
  type AnomalyStatus,
  type AnomalyThrottlingInput,
} from '../../workflows/anomalyThrottling.contract';
import { leakWorkflowId, type LeakStatus } from '../../workflows/leakContainment.contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';

let w: TestWorld;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
}, 120_000);

afterAll(async () => w?.teardown());

function evidence(over: Partial<AnomalyEvidence> = {}): AnomalyEvidence {
  const now = new Date().toISOString();
  return {
    key: `usage:${randomBytes(4).toString('hex')}`,
    source: 'usage',
    kind: 'detector',
    observedRate: 240,
    baselineRate: 5,
    threshold: 15,
    baselineSource: 'history',
    detail: '240/min is above 15/min',
    reportedBy: 'detector-bot',
    detectedAt: now,
    receivedAt: now,
    ...over,
  };
}

function raise(nhiId: string, e: AnomalyEvidence) {
  const input: AnomalyThrottlingInput = { version: 1, nhiId, settings: { ackTimeoutMinutes: 30, escalationTimeoutMinutes: 30, connectionLimit: 2 } };
  return w.env.client.workflow.signalWithStart(ANOMALY_WORKFLOW_TYPE, {
    taskQueue: w.taskQueue,
    workflowId: anomalyWorkflowId(nhiId),
    args: [input],
    signal: anomalySignal,
    signalArgs: [e],
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    typedSearchAttributes: [
      { key: NhiIdKey, value: nhiId },
      { key: ScenarioKey, value: 'anomaly' },
      { key: NhiStateKey, value: 'evaluating' },
    ],
  });
}

const MINUTE = 60_000;

/**
 * The first status in this state. A state is published together with what it implies (its
 * deadlines), so those can be asserted on this status; what activities do after the state is
 * reached (the incident row, notifications) needs its own wait.
 */
async function untilState(nhiId: string, state: AnomalyState): Promise<AnomalyStatus> {
  const h = w.env.client.workflow.getHandle(anomalyWorkflowId(nhiId));
  return waitFor(`anomaly ${nhiId} ${state}`, async () => {
    const s = await h.query(statusQuery);
    return s.state === state ? s : null;
  }, 30_000);
}

const roleState = (nhiId: string) => w.roleState(nhiId);

test('automatic throttle verified at the target; repeated detections join; silence → level 2 (login refused) → containment as a child; then restored', async () => {
  const nhiId = 'ci_deployer';
  // Give it write access, so level 1 has something to take away.
  await w.connector.grant(w.role(nhiId), 'estate_writer');
  const before = await roleState(nhiId);
  expect(before.rolconnlimit).toBe(-1);
  expect(before.memberships.map((m: { group: string }) => m.group)).toEqual([w.ent('estate_readonly'), w.ent('estate_writer')]);
  const oldPassword = await w.activePassword(nhiId);
  const session = await w.connectAs(nhiId, oldPassword);

  const first = evidence();
  const handle = await raise(nhiId, first);
  const l1 = await untilState(nhiId, 'throttled_l1');

  // The target: connection limit and write access reduced; read access kept; login still works.
  const throttled = await roleState(nhiId);
  expect(throttled.rolconnlimit).toBe(2);
  expect(throttled.rolcanlogin).toBe(true);
  expect(throttled.memberships.map((m: { group: string }) => m.group)).toEqual([w.ent('estate_readonly')]);
  expect(l1.level).toBe(1);
  expect(l1.decision).toMatchObject({ automatic: true, autoRestoreAfterMinutes: null });
  // No automatic restore for it: silence steps up, and the time comes with the state.
  expect(l1.stepUpAt).toBeDefined();
  expect(l1.autoRestoreAt).toBeUndefined();
  expect(l1.levels[0]).toMatchObject({ level: 1, connectionLimit: 2, removed: ['estate_writer'], verified: true });
  expect(l1.snapshot).toMatchObject({ connectionLimit: -1, canLogin: true, entitlements: ['estate_readonly', 'estate_writer'] });
  expect(await w.inventoryStatus(nhiId)).toBe('throttled');
  expect((await handle.describe()).typedSearchAttributes.get(NhiStateKey)).toBe('throttled_l1');

  // Further detections join the same workflow as evidence; a repeat is counted, not added.
  const second = evidence({ observedRate: 400, source: 'collector', reportedBy: 'collector' });
  expect((await raise(nhiId, second)).workflowId).toBe(handle.workflowId);
  await raise(nhiId, second);
  const joined = await waitFor('evidence joined', async () => {
    const s = await handle.query(statusQuery);
    return s.evidenceCount === 2 && s.duplicates === 1 ? s : null;
  });
  expect(joined.evidence.map((e) => e.observedRate)).toEqual([240, 400]);
  expect(joined.runId).toBe(l1.runId);

  // The incident (opened by an activity after the throttle) and the owner's notification.
  expect(l1.incidentId).toBeDefined();
  const inc = await waitFor('anomaly incident row', async () => (await w.db.pool.query('SELECT kind, status, nhi_id, workflow_id FROM incidents WHERE id = $1', [l1.incidentId])).rows[0]);
  expect(inc).toEqual({ kind: 'anomaly', status: 'open', nhi_id: nhiId, workflow_id: handle.workflowId });
  await waitFor('anomaly.throttled notice', async () => w.notifier.sent.some((n) => n.workflowId === handle.workflowId && n.kind === 'anomaly.throttled'));

  // Silence: after the acknowledgement timeout, level 2 — login refused, live sessions ended.
  await w.env.sleep('31 minutes');
  const l2 = await untilState(nhiId, 'throttled_l2');
  expect(l2.levels[1]).toMatchObject({ level: 2, canLogin: false, verified: true });
  expect(l2.levels[1].sessionsTerminated).toBeGreaterThanOrEqual(1);
  expect((await roleState(nhiId)).rolcanlogin).toBe(false);
  expect(await w.login(nhiId, oldPassword)).toBe('28000');
  await expect(session.query('SELECT 1')).rejects.toThrow();
  await session.end().catch(() => undefined);
  const { rows: live } = await w.estateAdmin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [w.role(nhiId)]);
  expect(live[0].n).toBe(0);
  await waitFor('anomaly.level_2 notice', async () => w.notifier.sent.some((n) => n.workflowId === handle.workflowId && n.kind === 'anomaly.level_2'));

  // Still nothing: escalation to leak containment (a child), which rotates the credential.
  const s = await handle.result();
  expect(s.state).toBe('escalated');
  expect(s.containment).toMatchObject({ workflowId: leakWorkflowId(nhiId), mode: 'started', state: 'contained' });
  const leak: LeakStatus = await w.env.client.workflow.getHandle(leakWorkflowId(nhiId)).result();
  expect(leak.state).toBe('contained');
  expect(leak.alerts[0]).toMatchObject({ source: 'generic', label: 'anomaly-throttling', action: 'unanswered' });
  const leakInfo = await w.env.client.workflow.getHandle(leakWorkflowId(nhiId)).describe();
  expect(leakInfo.raw.workflowExecutionInfo?.parentExecution?.workflowId).toBe(handle.workflowId);
  expect(await w.login(nhiId, oldPassword)).toBe('28P01');
  expect(await w.login(nhiId, await w.activePassword(nhiId))).toBe('ok');

  // Then the throttle is lifted: exactly what was there before.
  expect(await roleState(nhiId)).toEqual(before);
  expect(s.restored).toMatchObject({ exact: true, excluded: [] });
  expect(await w.inventoryStatus(nhiId)).toBe('active');
  const { rows: closed } = await w.db.pool.query('SELECT status, closed_at, details FROM incidents WHERE id = $1', [s.incidentId]);
  expect(closed[0].status).toBe('closed');
  expect(closed[0].details.outcome).toBe('escalated');

  // Every step audited, in order.
  const { rows: audit } = await w.db.pool.query('SELECT action, outcome FROM audit_events WHERE workflow_id = $1 ORDER BY seq', [handle.workflowId]);
  const actions = audit.map((a) => `${a.action}:${a.outcome}`);
  for (const a of ['policy.throttle:automatic', 'access.snapshot:taken', 'access.throttle:level_1', 'anomaly.incident_open:open', 'anomaly.step_up:level_2', 'access.throttle:level_2', 'anomaly.escalate:containment', 'login.enable:enabled_for_containment', 'access.restore:restored']) {
    expect(actions).toContain(a);
  }
  expect(actions.indexOf('access.throttle:level_1')).toBeLessThan(actions.indexOf('access.throttle:level_2'));
  expect(actions.indexOf('access.throttle:level_2')).toBeLessThan(actions.indexOf('anomaly.escalate:containment'));
});

test('where policy allows, a quiet period restores access by itself — exactly', async () => {
  const nhiId = 'partner_acme';
  await w.connector.grant(w.role(nhiId), 'estate_writer');
  const before = await roleState(nhiId);
  const handle = await raise(nhiId, evidence({ observedRate: 90, baselineRate: 10 }));
  const l1 = await untilState(nhiId, 'throttled_l1');
  expect(l1.decision?.autoRestoreAfterMinutes).toBe(60);
  // Published with the state: the restore is due 60 quiet minutes after the last evidence.
  expect(l1.autoRestoreAt).toBeDefined();
  expect(Date.parse(l1.autoRestoreAt!) - Date.parse(l1.lastEvidenceAt!)).toBe(60 * MINUTE);
  // Quiet and policy restores by itself: no step-up is scheduled.
  expect(l1.stepUpAt).toBeUndefined();
  expect((await roleState(nhiId)).rolconnlimit).toBe(2);

  const s = await handle.result();
  expect(s.state).toBe('auto_restored');
  expect(s.levels).toHaveLength(1);
  expect(await roleState(nhiId)).toEqual(before);
  expect(await w.inventoryStatus(nhiId)).toBe('active');
  const { rows } = await w.db.pool.query(`SELECT action FROM audit_events WHERE workflow_id = $1 AND action IN ('anomaly.auto_restore', 'access.restore')`, [handle.workflowId]);
  expect(rows.map((r) => r.action).sort()).toEqual(['access.restore', 'anomaly.auto_restore']);
});

test('a critical NHI is not throttled without a person: it waits, reminds, changes nothing; a takeover ends it as is', async () => {
  const nhiId = 'svc_payments';
  const before = await roleState(nhiId);
  const handle = await raise(nhiId, evidence());
  const s = await untilState(nhiId, 'awaiting_confirmation');
  expect(s.decision).toMatchObject({ automatic: false, needsConfirmation: true });
  expect(s.decision?.reasons.join(' ')).toMatch(/critical/);
  expect(s.level).toBe(0);
  // The first reminder's time comes with the state; silence here only reminds.
  expect(s.stepUpAt).toBeDefined();
  expect(s.autoRestoreAt).toBeUndefined();
  // The state is set before the notification activity completes: wait for it.
  await waitFor('confirmation notice', async () => w.notifier.sent.some((n) => n.workflowId === handle.workflowId && n.kind === 'anomaly.confirmation_needed'));

  await w.env.sleep('31 minutes');
  await waitFor('reminder', async () => w.notifier.sent.some((n) => n.workflowId === handle.workflowId && n.id.includes(':reminder:1')));
  expect(await roleState(nhiId)).toEqual(before);
  expect(await w.inventoryStatus(nhiId)).toBe('active');

  // Offboarding's hook: end now, leave access as it is.
  await handle.signal(supersedeSignal, { by: 'offboarding', reason: 'offboard-svc_payments took over' });
  const end = await handle.result();
  expect(end.state).toBe('superseded');
  expect(await roleState(nhiId)).toEqual(before);
  const { rows } = await w.db.pool.query('SELECT status, details FROM incidents WHERE id = $1', [end.incidentId]);
  expect(rows[0]).toMatchObject({ status: 'closed', details: expect.objectContaining({ outcome: 'superseded' }) });
});
