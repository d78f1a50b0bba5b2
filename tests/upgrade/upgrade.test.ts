// Upgrading the worker under running workflows. An anomaly case and a JIT window start on the
// build before the current patches (tests/upgrade/bundles.ts); that worker is replaced by the
// current code; the running ones go on — replaying their history on the old path, then taking
// the new one from the point they reach live — and a case started after the upgrade takes the new
// path from its start. All end correctly, verified in Postgres.
import { randomBytes } from 'node:crypto';
import type { Worker } from '@temporalio/worker';
import { ANOMALY_WORKFLOW_TYPE, anomalySignal, anomalyWorkflowId, statusQuery as anomalyStatus, type AnomalyEvidence, type AnomalyStatus, type AnomalyThrottlingInput } from '../../scenarios/anomaly/contract';
import { extendUpdate, jitWorkflowId, statusQuery as jitStatus, type JitElevationInput, type JitStatus } from '../../scenarios/jit/contract';
import { PATCHES } from '../../workflows/versioning';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';
import { bundleBeforePatches } from './bundles';

const MINUTE = 60_000;
let w: TestWorld;
let before: { code: string };
let queue: string;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: false });
  for (const id of ['svc_up_old', 'svc_up_new', 'svc_up_jit']) await w.addNhi({ id, kind: 'service_account', criticality: 'medium' });
  before = await bundleBeforePatches();
  queue = `${w.taskQueue}-upgrade`;
}, 180_000);

afterAll(async () => w?.teardown());

function detection(): AnomalyEvidence {
  const at = new Date().toISOString();
  return { key: `collector:${randomBytes(4).toString('hex')}`, source: 'collector', kind: 'detector', observedRate: 90, baselineRate: 10, reportedBy: 'collector', detectedAt: at, receivedAt: at };
}

function raise(nhiId: string) {
  // Auto-restore after 60 quiet minutes (policy for medium NHIs); no step-up before that.
  const input: AnomalyThrottlingInput = { version: 1, nhiId, settings: { ackTimeoutMinutes: 600, escalationTimeoutMinutes: 600, connectionLimit: 2 } };
  return w.env.client.workflow.signalWithStart(ANOMALY_WORKFLOW_TYPE, { taskQueue: queue, workflowId: anomalyWorkflowId(nhiId), args: [input], signal: anomalySignal, signalArgs: [detection()] });
}

const log = (m: string) => process.env.DEBUG_UPGRADE && process.stdout.write(`[upgrade] ${m}\n`);
async function run(worker: Worker, fn: () => Promise<void>) {
  const running = worker.run();
  try {
    await fn();
  } finally {
    worker.shutdown();
    await running;
  }
}

/** Event types of a history, and where the patch marker is. */
async function pathOf(workflowId: string, runId?: string) {
  const events = (await w.env.client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
  const isPatch = (e: (typeof events)[number]) => e.markerRecordedEventAttributes?.markerName === 'core_patch';
  const marker = events.findIndex(isPatch);
  const cancelled = events.map((e, i) => (e.timerCanceledEventAttributes ? i : -1)).filter((i) => i >= 0);
  return { marker, cancelledBeforeMarker: cancelled.filter((i) => marker < 0 || i < marker).length, cancelledAfterMarker: cancelled.filter((i) => marker >= 0 && i > marker).length };
}

test('an anomaly case and a JIT window started before the upgrade complete after it; a new case takes the new path from its start', async () => {
  const oldBefore = await w.roleState('svc_up_old');
  const newBefore = await w.roleState('svc_up_new');
  const jitInput: JitElevationInput = {
    version: 1,
    nhiId: 'svc_up_jit',
    entitlements: ['estate_readonly'],
    justification: 'started before the upgrade',
    durationMinutes: 120,
    requestedBy: 'alice',
    requestedAt: new Date().toISOString(),
    settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 2 },
  };
  const jitId = jitWorkflowId('svc_up_jit', randomBytes(4).toString('hex'));
  let oldCase!: Awaited<ReturnType<typeof raise>>;

  // The old build: the case throttles, and each detection re-arms its wait (the old path).
  // No sticky cache: its workflows' next tasks go to the shared queue as soon as it stops.
  await run(await w.createWorker({}, { taskQueue: queue, workflowBundle: before, maxCachedWorkflows: 0 }), async () => {
    oldCase = await raise('svc_up_old');
    log('old case started');
    await waitFor('old case throttled', async () => (await oldCase.query(anomalyStatus)).state === 'throttled_l1');
    for (let i = 0; i < 3; i++) await oldCase.signal(anomalySignal, detection());
    await waitFor('old case took the detections', async () => (await oldCase.query(anomalyStatus)).evidenceCount === 4);
    log('old case has 4');
    const jit = await w.env.client.workflow.start('jitElevation', { taskQueue: queue, workflowId: jitId, args: [{ ...jitInput, authority: w.sign(jitId, 'start', 'alice') }] });
    await waitFor('window active', async () => (await jit.query(jitStatus)).state === 'active');
  });
  log('old worker stopped');
  expect((await w.roleState('svc_up_old')).rolconnlimit).toBe(2);
  expect(await w.memberships('svc_up_jit')).toContain(w.ent('estate_readonly'));

  // The current code replaces it.
  await run(await w.createWorker({}, { taskQueue: queue }), async () => {
    for (let i = 0; i < 3; i++) await oldCase.signal(anomalySignal, detection());
    log('signals to old case sent');
    const newCase = await raise('svc_up_new');
    await waitFor('new case throttled', async () => (await newCase.query(anomalyStatus)).state === 'throttled_l1');
    for (let i = 0; i < 3; i++) await newCase.signal(anomalySignal, detection());
    log('new case throttled');
    const jit = w.env.client.workflow.getHandle(jitId);
    const extended: JitStatus = await jit.executeUpdate(extendUpdate, { args: [{ by: 'alice', minutes: 30, authority: w.sign(jitId, 'extend', 'alice') }] });
    expect(extended.extensions).toHaveLength(1);
    log('extended');

    // One at a time: the time-skipping server skips time for one awaited result at a time.
    const oldEnd: AnomalyStatus = await oldCase.result();
    const newEnd: AnomalyStatus = await newCase.result();
    const jitEnd: JitStatus = await jit.result();
    log('all ended');
    expect(oldEnd).toMatchObject({ state: 'auto_restored', evidenceCount: 7, restored: { exact: true } });
    expect(newEnd).toMatchObject({ state: 'auto_restored', evidenceCount: 4, restored: { exact: true } });
    expect(jitEnd).toMatchObject({ state: 'revoked', endReason: 'window_expired' });
    expect(Date.parse(jitEnd.expiresAt!) - Date.parse(jitEnd.grantedAt!)).toBe(150 * MINUTE);

    // The old case re-armed its timer on each detection before the upgrade, and stopped doing so
    // from the patch marker the current code recorded when it reached live; the new case never did.
    const oldPath = await pathOf(oldCase.workflowId, oldCase.signaledRunId);
    expect(oldPath.marker).toBeGreaterThan(0);
    expect(oldPath.cancelledBeforeMarker).toBeGreaterThanOrEqual(1);
    expect(oldPath.cancelledAfterMarker).toBe(0);
    const newPath = await pathOf(newCase.workflowId, newCase.signaledRunId);
    expect(newPath).toMatchObject({ cancelledBeforeMarker: 0, cancelledAfterMarker: 0 });
    expect(newPath.marker).toBeGreaterThan(0);

    // The window granted on the old build with a regular activity; the current code revoked it as a
    // local activity from the point it reached live (jit-local-steps).
    const jitEvents = (await w.env.client.workflow.getHandle(jitId).fetchHistory()).events ?? [];
    const scheduled = jitEvents.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    expect(scheduled).toContain('grantEntitlement');
    expect(scheduled).not.toContain('releaseEntitlement');
    expect(jitEvents.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length).toBeGreaterThan(0);
  });
  expect(await w.roleState('svc_up_old')).toEqual(oldBefore);
  expect(await w.roleState('svc_up_new')).toEqual(newBefore);
  expect(await w.memberships('svc_up_jit')).not.toContain(w.ent('estate_readonly'));
  expect(PATCHES.anomalyBoundedHistory).toBe('anomaly-bounded-history');
}, 300_000);
