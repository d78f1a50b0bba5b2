// The drift decision (policies/drift.cedar): may the orchestrator revert drift by itself.
import type { PolicyEngine } from '../lib/policy-engine';
import { principalMay, PolicyAction, SYSTEM_PRINCIPAL, type ApprovalDecision, type NhiFacts } from '../lib/policy-decisions';

/**
 * Access that appeared at the target outside the orchestrator: may the orchestrator revert it by
 * itself (RevertDrift, decided as SYSTEM_PRINCIPAL), or is it only reported for a person?
 */
export function decideDriftRevert(engine: PolicyEngine, input: { nhi: NhiFacts }): ApprovalDecision {
  return principalMay(
    engine,
    PolicyAction.RevertDrift,
    { principal: SYSTEM_PRINCIPAL, nhi: input.nhi },
    `no policy lets the orchestrator revert drift on ${input.nhi.id}: reported only`,
    true,
  );
}
