// Drift: access at a target that no intent explains (a membership granted by hand, login turned
// back on, a limit lifted) or that an intent wants and the target lost. The drift schedule checks
// every managed NHI; Cedar (RevertDrift, policies/drift.cedar) decides whether the orchestrator
// reverts it by reconciling, or only records and reports it for a person. Either way it is audited.
// It also finds intents whose workflow no longer runs (releaseOrphanedIntents).
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { appendAudit } from '../lib/audit';
import { listNhis, type Nhi } from '../lib/inventory';
import type { Notifier } from '../lib/notifier';
import type { PolicyEngine } from '../lib/policy-engine';
import { decideDriftRevert } from './drift-policy';
import { releaseIntents } from './intents';
import { planReconcile, reconcile, ReconcileError, type AccessDifference, type ReconcileDeps } from './reconciler';

export interface DriftDeps extends ReconcileDeps {
  policy: PolicyEngine;
  notifier: Notifier;
  /** To tell whether an intent's owner still runs (orphans); without it orphans are not looked for. */
  temporal?: { client: Client };
}

/**
 * Intents whose workflow is gone (terminated by an operator, or failed without its compensation):
 * those that only add access — grants — or only withhold elevations — quarantine — are released;
 * throttles and disabled logins stay and are reported for a person; `offboarded` is meant to outlive
 * its workflow and is never touched.
 */
const RELEASED_WHEN_ORPHANED = new Set(['grant', 'quarantine']);

async function ownerRuns(client: Client, owner: string): Promise<boolean> {
  try {
    return (await client.workflow.getHandle(owner).describe()).status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

export async function releaseOrphanedIntents(deps: DriftDeps, nhi: Nhi, runId: string): Promise<{ released: string[]; reported: string[] }> {
  const out = { released: [] as string[], reported: [] as string[] };
  if (!deps.temporal) return out;
  const { rows } = await deps.pool.query<{ owner: string; kind: string; subject: string }>(
    `SELECT DISTINCT owner, kind, subject FROM intents WHERE nhi_id = $1 AND released_at IS NULL AND kind <> 'baseline' ORDER BY owner`,
    [nhi.id],
  );
  const orphans = [];
  for (const r of rows) {
    if (r.kind === 'restrict' && r.subject === 'offboarded') continue;
    if (!(await ownerRuns(deps.temporal.client, r.owner))) orphans.push(r);
  }
  const release = orphans.filter((o) => RELEASED_WHEN_ORPHANED.has(o.kind === 'grant' ? 'grant' : o.subject));
  const report = orphans.filter((o) => !release.includes(o));
  if (release.length) {
    await reconcile(deps, nhi.id, { workflowId: runId, stepId: `orphans:${nhi.id}`, scenario: 'drift', actor: 'system', reason: 'intents of workflows that no longer run' }, async (c) => {
      for (const o of release) await releaseIntents(c, nhi.id, o.owner, { kind: o.kind as 'grant' | 'restrict', subject: o.subject });
    });
    out.released = release.map((o) => `${o.owner}:${o.subject}`);
  }
  out.reported = report.map((o) => `${o.owner}:${o.subject}`);
  if (orphans.length) {
    await appendAudit(deps.pool, {
      workflowId: runId,
      stepId: `orphans:${nhi.id}:found`,
      scenario: 'drift',
      nhiId: nhi.id,
      actor: 'system',
      action: 'intent.orphaned',
      outcome: report.length ? 'reported' : 'released',
      details: { released: out.released, reported: out.reported },
    });
  }
  if (report.length) {
    await deps.notifier.notify({
      id: `${runId}:orphans:${nhi.id}`,
      kind: 'intent.orphaned',
      severity: 'warning',
      nhiId: nhi.id,
      workflowId: runId,
      text: `${nhi.id} is still restricted by workflows that no longer run: ${out.reported.join(', ')} — a person decides whether to release them`,
    });
  }
  return out;
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
    await releaseOrphanedIntents(deps, nhi, runId);
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
