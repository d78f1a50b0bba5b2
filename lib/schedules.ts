// Create or bring up to date a Temporal Schedule that starts one workflow every interval. Overlaps
// are skipped: a slow run never piles up behind itself. Used by the usage collector and the drift check.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';

export interface IntervalSchedule {
  scheduleId: string;
  /** e.g. '60 seconds', '5 minutes'. */
  every: string;
  workflowType: string;
  taskQueue: string;
  args: unknown[];
  workflowExecutionTimeout: string;
  note: string;
  paused?: boolean;
}

export async function ensureIntervalSchedule(client: Client, s: IntervalSchedule): Promise<{ scheduleId: string; created: boolean }> {
  const action = {
    type: 'startWorkflow' as const,
    workflowType: s.workflowType,
    taskQueue: s.taskQueue,
    args: s.args,
    workflowId: s.scheduleId,
    workflowExecutionTimeout: s.workflowExecutionTimeout,
  };
  try {
    await client.schedule.create({
      scheduleId: s.scheduleId,
      spec: { intervals: [{ every: s.every }] },
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: { paused: Boolean(s.paused), note: s.note },
    });
    return { scheduleId: s.scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(s.scheduleId).update((prev) => ({
      ...prev,
      spec: { intervals: [{ every: s.every }] },
      action,
      policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP },
    }));
    return { scheduleId: s.scheduleId, created: false };
  }
}
