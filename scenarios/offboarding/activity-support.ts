// What every offboarding activity module works with: the NHI's target, its audit rows, the
// reconciler step and connector calls under offboarding's rule (never abandoned: the workflow
// escalates and keeps retrying; an identity that no longer exists holds no access, which is `gone`).
import type { Connector, AccessState } from '../../connectors/types';
import { type IntentChange, type VerifiedAccess } from '../../enforcement/reconciler';
import { atTarget as atTargetUnder, reconcileStep as reconcileUnder } from '../../enforcement/target-failures';
import { appendAudit, type AuditEventInput } from '../../lib/audit';
import type { SecretRef } from '../../lib/secret-store';
import { OFFBOARDING_SCENARIO, type CredentialRecord } from './contract';
import { currentWorkflowId, loadNhi, type NhiRecord } from '../../activities/common';
import type { ActivityDeps } from '../../activities/deps';

/** What the target reports for an identity that no longer exists: no access at all. */
export const GONE: AccessState = { exists: false, canLogin: false, connectionLimit: 0, entitlements: [] };

export const now = () => new Date().toISOString();
export const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export const atTarget = <T>(what: string, gone: T, op: () => Promise<T>) => atTargetUnder(what, 'never-abandon', op, { value: gone });

export const credentialRecords = (refs: SecretRef[]): CredentialRecord[] =>
  refs.map((r) => ({ ref: r.ref, version: r.version, status: r.status, fingerprint: r.fingerprint }));

export function offboardingSupport(deps: ActivityDeps) {
  async function target(nhiId: string): Promise<{ nhi: NhiRecord; connector: Connector; identity: string }> {
    const nhi = await loadNhi(deps.pool, nhiId);
    return { nhi, connector: deps.connectors.get(nhi.connector), identity: nhi.externalRef };
  }

  function audit(nhiId: string, e: Omit<AuditEventInput, 'workflowId' | 'scenario' | 'nhiId' | 'actor'> & { actor?: string }) {
    return appendAudit(deps.pool, { actor: 'system', ...e, workflowId: currentWorkflowId(), scenario: OFFBOARDING_SCENARIO, nhiId });
  }

  /**
   * Every access change of offboarding: the reconciler, with this workflow's intent change. Any
   * failure is retryable (the workflow escalates and keeps going), except an NHI gone from the inventory.
   */
  async function reconcileStep(nhiId: string, step: { stepId: string; actor: string; reason: string }, change?: IntentChange): Promise<VerifiedAccess> {
    return reconcileUnder({ pool: deps.pool, connectors: deps.connectors }, nhiId, { workflowId: currentWorkflowId(), scenario: OFFBOARDING_SCENARIO, ...step }, 'never-abandon', change);
  }

  return { target, audit, reconcileStep };
}
