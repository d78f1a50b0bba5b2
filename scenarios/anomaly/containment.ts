// An anomaly case handed to leak containment (rotation, sessions): the child workflow
// `leak-<nhiId>`, or the containment of that NHI already running (a leak alert got there first),
// joined. Workflow code: starts children and signals, activities as types only.
import { ChildWorkflowCancellationType, getExternalWorkflowHandle, ParentClosePolicy, proxyActivities, sleep, startChild } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { createActivities } from '../../activities';
import { fastCall } from '../../workflows/activity-presets';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { alertSignal, LEAK_SCENARIO, LEAK_WORKFLOW_TYPE, leakSummary, leakWorkflowId, type LeakAlert, type LeakContainmentInput, type LeakStatus } from '../leak/contract';
import type { AnomalyStatus, ContainmentRef } from './contract';
import { describeLatest, MINUTE } from './status';

const acts = proxyActivities<ReturnType<typeof createActivities>>(fastCall);

/** The alert that hands the case over: `confirmed` by a person, or `unanswered` (by = system). */
export function containmentAlert(a: { workflowId: string; run: string; episode: AnomalyStatus; reason: string; by: string; now: string }): LeakAlert {
  const { episode, by, now } = a;
  return {
    key: `anomaly:${a.workflowId}:${a.run}`,
    source: 'generic',
    externalId: `generic:anomaly-throttling:${episode.nhiId}`,
    label: 'anomaly-throttling',
    action: by === 'system' ? 'unanswered' : 'confirmed',
    trigger: true,
    severity: 'high',
    fingerprints: [],
    detectedAt: episode.firstDetectedAt ?? now,
    receivedAt: now,
    summary: `anomalous usage of ${episode.nhiId}: ${describeLatest(episode)} — ${a.reason}`,
    matchedBy: 'nhi_id',
    ...(by !== 'system' ? { reportedBy: by } : {}),
  };
}

/**
 * Start the containment as a child and give it the alert, or, when one is running already, give
 * the alert to that one. `result` settles when the containment ends; a joined one is polled
 * (each poll goes to `onProgress`: its state, and whether it still runs).
 */
export async function startOrJoinContainment(
  nhiId: string,
  alert: LeakAlert,
  onProgress: (state: string | undefined, running: boolean) => void,
): Promise<{ mode: ContainmentRef['mode']; result: Promise<LeakStatus | undefined> }> {
  const leakId = leakWorkflowId(nhiId);
  try {
    const child = await startChild(LEAK_WORKFLOW_TYPE, {
      workflowId: leakId,
      args: [{ version: 1, nhiId } satisfies LeakContainmentInput],
      // The containment outlives this workflow (and its cancellation): it must finish.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      cancellationType: ChildWorkflowCancellationType.ABANDON,
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      staticSummary: leakSummary(nhiId, alert),
      staticDetails: alert.summary,
      typedSearchAttributes: [
        { key: NhiIdKey, value: nhiId },
        { key: ScenarioKey, value: LEAK_SCENARIO },
        { key: NhiStateKey, value: 'opening' },
      ],
    });
    await child.signal(alertSignal, alert);
    return { mode: 'started', result: child.result() as Promise<LeakStatus> };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    await getExternalWorkflowHandle(leakId).signal(alertSignal, alert);
    return { mode: 'joined', result: followContainment(leakId, onProgress) };
  }
}

/** A containment this case joined (not its child): polled every minute until it ends. */
async function followContainment(leakId: string, onProgress: (state: string | undefined, running: boolean) => void): Promise<undefined> {
  for (;;) {
    const p = await acts.containmentProgress({ workflowId: leakId });
    onProgress(p.state, p.running);
    if (!p.running) {
      if (p.status !== 'COMPLETED') throw new Error(`containment ${leakId} ended ${p.status.toLowerCase()}`);
      return undefined;
    }
    await sleep(MINUTE);
  }
}
