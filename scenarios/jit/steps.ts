// How each JIT step runs. From the `jit-local-steps` patch on (workflows/versioning.ts) the steps on
// the elevation's own path are local activities: no task-queue round trip and no workflow task to
// hear each result. A run that recorded a step as a regular activity replays it as one; `patched()`
// is asked at each step, so a run started before the patch switches at the first step it reaches live.
// Every step is idempotent (an audit row per (workflow, step id), intents keyed by owner, notifications
// by id): a local activity retries too, and re-runs after a worker crash before its marker is recorded.
import { ActivityCancellationType, patched, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastCall, fastLocal, notification, notificationLocal, untilDone, untilDoneLocal } from '../../workflows/activity-presets';
import { PATCHES } from '../../workflows/versioning';

type Activities = ReturnType<typeof createActivities>;
type Step<K extends keyof Activities> = Activities[K];

/** Is this point of the run on the patched path? (Records the marker the first time it is live.) */
export const localSteps = (): boolean => patched(PATCHES.jitLocalSteps);

const remote = proxyActivities<Activities>(fastCall);
const local = proxyLocalActivities<Activities>(fastLocal);
// A grant the workflow stops waiting for could still commit after its undo ran: wait for the attempt to end.
const localGrant = proxyLocalActivities<Activities>({ ...fastLocal, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED }).grantEntitlement;
const remoteNotify = proxyActivities<Activities>(notification).notify;
const localNotify = proxyLocalActivities<Activities>(notificationLocal).notify;
const remoteRevokeForever = proxyActivities<Activities>(untilDone).releaseEntitlement;
const localRevokeForever = proxyLocalActivities<Activities>(untilDoneLocal).releaseEntitlement;

function either<K extends keyof Activities>(whenLocal: Step<K>, otherwise: Step<K>): Step<K> {
  return ((...args: Parameters<Step<K>>) => (localSteps() ? whenLocal : otherwise)(...(args as [never]))) as Step<K>;
}

/** The steps of one elevation; `revokeEscalationAttempts` bounds a revocation attempt before it escalates. */
export function jitSteps(revokeEscalationAttempts: number) {
  const attempts = Math.max(1, revokeEscalationAttempts);
  const remoteRevokeOnce = proxyActivities<Activities>({ ...untilDone, retry: { ...untilDone.retry, maximumAttempts: attempts } }).releaseEntitlement;
  const localRevokeOnce = proxyLocalActivities<Activities>({ ...untilDoneLocal, retry: { ...untilDoneLocal.retry, maximumAttempts: attempts } }).releaseEntitlement;
  return {
    evaluateElevation: either<'evaluateElevation'>(local.evaluateElevation, remote.evaluateElevation),
    grantEntitlement: either<'grantEntitlement'>(localGrant, remote.grantEntitlement),
    recordAudit: either<'recordAudit'>(local.recordAudit, remote.recordAudit),
    notify: either<'notify'>(localNotify, remoteNotify),
    revokeOnce: either<'releaseEntitlement'>(localRevokeOnce, remoteRevokeOnce),
    revokeForever: either<'releaseEntitlement'>(localRevokeForever, remoteRevokeForever),
  };
}
