// Map what a workflow's update handlers and validators reject (ApplicationFailure types from
// workflows/errors.ts) to HTTP: the caller learns why, never gets a 500 for a business rule.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ErrorType } from '../workflows/errors';
import { ApiError } from './errors';

const STATUS_BY_TYPE: Record<string, [number, string]> = {
  [ErrorType.SelfApproval]: [403, 'self_approval'],
  [ErrorType.NotAllowed]: [403, 'forbidden'],
  [ErrorType.AlreadyApproved]: [409, 'already_approved'],
  [ErrorType.RequestClosed]: [409, 'conflict'],
  [ErrorType.InvalidRequest]: [400, 'bad_request'],
  [ErrorType.PolicyDenied]: [400, 'policy_denied'],
  [ErrorType.AccessWithheld]: [409, 'access_withheld'],
};

/** Call after requireRunning: a workflow that vanishes meanwhile has just finished (409, not 404). */
export function mapUpdateError(err: unknown): unknown {
  if (err instanceof WorkflowNotFoundError || (err as Error | undefined)?.name === 'WorkflowNotFoundError') {
    return ApiError.conflict('the workflow finished before it could take this request');
  }
  if (!(err instanceof WorkflowUpdateFailedError)) return err;
  const cause = err.cause as { type?: string; message?: string } | undefined;
  const mapped = cause?.type ? STATUS_BY_TYPE[cause.type] : undefined;
  if (!mapped) return err;
  return new ApiError(mapped[0], mapped[1], cause?.message ?? 'rejected');
}

/** 404 for an unknown workflow (describe throws WorkflowNotFoundError), 409 when it has finished. */
export async function requireRunning(handle: WorkflowHandle, what: string): Promise<void> {
  const d = await handle.describe();
  if (d.status.name !== 'RUNNING') throw ApiError.conflict(`${what} ${handle.workflowId} has finished (${d.status.name.toLowerCase()})`);
}
