// Offboarding's hand-offs to the NHI's other running scenarios: each JIT elevation ends through its
// own revoke Update (answered once its revocation is verified), each anomaly throttle gets the
// supersede signal (it lets go without giving access back: offboarding's intents keep it off).
import { Context } from '@temporalio/activity';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { runningElevations } from '../../enforcement/handoffs';
import { visibilityLiteral } from '../../lib/visibility';
import { ErrorType } from '../../workflows/errors';
import { ANOMALY_WORKFLOW_TYPE, supersedeSignal } from '../anomaly/contract';
import { revokeUpdate } from '../jit/contract';
import type { ElevationEnded, StopScenariosResult } from './contract';
import { currentWorkflowId, loadNhi } from '../../activities/common';
import type { ActivityDeps } from '../../activities/deps';
import { message, offboardingSupport } from './activity-support';


/** End one running elevation through its own revoke Update (it verifies the revocation itself). */
async function endElevation(client: Client, workflowId: string, by: string, reason: string): Promise<ElevationEnded> {
  const handle = client.workflow.getHandle(workflowId);
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat({ elevation: workflowId }), 5_000);
  try {
    // Offboarding was authorised by policy already; the elevation checks that this offboarding runs for its NHI.
    const s = await handle.executeUpdate(revokeUpdate, { args: [{ by, byWorkflow: currentWorkflowId(), reason }] });
    return { workflowId, outcome: 'revoked', state: s.state };
  } catch (err) {
    const cause = (err as { cause?: { type?: string } }).cause;
    if (err instanceof WorkflowUpdateFailedError && cause?.type === ErrorType.RequestClosed) {
      // Already ending on its own: wait until its revocation is verified.
      try {
        const r = (await handle.result()) as { state?: string };
        return { workflowId, outcome: 'already_ending', state: r?.state };
      } catch (e) {
        return { workflowId, outcome: 'already_ending', detail: message(e) };
      }
    }
    const d = await handle.describe().catch(() => undefined);
    if (!d || d.status.name !== 'RUNNING') return { workflowId, outcome: 'finished', detail: message(err) };
    throw err;
  } finally {
    clearInterval(beat);
  }
}

export function createStopScenariosActivities(deps: ActivityDeps) {
  const { audit } = offboardingSupport(deps);
  return {
    /**
     * End the NHI's other running scenarios: JIT elevations through their revoke Update (answered once
     * each revocation is verified); anomaly throttling through the hook below.
     */
    async stopOtherScenarios(a: { nhiId: string; run: string; by: string; reason: string }): Promise<StopScenariosResult> {
      await loadNhi(deps.pool, a.nhiId);
      const throttles: StopScenariosResult['throttles'] = { supported: true, ended: [] };
      let result: StopScenariosResult;
      if (!deps.temporal) {
        result = {
          elevations: [],
          throttles,
          skipped: 'this worker has no Temporal client: running elevations were not reached (revoking every entitlement below removes their access anyway)',
        };
      } else {
        const { client } = deps.temporal;
        const ids = await runningElevations(client, deps.pool, a.nhiId);
        const elevations: ElevationEnded[] = [];
        for (const id of ids) elevations.push(await endElevation(client, id, a.by, a.reason));
        // End each running throttle of this NHI *without* restoring its access: offboarding takes over.
        throttles.found = [];
        const throttleQuery = `WorkflowType = ${visibilityLiteral(ANOMALY_WORKFLOW_TYPE)} AND NhiId = ${visibilityLiteral(a.nhiId)} AND ExecutionStatus = "Running"`;
        for await (const wf of client.workflow.list({ query: throttleQuery })) {
          try {
            throttles.found.push(wf.workflowId);
            await client.workflow.getHandle(wf.workflowId).signal(supersedeSignal, { by: 'offboarding', reason: `offboarding ${currentWorkflowId()}` });
            throttles.ended.push(wf.workflowId);
          } catch {
            // It ended between the listing and the signal.
          }
        }
        result = { elevations, throttles };
      }
      await audit(a.nhiId, {
        stepId: `${a.run}:stop-scenarios`,
        action: 'scenarios.stop',
        outcome: result.skipped ? 'skipped' : 'stopped',
        readback: result.elevations,
        details: { throttles: result.throttles, skipped: result.skipped ?? null },
      });
      return result;
    },
  };
}
