// Map what a workflow's update handlers, validators and the activities they run reject
// (ApplicationFailure types from workflows/errors.ts) to HTTP: the caller learns why, never gets a
// 500 for a business rule. The type → status table is api/errors.ts's, shared with every route.
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { ApiError, businessError } from './errors';

/** Call after requireRunning: a workflow that vanishes meanwhile has just finished (409, not 404). */
export function mapUpdateError(err: unknown): unknown {
  if (err instanceof WorkflowNotFoundError || (err as Error | undefined)?.name === 'WorkflowNotFoundError') {
    return ApiError.conflict('the workflow finished before it could take this request');
  }
  return businessError(err) ?? err;
}

/** 404 for an unknown workflow (describe throws WorkflowNotFoundError), 409 when it has finished. */
export async function requireRunning(handle: WorkflowHandle, what: string): Promise<void> {
  const d = await handle.describe();
  if (d.status.name !== 'RUNNING') throw ApiError.conflict(`${what} ${handle.workflowId} has finished (${d.status.name.toLowerCase()})`);
}
