// What every leak containment activity module works with: the NHI's target, its audit rows (keyed
// by incident and step), and connector calls under containment's rule (a permanent target failure
// stops: the workflow escalates and waits for a retry).
import type { Connector } from '../../connectors/types';
import { atTarget as atTargetUnder } from '../../enforcement/target-failures';
import { appendAudit } from '../../lib/audit';
import { currentWorkflowId, loadNhi, type NhiRecord } from '../../activities/common';
import type { ActivityDeps } from '../../activities/deps';

export const LEAK_ACTOR = 'leak-containment';

export const atTarget = <T>(what: string, op: () => Promise<T>) => atTargetUnder(what, 'stop-on-permanent', op);

export function leakSupport(deps: ActivityDeps) {
  async function target(nhiId: string): Promise<{ nhi: NhiRecord; connector: Connector }> {
    const nhi = await loadNhi(deps.pool, nhiId);
    return { nhi, connector: deps.connectors.get(nhi.connector) };
  }

  const audit = (incidentId: string, step: string, e: { nhiId: string; action: string; outcome: string; target?: unknown; readback?: unknown; details?: Record<string, unknown> }) =>
    appendAudit(deps.pool, { workflowId: currentWorkflowId(), stepId: `${incidentId}:${step}`, scenario: 'leak', actor: LEAK_ACTOR, ...e });

  return { target, audit };
}
