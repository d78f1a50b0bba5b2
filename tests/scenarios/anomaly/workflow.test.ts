// Anomaly throttling on the time-skipping server (timers: silence, quiet periods) against real
// Postgres roles: assertions read pg_roles / pg_auth_members / pg_stat_activity, log in, and read the
// intents ledger. Clear/confirm are Updates: they are covered end to end through the API
// (tests/scenarios/anomaly/routes.test.ts). A second worker (its own task queue) runs the real activities with
// one fault injected: a throttle step that fails after the target changed.
import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../../../activities';
import { activeIntents, commitIntent, intentsOf, releaseIntents } from '../../../enforcement/intents';
import { reconcile } from '../../../enforcement/reconciler';
import { updateStatus } from '../../../lib/inventory';
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
} from '../../../scenarios/anomaly/contract';
import { ErrorType } from '../../../workflows/errors';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../../workflows/search-attributes';
import { waitFor } from '../../helpers/wait';
import { createTestWorld, type TestWorld } from '../../helpers/world';
import { keepHistory } from '../../helpers/histories';

let w: TestWorld;
let faults: Worker;
let faultsRunning: Promise<void>;
let faultsQueue: string;

/** NHIs whose throttle step fails right after the target changed: once (then succeeds), or always. */
const crashOnce = new Set<string>();
const crashAlways = new Set<string>();

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
  faultsQueue = `${w.taskQueue}-faults`;
  const real = createActivities(w.deps);
  faults = await w.createWorker(
    {
      async applyThrottle(a: Parameters<typeof real.applyThrottle>[0]) {
        const rb = await real.applyThrottle(a);
        if (crashAlways.has(a.nhiId)) throw ApplicationFailure.create({ message: 'lost after the target changed (injected)', type: ErrorType.PermanentConnector, nonRetryable: true });
        if (crashOnce.delete(a.nhiId)) throw new Error('worker killed right after the target changed (injected)');
        return rb;
      },
    },
    { taskQueue: faultsQueue },
  );
  faultsRunning = faults.run();
}, 180_000);

afterAll(async () => {
  if (faults) {
    faults.shutdown();
    await faultsRunning;
  }
  await w?.teardown();
});

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

function raise(nhiId: string, e: AnomalyEvidence, taskQueue = w.taskQueue) {
  const input: AnomalyThrottlingInput = { version: 1, nhiId, settings: { ackTimeoutMinutes: 30, escalationTimeoutMinutes: 30, connectionLimit: 2 } };
  return w.env.client.workflow.signalWithStart(ANOMALY_WORKFLOW_TYPE, {
    taskQueue,
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
const groups = async (nhiId: string) => (await roleState(nhiId)).memberships.map((m) => m.group);
/** The throttle intents the ledger holds for an NHI (owner, level, limit). */
const throttleIntents = async (nhiId: string) => (await activeIntents(w.db.pool, nhiId)).restrictions.filter((r) => r.restriction === 'throttle');
let step = 0;
const ctx = (workflowId: string) => ({ workflowId, stepId: `test-${++step}`, scenario: 'test', actor: 'tester', reason: 'test' });
const reconcileDeps = () => ({ pool: w.db.pool, connectors: w.deps.connectors });

/** A finished workflow's failure (a cancelled one throws), with its final status. */
async function ended(nhiId: string): Promise<{ error: unknown; status: AnomalyStatus }> {
  const h = w.env.client.workflow.getHandle(anomalyWorkflowId(nhiId));
  const error = await h.result().then(() => undefined, (err: unknown) => err);
  return { error, status: await h.query(statusQuery) };
}

test('automatic throttle verified at the target; repeated detections join; silence → level 2 (login refused, one intent replaced); a forged supersede is refused; an offboarding\'s takeover releases it exactly', async () => {
  const nhiId = 'ci_deployer';
  // Give it write access (standing: before any intent), so level 1 has something to withhold.
  await w.connector.grant(w.role(nhiId), 'estate_writer');
  const before = await roleState(nhiId);
  expect(before.rolconnlimit).toBe(-1);
  expect(before.memberships.map((m: { group: string }) => m.group)).toEqual([w.ent('estate_readonly'), w.ent('estate_writer')]);
  const oldPassword = await w.activePassword(nhiId);
  const session = await w.connectAs(nhiId, oldPassword);

  const first = evidence();
  const handle = await raise(nhiId, first);
  const l1 = await untilState(nhiId, 'throttled_l1');

  // The target: connection limit lowered, write access withheld, read access kept; login still works.
  const throttled = await roleState(nhiId);
  expect(throttled.rolconnlimit).toBe(2);
  expect(throttled.rolcanlogin).toBe(true);
  expect(throttled.memberships.map((m: { group: string }) => m.group)).toEqual([w.ent('estate_readonly')]);
  expect(l1.level).toBe(1);
  expect(l1.decision).toMatchObject({ automatic: true, autoRestoreAfterMinutes: null });
  // No automatic restore for it: silence steps up, and the time comes with the state.
  expect(l1.stepUpAt).toBeDefined();
  expect(l1.autoRestoreAt).toBeUndefined();
  expect(l1.levels[0]).toMatchObject({ level: 1, connectionLimit: 2, removed: ['estate_writer'], keptReadOnly: ['estate_readonly'], verified: true });
  // The throttle is this workflow's intent in the ledger.
  expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([{ nhiId, kind: 'restrict', subject: 'throttle' }]);
  expect(await throttleIntents(nhiId)).toEqual([{ owner: handle.workflowId, restriction: 'throttle', level: 1, connectionLimit: 2 }]);
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
  expect(l2.levels[1]).toMatchObject({ level: 2, canLogin: false, connectionLimit: 2, verified: true });
  expect(l2.levels[1].sessionsTerminated).toBeGreaterThanOrEqual(1);
  expect(await roleState(nhiId)).toMatchObject({ rolcanlogin: false, rolconnlimit: 2 });
  expect(await groups(nhiId)).toEqual([w.ent('estate_readonly')]);
  expect(await w.login(nhiId, oldPassword)).toBe('28000');
  await expect(session.query('SELECT 1')).rejects.toThrow();
  await session.end().catch(() => undefined);
  const { rows: live } = await w.estateAdmin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [w.role(nhiId)]);
  expect(live[0].n).toBe(0);
  // Level 2 replaced level 1: one intent, same owner.
  expect(await throttleIntents(nhiId)).toEqual([{ owner: handle.workflowId, restriction: 'throttle', level: 2, connectionLimit: 2 }]);
  await waitFor('anomaly.level_2 notice', async () => w.notifier.sent.some((n) => n.workflowId === handle.workflowId && n.kind === 'anomaly.level_2'));

  // A supersede is not taken on the sender's word: the NHI is not being offboarded, so it is refused
  // and the throttle stays.
  await handle.signal(supersedeSignal, { by: 'offboarding', reason: 'forged takeover' });
  await waitFor('supersede refused', async () => (await handle.query(statusQuery)).timeline.some((e) => e.event === 'supersede refused'));
  expect(await handle.query(statusQuery)).toMatchObject({ state: 'throttled_l2', level: 2 });
  expect(await roleState(nhiId)).toMatchObject({ rolcanlogin: false, rolconnlimit: 2 });

  // An offboarding takes over (it marks the inventory first, then signals): the throttle's intent is
  // released (the non-cancellable compensation registered before level 1) and, with no other
  // intent holding it back, the target is exactly as before. (Escalation to containment under the
  // throttle runs on the dev server: tests/scenarios/anomaly/routes.test.ts.)
  await updateStatus(w.db.pool, nhiId, 'offboarding');
  await handle.signal(supersedeSignal, { by: 'offboarding', reason: 'test takeover' });
  const s = await handle.result();
  await keepHistory(w.env.client, 'anomaly-throttled-stepped-up-superseded', handle.workflowId, handle.signaledRunId);
  expect(s).toMatchObject({ state: 'superseded', level: 0, restored: { exact: true, restrictedBy: [], withheld: [] } });
  expect(await roleState(nhiId)).toEqual(before);
  expect(await w.login(nhiId, oldPassword)).toBe('ok');
  expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
  // The inventory is the offboarding's now.
  expect(await w.inventoryStatus(nhiId)).toBe('offboarding');
  await updateStatus(w.db.pool, nhiId, 'active');
  const { rows: closed } = await w.db.pool.query('SELECT status, details FROM incidents WHERE id = $1', [s.incidentId]);
  expect(closed[0]).toMatchObject({ status: 'closed', details: expect.objectContaining({ outcome: 'superseded' }) });

  // Every step audited, in order; no snapshot and no login change of its own any more.
  const { rows: audit } = await w.db.pool.query('SELECT action, outcome FROM audit_events WHERE workflow_id = $1 ORDER BY seq', [handle.workflowId]);
  const actions = audit.map((a) => `${a.action}:${a.outcome}`);
  for (const a of ['policy.throttle:automatic', 'access.reconcile:converged', 'access.throttle:level_1', 'anomaly.incident_open:open', 'anomaly.step_up:level_2', 'access.throttle:level_2', 'access.restore:restored', 'anomaly.supersede:superseded']) {
    expect(actions).toContain(a);
  }
  expect(actions.some((a) => a.startsWith('access.snapshot') || a.startsWith('login.enable'))).toBe(false);
  expect(actions.indexOf('access.throttle:level_1')).toBeLessThan(actions.indexOf('access.throttle:level_2'));
  expect(actions.indexOf('access.throttle:level_2')).toBeLessThan(actions.indexOf('access.restore:restored'));
  expect(actions.indexOf('access.restore:restored')).toBeLessThan(actions.indexOf('anomaly.supersede:superseded'));
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
  await keepHistory(w.env.client, 'anomaly-auto-restored', handle.workflowId, handle.signaledRunId);
  expect(s.state).toBe('auto_restored');
  expect(s.levels).toHaveLength(1);
  expect(s.restored).toMatchObject({ exact: true, restrictedBy: [] });
  expect(await roleState(nhiId)).toEqual(before);
  expect(await w.inventoryStatus(nhiId)).toBe('active');
  expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
  const { rows } = await w.db.pool.query(`SELECT action FROM audit_events WHERE workflow_id = $1 AND action IN ('anomaly.auto_restore', 'access.restore')`, [handle.workflowId]);
  expect(rows.map((r) => r.action).sort()).toEqual(['access.restore', 'anomaly.auto_restore']);
});

test('a critical NHI is not throttled without a person: it waits, reminds, changes nothing; a takeover ends it with nothing to release', async () => {
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

  // Offboarding's hook (the NHI marked first): end now; nothing was throttled, so nothing is released or changed.
  await updateStatus(w.db.pool, nhiId, 'offboarding');
  await handle.signal(supersedeSignal, { by: 'offboarding', reason: 'offboard-svc_payments took over' });
  const end = await handle.result();
  await keepHistory(w.env.client, 'anomaly-awaiting-confirmation-reminded-superseded', handle.workflowId, handle.signaledRunId);
  expect(end.state).toBe('superseded');
  expect(end.restored).toBeUndefined();
  expect(await roleState(nhiId)).toEqual(before);
  expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
  const { rows } = await w.db.pool.query('SELECT status, details FROM incidents WHERE id = $1', [end.incidentId]);
  expect(rows[0]).toMatchObject({ status: 'closed', details: expect.objectContaining({ outcome: 'superseded' }) });
  await updateStatus(w.db.pool, nhiId, 'active');
});

test('superseded by an offboarding: the throttle is released, the offboarding keeps access off, and its abort brings back no throttle (issue 9 case 3)', async () => {
  const nhiId = 'agent_reports';
  const before = await roleState(nhiId);
  const handle = await raise(nhiId, evidence());
  await untilState(nhiId, 'throttled_l1');
  expect((await roleState(nhiId)).rolconnlimit).toBe(2);

  // The offboarding (here its steps, as the ported offboarding takes them) marks the NHI, commits its
  // intent, then signals.
  const offboarding = 'offboard-test-agent_reports';
  await updateStatus(w.db.pool, nhiId, 'offboarding');
  await reconcile(reconcileDeps(), nhiId, ctx(offboarding), (c) => commitIntent(c, nhiId, offboarding, { kind: 'restrict', restriction: 'offboarded' }));
  expect(await roleState(nhiId)).toMatchObject({ rolcanlogin: false, rolconnlimit: 2, memberships: [] });
  await handle.signal(supersedeSignal, { by: 'offboarding', reason: `${offboarding} took over` });
  const end = await handle.result();
  expect(end.state).toBe('superseded');
  expect(end.restored).toMatchObject({ exact: true, restrictedBy: [offboarding] });
  // Its own restriction is gone; the offboarding's still holds: no login, nothing granted.
  expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
  expect(await throttleIntents(nhiId)).toEqual([]);
  expect(await roleState(nhiId)).toMatchObject({ rolcanlogin: false, rolconnlimit: -1, memberships: [] });

  // The offboarding is aborted: what comes back is the NHI's access — no throttle owned by nobody.
  await reconcile(reconcileDeps(), nhiId, ctx(offboarding), (c) => releaseIntents(c, nhiId, offboarding).then(() => undefined));
  await updateStatus(w.db.pool, nhiId, 'active');
  expect(await roleState(nhiId)).toEqual(before);
});

test('a level 1 that fails after the target changed is released: the target exactly as before, no intent left (failed)', async () => {
  const nhiId = 'svc_flaky';
  await w.addNhi({ id: nhiId, criticality: 'high' });
  await w.connector.grant(w.role(nhiId), 'estate_writer');
  const before = await roleState(nhiId);
  crashAlways.add(nhiId);
  try {
    const handle = await raise(nhiId, evidence(), faultsQueue);
    const s = await handle.result();
    expect(s.state).toBe('failed');
    expect(s.failure).toMatch(/throttle level 1 failed: .*injected/);
    expect(s.escalated).toBe(true);
    expect(s.restored).toMatchObject({ exact: true, restrictedBy: [] });
    expect(await roleState(nhiId)).toEqual(before);
    expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
    expect(await w.inventoryStatus(nhiId)).toBe('active');
    const { rows } = await w.db.pool.query(`SELECT action, outcome FROM audit_events WHERE workflow_id = $1 AND action IN ('access.throttle', 'access.restore') ORDER BY seq`, [handle.workflowId]);
    expect(rows.map((r) => `${r.action}:${r.outcome}`)).toEqual(['access.throttle:level_1', 'access.restore:restored', 'access.throttle:rolled_back']);
  } finally {
    crashAlways.delete(nhiId);
  }
});

test('a worker that dies right after level 1 reached the target: the retry converges on the state of a clean run; its ending releases it', async () => {
  const nhiId = 'svc_crashy';
  await w.addNhi({ id: nhiId, criticality: 'high' });
  await w.connector.grant(w.role(nhiId), 'estate_writer');
  const before = await roleState(nhiId);
  crashOnce.add(nhiId);
  const handle = await raise(nhiId, evidence(), faultsQueue);
  const l1 = await untilState(nhiId, 'throttled_l1');
  expect(crashOnce.has(nhiId)).toBe(false); // the first attempt did crash
  expect(l1.levels).toEqual([expect.objectContaining({ level: 1, connectionLimit: 2, removed: ['estate_writer'], keptReadOnly: ['estate_readonly'], verified: true })]);
  expect(await roleState(nhiId)).toMatchObject({ rolcanlogin: true, rolconnlimit: 2 });
  expect(await groups(nhiId)).toEqual([w.ent('estate_readonly')]);
  expect(await throttleIntents(nhiId)).toEqual([{ owner: handle.workflowId, restriction: 'throttle', level: 1, connectionLimit: 2 }]);

  // Cancel once the level's follow-up steps are done: a cancel racing an activity that has just
  // completed leaves the time-skipping test server stuck on its RequestCancelActivityTask (a real
  // server replays and goes on).
  await waitFor('no activity in flight', async () => ((await handle.describe()).raw.pendingActivities?.length ?? 0) === 0);
  // Ended by an offboarding's takeover (cancellation is tested on the dev server, in routes.test.ts:
  // the time-skipping server can stall a workflow task that a cancel races).
  await updateStatus(w.db.pool, nhiId, 'offboarding');
  await handle.signal(supersedeSignal, { by: 'offboarding', reason: 'test takeover after a crash' });
  const end = await handle.result();
  expect(end).toMatchObject({ state: 'superseded', level: 0, restored: { exact: true, restrictedBy: [] } });
  expect(await roleState(nhiId)).toEqual(before);
  await updateStatus(w.db.pool, nhiId, 'active');
  expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
  expect(await w.inventoryStatus(nhiId)).toBe('active');
});
