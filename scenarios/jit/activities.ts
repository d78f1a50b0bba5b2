// JIT elevation activities: policy decisions, and grant/release as the elevation's grant intents
// (enforcement/intents.ts) that the reconciler applies. Overlapping elevations compose there, a
// restriction (throttle, quarantine, offboarding) wins over an elevation, and every receipt comes
// from the reconciler's read-back of the target.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowNotFoundError } from '@temporalio/client';
import { desiredAccess } from '../../enforcement/desired';
import { activeIntents, BASELINE_OWNER, commitIntent, releaseIntents } from '../../enforcement/intents';
import { reconcile, type IntentChange, type ReconcileContext, type VerifiedAccess } from '../../enforcement/reconciler';
import { targetFailure } from '../../enforcement/target-failures';
import { appendAudit } from '../../lib/audit';
import { getNhi } from '../../lib/inventory';
import { canApprove, decideElevation } from './policy';
import { hasRole, type Role } from '../../lib/principals';
import { ErrorType } from '../../workflows/errors';
import { JIT_SCENARIO, type EntitlementReadback, type PolicyEvidence } from './contract';
import { LEAK_WORKFLOW_TYPE, leakWorkflowId } from '../leak/contract';
import { OFFBOARDING_WORKFLOW_TYPE, offboardingWorkflowId } from '../offboarding/contract';
import { currentWorkflowId, loadNhi, type NhiRecord, principalRoles, verifiedPrincipal } from '../../activities/common';
import type { Authority } from '../../lib/authority';
import type { ActivityDeps } from '../../activities/deps';


export interface ElevationFacts {
  nhiId: string;
  entitlements: string[];
  durationMinutes: number;
  ticket?: string;
  breakGlass?: boolean;
  requestedBy: string;
}

const nhiFacts = (nhi: NhiRecord) => ({ id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status });

export function createJitActivities(deps: ActivityDeps) {
  async function assertGrantable(nhi: NhiRecord, entitlements: string[]) {
    const grantable = new Set(await deps.connectors.get(nhi.connector).listGrantableEntitlements());
    const unknown = entitlements.filter((e) => !grantable.has(e));
    if (unknown.length) {
      throw ApplicationFailure.nonRetryable(`unknown entitlement(s) for ${nhi.id}: ${unknown.join(', ')}`, ErrorType.EntitlementUnknown);
    }
  }

  async function evaluate(f: ElevationFacts, stepId: string, extension?: { extraMinutes: number; totalMinutes: number }): Promise<PolicyEvidence> {
    const totalMinutes = extension?.totalMinutes ?? f.durationMinutes;
    const nhi = await loadNhi(deps.pool, f.nhiId);
    await assertGrantable(nhi, f.entitlements);
    const base: Pick<PolicyEvidence, 'determiningPolicies' | 'policySetHash' | 'requiredApprovals'> = {
      determiningPolicies: [],
      policySetHash: deps.policy.policySetHash,
      requiredApprovals: 0,
    };
    let evidence: PolicyEvidence;
    if (nhi.status !== 'active') {
      evidence = { ...base, outcome: 'deny', reasons: [`${nhi.id} is ${nhi.status}: no elevation while it is`] };
    } else {
      const d = decideElevation(deps.policy, {
        requester: { id: f.requestedBy, roles: await principalRoles(deps.pool, f.requestedBy) },
        nhi: nhiFacts(nhi),
        entitlements: f.entitlements,
        durationMinutes: extension?.extraMinutes ?? f.durationMinutes,
        ticket: f.ticket,
        breakGlass: f.breakGlass,
        extension: extension ? { totalMinutes: extension.totalMinutes } : undefined,
      });
      evidence = {
        outcome: d.outcome,
        requiredApprovals: d.requiredApprovals,
        reasons: d.reasons,
        determiningPolicies: d.determiningPolicies,
        policySetHash: d.policySetHash,
        maxDurationMinutes: d.maxDurationMinutes,
      };
    }
    await appendAudit(deps.pool, {
      workflowId: currentWorkflowId(),
      stepId,
      scenario: 'jit',
      nhiId: f.nhiId,
      actor: f.requestedBy,
      action: stepId.startsWith('extend') ? 'policy.extend' : 'policy.elevation',
      outcome: evidence.outcome,
      decision: evidence,
      details: { entitlements: f.entitlements, totalMinutes, ticket: f.ticket ?? null, breakGlass: Boolean(f.breakGlass) },
    });
    return evidence;
  }

  /**
   * Reconcile with `change`; a ReconcileError becomes a Temporal failure. A grant stops at a
   * permanent one (retrying cannot help; the saga rolls back). A revocation is never abandoned:
   * every failure is retried (and escalated by the workflow).
   */
  async function reconcileOrFail(ctx: ReconcileContext, what: string, step: 'grant' | 'release', nhiId: string, change: IntentChange): Promise<VerifiedAccess> {
    try {
      return await reconcile({ pool: deps.pool, connectors: deps.connectors }, nhiId, ctx, change);
    } catch (err) {
      throw targetFailure(what, err, step === 'grant' ? 'stop-on-permanent' : 'never-abandon');
    }
  }


  /** The step's receipt of one entitlement: its presence and who else wants it, both as of the reconcile's lock (never a later read of the ledger). */
  function readbackOf(v: VerifiedAccess, workflowId: string, entitlement: string): EntitlementReadback {
    const { intents } = v;
    const present = v.observed.exists && v.observed.entitlements.includes(entitlement);
    const others = intents.grants.filter((x) => x.entitlement === entitlement && x.owner !== workflowId).map((x) => x.owner);
    if (intents.baseline?.entitlements.includes(entitlement)) others.push(BASELINE_OWNER);
    // Present for no grant and not in the baseline: the read-only form a restriction substitutes.
    if (present && others.length === 0 && v.desired.entitlements.includes(entitlement)) others.push(...v.desired.restrictedBy);
    return { entitlement, present, otherHolders: [...new Set(others)].sort(), checkedAt: v.checkedAt };
  }

  /** A scenario that ends every elevation of the NHI may end this one, while it runs for that NHI. */
  async function checkScenarioCaller(byWorkflow: string, nhiId: string): Promise<{ allowed: boolean; reasons: string[] }> {
    const expected: Record<string, string> = { [leakWorkflowId(nhiId)]: LEAK_WORKFLOW_TYPE, [offboardingWorkflowId(nhiId)]: OFFBOARDING_WORKFLOW_TYPE };
    const type = expected[byWorkflow];
    if (!type) return { allowed: false, reasons: [`${byWorkflow} is not a scenario that ends the elevations of ${nhiId}`] };
    if (!deps.temporal) return { allowed: false, reasons: [`this worker cannot verify ${byWorkflow} (no Temporal client)`] };
    try {
      const d = await deps.temporal.client.workflow.getHandle(byWorkflow).describe();
      if (d.type !== type || d.status.name !== 'RUNNING') return { allowed: false, reasons: [`${byWorkflow} is not a running ${type}`] };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { allowed: false, reasons: [`${byWorkflow} does not exist`] };
      throw err;
    }
    return { allowed: true, reasons: [`${byWorkflow} (${type}) ends the elevations of ${nhiId}`] };
  }

  return {
    /** Cedar decides: deny, auto-approve, needs N approvals, or break-glass. Recorded with its policies. */
    /** The request: requestedBy must be the principal the API signed for this start. */
    async evaluateElevation(f: ElevationFacts & { authority?: Authority }): Promise<PolicyEvidence> {
      await verifiedPrincipal(deps, f.authority, 'start', f.requestedBy);
      return evaluate(f, 'policy');
    },

    /** An extension is a new decision on the total duration. */
    async evaluateExtension(f: ElevationFacts & { extraMinutes: number; totalMinutes: number; extensionNumber: number; by?: string; authority?: Authority }): Promise<PolicyEvidence> {
      await verifiedPrincipal(deps, f.authority, 'extend', f.by ?? f.requestedBy);
      return evaluate(f, `extend:${f.extensionNumber}:policy`, { extraMinutes: f.extraMinutes, totalMinutes: f.totalMinutes });
    },

    /** May this principal approve? (Never the requester; policy decides the rest.) */
    async checkApprover(a: { approver: string; requestedBy: string; nhiId: string; entitlements: string[]; message?: 'approve' | 'deny'; authority?: Authority }) {
      await verifiedPrincipal(deps, a.authority, a.message ?? 'approve', a.approver);
      const nhi = await loadNhi(deps.pool, a.nhiId);
      const d = canApprove(deps.policy, {
        approver: { id: a.approver, roles: await principalRoles(deps.pool, a.approver) },
        requester: { id: a.requestedBy, roles: await principalRoles(deps.pool, a.requestedBy) },
        nhi: nhiFacts(nhi),
        entitlements: a.entitlements,
      });
      return { allowed: d.allowed, reasons: d.reasons, determiningPolicies: d.determiningPolicies };
    },

    /**
     * Who may end this elevation, decided here from the principals table, never from roles a message
     * carries: the requester, an approver or an admin; or a scenario that ends every elevation of the
     * NHI (leak containment, offboarding), when its workflow is running for this NHI.
     */
    async checkRevoker(a: { by: string; requestedBy: string; nhiId: string; byWorkflow?: string; authority?: Authority }): Promise<{ allowed: boolean; reasons: string[]; actor?: string }> {
      if (a.byWorkflow !== undefined) return checkScenarioCaller(a.byWorkflow, a.nhiId);
      // Ending access early only narrows it: honoured unsigned (the Temporal UI), as `temporal-ui`.
      if (!a.authority) return { allowed: true, reasons: [`unsigned (claimed by ${a.by}): ending an elevation early needs no authority`], actor: 'temporal-ui' };
      await verifiedPrincipal(deps, a.authority, 'revoke', a.by);
      if (a.by === a.requestedBy) return { allowed: true, reasons: [`${a.by} requested it`] };
      const roles = await principalRoles(deps.pool, a.by);
      if (hasRole({ roles: roles as Role[] }, 'approver')) return { allowed: true, reasons: [`${a.by} holds ${roles.includes('admin') ? 'admin' : 'approver'}`] };
      return { allowed: false, reasons: [`${a.by} is neither the requester nor an approver or admin (roles: ${roles.join(', ') || 'none'})`] };
    },

    /**
     * Commit this elevation's grant intent (until its expiry) and reconcile; the read-back says
     * whether the target holds it. A restriction that withholds it (a throttle, a quarantine,
     * offboarding) wins: the intent is not kept and the grant fails for good, naming who withholds it.
     */
    async grantEntitlement(g: { nhiId: string; entitlement: string; expiresAt: string; actor: string }): Promise<EntitlementReadback> {
      const workflowId = currentWorkflowId();
      const nhi = await loadNhi(deps.pool, g.nhiId);
      const connector = deps.connectors.get(nhi.connector);
      const stepId = `grant:${g.entitlement}`;
      let withheld: { by: string[]; restrictions: string[] } | undefined;
      const verified = await reconcileOrFail(
        { workflowId, stepId, scenario: JIT_SCENARIO, actor: g.actor, reason: `elevation until ${g.expiresAt}` },
        `granting ${g.entitlement} to ${nhi.id}`,
        'grant',
        g.nhiId,
        async (c) => {
          // The one rule decides, before anything is committed: would a restriction withhold it?
          const intents = await activeIntents(c, g.nhiId);
          const baseline = intents.baseline ?? { entitlements: [], canLogin: false, connectionLimit: 0 };
          const grants = [...intents.grants.filter((x) => x.owner !== workflowId || x.entitlement !== g.entitlement), { owner: workflowId, entitlement: g.entitlement }];
          const desired = desiredAccess(baseline, grants, intents.restrictions, connector.entitlementCatalogue());
          const w = desired.withheld.find((x) => x.entitlement === g.entitlement);
          if (w) {
            withheld = { by: w.by, restrictions: [...new Set(intents.restrictions.filter((r) => w.by.includes(r.owner)).map((r) => r.restriction))].sort() };
            // An earlier attempt may have committed it: release it again, in this same reconcile.
            await releaseIntents(c, g.nhiId, workflowId, { kind: 'grant', subject: g.entitlement });
          } else {
            await commitIntent(c, g.nhiId, workflowId, { kind: 'grant', entitlement: g.entitlement, until: g.expiresAt });
          }
        },
      );
      const readback = readbackOf(verified, workflowId, g.entitlement);
      const target = { connector: nhi.connector, identity: nhi.externalRef, entitlement: g.entitlement, expiresAt: g.expiresAt };
      if (withheld) {
        const message = `${g.entitlement} is withheld from ${nhi.id} by ${withheld.by.join(', ')} (${withheld.restrictions.join(', ')}): not granted`;
        await appendAudit(deps.pool, { workflowId, stepId, scenario: JIT_SCENARIO, nhiId: g.nhiId, actor: g.actor, action: 'entitlement.grant', outcome: 'withheld', target, readback, details: { withheldBy: withheld.by, restrictions: withheld.restrictions } });
        throw ApplicationFailure.create({ message, type: ErrorType.AccessWithheld, nonRetryable: true, details: [{ withheldBy: withheld.by, restrictions: withheld.restrictions }] });
      }
      if (!verified.observed.exists) {
        throw ApplicationFailure.create({ message: `${nhi.externalRef} does not exist at the target: ${g.entitlement} cannot be granted`, type: ErrorType.PermanentConnector, nonRetryable: true });
      }
      // The reconciler verified the target against the desired access; this is the receipt of that.
      if (!readback.present) throw ApplicationFailure.retryable(`${g.entitlement} not present on ${nhi.externalRef} after reconcile`, ErrorType.VerificationFailed);
      await appendAudit(deps.pool, { workflowId, stepId, scenario: JIT_SCENARIO, nhiId: g.nhiId, actor: g.actor, action: 'entitlement.grant', outcome: 'granted', target, readback });
      return readback;
    },

    /**
     * Release this elevation's grant intent and reconcile; the read-back must show the entitlement
     * gone unless something else still wants it (another elevation, the baseline). A revocation is
     * never abandoned: every failure is retryable, except an NHI or identity that is gone (nothing left to revoke).
     */
    async releaseEntitlement(r: { nhiId: string; entitlement: string; actor: string; reason: string; stepId?: string }): Promise<EntitlementReadback> {
      const workflowId = currentWorkflowId();
      const stepId = r.stepId ?? `release:${r.entitlement}`;
      const gone = async (): Promise<EntitlementReadback> => {
        // Nothing at any target is reachable through it any more; the ledger still forgets the intent.
        await releaseIntents(deps.pool, r.nhiId, workflowId, { kind: 'grant', subject: r.entitlement });
        return { entitlement: r.entitlement, present: false, otherHolders: [], checkedAt: new Date().toISOString() };
      };
      // (An NHI that leaves the inventory between this check and the reconcile fails the attempt; the retry lands here.)
      const nhi = await getNhi(deps.pool, r.nhiId);
      if (!nhi) return gone();
      const verified = await reconcileOrFail(
        { workflowId, stepId, scenario: JIT_SCENARIO, actor: r.actor, reason: r.reason },
        `revoking ${r.entitlement} from ${nhi.id}`,
        'release',
        r.nhiId,
        async (c) => {
          await releaseIntents(c, r.nhiId, workflowId, { kind: 'grant', subject: r.entitlement });
        },
      );
      const readback = readbackOf(verified, workflowId, r.entitlement);
      const stillWanted = verified.desired.entitlements.includes(r.entitlement);
      if (readback.present && !stillWanted) {
        throw ApplicationFailure.retryable(`${r.entitlement} still present on ${nhi.externalRef} after release`, ErrorType.VerificationFailed);
      }
      await appendAudit(deps.pool, {
        workflowId,
        stepId,
        scenario: JIT_SCENARIO,
        nhiId: r.nhiId,
        actor: r.actor,
        action: 'entitlement.revoke',
        outcome: !verified.observed.exists ? 'identity_gone' : readback.present ? 'released_kept_for_other_holders' : 'revoked',
        target: { connector: nhi.connector, identity: nhi.externalRef, entitlement: r.entitlement, reason: r.reason, changedAtTarget: verified.changes.revoked.includes(r.entitlement) },
        readback,
      });
      return readback;
    },
  };
}
