// Leak containment's policy decision (policies/leak.cedar): may this principal start a containment.
import type { PolicyEngine } from '../../lib/policy-engine';
import { PolicyAction, principalMay, type Principal, type NhiFacts, type ApprovalDecision } from '../../lib/policy-decisions';

/** May this principal (a detector, an admin, the orchestrator) start a containment for this NHI? */
export function decideContainment(engine: PolicyEngine, input: { principal: Principal; nhi: NhiFacts }): ApprovalDecision {
  return principalMay(engine, PolicyAction.Contain, input, `no policy lets ${input.principal.id} contain ${input.nhi.id}`, true);
}
