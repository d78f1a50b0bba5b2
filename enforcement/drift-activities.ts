// The drift check's activity: every inventoried NHI compared with what its intents want, reverted
// or reported as policy says (enforcement/drift.ts). Heartbeats per NHI so a long inventory is fine.
import { Context } from '@temporalio/activity';
import { checkDrift, inventoriedNhis, type DriftResult } from './drift';
import type { DriftCheckResult } from './drift-contract';
import type { ActivityDeps } from '../activities/deps';

export function createDriftActivities(deps: ActivityDeps) {
  return {
    async checkDriftEverywhere(): Promise<DriftCheckResult> {
      const ctx = Context.current();
      const run = ctx.info.workflowExecution;
      if (!run) throw new Error('checkDriftEverywhere runs on behalf of the drift workflow');
      // Each scheduled run keys its own audit rows.
      const runId = `${run.workflowId}:${run.runId}`;
      const results: DriftResult[] = [];
      for await (const nhi of inventoriedNhis(deps.pool)) {
        results.push(await checkDrift(deps, nhi, runId));
        ctx.heartbeat(nhi.id);
      }
      const ids = (outcome: DriftResult['outcome']) => results.filter((r) => r.outcome === outcome).map((r) => r.nhiId);
      return {
        checked: results.length,
        inSync: ids('in_sync').length,
        baselineCaptured: ids('baseline_captured'),
        reverted: ids('reverted'),
        reported: ids('reported'),
        errors: results.filter((r) => r.outcome === 'error').map((r) => ({ nhiId: r.nhiId, error: r.error ?? '' })),
      };
    },
  };
}
