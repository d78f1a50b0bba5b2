// Shared building blocks for policy decisions: the entity model, loading and conventions, request
// building and explanations. Each scenario's decisions live beside it (scenarios/*/policy.ts; drift in
// enforcement/drift.ts): plain facts in (principals, NHI facts — not DB rows), an outcome out, with the reasons to show a person and the policies and policy-set hash to
// record. Every rule lives in policies/*.cedar; this module only builds requests, combines the
// per-entitlement answers of a bundle, and reads the annotations policies use to carry numbers
// (@approvals, @maxMinutes, @graceDays, @watchDays, @quietMinutes) and explanations (@reason).
// See docs/policies.md.
import { PolicyEngine, PolicyLoadError } from './policy-engine';
import type { CedarValueJson, Decision, EntityJson, EntityUid, PolicyEngineOptions, PolicyProblem } from './policy-engine';

// ---------------------------------------------------------------------------------------------
// The entity model (policies/schema.cedarschema)
// ---------------------------------------------------------------------------------------------

export const EntityType = {
  Principal: 'Nhi::Principal',
  Nhi: 'Nhi::Nhi',
  Entitlement: 'Nhi::Entitlement',
  Action: 'Nhi::Action',
} as const;

export const PolicyAction = {
  RequestElevation: 'RequestElevation',
  AutoApprove: 'AutoApprove',
  BreakGlass: 'BreakGlass',
  ExtendElevation: 'ExtendElevation',
  Approve: 'Approve',
  Offboard: 'Offboard',
  Throttle: 'Throttle',
  AutoRestore: 'AutoRestore',
  Contain: 'Contain',
  RevertDrift: 'RevertDrift',
} as const;
export type PolicyAction = (typeof PolicyAction)[keyof typeof PolicyAction];

export type NhiKind = 'service_account' | 'api_key' | 'token' | 'integration' | 'ai_agent';
export type Criticality = 'low' | 'medium' | 'high' | 'critical';
export type NhiStatus = 'active' | 'throttled' | 'offboarding' | 'offboarded';

/** Who asks: an API caller (its principal id and roles), or the orchestrator itself. */
export interface Principal {
  id: string;
  /** requester | approver | deployer | detector | admin; "system" is reserved for the orchestrator. */
  roles: readonly string[];
}

/** What policies know of an NHI: its inventory record's facts. */
export interface NhiFacts {
  id: string;
  kind: NhiKind;
  /** The owner's principal id (the inventory's owner column). */
  owner: string;
  criticality: Criticality;
  tags: readonly string[];
  /** Pass it whenever known: rules on the NHI's state (e.g. no elevation while throttled) need it. */
  status?: NhiStatus;
}

/** The orchestrator deciding on its own (automatic throttling, automatic restore). */
export const SYSTEM_PRINCIPAL: Principal = Object.freeze({ id: 'orchestrator', roles: Object.freeze(['system']) });

/** What every decision carries for the audit trail. */
export interface PolicyTrace {
  /** Policy ids (their @id) that determined the outcome. */
  determiningPolicies: string[];
  /** sha256 of the schema and policy files in force. */
  policySetHash: string;
}

/** Loads a policy folder and checks the conventions the helpers below rely on. Use this at start-up. */
export function loadNhiPolicies(dir: string, options?: PolicyEngineOptions): PolicyEngine {
  const engine = PolicyEngine.load(dir, options);
  const problems = checkPolicyConventions(engine);
  if (problems.length) throw new PolicyLoadError(dir, problems);
  return engine;
}

const NUMERIC_ANNOTATIONS: Record<string, number> = { approvals: 1, maxMinutes: 1, graceDays: 0, watchDays: 0, quietMinutes: 1, minGraceDays: 0, secondPerson: 0, cooldownMinutes: 0 };
const REQUIRED_ON_PERMITS: [PolicyAction, string[]][] = [
  [PolicyAction.RequestElevation, ['approvals']],
  [PolicyAction.Offboard, ['graceDays', 'watchDays']],
  [PolicyAction.AutoRestore, ['quietMinutes']],
];

/**
 * The conventions the domain helpers rely on: every policy has an @id (so audit records keep
 * meaning when files change), every forbid a @reason (so a denial can be explained), numeric
 * annotations are whole numbers, and the permits of actions whose outcome carries a number
 * (approvals, grace/watch days, quiet period) state it.
 */
export function checkPolicyConventions(engine: PolicyEngine): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  for (const p of engine.policies) {
    const at = { file: p.file, line: p.line, policyId: p.id };
    if (!p.annotations.id) problems.push({ ...at, message: 'needs an @id("…") annotation: audit records name policies by it' });
    if (p.effect === 'forbid' && !p.annotations.reason) {
      problems.push({ ...at, message: 'a forbid needs a @reason("…") annotation: it is shown to the person denied' });
    }
    for (const [name, min] of Object.entries(NUMERIC_ANNOTATIONS)) {
      const v = p.annotations[name];
      if (v !== undefined && !(/^\d+$/.test(v) && Number(v) >= min)) {
        problems.push({ ...at, message: `@${name}("${v}") must be a whole number ≥ ${min}` });
      }
    }
    if (p.effect === 'permit') {
      for (const [action, names] of REQUIRED_ON_PERMITS) {
        const key = `${EntityType.Action}::${JSON.stringify(action)}`;
        if (p.actions !== 'any' && !p.actions.includes(key)) continue;
        for (const name of names) {
          if (p.annotations[name] === undefined) problems.push({ ...at, message: `a permit for ${action} needs @${name}("N")` });
        }
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Request building
// ---------------------------------------------------------------------------------------------

export const uid = (type: string, id: string): EntityUid => ({ type, id });
export const ref = (type: string, id: string): CedarValueJson => ({ __entity: { type, id } });
const actionUid = (a: PolicyAction): EntityUid => uid(EntityType.Action, a);

export function principalEntity(p: Principal): EntityJson {
  return { uid: uid(EntityType.Principal, p.id), attrs: { roles: [...p.roles] }, parents: [] };
}

export function nhiEntity(n: NhiFacts): EntityJson {
  const attrs: Record<string, CedarValueJson> = {
    kind: n.kind,
    owner: ref(EntityType.Principal, n.owner),
    criticality: n.criticality,
    tags: [...n.tags],
  };
  if (n.status !== undefined) attrs.status = n.status;
  return { uid: uid(EntityType.Nhi, n.id), attrs, parents: [] };
}

export function ask(
  engine: PolicyEngine,
  action: PolicyAction,
  principal: Principal,
  resource: EntityUid,
  entities: EntityJson[],
  context: Record<string, CedarValueJson> = {},
): Decision {
  return engine.decide({ principal: uid(EntityType.Principal, principal.id), action: actionUid(action), resource, context, entities });
}

export function unique<T>(items: Iterable<T>): T[] {
  return [...new Set(items)];
}

/** Why a decision went the way it did: the @reason of its determining policies, or `fallback`. */
export function explain(engine: PolicyEngine, d: Decision, fallback: string): string[] {
  if (d.errors.length) return [`the policy engine could not evaluate this request, so it is refused: ${d.errors.join('; ')}`];
  const reasons = d.determiningPolicies.map((id) => engine.annotations(id).reason).filter((r): r is string => Boolean(r));
  if (reasons.length) return reasons;
  if (d.decision === 'deny') return d.determiningPolicies.length ? d.determiningPolicies.map((id) => `denied by policy ${id}`) : [fallback];
  return [];
}

/** The largest (or smallest) numeric annotation `name` among the policies that determined `d`. */
export function numeric(engine: PolicyEngine, d: Decision, name: string, pick: 'max' | 'min'): number | undefined {
  if (d.errors.length) return undefined;
  const values = d.determiningPolicies
    .map((id) => engine.annotations(id)[name])
    .filter((v): v is string => v !== undefined && /^\d+$/.test(v))
    .map(Number);
  if (!values.length) return undefined;
  return pick === 'max' ? Math.max(...values) : Math.min(...values);
}

/** The answer to a yes/no question about a principal (approve, confirm, contain, revert drift). */
export interface ApprovalDecision extends PolicyTrace {
  allowed: boolean;
  reasons: string[];
}

/**
 * May this principal take `action` on this NHI? The reasons explain a refusal; with `explainAllowed`
 * they also give the permitting policies' reasons.
 */
export function principalMay(
  engine: PolicyEngine,
  action: PolicyAction,
  input: { principal: Principal; nhi: NhiFacts },
  fallback: string,
  explainAllowed: boolean,
): ApprovalDecision {
  const d = ask(engine, action, input.principal, uid(EntityType.Nhi, input.nhi.id), [principalEntity(input.principal), nhiEntity(input.nhi)]);
  const allowed = d.decision === 'allow';
  return {
    allowed,
    reasons: allowed && !explainAllowed ? [] : explain(engine, d, fallback),
    determiningPolicies: d.determiningPolicies,
    policySetHash: d.policySetHash,
  };
}
