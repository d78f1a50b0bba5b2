// The drift check, started every few minutes by a Temporal Schedule (enforcement/drift-schedule.ts):
// one activity compares every NHI's target with what its intents want and reverts or reports the
// drift as policy says. Short and stateless: each run is one activity.
import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { longWithHeartbeat } from '../workflows/activity-presets';
import type { DriftCheckResult } from './drift-contract';
import { checkInputVersion } from '../workflows/versioning';

const { checkDriftEverywhere } = proxyActivities<ReturnType<typeof createActivities>>(longWithHeartbeat);

export async function driftReconciler(_input: { version: 1 } = { version: 1 }): Promise<DriftCheckResult> {
  checkInputVersion('driftReconciler', _input?.version, [1]);
  const r = await checkDriftEverywhere();
  setCurrentDetails(
    [
      `checked ${r.checked} NHIs: ${r.inSync} in sync`,
      r.reverted.length ? `drift reverted: ${r.reverted.join(', ')}` : '',
      r.reported.length ? `drift reported (policy keeps it): ${r.reported.join(', ')}` : '',
      r.baselineCaptured.length ? `baseline captured: ${r.baselineCaptured.join(', ')}` : '',
      r.errors.length ? `errors: ${r.errors.map((e) => `${e.nhiId}: ${e.error}`).join('; ')}` : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  return r;
}
