// JIT elevation on the time-skipping server, against real Postgres roles.
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../../../activities';
import type { Connector } from '../../../connectors/types';
import { activeIntents, commitIntent, releaseIntents } from '../../../enforcement/intents';
import { reconcile } from '../../../enforcement/reconciler';
import { ErrorType } from '../../../workflows/errors';
import { jitElevation } from '../../../scenarios/jit/workflow';
import { approveUpdate, extendUpdate, jitWorkflowId, revokeUpdate, statusQuery, type JitElevationInput, type JitState } from '../../../scenarios/jit/contract';
import { leakWorkflowId } from '../../../scenarios/leak/contract';
import { createTestWorld, type TestWorld } from '../../helpers/world';
import { waitFor } from '../../helpers/wait';
import { keepHistory } from '../../helpers/histories';

let w: TestWorld;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
  await w.addNhi({ id: 'svc_etl', kind: 'service_account', criticality: 'medium' });
  await w.addNhi({ id: 'svc_batch', kind: 'service_account', criticality: 'medium' });
  await w.addNhi({ id: 'svc_ledger', kind: 'service_account', criticality: 'medium', tags: ['break-glass'] });
}, 120_000);

afterAll(async () => w?.teardown());

const settings = { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 2 };

function input(over: Partial<JitElevationInput>): JitElevationInput {
  return {
    version: 1,
    nhiId: 'svc_etl',
    entitlements: ['estate_readonly'],
    justification: 'nightly backfill of reports',
    durationMinutes: 120,
    requestedBy: 'alice',
    requestedAt: new Date().toISOString(),
    settings,
    ...over,
  };
}

/** Start as the API does: requestedBy signed for this workflow's start. */
async function start(over: Partial<JitElevationInput>, taskQueue = w.taskQueue): Promise<Elevation> {
  const i = input(over);
  const workflowId = jitWorkflowId(i.nhiId, randomBytes(4).toString('hex'));
  return w.env.client.workflow.start(jitElevation, { taskQueue, workflowId, args: [{ authority: w.sign(workflowId, 'start', i.requestedBy), ...i }] });
}

type Elevation = WorkflowHandleWithFirstExecutionRunId<typeof jitElevation>;

async function untilState(handle: Elevation, state: JitState) {
  return waitFor(`state ${state}`, async () => {
    const s = await handle.query(statusQuery);
    return s.state === state ? s : null;
  });
}

// Make the target fail for an entitlement (its group role vanishes under a new name) and repair it.
const breakRole = (e: string) => w.estateAdmin.query(`ALTER ROLE ${w.ent(e)} RENAME TO ${w.ent(e)}_away`);
const repairRole = (e: string) => w.estateAdmin.query(`ALTER ROLE ${w.ent(e)}_away RENAME TO ${w.ent(e)}`);

/** The innermost cause of a failure chain. */
function innermost(err: unknown): unknown {
  let e = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e;
}

async function auditOf(workflowId: string) {
  const { rows } = await w.db.pool.query('SELECT step_id, action, outcome, readback FROM audit_events WHERE workflow_id = $1 ORDER BY seq', [workflowId]);
  return rows;
}

test('auto-approved 2 h window: membership present after grant, gone after expiry, receipt written', async () => {
  const handle = await start({ nhiId: 'svc_etl', durationMinutes: 120 });
  const active = await untilState(handle, 'active');
  expect(active.decision?.outcome).toBe('auto_approve');
  expect(active.entitlements[0]).toMatchObject({ entitlement: 'estate_readonly', present: true });
  expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));
  expect(Date.parse(active.expiresAt!) - Date.parse(active.grantedAt!)).toBe(120 * 60_000);

  const result = await handle.result(); // time skips to expiry
  expect(result.state).toBe('revoked');
  expect(result.endReason).toBe('window_expired');
  expect(result.entitlements[0]).toMatchObject({ present: false, otherHolders: [] });
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));

  const audit = await auditOf(handle.workflowId);
  // Each access step is the reconciler's row (what changed at the target) and the step's own receipt.
  expect(audit.map((a) => a.step_id)).toEqual(['policy', 'grant:estate_readonly:reconcile', 'grant:estate_readonly', 'release:estate_readonly:reconcile', 'release:estate_readonly', 'receipt']);
  expect(audit[1]).toMatchObject({ action: 'access.reconcile', outcome: 'converged' });
  expect(audit[1].readback.changes.granted).toEqual(['estate_readonly']);
  expect(audit[3].readback.changes.revoked).toEqual(['estate_readonly']);
  expect(audit[5]).toMatchObject({ action: 'elevation.receipt', outcome: 'no_standing_access' });
  expect(audit[5].readback[0]).toMatchObject({ entitlement: 'estate_readonly', present: false });
  expect(w.notifier.sent.some((n) => n.kind === 'jit.expiring' && n.workflowId === handle.workflowId)).toBe(true);
  // The jit-local-steps patch: every step a local activity (a marker each), no task-queue round trip,
  // and NhiState set for the lasting states only (plus the SDK's TemporalChangeVersion per patch).
  const events = (await handle.fetchHistory()).events ?? [];
  const markers = events.map((e) => e.markerRecordedEventAttributes?.markerName).filter(Boolean);
  expect(markers.filter((m) => m === 'core_local_activity')).toHaveLength(6);
  expect(events.filter((e) => e.activityTaskScheduledEventAttributes)).toHaveLength(0);
  const states = events.flatMap((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).filter((k) => k === 'NhiState'));
  expect(states).toHaveLength(2);
  await keepHistory(w.env.client, 'jit-auto-approved-expired', handle.workflowId);
});

test('a policy denial ends the request denied with the determining policies, nothing granted', async () => {
  // estate_admin is only for service accounts; agent_reports is an AI agent.
  const handle = await start({ nhiId: 'agent_reports', entitlements: ['estate_admin'], ticket: 'CHG-1', durationMinutes: 30 });
  const result = await handle.result();
  expect(result.state).toBe('denied');
  expect(result.decision?.determiningPolicies).toContain('jit-admin-service-accounts-only');
  expect(result.decision?.reasons.join(' ')).toMatch(/service accounts/);
  expect(await w.memberships('agent_reports')).not.toContain(w.ent('estate_admin'));
  await keepHistory(w.env.client, 'jit-denied-by-policy', handle.workflowId);
});

test('an unanswered request expires after the approval timeout with nothing granted', async () => {
  const handle = await start({ nhiId: 'svc_batch', entitlements: ['estate_writer'], durationMinutes: 60 });
  await untilState(handle, 'awaiting_approval');
  const result = await handle.result();
  expect(result.state).toBe('expired');
  expect(result.approvals).toEqual([]);
  expect(await w.memberships('svc_batch')).not.toContain(w.ent('estate_writer'));
  expect((await auditOf(handle.workflowId)).map((a) => a.step_id)).toContain('approval-expired');
  await keepHistory(w.env.client, 'jit-approval-expired', handle.workflowId);
});

test('a bundle where one grant fails for good is rolled back: earlier grants revoked and verified', async () => {
  // The target refuses estate_admin: its group role disappears (renamed away) under the connector.
  await breakRole('estate_admin');
  try {
    // Break-glass (NHI opted in, ticket given) skips approval, so the bundle goes straight to granting.
    const handle = await start({ nhiId: 'svc_ledger', entitlements: ['estate_readonly', 'estate_admin'], ticket: 'INC-9', breakGlass: true, durationMinutes: 60 });
    const result = await handle.result();
    expect(result.decision?.outcome).toBe('break_glass');
    expect(result.state).toBe('rolled_back');
    expect(result.failure).toBeTruthy();
    expect(result.entitlements[0]).toMatchObject({ entitlement: 'estate_readonly', present: false });
    const m = await w.memberships('svc_ledger');
    expect(m).not.toContain(w.ent('estate_readonly'));
    expect(m).not.toContain(w.ent('estate_admin'));
    const steps = (await auditOf(handle.workflowId)).map((a) => a.step_id);
    expect(steps).toEqual(expect.arrayContaining(['grant:estate_readonly', 'rollback:estate_readonly', 'rolled-back', 'receipt']));
    await keepHistory(w.env.client, 'jit-rolled-back', handle.workflowId);
  } finally {
    await repairRole('estate_admin');
  }
});

test('cancellation from the client revokes and verifies, in a non-cancellable scope', async () => {
  const handle = await start({ nhiId: 'svc_etl', durationMinutes: 240 });
  await untilState(handle, 'active');
  expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));
  await handle.cancel();
  await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
  const s = await handle.query(statusQuery);
  expect(s).toMatchObject({ state: 'revoked', endReason: 'cancelled' });
  await keepHistory(w.env.client, 'jit-cancelled-while-active', handle.workflowId);
});

test('two overlapping elevations on one entitlement: the first to end keeps it for the other, the second removes it', async () => {
  const first = await start({ nhiId: 'svc_batch', durationMinutes: 60 });
  await untilState(first, 'active');
  expect(await w.memberships('svc_batch')).toEqual([w.ent('estate_readonly')]);
  const second = await start({ nhiId: 'svc_batch', durationMinutes: 180 });
  const active2 = await untilState(second, 'active');
  expect(active2.entitlements[0].otherHolders).toEqual([first.workflowId]);
  expect(await w.memberships('svc_batch')).toEqual([w.ent('estate_readonly')]);
  expect(await grantOwners('svc_batch', 'estate_readonly')).toEqual([first.workflowId, second.workflowId].sort());

  const r1 = await first.result();
  expect(r1.state).toBe('revoked');
  expect(r1.entitlements[0]).toMatchObject({ present: true, otherHolders: [second.workflowId] });
  expect(await w.memberships('svc_batch')).toEqual([w.ent('estate_readonly')]);
  expect(await grantOwners('svc_batch', 'estate_readonly')).toEqual([second.workflowId]);
  const kept = (await auditOf(first.workflowId)).find((a) => a.step_id === 'release:estate_readonly');
  expect(kept).toMatchObject({ outcome: 'released_kept_for_other_holders' });

  const r2 = await second.result();
  expect(r2.entitlements[0]).toMatchObject({ present: false, otherHolders: [] });
  expect(await w.memberships('svc_batch')).toEqual([]);
  expect(await grantOwners('svc_batch', 'estate_readonly')).toEqual([]);
});

test('two overlapping elevations, the later one ends first ("I\'m done"): kept for the earlier one until it expires', async () => {
  const nhi = 'svc_overlap';
  await w.addNhi({ id: nhi, kind: 'service_account', criticality: 'medium' });
  const longer = await start({ nhiId: nhi, durationMinutes: 120 });
  await untilState(longer, 'active');
  const shorter = await start({ nhiId: nhi, durationMinutes: 120 });
  await untilState(shorter, 'active');
  expect(await w.memberships(nhi)).toEqual([w.ent('estate_readonly')]);

  const done = await shorter.executeUpdate(revokeUpdate, { args: [{ by: 'alice', reason: 'finished', authority: w.sign(shorter.workflowId, 'revoke', 'alice') }] });
  expect(done).toMatchObject({ state: 'revoked', endReason: 'revoked_early' });
  expect(done.entitlements[0]).toMatchObject({ present: true, otherHolders: [longer.workflowId] });
  expect(await w.memberships(nhi)).toEqual([w.ent('estate_readonly')]);
  expect((await longer.query(statusQuery)).state).toBe('active');

  const r = await longer.result();
  expect(r).toMatchObject({ state: 'revoked', endReason: 'window_expired' });
  expect(await w.memberships(nhi)).toEqual([]);
  expect((await intentsOfNhi(nhi)).grants).toEqual([]);
});

test('access the NHI held before the elevation is not taken away when it ends', async () => {
  // ci_deployer is a standing member of estate_readonly in the demo estate.
  expect(await w.memberships('ci_deployer')).toContain(w.ent('estate_readonly'));
  const handle = await start({ nhiId: 'ci_deployer', durationMinutes: 30 });
  const result = await handle.result();
  // The baseline intent (captured by the first reconcile) is its standing access.
  expect(result.entitlements[0]).toMatchObject({ present: true, otherHolders: ['baseline'] });
  expect(await w.memberships('ci_deployer')).toContain(w.ent('estate_readonly'));
});

test('worker restarted mid-window: the elevation is still revoked on time', async () => {
  // Its own task queue and no workflow cache, so the workflow is not stuck to the worker that goes away.
  const queue = `${w.taskQueue}-restart`;
  const first = await w.createWorker({}, { taskQueue: queue, maxCachedWorkflows: 0 });
  const firstRunning = first.run();
  const handle = await start({ nhiId: 'svc_ledger', durationMinutes: 90 }, queue);
  await untilState(handle, 'active');
  first.shutdown();
  await firstRunning;
  expect(await w.memberships('svc_ledger')).toContain(w.ent('estate_readonly'));

  const second = await w.createWorker({}, { taskQueue: queue });
  const secondRunning = second.run();
  try {
    const result = await handle.result();
    expect(result.state).toBe('revoked');
    expect(Date.parse(result.timeline.at(-1)!.at) - Date.parse(result.grantedAt!)).toBeGreaterThanOrEqual(90 * 60_000);
    expect(await w.memberships('svc_ledger')).not.toContain(w.ent('estate_readonly'));
  } finally {
    second.shutdown();
    await secondRunning;
  }
});

test('the target rejecting revocation for a while: retries, escalation raised, revoked once it recovers', async () => {
  const handle = await start({ nhiId: 'svc_etl', durationMinutes: 30 });
  await untilState(handle, 'active');
  // The target refuses the connector: its login is disabled and its sessions ended.
  await w.estateAdmin.query(`ALTER ROLE ${w.connectorRole} NOLOGIN`);
  await w.estateAdmin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [w.connectorRole]);
  let fixed = false;
  try {
    const result = handle.result();
    await waitFor('escalation', async () => w.notifier.sent.find((n) => n.kind === 'escalation' && n.workflowId === handle.workflowId), 60_000);
    const s = await handle.query(statusQuery);
    expect(s).toMatchObject({ state: 'revoking', escalated: true });
    expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));
    await w.estateAdmin.query(`ALTER ROLE ${w.connectorRole} LOGIN`);
    fixed = true;
    const r = await result;
    expect(r).toMatchObject({ state: 'revoked', escalated: true });
    expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
    expect((await auditOf(handle.workflowId)).map((a) => a.action)).toContain('revocation.escalate');
    await keepHistory(w.env.client, 'jit-revoked-after-escalation', handle.workflowId);
  } finally {
    if (!fixed) await w.estateAdmin.query(`ALTER ROLE ${w.connectorRole} LOGIN`);
  }
}, 120_000);

// --- issue 9: intents, one reconciler --------------------------------------------------------

const intentsOfNhi = async (nhiId: string) => activeIntents(w.db.pool, nhiId);
const grantOwners = async (nhiId: string, entitlement: string) =>
  (await intentsOfNhi(nhiId)).grants.filter((g) => g.entitlement === entitlement).map((g) => g.owner).sort();

/**
 * Run `fn` with a worker of its own (activity overrides) on its own task queue. Workflows it
 * starts there are terminated if `fn` fails: left on a queue nobody polls, they stall time skipping.
 */
async function withWorker<T>(overrides: Record<string, (...args: any[]) => Promise<unknown>>, fn: (startHere: (over: Partial<JitElevationInput>) => Promise<Elevation>) => Promise<T>): Promise<T> {
  const queue = `${w.taskQueue}-${randomBytes(3).toString('hex')}`;
  const worker = await w.createWorker(overrides, { taskQueue: queue });
  const running = worker.run();
  const started: Elevation[] = [];
  try {
    return await fn(async (over) => {
      const handle = await start(over, queue);
      started.push(handle);
      return handle;
    });
  } catch (err) {
    await Promise.all(started.map((h) => h.terminate('test failed').catch(() => undefined)));
    throw err;
  } finally {
    worker.shutdown();
    await running;
  }
}

describe('crash between the target and the ledger (issue 9, case 1)', () => {
  /** The real connector, except that the first change it makes at the target is followed by a failure. */
  function crashingOnce(state: { crashes: number; presentAtCrash?: boolean }, nhiId: string, entitlement: string): Connector {
    return new Proxy(w.connector, {
      get(target, prop, receiver) {
        const real = Reflect.get(target, prop, receiver);
        if (prop !== 'apply' && prop !== 'grant') return typeof real === 'function' ? real.bind(target) : real;
        return async (...args: unknown[]) => {
          const out = await Reflect.apply(real as (...a: unknown[]) => Promise<unknown>, target, args);
          if (state.crashes === 0) {
            state.crashes++;
            state.presentAtCrash = (await w.memberships(nhiId)).includes(w.ent(entitlement));
            throw new Error('connection reset right after the target changed');
          }
          return out;
        };
      },
    }) as Connector;
  }

  test.each([
    ['inside the step, right after the target changed', 'target'],
    ['after the step, before Temporal recorded its result', 'result'],
  ])('a grant attempt that fails %s ends like a clean run, and no access stays after the elevation', async (_name, where) => {
    const nhi = `svc_crash_${where}`;
    await w.addNhi({ id: nhi, kind: 'service_account', criticality: 'medium' });
    const before = await w.roleState(nhi);

    // A clean run first: the target's state while active is what the crashed run must reach too.
    const clean = await start({ nhiId: nhi, durationMinutes: 30 });
    await untilState(clean, 'active');
    const cleanActive = await w.roleState(nhi);
    expect(cleanActive.memberships.map((m) => m.group)).toEqual([w.ent('estate_readonly')]);
    expect((await clean.result()).state).toBe('revoked');
    expect(await w.roleState(nhi)).toEqual(before);

    const state: { crashes: number; presentAtCrash?: boolean } = { crashes: 0 };
    const real = createActivities(where === 'target' ? { ...w.deps, connectors: { get: () => crashingOnce(state, nhi, 'estate_readonly'), configuredConnectors: () => ['postgres'] } } : w.deps);
    const overrides = {
      async grantEntitlement(g: Parameters<typeof real.grantEntitlement>[0]) {
        const out = await real.grantEntitlement(g);
        if (where === 'result' && state.crashes === 0) {
          state.crashes++;
          state.presentAtCrash = (await w.memberships(nhi)).includes(w.ent('estate_readonly'));
          throw ApplicationFailure.retryable('worker lost the result of the grant', 'WorkerCrashed');
        }
        return out;
      },
    };
    await withWorker(overrides, async (startHere) => {
      const handle = await startHere({ nhiId: nhi, durationMinutes: 30 });
      const active = await untilState(handle, 'active');
      // The failed attempt had changed the target; the retry converged on the same state as the clean run.
      expect(state).toEqual({ crashes: 1, presentAtCrash: true });
      expect(active.entitlements[0]).toMatchObject({ entitlement: 'estate_readonly', present: true, otherHolders: [] });
      expect(await w.roleState(nhi)).toEqual(cleanActive);
      expect(await grantOwners(nhi, 'estate_readonly')).toEqual([handle.workflowId]);
      // Nothing became standing access: the baseline is what the NHI had before any elevation.
      expect((await intentsOfNhi(nhi)).baseline?.entitlements).toEqual([]);

      const result = await handle.result(); // expiry
      expect(result).toMatchObject({ state: 'revoked', endReason: 'window_expired' });
      expect(result.entitlements[0]).toMatchObject({ present: false, otherHolders: [] });
      expect(await w.memberships(nhi)).toEqual([]);
      expect(await w.roleState(nhi)).toEqual(before);
      expect(await grantOwners(nhi, 'estate_readonly')).toEqual([]);
      const receipt = (await auditOf(handle.workflowId)).find((a) => a.step_id === 'receipt');
      expect(receipt).toMatchObject({ outcome: 'no_standing_access' });
    });
  });
});

test('an elevation approved while a throttle holds the NHI does not end active: AccessWithheld, nothing granted, the throttle untouched (issue 9, case 2)', async () => {
  const nhi = 'svc_throttled';
  await w.addNhi({ id: nhi, kind: 'service_account', criticality: 'medium' });
  const before = await w.roleState(nhi);
  const rdeps = { pool: w.db.pool, connectors: w.deps.connectors };
  const ctx = (stepId: string) => ({ workflowId: 'anomaly-test', stepId, scenario: 'anomaly', actor: 'test', reason: 'throttle under test' });
  await reconcile(rdeps, nhi, ctx('throttle'), (c) => commitIntent(c, nhi, 'anomaly-test', { kind: 'restrict', restriction: 'throttle', level: 1, connectionLimit: 2 }));
  const throttled = await w.roleState(nhi);
  expect(throttled).toMatchObject({ rolcanlogin: true, rolconnlimit: 2, memberships: [] });

  const handle = await start({ nhiId: nhi, entitlements: ['estate_writer'], durationMinutes: 60 });
  await untilState(handle, 'awaiting_approval');
  await handle.executeUpdate(approveUpdate, { args: [{ approver: 'bob', comment: 'ok', authority: w.sign(handle.workflowId, 'approve', 'bob') }] });
  const result = await handle.result();
  expect(result.state).toBe('rolled_back');
  expect(result.grantedAt).toBeUndefined();
  expect(result.failure).toMatch(/estate_writer is withheld from svc_throttled by anomaly-test \(throttle\)/);
  expect(result.timeline.map((t) => t.event)).not.toContain('active');
  expect(result.entitlements[0]).toMatchObject({ entitlement: 'estate_writer', present: false });

  // The target never got it, and the throttle's own state (limit, login, memberships) is as it was.
  expect(await w.memberships(nhi)).not.toContain(w.ent('estate_writer'));
  expect(await w.roleState(nhi)).toEqual(throttled);
  const intents = await intentsOfNhi(nhi);
  expect(intents.restrictions).toEqual([{ owner: 'anomaly-test', restriction: 'throttle', level: 1, connectionLimit: 2 }]);
  expect(intents.grants).toEqual([]);
  const grantStep = (await auditOf(handle.workflowId)).find((a) => a.step_id === 'grant:estate_writer');
  expect(grantStep).toMatchObject({ action: 'entitlement.grant', outcome: 'withheld' });

  // Clearing the throttle brings back exactly what was there: no elevation hides behind it.
  await reconcile(rdeps, nhi, ctx('clear'), (c) => releaseIntents(c, nhi, 'anomaly-test').then(() => undefined));
  expect(await w.roleState(nhi)).toEqual(before);
});

describe('authority comes from the API\'s signature, never from the message (issue 13 finding 1)', () => {
  test('an approve sent straight to Temporal ("approver": "bob", no signature) is refused, nothing granted', async () => {
    const handle = await start({ nhiId: 'svc_batch', entitlements: ['estate_writer'], durationMinutes: 60 });
    await untilState(handle, 'awaiting_approval');
    await expect(handle.executeUpdate(approveUpdate, { args: [{ approver: 'bob' }] })).rejects.toMatchObject({ cause: { cause: { type: ErrorType.NotAllowed, message: expect.stringMatching(/approve refused: approve needs a signed principal/) } } });
    // Signed for someone else, for another workflow, or for another message: refused too.
    const other = await start({ nhiId: 'svc_etl', entitlements: ['estate_writer'], durationMinutes: 60 });
    for (const authority of [w.sign(handle.workflowId, 'approve', 'carol'), w.sign(other.workflowId, 'approve', 'bob'), w.sign(handle.workflowId, 'deny', 'bob'), { ...w.sign(handle.workflowId, 'approve', 'bob'), signature: 'AAAA' }]) {
      await expect(handle.executeUpdate(approveUpdate, { args: [{ approver: 'bob', authority }] })).rejects.toMatchObject({ cause: { cause: { type: ErrorType.NotAllowed } } });
    }
    const s = await handle.query(statusQuery);
    expect(s).toMatchObject({ state: 'awaiting_approval', approvals: [] });
    expect(await w.memberships('svc_batch')).not.toContain(w.ent('estate_writer'));
    await other.cancel();
    await handle.cancel();
  });

  test('a workflow started straight on Temporal with requestedBy "admin" and no signature changes nothing', async () => {
    const i = input({ nhiId: 'svc_batch', entitlements: ['estate_readonly'], requestedBy: 'admin' });
    const handle = await w.env.client.workflow.start(jitElevation, { taskQueue: w.taskQueue, workflowId: jitWorkflowId(i.nhiId, randomBytes(4).toString('hex')), args: [i] });
    // The refusal is the innermost failure (wrapped in an ActivityFailure when the step was a regular activity).
    const failure = await handle.result().then(() => undefined, (e: unknown) => e);
    expect(innermost(failure)).toMatchObject({ type: ErrorType.NotAllowed, message: expect.stringMatching(/start refused/) });
    expect(await w.memberships('svc_batch')).not.toContain(w.ent('estate_readonly'));
  });

  test('an extension needs the requester\'s signature; an unsigned revoke only narrows access and is recorded as temporal-ui', async () => {
    const handle = await start({ nhiId: 'svc_etl', durationMinutes: 60 });
    const active = await untilState(handle, 'active');
    await expect(handle.executeUpdate(extendUpdate, { args: [{ by: 'alice', minutes: 60 }] })).rejects.toMatchObject({ cause: { cause: { type: ErrorType.NotAllowed } } });
    expect((await handle.query(statusQuery)).expiresAt).toBe(active.expiresAt);
    // Signed, it counts once: the same signed message sent again is a replay.
    const authority = w.sign(handle.workflowId, 'extend', 'alice');
    await handle.executeUpdate(extendUpdate, { args: [{ by: 'alice', minutes: 10, authority }] });
    await expect(handle.executeUpdate(extendUpdate, { args: [{ by: 'alice', minutes: 10, authority }] })).rejects.toMatchObject({ cause: { cause: { message: expect.stringMatching(/already used/) } } });
    expect(Date.parse((await handle.query(statusQuery)).expiresAt!) - Date.parse(active.expiresAt!)).toBe(10 * 60_000);
    const ended = await handle.executeUpdate(revokeUpdate, { args: [{ by: 'admin', reason: 'from the Temporal UI' }] });
    expect(ended).toMatchObject({ state: 'revoked', endReason: 'revoked_early', endedBy: 'temporal-ui' });
    expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
  });
});

describe('who may end an elevation is decided server-side, never from roles in the message', () => {
  test('a forged roles: ["admin"] from a principal without that role is refused; the elevation stays active', async () => {
    const handle = await start({ nhiId: 'svc_etl', durationMinutes: 60 });
    await untilState(handle, 'active');
    // dave is a requester, not this elevation's requester (alice), not an approver, not an admin.
    const forged = handle.executeUpdate(revokeUpdate, { args: [{ by: 'dave', roles: ['admin'], reason: 'forged', authority: w.sign(handle.workflowId, 'revoke', 'dave') }] });
    await expect(forged).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    await expect(forged).rejects.toMatchObject({ cause: { type: ErrorType.NotAllowed, message: expect.stringMatching(/dave may not end this elevation/) } });
    // Nor may anyone claim to be a scenario that is not running for this NHI.
    const fakeScenario = handle.executeUpdate(revokeUpdate, { args: [{ by: 'leak-containment', byWorkflow: leakWorkflowId('svc_etl'), reason: 'forged' }] });
    await expect(fakeScenario).rejects.toMatchObject({ cause: { type: ErrorType.NotAllowed } });

    const s = await handle.query(statusQuery);
    expect(s).toMatchObject({ state: 'active' });
    expect(s.endedBy).toBeUndefined();
    expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));

    // An approver (looked up in principals) may, with no roles in the message at all.
    const ended = await handle.executeUpdate(revokeUpdate, { args: [{ by: 'bob', reason: 'approver ends it', authority: w.sign(handle.workflowId, 'revoke', 'bob') }] });
    expect(ended).toMatchObject({ state: 'revoked', endReason: 'revoked_early', endedBy: 'bob' });
    expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
  });

  test('the requester withdraws a request that awaits approval: cancelled, nothing granted', async () => {
    const handle = await start({ nhiId: 'svc_batch', entitlements: ['estate_writer'], durationMinutes: 60 });
    await untilState(handle, 'awaiting_approval');
    const s = await handle.executeUpdate(revokeUpdate, { args: [{ by: 'alice', reason: 'not needed any more', authority: w.sign(handle.workflowId, 'revoke', 'alice') }] });
    expect(s).toMatchObject({ state: 'cancelled', endedBy: 'alice' });
    expect((await handle.result()).state).toBe('cancelled');
    expect(await w.memberships('svc_batch')).not.toContain(w.ent('estate_writer'));
  });
});
