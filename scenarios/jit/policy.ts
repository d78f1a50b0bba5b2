// JIT elevation's policy decisions: may this request be made, auto-approved, break-glass, extended;
// may this person approve it. Rules are in policies/jit.cedar.
import type { CedarValueJson, Decision, PolicyEngine } from '../../lib/policy-engine';
import { EntityType, PolicyAction, ask, unique, explain, numeric, uid, ref, principalEntity, nhiEntity, type Principal, type NhiFacts, type PolicyTrace, type ApprovalDecision } from '../../lib/policy-decisions';

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
