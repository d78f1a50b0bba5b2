// JIT elevation activities: policy decisions, and grant/release through the grants ledger so that
// overlapping elevations never cut access another one still needs. Each step reads the target back.
import { ApplicationFailure } from '@temporalio/common';
import { ConnectorErrorCode, PermanentConnectorError, type Connector } from '../connectors/types';
import { appendAudit } from '../lib/audit';
import { withTransaction } from '../lib/db';
import { canApprove, decideElevation } from '../lib/policy-decisions';
import { ErrorType } from '../workflows/errors';
import type { EntitlementReadback, PolicyEvidence } from '../workflows/jitElevation.contract';
import { currentWorkflowId, loadNhi, type NhiRecord } from './common';
import type { ActivityDeps } from './deps';

/** The ledger's holder for access that existed before (and outside) any elevation. */
export const STANDING_HOLDER = 'standing';

export interface ElevationFacts {
  nhiId: string;
  entitlements: string[];
  durationMinutes: number;
  ticket?: string;
  breakGlass?: boolean;
  requestedBy: string;
}

async function principalRoles(deps: ActivityDeps, id: string): Promise<string[]> {
  const { rows } = await deps.pool.query<{ roles: string[] }>('SELECT roles FROM principals WHERE id = $1', [id]);
  return rows[0]?.roles ?? [];
}

const nhiFacts = (nhi: NhiRecord) => ({ id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status });

/**
 * A revocation is never abandoned: every failure of the target is retryable here. An identity or
 * entitlement that no longer exists leaves no access behind, which is what revocation wants.
 */
async function atTarget<T>(what: string, gone: T, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof PermanentConnectorError && (err.code === ConnectorErrorCode.UnknownIdentity || err.code === ConnectorErrorCode.UnknownEntitlement)) return gone;
    throw ApplicationFailure.retryable(`${what} failed: ${(err as Error).message}`, 'RevokeFailed');
  }
}

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
        requester: { id: f.requestedBy, roles: await principalRoles(deps, f.requestedBy) },
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

  return {
    /** Cedar decides: deny, auto-approve, needs N approvals, or break-glass. Recorded with its policies. */
    async evaluateElevation(f: ElevationFacts): Promise<PolicyEvidence> {
      return evaluate(f, 'policy');
    },

    /** An extension is a new decision on the total duration. */
    async evaluateExtension(f: ElevationFacts & { extraMinutes: number; totalMinutes: number; extensionNumber: number }): Promise<PolicyEvidence> {
      return evaluate(f, `extend:${f.extensionNumber}:policy`, { extraMinutes: f.extraMinutes, totalMinutes: f.totalMinutes });
    },

    /** May this principal approve? (Never the requester; policy decides the rest.) */
    async checkApprover(a: { approver: string; requestedBy: string; nhiId: string; entitlements: string[] }) {
      const nhi = await loadNhi(deps.pool, a.nhiId);
      const d = canApprove(deps.policy, {
        approver: { id: a.approver, roles: await principalRoles(deps, a.approver) },
        requester: { id: a.requestedBy, roles: await principalRoles(deps, a.requestedBy) },
        nhi: nhiFacts(nhi),
        entitlements: a.entitlements,
      });
      return { allowed: d.allowed, reasons: d.reasons, determiningPolicies: d.determiningPolicies };
    },

    /** Record this elevation as a holder and grant at the target (idempotent), then read it back. */
    async grantEntitlement(g: { nhiId: string; entitlement: string; expiresAt: string; actor: string }): Promise<EntitlementReadback> {
      const workflowId = currentWorkflowId();
      const nhi = await loadNhi(deps.pool, g.nhiId);
      const connector = deps.connectors.get(nhi.connector);
      const readback = await withTransaction(deps.pool, async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`grant:${g.nhiId}:${g.entitlement}`]);
        const held = await tx.query('SELECT 1 FROM grants WHERE nhi_id = $1 AND entitlement = $2 AND released_at IS NULL LIMIT 1', [g.nhiId, g.entitlement]);
        if (held.rowCount === 0 && (await connector.hasEntitlement(nhi.externalRef, g.entitlement))) {
          // Access the NHI already had outside any elevation: record it as a standing holder so that
          // the end of this elevation does not take away what it did not give.
          await tx.query(
            `INSERT INTO grants (nhi_id, entitlement, holder) VALUES ($1, $2, $3)
             ON CONFLICT (nhi_id, entitlement, holder) DO UPDATE SET released_at = NULL`,
            [g.nhiId, g.entitlement, STANDING_HOLDER],
          );
        }
        await tx.query(
          `INSERT INTO grants (nhi_id, entitlement, holder, expires_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (nhi_id, entitlement, holder) DO UPDATE SET released_at = NULL, expires_at = EXCLUDED.expires_at`,
          [g.nhiId, g.entitlement, workflowId, g.expiresAt],
        );
        await connector.grant(nhi.externalRef, g.entitlement);
        const present = await connector.hasEntitlement(nhi.externalRef, g.entitlement);
        // Not there after a successful grant: roll the ledger back and let Temporal retry.
        if (!present) throw ApplicationFailure.retryable(`${g.entitlement} not present on ${nhi.externalRef} after grant`, ErrorType.VerificationFailed);
        const others = await tx.query<{ holder: string }>(
          'SELECT holder FROM grants WHERE nhi_id = $1 AND entitlement = $2 AND released_at IS NULL AND holder <> $3 ORDER BY holder',
          [g.nhiId, g.entitlement, workflowId],
        );
        return { entitlement: g.entitlement, present, otherHolders: others.rows.map((r) => r.holder), checkedAt: new Date().toISOString() };
      });
      await appendAudit(deps.pool, {
        workflowId,
        stepId: `grant:${g.entitlement}`,
        scenario: 'jit',
        nhiId: g.nhiId,
        actor: g.actor,
        action: 'entitlement.grant',
        outcome: 'granted',
        target: { connector: nhi.connector, identity: nhi.externalRef, entitlement: g.entitlement, expiresAt: g.expiresAt },
        readback,
      });
      return readback;
    },

    /**
     * Release this elevation's hold; revoke at the target only when no other elevation holds the
     * entitlement; read back. Throws (retryably) until the target agrees, so revocation is never abandoned.
     */
    async releaseEntitlement(r: { nhiId: string; entitlement: string; actor: string; reason: string; stepId?: string }): Promise<EntitlementReadback> {
      const workflowId = currentWorkflowId();
      const nhi = await loadNhi(deps.pool, r.nhiId);
      const connector = deps.connectors.get(nhi.connector);
      const result = await withTransaction(deps.pool, async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`grant:${r.nhiId}:${r.entitlement}`]);
        await tx.query(
          'UPDATE grants SET released_at = COALESCE(released_at, now()) WHERE nhi_id = $1 AND entitlement = $2 AND holder = $3',
          [r.nhiId, r.entitlement, workflowId],
        );
        const others = (
          await tx.query<{ holder: string }>(
            'SELECT holder FROM grants WHERE nhi_id = $1 AND entitlement = $2 AND released_at IS NULL ORDER BY holder',
            [r.nhiId, r.entitlement],
          )
        ).rows.map((row) => row.holder);
        let revokedAtTarget = false;
        const what = `revoking ${r.entitlement} from ${nhi.externalRef}`;
        if (others.length === 0) revokedAtTarget = await atTarget(what, false, async () => (await connector.revoke(nhi.externalRef, r.entitlement)).changed);
        const present = await atTarget(what, false, () => connector.hasEntitlement(nhi.externalRef, r.entitlement));
        if (present && others.length === 0) {
          throw ApplicationFailure.retryable(`${r.entitlement} still present on ${nhi.externalRef} after revoke`, ErrorType.VerificationFailed);
        }
        return { readback: { entitlement: r.entitlement, present, otherHolders: others, checkedAt: new Date().toISOString() }, revokedAtTarget };
      });
      await appendAudit(deps.pool, {
        workflowId,
        stepId: r.stepId ?? `release:${r.entitlement}`,
        scenario: 'jit',
        nhiId: r.nhiId,
        actor: r.actor,
        action: 'entitlement.revoke',
        outcome: result.readback.otherHolders.length ? 'released_kept_for_other_holders' : 'revoked',
        target: { connector: nhi.connector, identity: nhi.externalRef, entitlement: r.entitlement, reason: r.reason, changedAtTarget: result.revokedAtTarget },
        readback: result.readback,
      });
      return result.readback;
    },
  };
}
