// Hand-offs between scenarios: which workflows hold access to an NHI that another scenario must
// end (containment and offboarding end its running elevations).
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { visibilityLiteral } from '../lib/visibility';
import { JIT_WORKFLOW_TYPE } from '../scenarios/jit/contract';

/**
 * The NHI's running elevations: those visibility lists, and every owner of an active grant intent
 * on it — the ledger is exact where visibility may lag behind an elevation started a moment ago.
 */
export async function runningElevations(client: Client, pool: Pool, nhiId: string): Promise<string[]> {
  const ids = new Set<string>();
  const query = `WorkflowType = ${visibilityLiteral(JIT_WORKFLOW_TYPE)} AND NhiId = ${visibilityLiteral(nhiId)} AND ExecutionStatus = "Running"`;
  for await (const wf of client.workflow.list({ query })) ids.add(wf.workflowId);
  const { rows } = await pool.query<{ owner: string }>(
    `SELECT DISTINCT owner FROM intents WHERE nhi_id = $1 AND kind = 'grant' AND released_at IS NULL`,
    [nhiId],
  );
  for (const { owner } of rows) {
    const d = await client.workflow.getHandle(owner).describe().catch(() => undefined);
    if (d?.type === JIT_WORKFLOW_TYPE && d.status.name === 'RUNNING') ids.add(owner);
  }
  return [...ids].sort();
}
