// Domain decisions on top of the policy engine: plain facts in (principals, NHI facts — not DB
// rows), an outcome out, with the reasons to show a person and the policies and policy-set hash to
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

const NUMERIC_ANNOTATIONS: Record<string, number> = { approvals: 1, maxMinutes: 1, graceDays: 0, watchDays: 0, quietMinutes: 1 };
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

const uid = (type: string, id: string): EntityUid => ({ type, id });
const ref = (type: string, id: string): CedarValueJson => ({ __entity: { type, id } });
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

function ask(
  engine: PolicyEngine,
  action: PolicyAction,
  principal: Principal,
  resource: EntityUid,
  entities: EntityJson[],
  context: Record<string, CedarValueJson> = {},
): Decision {
  return engine.decide({ principal: uid(EntityType.Principal, principal.id), action: actionUid(action), resource, context, entities });
}

function unique<T>(items: Iterable<T>): T[] {
  return [...new Set(items)];
}

/** Why a decision went the way it did: the @reason of its determining policies, or `fallback`. */
function explain(engine: PolicyEngine, d: Decision, fallback: string): string[] {
  if (d.errors.length) return [`the policy engine could not evaluate this request, so it is refused: ${d.errors.join('; ')}`];
  const reasons = d.determiningPolicies.map((id) => engine.annotations(id).reason).filter((r): r is string => Boolean(r));
  if (reasons.length) return reasons;
  if (d.decision === 'deny') return d.determiningPolicies.length ? d.determiningPolicies.map((id) => `denied by policy ${id}`) : [fallback];
  return [];
}

/** The largest (or smallest) numeric annotation `name` among the policies that determined `d`. */
function numeric(engine: PolicyEngine, d: Decision, name: string, pick: 'max' | 'min'): number | undefined {
  if (d.errors.length) return undefined;
  const values = d.determiningPolicies
    .map((id) => engine.annotations(id)[name])
    .filter((v): v is string => v !== undefined && /^\d+$/.test(v))
    .map(Number);
  if (!values.length) return undefined;
  return pick === 'max' ? Math.max(...values) : Math.min(...values);
}

// ---------------------------------------------------------------------------------------------
// JIT elevation
// ---------------------------------------------------------------------------------------------

export interface ElevationInput {
  requester: Principal;
  nhi: NhiFacts;
  /** The bundle: all-or-nothing. Duplicates are ignored. */
  entitlements: readonly string[];
  /** A new request: the window in minutes. An extension: the extra minutes. */
  durationMinutes: number;
  /** Only its presence matters to policy. */
  ticket?: string | null;
  breakGlass?: boolean;
  /**
   * Set to extend an active window: `totalMinutes` is the whole window once extended (original
   * + every extension, this one included); pass the original request's ticket and breakGlass.
   * The answer is then 'deny' or 'auto_approve' (an extension needs no new approval);
   * `requiredApprovals` is 0.
   */
  extension?: { totalMinutes: number };
}

export type ElevationOutcome = 'deny' | 'auto_approve' | 'needs_approval' | 'break_glass';

export interface EntitlementVerdict {
  entitlement: string;
  allowed: boolean;
  /** Approved without a person (AutoApprove, or an allowed extension). */
  autoApproved: boolean;
  /** Distinct approvers this entitlement alone needs (0 when auto-approved or denied). */
  requiredApprovals: number;
  maxDurationMinutes?: number;
  reasons: string[];
  determiningPolicies: string[];
}

export interface ElevationDecision extends PolicyTrace {
  outcome: ElevationOutcome;
  /** Distinct approvers needed, none of them the requester: the largest need in the bundle. */
  requiredApprovals: number;
  /** Why: the forbids' reasons for a deny, the deciding permits' reasons otherwise. */
  reasons: string[];
  /** The longest window (extensions included) policy allows for this whole bundle. */
  maxDurationMinutes?: number;
  /** One verdict per entitlement of the bundle, in request order. */
  entitlements: EntitlementVerdict[];
}

/** Longer than any policy limit: a request this long meets every duration limit that applies. */
const PROBE_MINUTES = 10 * 366 * 24 * 60;

/**
 * Deny, auto-approve, needs N approvals, or break-glass — for a whole bundle. Each entitlement is
 * evaluated (RequestElevation, or ExtendElevation for an extension); one denial denies the bundle.
 * Then break-glass (BreakGlass must allow every entitlement, else deny) or automatic approval
 * (AutoApprove must allow every entitlement); otherwise the bundle needs the largest @approvals
 * among the permits that allowed its entitlements.
 */
export function decideElevation(engine: PolicyEngine, input: ElevationInput): ElevationDecision {
  const base = { policySetHash: engine.policySetHash };
  const refuse = (reason: string): ElevationDecision => ({
    ...base,
    outcome: 'deny',
    requiredApprovals: 0,
    reasons: [reason],
    determiningPolicies: [],
    entitlements: [],
  });
  const entitlements = unique(input.entitlements);
  if (!entitlements.length) return refuse('no entitlement requested');
  if (!Number.isSafeInteger(input.durationMinutes)) return refuse('the duration must be a whole number of minutes');
  const totalMinutes = input.extension ? input.extension.totalMinutes : input.durationMinutes;
  if (!Number.isSafeInteger(totalMinutes) || totalMinutes < input.durationMinutes) {
    return refuse('the extended window (totalMinutes) must be a whole number of minutes that includes the extension');
  }

  const extending = Boolean(input.extension);
  const breakGlass = Boolean(input.breakGlass);
  const primary = extending ? PolicyAction.ExtendElevation : PolicyAction.RequestElevation;
  const entities = [principalEntity(input.requester), nhiEntity(input.nhi)];
  const context: Record<string, CedarValueJson> = {
    nhi: ref(EntityType.Nhi, input.nhi.id),
    durationMinutes: input.durationMinutes,
    totalMinutes,
    hasTicket: Boolean(input.ticket && input.ticket.trim()),
    breakGlass,
  };
  const probe = { ...context, durationMinutes: PROBE_MINUTES, totalMinutes: PROBE_MINUTES };
  const on = (action: PolicyAction, e: string, ctx = context) =>
    ask(engine, action, input.requester, uid(EntityType.Entitlement, e), entities, ctx);
  const notRequestable = (e: string) => `no policy lets ${e} be granted to ${input.nhi.kind} ${input.nhi.id}`;

  const verdicts: EntitlementVerdict[] = [];
  const used: Decision[] = [];
  for (const e of entitlements) {
    const d = on(primary, e);
    used.push(d);
    const limitActions = breakGlass && !extending ? [primary, PolicyAction.BreakGlass] : [primary];
    const limits = limitActions
      .map((a) => numeric(engine, on(a, e, probe), 'maxMinutes', 'min'))
      .filter((n): n is number => n !== undefined);
    const allowed = d.decision === 'allow';
    verdicts.push({
      entitlement: e,
      allowed,
      autoApproved: false,
      requiredApprovals: allowed && !extending ? (numeric(engine, d, 'approvals', 'max') ?? 1) : 0,
      ...(limits.length ? { maxDurationMinutes: Math.min(...limits) } : {}),
      reasons: explain(engine, d, notRequestable(e)),
      determiningPolicies: d.determiningPolicies,
    });
  }
  const limits = verdicts.map((v) => v.maxDurationMinutes).filter((n): n is number => n !== undefined);
  const maxDurationMinutes = limits.length ? { maxDurationMinutes: Math.min(...limits) } : {};
  const finish = (outcome: ElevationOutcome, requiredApprovals: number, reasons: string[]): ElevationDecision => ({
    ...base,
    outcome,
    requiredApprovals,
    reasons: unique(reasons),
    ...maxDurationMinutes,
    determiningPolicies: unique(used.flatMap((d) => d.determiningPolicies)),
    entitlements: verdicts,
  });

  const denied = verdicts.filter((v) => !v.allowed);
  if (denied.length) return finish('deny', 0, denied.flatMap((v) => v.reasons));

  if (extending) {
    for (const v of verdicts) v.autoApproved = true;
    return finish('auto_approve', 0, []);
  }

  if (breakGlass) {
    const reasons: string[] = [];
    let eligible = true;
    for (const v of verdicts) {
      const d = on(PolicyAction.BreakGlass, v.entitlement);
      used.push(d);
      v.determiningPolicies = unique([...v.determiningPolicies, ...d.determiningPolicies]);
      const why = explain(engine, d, `no policy allows break-glass for ${v.entitlement} on ${input.nhi.id}`);
      reasons.push(...why);
      if (d.decision === 'allow') {
        v.requiredApprovals = 0;
        v.reasons = why;
      } else {
        eligible = false;
        v.allowed = false;
        v.requiredApprovals = 0;
        v.reasons = why;
      }
    }
    if (!eligible) return finish('deny', 0, verdicts.filter((v) => !v.allowed).flatMap((v) => v.reasons));
    return finish('break_glass', 0, reasons);
  }

  const approvalReasons: string[] = [];
  const autoReasons: string[] = [];
  for (const v of verdicts) {
    const d = on(PolicyAction.AutoApprove, v.entitlement);
    used.push(d);
    if (d.decision === 'allow') {
      v.autoApproved = true;
      v.requiredApprovals = 0;
      v.reasons = explain(engine, d, '');
      v.determiningPolicies = unique([...v.determiningPolicies, ...d.determiningPolicies]);
      autoReasons.push(...v.reasons);
    } else {
      approvalReasons.push(...v.reasons);
    }
  }
  const pending = verdicts.filter((v) => !v.autoApproved);
  if (!pending.length) return finish('auto_approve', 0, autoReasons);
  return finish('needs_approval', Math.max(...pending.map((v) => v.requiredApprovals)), approvalReasons);
}

export interface ApprovalInput {
  approver: Principal;
  requester: Principal;
  nhi: NhiFacts;
  entitlements: readonly string[];
}

export interface ApprovalDecision extends PolicyTrace {
  allowed: boolean;
  reasons: string[];
}

export const SELF_APPROVAL_REASON = 'the requester cannot approve their own request';

/**
 * May `approver` approve (or deny) `requester`'s request for this bundle? Policy (Approve) must
 * allow every entitlement. Self-approval is refused here as well, whatever the policies say.
 */
export function canApprove(engine: PolicyEngine, input: ApprovalInput): ApprovalDecision {
  const entities = [principalEntity(input.approver), nhiEntity(input.nhi)];
  const context = { nhi: ref(EntityType.Nhi, input.nhi.id), requester: ref(EntityType.Principal, input.requester.id) };
  const decisions = unique(input.entitlements).map((e) =>
    ask(engine, PolicyAction.Approve, input.approver, uid(EntityType.Entitlement, e), entities, context),
  );
  const self = input.approver.id === input.requester.id;
  const allowed = decisions.length > 0 && decisions.every((d) => d.decision === 'allow') && !self;
  const reasons = allowed
    ? []
    : [
        ...(self ? [SELF_APPROVAL_REASON] : []),
        ...(decisions.length ? [] : ['no entitlement to approve']),
        ...decisions
          .filter((d) => d.decision === 'deny')
          .flatMap((d) => explain(engine, d, `no policy lets ${input.approver.id} approve elevations of ${input.nhi.id}`)),
      ];
  return {
    allowed,
    reasons: unique(reasons),
    determiningPolicies: unique(decisions.flatMap((d) => d.determiningPolicies)),
    policySetHash: engine.policySetHash,
  };
}

// ---------------------------------------------------------------------------------------------
// Offboarding
// ---------------------------------------------------------------------------------------------

export interface OffboardDecision extends PolicyTrace {
  allowed: boolean;
  /** Defaults when the request names none (the largest @graceDays / @watchDays among the permits); null when denied. */
  defaultGraceDays: number | null;
  defaultWatchDays: number | null;
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
    reasons: explain(engine, d, `no policy lets ${input.principal.id} offboard ${input.nhi.id}`),
    determiningPolicies: d.determiningPolicies,
    policySetHash: d.policySetHash,
  };
}

// ---------------------------------------------------------------------------------------------
// Anomaly throttling
// ---------------------------------------------------------------------------------------------

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

/**
 * May this principal take `action` on this NHI? The reasons explain a refusal; with `explainAllowed`
 * they also give the permitting policies' reasons.
 */
function principalMay(
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

// ---------------------------------------------------------------------------------------------
// Leak containment
// ---------------------------------------------------------------------------------------------

/** May this principal (a detector, an admin, the orchestrator) start a containment for this NHI? */
export function decideContainment(engine: PolicyEngine, input: { principal: Principal; nhi: NhiFacts }): ApprovalDecision {
  return principalMay(engine, PolicyAction.Contain, input, `no policy lets ${input.principal.id} contain ${input.nhi.id}`, true);
}

// ---------------------------------------------------------------------------------------------
// Drift
// ---------------------------------------------------------------------------------------------

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
