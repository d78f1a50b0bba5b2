// A long-lived anomaly case on the time-skipping server: a detection for every simulated minute of
// LONG_RUN_DAYS (30 by default) while the NHI is throttled, then quiet until policy restores it.
// Each run of the case stays within its history budget (continue-as-new), and the restore at the
// end is verified in Postgres. Figures (events per run, per detection) are printed for docs/versioning.md.
import { randomBytes } from 'node:crypto';
import {
  ANOMALY_WORKFLOW_TYPE,
  anomalySignal,
  anomalyWorkflowId,
  statusQuery,
  type AnomalyEvidence,
  type AnomalyStatus,
  type AnomalyThrottlingInput,
} from '../../scenarios/anomaly/contract';
import { intentsOf } from '../../enforcement/intents';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';
import { runsOf } from './runs';

const DAYS = Number(process.env.LONG_RUN_DAYS ?? 30);
const MINUTE = 60_000;
/** Per run: far below Temporal's 51 200-event limit. */
const EVENTS_PER_RUN_BUDGET = 10_000;

let w: TestWorld;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
}, 180_000);

afterAll(async () => w?.teardown());

function detection(minute: number): AnomalyEvidence {
  const at = new Date(Date.now()).toISOString();
  return {
    key: `collector:${minute}:${randomBytes(2).toString('hex')}`,
    source: 'collector',
    kind: 'detector',
    observedRate: 90,
    baselineRate: 10,
    threshold: 30,
    baselineSource: 'history',
    reportedBy: 'collector',
    detectedAt: at,
    receivedAt: at,
  };
}

test(`detections every minute for ${DAYS} simulated days: each run under ${EVENTS_PER_RUN_BUDGET} events; quiet at last, the throttle is released exactly`, async () => {
  const nhiId = 'partner_acme'; // policy: automatic throttle, restored after 60 quiet minutes
  await w.connector.grant(w.role(nhiId), 'estate_writer');
  const before = await w.roleState(nhiId);
  // No step-up within the run: the analyst's timeout is longer than the whole period.
  const input: AnomalyThrottlingInput = { version: 1, nhiId, settings: { ackTimeoutMinutes: (DAYS + 1) * 24 * 60, escalationTimeoutMinutes: 60, connectionLimit: 2 } };
  const handle = await w.env.client.workflow.signalWithStart(ANOMALY_WORKFLOW_TYPE, {
    taskQueue: w.taskQueue,
    workflowId: anomalyWorkflowId(nhiId),
    args: [input],
    signal: anomalySignal,
    signalArgs: [detection(0)],
  });
  await waitFor('throttled', async () => (await handle.query(statusQuery)).state === 'throttled_l1', 30_000);
  expect((await w.roleState(nhiId)).rolconnlimit).toBe(2);

  // One detection per simulated minute, delivered 59 minutes at a time (as a collector catching
  // up would; the quiet period is 60 minutes): the same signals and evidence, without a round trip
  // to the test server per minute.
  const minutes = DAYS * 24 * 60;
  const BATCH = 59;
  for (let first = 0; first < minutes; first += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, i) => first + i).filter((m) => m > 0 && m < minutes);
    await Promise.all(batch.map((m) => handle.signal(anomalySignal, detection(m))));
    await w.env.sleep(BATCH * MINUTE);
  }
  const during: AnomalyStatus = await handle.query(statusQuery);
  expect(during).toMatchObject({ state: 'throttled_l1', level: 1, evidenceCount: minutes });
  expect((await w.roleState(nhiId)).rolconnlimit).toBe(2);

  // Quiet now: policy restores after 60 minutes without a detection.
  const end: AnomalyStatus = await w.env.client.workflow.getHandle(handle.workflowId).result();
  expect(end.state).toBe('auto_restored');
  expect(end.restored).toMatchObject({ exact: true, restrictedBy: [] });
  expect(end.timeline.length).toBeLessThanOrEqual(200);
  expect(end.evidence.length).toBeLessThanOrEqual(50);
  expect(await w.roleState(nhiId)).toEqual(before);
  expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);

  const runs = await runsOf(w.env.client, handle.workflowId, handle.signaledRunId);
  expect(runs.length).toBe((end.runs ?? 0) + 1);
  expect(runs.length).toBeGreaterThan(1);
  for (const r of runs) expect(r.events).toBeLessThan(EVENTS_PER_RUN_BUDGET);
  const events = runs.reduce((n, r) => n + r.events, 0);
  process.stdout.write(`\nlong-run anomaly: ${minutes} detections over ${DAYS} days, ${runs.length} runs, max ${Math.max(...runs.map((r) => r.events))} events per run, ${(events / minutes).toFixed(2)} events per detection\n`);
}, 900_000);
