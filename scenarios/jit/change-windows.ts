// Deployment tooling knows its change id, not workflow ids: close every running elevation of a
// change window with one call (used by the API and by `nhi close-window`).
import type { Client } from '@temporalio/client';
import { closeWindowSignal, JIT_WORKFLOW_TYPE } from './contract';
import { visibilityLiteral } from '../../lib/visibility';


export async function closeChangeWindow(client: Client, changeId: string, opts: { reason?: string; by: string }): Promise<string[]> {
  const query = `WorkflowType = ${visibilityLiteral(JIT_WORKFLOW_TYPE)} AND ChangeId = ${visibilityLiteral(changeId)} AND ExecutionStatus = "Running"`;
  const reached: string[] = [];
  for await (const wf of client.workflow.list({ query })) {
    try {
      await client.workflow.getHandle(wf.workflowId).signal(closeWindowSignal, { changeId, reason: opts.reason ?? 'change window closed', by: opts.by });
      reached.push(wf.workflowId);
    } catch {
      // It finished between the listing and the signal: nothing left to close.
    }
  }
  return reached;
}
