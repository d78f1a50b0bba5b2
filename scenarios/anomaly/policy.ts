// Anomaly throttling's policy decisions (policies/anomaly.cedar): automatic throttle and restore,
// and who may confirm a throttle.
import type { PolicyEngine } from '../../lib/policy-engine';
import { EntityType, PolicyAction, SYSTEM_PRINCIPAL, ask, unique, explain, numeric, uid, principalEntity, nhiEntity, principalMay, type Principal, type NhiFacts, type PolicyTrace, type ApprovalDecision } from '../../lib/policy-decisions';

export interface ThrottleDecision extends PolicyTrace {
  /** The orchestrator may throttle at once; otherwise a person must confirm (see canConfirmThrottle). */
  automatic: boolean;
  needsConfirmation: boolean;
  /** Why throttling is (or is not) automatic. */
  reasons: string[];
  /** Restore by itself after this many minutes without a new anomaly; null: only an analyst's clear restores. */
  autoRestoreAfterMinutes: number | null;
  autoRestoreReasons: string[];
}

/** Throttle and AutoRestore, decided as the orchestrator (SYSTEM_PRINCIPAL). */
export function decideThrottle(engine: PolicyEngine, input: { nhi: NhiFacts }): ThrottleDecision {
  const resource = uid(EntityType.Nhi, input.nhi.id);
  const entities = [principalEntity(SYSTEM_PRINCIPAL), nhiEntity(input.nhi)];
  const t = ask(engine, PolicyAction.Throttle, SYSTEM_PRINCIPAL, resource, entities);
  const r = ask(engine, PolicyAction.AutoRestore, SYSTEM_PRINCIPAL, resource, entities);
  const automatic = t.decision === 'allow';
  const restore = r.decision === 'allow' ? (numeric(engine, r, 'quietMinutes', 'max') ?? null) : null;
  return {
    automatic,
    needsConfirmation: !automatic,
    reasons: explain(engine, t, `no policy allows automatic throttling of ${input.nhi.id}`),
    autoRestoreAfterMinutes: restore,
    autoRestoreReasons: explain(engine, r, `no policy allows ${input.nhi.id} to be restored automatically`),
    determiningPolicies: unique([...t.determiningPolicies, ...r.determiningPolicies]),
    policySetHash: engine.policySetHash,
  };
}

/** May this person confirm a throttle that policy would not apply automatically? */
export function canConfirmThrottle(engine: PolicyEngine, input: { principal: Principal; nhi: NhiFacts }): ApprovalDecision {
  return principalMay(engine, PolicyAction.Throttle, input, `no policy lets ${input.principal.id} throttle ${input.nhi.id}`, false);
}
