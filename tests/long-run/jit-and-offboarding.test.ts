// Long-lived JIT and offboarding runs on the time-skipping server: an elevation extended 200
// times, an offboarding watched for 400 days. Each run of them stays within its history budget
// (continue-as-new) and each ends with its revoke verified in Postgres. Figures are printed for
// docs/versioning.md.
import { randomBytes } from 'node:crypto';
import { extendUpdate, jitWorkflowId, statusQuery as jitStatusQuery, type JitElevationInput, type JitStatus } from '../../scenarios/jit/contract';
import { offboardingWorkflowId, type OffboardingInput, type OffboardingStatus } from '../../scenarios/offboarding/contract';
import { activeIntents } from '../../enforcement/intents';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';
import { runsOf } from './runs';

/** Per run: far below Temporal's 51 200-event limit. */
const EVENTS_PER_RUN_BUDGET = 10_000;

let w: TestWorld;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
  await w.addNhi({ id: 'svc_longjit', kind: 'service_account', criticality: 'medium' });
  await w.addNhi({ id: 'svc_longwatch', kind: 'service_account', criticality: 'medium' });
}, 180_000);

afterAll(async () => w?.teardown());

const report = (what: string, runs: { events: number }[]) =>
  process.stdout.write(`\nlong-run ${what}: ${runs.length} runs, events per run ${runs.map((r) => r.events).join(', ')}\n`);

test('a JIT elevation extended 200 times: each run under the budget; it expires on time and the grant is revoked', async () => {
  const nhiId = 'svc_longjit';
  const input: JitElevationInput = {
    version: 1,
    nhiId,
    entitlements: ['estate_readonly'],
    justification: 'a migration that keeps running late',
    durationMinutes: 60,
    requestedBy: 'alice',
    requestedAt: new Date().toISOString(),
    settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 2 },
  };
  const workflowId = jitWorkflowId(nhiId, randomBytes(4).toString('hex'));
  const handle = await w.env.client.workflow.start('jitElevation', { taskQueue: w.taskQueue, workflowId, args: [{ ...input, authority: w.sign(workflowId, 'start', 'alice') }] });
  const active: JitStatus = await waitFor('active', async () => {
    const s: JitStatus = await handle.query(jitStatusQuery);
    return s.state === 'active' ? s : null;
  });
  expect(await w.memberships(nhiId)).toContain(w.ent('estate_readonly'));

  // The latest run (the window continues as new every 100 extensions).
  const latest = w.env.client.workflow.getHandle(handle.workflowId);
  for (let i = 1; i <= 200; i++) {
    const s = await latest.executeUpdate(extendUpdate, { args: [{ by: 'alice', minutes: 1, reason: `extension ${i}`, authority: w.sign(workflowId, 'extend', 'alice') }] });
    expect(s.extensions).toHaveLength(i);
  }
  const extended: JitStatus = await latest.query(jitStatusQuery);
  expect(Date.parse(extended.expiresAt!) - Date.parse(active.expiresAt!)).toBe(200 * 60_000);

  const end: JitStatus = await latest.result(); // time skips to the extended expiry
  expect(end).toMatchObject({ state: 'revoked', endReason: 'window_expired' });
  expect(end.entitlements[0]).toMatchObject({ present: false, otherHolders: [] });
  expect(await w.memberships(nhiId)).not.toContain(w.ent('estate_readonly'));
  expect((await activeIntents(w.db.pool, nhiId)).grants).toEqual([]);

  const runs = await runsOf(w.env.client, handle.workflowId, handle.firstExecutionRunId);
  expect(runs.length).toBe((end.runs ?? 0) + 1);
  expect(runs.length).toBeGreaterThan(1);
  for (const r of runs) expect(r.events).toBeLessThan(EVENTS_PER_RUN_BUDGET);
  report('jit (200 extensions)', runs);
}, 300_000);

test('an offboarding watched for 400 days: each run under the budget; it completes with access still off', async () => {
  const nhiId = 'svc_longwatch';
  await w.connector.grant(w.role(nhiId), 'estate_readonly');
  const input: OffboardingInput = {
    version: 1,
    nhiId,
    reason: 'service retired',
    requestedBy: 'admin',
    requestedAt: new Date().toISOString(),
    requestId: randomBytes(4).toString('hex'),
    graceDays: 1,
    watchDays: 400,
  };
  const handle = await w.env.client.workflow.start('offboarding', { taskQueue: w.taskQueue, workflowId: offboardingWorkflowId(nhiId), args: [{ ...input, authority: w.sign(offboardingWorkflowId(nhiId), 'start', 'admin') }] });
  const end: OffboardingStatus = await w.env.client.workflow.getHandle(handle.workflowId).result();
  expect(end.state).toBe('completed');
  expect(end.watch.checks).toBe(400);
  expect(await w.roleState(nhiId)).toEqual({ rolcanlogin: false, rolconnlimit: -1, memberships: [] });

  const runs = await runsOf(w.env.client, handle.workflowId, handle.firstExecutionRunId);
  expect(runs.length).toBe(end.runs + 1);
  for (const r of runs) expect(r.events).toBeLessThan(EVENTS_PER_RUN_BUDGET);
  report('offboarding (400-day watch)', runs);
}, 300_000);

test('an input of a version this worker does not know fails at once, saying so (it is never misread)', async () => {
  const workflowId = jitWorkflowId('svc_longjit', randomBytes(4).toString('hex'));
  const handle = await w.env.client.workflow.start('jitElevation', { taskQueue: w.taskQueue, workflowId, args: [{ version: 2, nhiId: 'svc_longjit' }] });
  await expect(handle.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/input version 2 is not supported by this worker \(supported: 1\)/) } });
  expect(await w.memberships('svc_longjit')).not.toContain(w.ent('estate_readonly'));
});
