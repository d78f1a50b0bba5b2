// Drift: access at a target that no intent explains (a membership granted by hand, login turned
// back on, a limit lifted) or that an intent wants and the target lost. The drift schedule checks
// every managed NHI; Cedar (RevertDrift, policies/drift.cedar) decides whether the orchestrator
// reverts it by reconciling, or only records and reports it for a person. Either way it is audited.
import { appendAudit } from '../lib/audit';
import { listNhis, type Nhi } from '../lib/inventory';
import type { Notifier } from '../lib/notifier';
import type { PolicyEngine } from '../lib/policy-engine';
import { decideDriftRevert } from '../lib/policy-decisions';
import { planReconcile, reconcile, ReconcileError, type AccessDifference, type ReconcileDeps } from './reconciler';

export interface DriftDeps extends ReconcileDeps {
  policy: PolicyEngine;
  notifier: Notifier;
}

export interface DriftResult {
  nhiId: string;
  outcome: 'in_sync' | 'reverted' | 'reported' | 'baseline_captured' | 'error';
  difference?: AccessDifference;
  error?: string;
}

const describe = (d: AccessDifference) =>
  [
    d.extra.length ? `not wanted: ${d.extra.join(', ')}` : '',
    d.missing.length ? `missing: ${d.missing.join(', ')}` : '',
    d.login ? `login ${d.login.observed ? 'on' : 'off'} (wanted ${d.login.desired ? 'on' : 'off'})` : '',
    d.connectionLimit ? `connection limit ${d.connectionLimit.observed} (wanted ${d.connectionLimit.desired})` : '',
  ]
    .filter(Boolean)
    .join('; ');

/** Check one NHI for drift; revert or report it as policy says. `runId` keys the audit rows of this check. */
export async function checkDrift(deps: DriftDeps, nhi: Nhi, runId: string): Promise<DriftResult> {
  const ctx = { workflowId: runId, stepId: `drift:${nhi.id}`, scenario: 'drift', actor: 'system', reason: 'drift check' };
  try {
    const plan = await planReconcile(deps, nhi.id);
    if (plan.baselineMissing) {
      // Never reconciled: what it has now is its standing access (captured, nothing changed).
      await reconcile(deps, nhi.id, ctx);
      return { nhiId: nhi.id, outcome: 'baseline_captured' };
    }
    if (!plan.difference) return { nhiId: nhi.id, outcome: 'in_sync' };
    const decision = decideDriftRevert(deps.policy, {
      nhi: { id: nhi.id, kind: nhi.kind, owner: nhi.owner, criticality: nhi.criticality, tags: nhi.tags, status: nhi.status },
    });
    const outcome = decision.allowed ? 'reverted' : 'reported';
    await appendAudit(deps.pool, {
      ...ctx,
      stepId: `${ctx.stepId}:found`,
      nhiId: nhi.id,
      action: 'access.drift',
      outcome,
      decision: { allowed: decision.allowed, reasons: decision.reasons, determiningPolicies: decision.determiningPolicies, policySetHash: decision.policySetHash },
      target: { connector: nhi.connector, identity: plan.identity },
      readback: { observed: plan.observed, desired: { entitlements: plan.desired.entitlements, canLogin: plan.desired.canLogin, connectionLimit: plan.desired.connectionLimit } },
      details: { difference: plan.difference },
    });
    if (decision.allowed) await reconcile(deps, nhi.id, { ...ctx, reason: `drift reverted: ${describe(plan.difference)}` });
    await deps.notifier.notify({
      id: `${runId}:drift:${nhi.id}`,
      kind: `drift.${outcome}`,
      severity: decision.allowed ? 'warning' : 'critical',
      nhiId: nhi.id,
      workflowId: runId,
      text: `Drift on ${nhi.id} (${plan.identity}): ${describe(plan.difference)} — ${decision.allowed ? 'reverted' : `reported only (${decision.reasons.join('; ')})`}`,
    });
    return { nhiId: nhi.id, outcome, difference: plan.difference };
  } catch (err) {
    const message = err instanceof ReconcileError || err instanceof Error ? err.message : String(err);
    return { nhiId: nhi.id, outcome: 'error', error: message };
  }
}

/** Every inventoried NHI, a page at a time. */
export async function* inventoriedNhis(pool: DriftDeps['pool']): AsyncGenerator<Nhi> {
  let cursor: string | undefined;
  for (;;) {
    const page = await listNhis(pool, { cursor, limit: 200 });
    for (const nhi of page.items) yield nhi;
    if (!page.nextCursor) return;
    cursor = page.nextCursor;
  }
}
