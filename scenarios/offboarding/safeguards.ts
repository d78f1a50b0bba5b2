// The destructive path's safeguard inside the workflow (policy: offboard-important-safeguards): where
// policy asks for a second person, finalisation waits after the grace period until an admin other
// than the requester confirms (or someone aborts). Who may confirm is checked server-side by
// checkOffboardingActor, which refuses the requester's own confirm then; a second person's confirm
// may end the grace early (two people agree). The minimum grace is enforced on the request
// (evaluateOffboard, and the API before starting). Workflow code: deterministic, no I/O; entered behind patched().
import { condition } from '@temporalio/workflow';
import type { OffboardingStatus } from './contract';
import type { Requests } from './handlers';
import { PATCHES } from '../../workflows/versioning';

export const SAFEGUARDS_PATCH = PATCHES.offboardingSecondPerson;

export async function awaitSecondPerson(a: { status: OffboardingStatus; requests: Requests; event(name: string, detail?: string): void; refresh(): void }): Promise<void> {
  const { status, requests, event } = a;
  if (!status.decision?.secondPersonRequired || requests.abort || requests.confirm) return;
  status.awaitingSecondPerson = true;
  event('awaiting second person', `an admin other than ${status.requestedBy} must confirm before ${status.nhiId} is finalised (or abort)`);
  a.refresh();
  await condition(() => requests.abort !== undefined || requests.confirm !== undefined);
  status.awaitingSecondPerson = false;
}
