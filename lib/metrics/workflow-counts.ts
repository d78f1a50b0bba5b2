// Workflows started and ended per scenario, from Temporal visibility (one count per workflow type on
// our task queue, grouped by execution status): it holds every run whatever worker or API started
// it, and stays right across restarts of this process.
import type { Client } from '@temporalio/client';
import { Gauge, type Registry } from 'prom-client';

/** Workflow type → the scenario label, for every workflow the worker registers (workflows/index.ts). */
export const SCENARIO_OF_WORKFLOW: Record<string, string> = {
  jitElevation: 'jit',
  leakContainment: 'leak',
  offboarding: 'offboarding',
  anomalyThrottling: 'anomaly',
  usageCollector: 'usage',
  driftReconciler: 'drift',
};

/** Visibility's ExecutionStatus values as labels: `Completed` → `completed`, `TimedOut` → `timed_out`. */
export const outcomeLabel = (status: string) => status.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();

const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export interface WorkflowCounts {
  refresh(): Promise<void>;
}

export function createWorkflowCounts(client: Client, taskQueue: string, registry: Registry): WorkflowCounts {
  const started = new Gauge({
    name: 'nhi_workflows_started',
    help: 'Workflow executions on the task queue that visibility holds (running or closed), by scenario',
    labelNames: ['scenario'],
    registers: [registry],
  });
  const ended = new Gauge({
    name: 'nhi_workflows_ended',
    help: 'Closed workflow executions on the task queue, by scenario and outcome (completed, failed, terminated, timed_out, canceled, continued_as_new)',
    labelNames: ['scenario', 'outcome'],
    registers: [registry],
  });
  const running = new Gauge({
    name: 'nhi_workflows_running',
    help: 'Running workflow executions on the task queue, by scenario (open JIT windows, open incidents, watches)',
    labelNames: ['scenario'],
    registers: [registry],
  });

  return {
    async refresh() {
      const counts = await Promise.all(
        Object.entries(SCENARIO_OF_WORKFLOW).map(async ([type, scenario]) => ({
          scenario,
          result: await client.workflow.count(`TaskQueue = ${quote(taskQueue)} AND WorkflowType = ${quote(type)} GROUP BY ExecutionStatus`),
        })),
      );
      // Reset only after every count answered: a failed scrape keeps the last figures, not zeroes.
      started.reset();
      ended.reset();
      running.reset();
      for (const { scenario, result } of counts) {
        started.set({ scenario }, result.count);
        running.set({ scenario }, 0);
        for (const group of result.groups) {
          const outcome = outcomeLabel(String(group.groupValues[0] ?? 'unknown'));
          if (outcome === 'running') running.set({ scenario }, group.count);
          else ended.inc({ scenario, outcome }, group.count);
        }
      }
    },
  };
}
