// Replay: every recorded history (tests/replay/histories, recorded by `npm run histories:record`
// from the scenario tests) replays on the current workflow code. A change that would break a
// running workflow — a reordered activity, a new timer, a step removed without a patch — fails here
// with the history's name. See docs/versioning.md for when histories may be re-recorded.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../../workers/worker';
import { HISTORIES_DIR } from '../helpers/histories';
import { historyFromFileJson } from '../helpers/history-files';

/** The paths the suite must cover: deleting a recording fails the run, as does an unlisted one. */
const EXPECTED = [
  'anomaly-approved-by-person-then-cleared',
  'anomaly-auto-restored',
  'anomaly-awaiting-confirmation-reminded-superseded',
  'anomaly-confirmed-escalated-to-containment',
  'anomaly-level-2-cleared',
  'anomaly-throttled-cleared',
  'anomaly-throttled-stepped-up-superseded',
  'drift-whole-inventory',
  'jit-approval-expired',
  'jit-approval-expired-before-jit-local-steps',
  'jit-approved-by-two-revoked-early',
  'jit-approved-by-two-revoked-early-before-jit-local-steps',
  'jit-auto-approved-expired',
  'jit-auto-approved-expired-before-jit-local-steps',
  'jit-cancelled-while-active',
  'jit-cancelled-while-active-before-jit-local-steps',
  'jit-denied-by-approver',
  'jit-denied-by-approver-before-jit-local-steps',
  'jit-denied-by-policy',
  'jit-denied-by-policy-before-jit-local-steps',
  'jit-extended-then-revoked',
  'jit-extended-then-revoked-before-jit-local-steps',
  'jit-revoked-after-escalation',
  'jit-revoked-after-escalation-before-jit-local-steps',
  'jit-rolled-back',
  'jit-rolled-back-before-jit-local-steps',
  'leak-contained',
  'leak-rotation-failed-compensated-retried',
  'leak-two-alerts-merged',
  'offboarding-aborted-in-grace',
  'offboarding-denied',
  'offboarding-finalised-drift-reverted-first-run',
  'offboarding-watch-continued-as-new',
  'usage-collector-one-minute',
];

const recorded = () =>
  readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.replace(/\.json$/, ''))
    .sort();

const load = (name: string, dir = HISTORIES_DIR) => historyFromFileJson(readFileSync(path.join(dir, `${name}.json`), 'utf8'));

async function replay(names: string[], workflowsPath = WORKFLOWS_PATH): Promise<Record<string, string>> {
  const failures: Record<string, string> = {};
  const histories = names.map((name) => ({ workflowId: name, history: load(name) }));
  for await (const r of Worker.runReplayHistories({ workflowsPath, replayName: 'replay-suite' }, histories)) {
    if (r.error) failures[r.workflowId] = `${r.error.name}: ${r.error.message}`;
  }
  return failures;
}

beforeAll(() => {
  // Replay logs every workflow's own log lines; only warnings matter here.
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // already installed by another suite in this process
  }
});

test('the recorded histories are exactly the listed paths', () => {
  expect(recorded()).toEqual([...EXPECTED].sort());
});

test('every recorded history replays on the current workflow code', async () => {
  expect(await replay(EXPECTED)).toEqual({});
}, 120_000);

test('a workflow whose steps changed without a patch fails replay (the suite can fail)', async () => {
  const failures = await replay(['jit-auto-approved-expired'], require.resolve('./fixtures/reordered-jit'));
  expect(failures['jit-auto-approved-expired']).toMatch(/DeterminismViolation|Nondeterminism|nondeterminism/i);
}, 120_000);
