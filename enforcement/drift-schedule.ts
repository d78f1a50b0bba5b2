// The Temporal Schedule that runs the drift check (enforcement/drift-workflow.ts) every few minutes.
import type { Client } from '@temporalio/client';
import { ensureIntervalSchedule } from '../lib/schedules';
import { DRIFT_RECONCILER_WORKFLOW_TYPE } from './drift-contract';

export const DRIFT_SCHEDULE_ID = 'drift-reconciler';

export async function ensureDriftSchedule(
  client: Client,
  opts: { taskQueue: string; intervalMinutes: number; scheduleId?: string; paused?: boolean },
): Promise<{ scheduleId: string; created: boolean }> {
  return ensureIntervalSchedule(client, {
    scheduleId: opts.scheduleId ?? DRIFT_SCHEDULE_ID,
    every: `${opts.intervalMinutes} minutes`,
    workflowType: DRIFT_RECONCILER_WORKFLOW_TYPE,
    taskQueue: opts.taskQueue,
    args: [{ version: 1 }],
    workflowExecutionTimeout: `${Math.max(opts.intervalMinutes * 3, 10)} minutes`,
    note: 'compares every NHI with what its intents want; reverts or reports drift as policy (RevertDrift) says',
    paused: opts.paused,
  });
}
