// The one rule for what a failure at a target means to Temporal, for every scenario's activities.
// Each step says how it treats a failure that retrying cannot fix (a PermanentConnectorError, or a
// permanent ReconcileError):
//   'never-abandon'      the step removes access (a revocation, a disable): it is retried, and the
//                        workflow escalates while it keeps trying; an operator fixes the cause.
//                        An identity that no longer exists holds no access: that counts as done.
//   'stop-on-permanent'  the step adds access, or its workflow hands the failure to a person itself
//                        (containment escalates and waits for a retry): it fails non-retryably.
// An NHI missing from the inventory always stops (NhiNotFound); everything else (network, a target
// restarting, not converged yet) is retried.
import { ApplicationFailure } from '@temporalio/common';
import { ConnectorErrorCode, PermanentConnectorError } from '../connectors/types';
import { ErrorType } from '../workflows/errors';
import { reconcile, ReconcileError, type IntentChange, type ReconcileContext, type ReconcileDeps, type VerifiedAccess } from './reconciler';

export type OnPermanent = 'never-abandon' | 'stop-on-permanent';

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Retryable: the workflow's retry policy (and escalation) decide how long to keep at it. */
export function enforcementFailed(what: string, err?: unknown): ApplicationFailure {
  return ApplicationFailure.retryable(err === undefined ? what : `${what}: ${message(err)}`, ErrorType.EnforcementFailed);
}

/** The identity is gone at the target (nothing left to hold access). */
export const isIdentityGone = (err: unknown) =>
  (err instanceof PermanentConnectorError && err.code === ConnectorErrorCode.UnknownIdentity) ||
  (err instanceof ReconcileError && err.code === ConnectorErrorCode.UnknownIdentity);

/** A bad inventory record (its connector is not configured): no step on it can ever succeed. */
export const isUnknownConnector = (err: unknown) =>
  (err instanceof PermanentConnectorError || err instanceof ReconcileError) && err.code === ConnectorErrorCode.UnknownConnector;

export function targetFailure(what: string, err: unknown, onPermanent: OnPermanent): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ReconcileError && err.code === 'nhi_not_found') return ApplicationFailure.nonRetryable(err.message, ErrorType.NhiNotFound);
  // A connector the deployment does not have: no retry helps until the configuration changes.
  if (isUnknownConnector(err)) return ApplicationFailure.nonRetryable(`${what}: ${message(err)}`, ErrorType.UnknownConnector);
  const permanent = err instanceof PermanentConnectorError || (err instanceof ReconcileError && err.permanent);
  if (permanent && onPermanent === 'stop-on-permanent') {
    const code = (err as PermanentConnectorError | ReconcileError).code;
    return ApplicationFailure.create({ message: `${what}: ${message(err)}`, type: ErrorType.PermanentConnector, nonRetryable: true, details: [{ code }] });
  }
  return enforcementFailed(`${what} failed`, err);
}

/** A connector call (sessions, probes, credentials) under the rule. With `gone`, a vanished identity answers it. */
export async function atTarget<T>(what: string, onPermanent: OnPermanent, op: () => Promise<T>, gone?: { value: T }): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (gone && isIdentityGone(err)) return gone.value;
    throw targetFailure(what, err, onPermanent);
  }
}

/** reconcile() under the rule. */
export async function reconcileStep(
  deps: ReconcileDeps,
  nhiId: string,
  ctx: ReconcileContext,
  onPermanent: OnPermanent,
  change?: IntentChange,
): Promise<VerifiedAccess> {
  try {
    return await reconcile(deps, nhiId, ctx, change);
  } catch (err) {
    throw targetFailure(`reconciling ${nhiId} (${ctx.stepId})`, err, onPermanent);
  }
}
