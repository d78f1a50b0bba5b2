// The Temporal Schedule that runs the drift check (enforcement/drift-workflow.ts) every few minutes.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { DRIFT_RECONCILER_WORKFLOW_TYPE } from './drift-contract';

export const DRIFT_SCHEDULE_ID = 'drift-reconciler';

export async function ensureDriftSchedule(
  client: Client,
  opts: { taskQueue: string; intervalMinutes: number; scheduleId?: string; paused?: boolean },
): Promise<{ scheduleId: string; created: boolean }> {
  const scheduleId = opts.scheduleId ?? DRIFT_SCHEDULE_ID;
  const every = `${opts.intervalMinutes} minutes`;
  const action = {
    type: 'startWorkflow' as const,
    workflowType: DRIFT_RECONCILER_WORKFLOW_TYPE,
    taskQueue: opts.taskQueue,
    args: [{ version: 1 }],
    workflowId: scheduleId,
    workflowExecutionTimeout: `${Math.max(opts.intervalMinutes * 3, 10)} minutes`,
  };
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every }] },
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: { paused: Boolean(opts.paused), note: 'compares every NHI with what its intents want; reverts or reports drift as policy (RevertDrift) says' },
    });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec: { intervals: [{ every }] }, action }));
    return { scheduleId, created: false };
  }
}
