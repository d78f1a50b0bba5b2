// Offboarding's policy decision (policies/offboarding.cedar): may this principal offboard this NHI,
// and the grace and watch days policy gives by default.
import type { PolicyEngine } from '../../lib/policy-engine';
import { EntityType, PolicyAction, ask, explain, numeric, uid, principalEntity, nhiEntity, type Principal, type NhiFacts, type PolicyTrace } from '../../lib/policy-decisions';

export interface OffboardDecision extends PolicyTrace {
  allowed: boolean;
  /** Defaults when the request names none (the largest @graceDays / @watchDays among the permits); null when denied. */
  defaultGraceDays: number | null;
  defaultWatchDays: number | null;
  /** The shortest grace period policy accepts (largest @minGraceDays among the permits; 0 when none). */
  minGraceDays: number;
  /** Finalisation waits for a second person's confirmation (an admin other than the requester): any permit with @secondPerson ≥ 1. */
  secondPersonRequired: boolean;
  reasons: string[];
}

export function decideOffboard(engine: PolicyEngine, input: { principal: Principal; nhi: NhiFacts }): OffboardDecision {
  const d = ask(engine, PolicyAction.Offboard, input.principal, uid(EntityType.Nhi, input.nhi.id), [
    principalEntity(input.principal),
    nhiEntity(input.nhi),
  ]);
  const allowed = d.decision === 'allow';
  return {
    allowed,
    defaultGraceDays: allowed ? (numeric(engine, d, 'graceDays', 'max') ?? null) : null,
    defaultWatchDays: allowed ? (numeric(engine, d, 'watchDays', 'max') ?? null) : null,
    minGraceDays: allowed ? (numeric(engine, d, 'minGraceDays', 'max') ?? 0) : 0,
    secondPersonRequired: allowed && (numeric(engine, d, 'secondPerson', 'max') ?? 0) > 0,
    reasons: explain(engine, d, `no policy lets ${input.principal.id} offboard ${input.nhi.id}`),
    determiningPolicies: d.determiningPolicies,
    policySetHash: d.policySetHash,
  };
}

/** Why a requested grace period is too short for policy, or undefined when it is long enough. */
export function graceTooShort(d: Pick<OffboardDecision, 'minGraceDays'>, nhiId: string, graceDays: number | undefined): string | undefined {
  if (graceDays === undefined || graceDays >= d.minGraceDays) return undefined;
  return `policy requires at least ${d.minGraceDays} day(s) of grace before ${nhiId} is finalised (asked for ${graceDays})`;
}
