// Revocation lag from a JIT window that really expires (time-skipping server, real Postgres roles):
// the feed joins the revoke's row to the grant's expiry as the JIT activities write them. The
// skipped clock runs ahead of the database's, so the lag itself reads 0 here (clamped); the count
// proves the join, and tests/api/metrics.test.ts checks the arithmetic on rows of the same shape.
import { randomBytes } from 'node:crypto';
import { createMetrics } from '../../lib/metrics';
import { jitWorkflowId, type JitElevationInput } from '../../scenarios/jit/contract';
import { jitElevation } from '../../scenarios/jit/workflow';
import { createTestWorld, type TestWorld } from '../helpers/world';

let w: TestWorld;
beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
  await w.addNhi({ id: 'svc_lag', kind: 'service_account', criticality: 'medium' });
}, 120_000);
afterAll(async () => w?.teardown());

const series = (text: string, line: RegExp) => Number(line.exec(text)?.[1] ?? 0);

test('an expired window is one revocation-lag sample; a denied request is none', async () => {
  const metrics = createMetrics({ pool: w.db.pool, client: w.env.client, taskQueue: w.taskQueue, processMetrics: false });
  const before = await metrics.render();
  const base = { version: 1 as const, nhiId: 'svc_lag', justification: 'lag test', requestedBy: 'alice', settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 2 } };
  const run = async (over: Partial<JitElevationInput>) => {
    const input: JitElevationInput = { ...base, entitlements: ['estate_readonly'], durationMinutes: 60, requestedAt: new Date().toISOString(), ...over };
    const workflowId = jitWorkflowId(input.nhiId, randomBytes(4).toString('hex'));
    return w.env.client.workflow.execute(jitElevation, { taskQueue: w.taskQueue, workflowId, args: [{ authority: w.sign(workflowId, 'start', 'alice'), ...input }] });
  };
  expect((await run({})).endReason).toBe('window_expired');
  expect((await run({ durationMinutes: 100_000 })).state).toBe('denied');
  const after = await metrics.render();
  const count = /^nhi_revocation_lag_seconds_count\{scenario="jit"\} (\S+)$/m;
  expect(series(after, count) - series(before, count)).toBe(1);
  expect(series(after, /^nhi_audit_events_total\{scenario="jit",action="elevation.receipt",outcome="no_standing_access"\} (\S+)$/m)).toBe(1);
}, 60_000);
