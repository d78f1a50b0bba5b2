// What must hold after any mix of faults: nothing lost or stuck, zero standing access, one rotation
// per incident, every secret reference resolving, the old credential refused, the audit chain whole.
// Each check reads the real things (visibility, the intents ledger against the target, the secret
// store, a login at the target, the audit trail) and says what it found.
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { activeIntents } from '../enforcement/intents';
import { planReconcile, type ReconcileDeps } from '../enforcement/reconciler';
import { verifyAuditChain } from '../lib/audit';
import { fingerprint, type SecretStore } from '../lib/secret-store';

export interface InvariantResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface InvariantDeps extends ReconcileDeps {
  pool: Pool;
  client: Client;
  taskQueue: string;
  secrets: SecretStore;
  /** Every NHI the run touched. */
  nhiIds: string[];
  /** The credential each contained NHI had before its containment, to log in with at the target. */
  oldCredentials: { nhiId: string; password: string }[];
  /** Log in at the target: 'ok', or the refusal (a SQLSTATE). */
  login(nhiId: string, password: string): Promise<string>;
  /** Workflow types allowed to be still running at the end (a watch, a schedule's workflow). */
  mayRun?: string[];
}

const result = (name: string, problems: string[], okDetail: string): InvariantResult => ({
  name,
  ok: problems.length === 0,
  detail: problems.length ? problems.slice(0, 10).join('; ') + (problems.length > 10 ? ` (+${problems.length - 10} more)` : '') : okDetail,
});

async function listAll(client: Client, query: string) {
  const out: { workflowId: string; type: string; status: string }[] = [];
  for await (const wf of client.workflow.list({ query })) out.push({ workflowId: wf.workflowId, type: wf.type, status: wf.status.name });
  return out;
}

/** Every workflow on the task queue closed completed (or is one allowed to keep running). */
export async function noWorkflowLostOrStuck(d: InvariantDeps): Promise<InvariantResult> {
  const all = await listAll(d.client, `TaskQueue = '${d.taskQueue.replace(/'/g, "\\'")}'`);
  const problems = all
    .filter((wf) => !(wf.status === 'COMPLETED' || (wf.status === 'RUNNING' && d.mayRun?.includes(wf.type))))
    .map((wf) => `${wf.workflowId} (${wf.type}) is ${wf.status.toLowerCase()}`);
  return result('no workflow lost or stuck', problems, `${all.length} workflows, all completed`);
}

/** The target holds exactly what the active intents want, and every non-baseline intent has a live owner. */
export async function zeroStandingAccess(d: InvariantDeps): Promise<InvariantResult> {
  const problems: string[] = [];
  const running = new Set((await listAll(d.client, `TaskQueue = '${d.taskQueue.replace(/'/g, "\\'")}' AND ExecutionStatus = 'Running'`)).map((wf) => wf.workflowId));
  for (const nhiId of d.nhiIds) {
    const plan = await planReconcile(d, nhiId);
    if (plan.difference) problems.push(`${nhiId}: target differs from its intents (${JSON.stringify(plan.difference)})`);
    const intents = await activeIntents(d.pool, nhiId);
    for (const i of [...intents.grants, ...intents.restrictions]) {
      if (!running.has(i.owner)) problems.push(`${nhiId}: ${'entitlement' in i ? `grant ${i.entitlement}` : `restriction ${i.restriction}`} held by ${i.owner}, which is not running`);
    }
  }
  return result('zero standing access', problems, `${d.nhiIds.length} NHIs: target = intents, no intent without a running owner`);
}

/** At most one rotation activated per incident (a duplicate alert never rotates twice). */
export async function noDoubleRotation(d: InvariantDeps): Promise<InvariantResult> {
  const { rows } = await d.pool.query<{ nhi_id: string; incident_id: string | null; n: number }>(
    `SELECT nhi_id, incident_id::text, count(*)::int AS n FROM rotations
      WHERE status = 'activated' AND nhi_id = ANY($1) GROUP BY nhi_id, incident_id HAVING count(*) > 1`,
    [d.nhiIds],
  );
  const { rows: total } = await d.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE status = 'activated' AND nhi_id = ANY($1)`, [d.nhiIds]);
  return result('no double rotation', rows.map((r) => `${r.nhi_id}: ${r.n} rotations activated for incident ${r.incident_id}`), `${total[0].n} rotations, one per incident`);
}

/** Every NHI's active secret reference resolves to a value with the fingerprint on record. */
export async function secretReferencesResolve(d: InvariantDeps): Promise<InvariantResult> {
  const problems: string[] = [];
  let checked = 0;
  for (const nhiId of d.nhiIds) {
    const active = await d.secrets.active(nhiId);
    if (!active) continue;
    checked++;
    const value = await d.secrets.reveal(active.ref).catch((err: unknown) => problems.push(`${nhiId}: ${active.ref} does not resolve (${String(err)})`));
    if (typeof value === 'string' && fingerprint(value) !== active.fingerprint) problems.push(`${nhiId}: ${active.ref} resolves to a value of another fingerprint`);
  }
  return result('every secret reference resolves', problems, `${checked} active references resolve`);
}

/** The credential each contained NHI had before is refused by the target. */
export async function oldCredentialsRefused(d: InvariantDeps): Promise<InvariantResult> {
  const problems: string[] = [];
  for (const { nhiId, password } of d.oldCredentials) {
    const answer = await d.login(nhiId, password);
    if (answer === 'ok') problems.push(`${nhiId}: the old credential still logs in`);
  }
  return result('old credentials refused', problems, `${d.oldCredentials.length} old credentials refused`);
}

export async function auditChainVerifies(d: InvariantDeps): Promise<InvariantResult> {
  const v = await verifyAuditChain(d.pool);
  return result('audit chain verifies', v.ok ? [] : [`broken at ${v.brokenAt?.seq}: ${v.brokenAt?.reason}`], `${v.checked} rows`);
}

export async function checkInvariants(d: InvariantDeps): Promise<InvariantResult[]> {
  const out: InvariantResult[] = [];
  for (const check of [noWorkflowLostOrStuck, zeroStandingAccess, noDoubleRotation, secretReferencesResolve, oldCredentialsRefused, auditChainVerifies]) {
    out.push(await check(d).catch((err: unknown) => ({ name: check.name, ok: false, detail: `could not check: ${String(err)}` })));
  }
  return out;
}

export const formatInvariants = (results: InvariantResult[]) => results.map((r) => `${r.ok ? 'PASS' : 'FAIL'}  ${r.name}: ${r.detail}`).join('\n');
