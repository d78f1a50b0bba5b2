// JIT elevation on the time-skipping server, against real Postgres roles.
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { jitElevation } from '../../workflows/jitElevation';
import { jitWorkflowId, statusQuery, type JitElevationInput, type JitState } from '../../workflows/jitElevation.contract';
import { createTestWorld, type TestWorld } from '../helpers/world';
import { waitFor } from '../helpers/wait';

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

async function start(over: Partial<JitElevationInput>) {
  const i = input(over);
  return w.env.client.workflow.start(jitElevation, {
    taskQueue: w.taskQueue,
    workflowId: jitWorkflowId(i.nhiId, randomBytes(4).toString('hex')),
    args: [i],
  });
}

async function untilState(handle: Awaited<ReturnType<typeof start>>, state: JitState) {
  return waitFor(`state ${state}`, async () => {
    const s = await handle.query(statusQuery);
    return s.state === state ? s : null;
  });
}

// Make the target fail for an entitlement (its group role vanishes under a new name) and repair it.
const breakRole = (e: string) => w.estateAdmin.query(`ALTER ROLE ${w.ent(e)} RENAME TO ${w.ent(e)}_away`);
const repairRole = (e: string) => w.estateAdmin.query(`ALTER ROLE ${w.ent(e)}_away RENAME TO ${w.ent(e)}`);

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
});

test('a policy denial ends the request denied with the determining policies, nothing granted', async () => {
  // estate_admin is only for service accounts; agent_reports is an AI agent.
  const handle = await start({ nhiId: 'agent_reports', entitlements: ['estate_admin'], ticket: 'CHG-1', durationMinutes: 30 });
  const result = await handle.result();
  expect(result.state).toBe('denied');
  expect(result.decision?.determiningPolicies).toContain('jit-admin-service-accounts-only');
  expect(result.decision?.reasons.join(' ')).toMatch(/service accounts/);
  expect(await w.memberships('agent_reports')).not.toContain(w.ent('estate_admin'));
});

test('an unanswered request expires after the approval timeout with nothing granted', async () => {
  const handle = await start({ nhiId: 'svc_batch', entitlements: ['estate_writer'], durationMinutes: 60 });
  await untilState(handle, 'awaiting_approval');
  const result = await handle.result();
  expect(result.state).toBe('expired');
  expect(result.approvals).toEqual([]);
  expect(await w.memberships('svc_batch')).not.toContain(w.ent('estate_writer'));
  expect((await auditOf(handle.workflowId)).map((a) => a.step_id)).toContain('approval-expired');
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
});

test('two overlapping elevations on one entitlement: access stays until the second ends', async () => {
  const first = await start({ nhiId: 'svc_batch', durationMinutes: 60 });
  await untilState(first, 'active');
  const second = await start({ nhiId: 'svc_batch', durationMinutes: 180 });
  const active2 = await untilState(second, 'active');
  expect(active2.entitlements[0].otherHolders).toEqual([first.workflowId]);

  const r1 = await first.result();
  expect(r1.state).toBe('revoked');
  expect(r1.entitlements[0]).toMatchObject({ present: true, otherHolders: [second.workflowId] });
  expect(await w.memberships('svc_batch')).toContain(w.ent('estate_readonly'));

  const r2 = await second.result();
  expect(r2.entitlements[0]).toMatchObject({ present: false, otherHolders: [] });
  expect(await w.memberships('svc_batch')).not.toContain(w.ent('estate_readonly'));
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
  const i = input({ nhiId: 'svc_ledger', durationMinutes: 90 });
  const handle = await w.env.client.workflow.start(jitElevation, { taskQueue: queue, workflowId: jitWorkflowId(i.nhiId, randomBytes(4).toString('hex')), args: [i] });
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
  } finally {
    if (!fixed) await w.estateAdmin.query(`ALTER ROLE ${w.connectorRole} LOGIN`);
  }
}, 120_000);
