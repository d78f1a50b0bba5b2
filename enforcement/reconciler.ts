// The reconciler: the only code that changes a target. Under a per-NHI lock it reads the active
// intents and the target, computes the desired access (./desired.ts), applies the difference
// through the connector, reads back and returns the verified state. Idempotent: a Temporal retry,
// or a crash between the target and the ledger, converges on the next call.
import type { Pool, PoolClient } from 'pg';
import { ConnectorErrorCode, PermanentConnectorError, type AccessState, type Connector } from '../connectors/types';
import { appendAudit } from '../lib/audit';
import { getNhi } from '../lib/inventory';
import { desiredAccess, type Baseline, type DesiredAccess } from './desired';
import { activeIntents, setBaseline, type ActiveIntents } from './intents';

// Two-key advisory locks (namespace, hashtext(nhi id)) on the orchestrator's database.
export const RECONCILE_LOCK = 872_341_010;

export interface ReconcileDeps {
  pool: Pool;
  connectors: { get(name: string): Connector };
}

export interface ReconcileContext {
  /** The workflow the step runs for, and a step id unique within it (the audit row's key). */
  workflowId: string;
  stepId: string;
  scenario: string;
  actor: string;
  reason: string;
}

export interface VerifiedAccess {
  nhiId: string;
  identity: string;
  desired: DesiredAccess;
  /** The intents `desired` was computed from, read under the NHI's lock: a receipt's "who else holds it" must come from the same moment as its read-back. */
  intents: ActiveIntents;
  /** Read back from the target after any change (exists: false when the identity is gone). */
  observed: AccessState;
  /** What this call changed: entitlements added and removed, login and limit before → after. */
  changes: { granted: string[]; revoked: string[]; login?: [boolean, boolean]; connectionLimit?: [number, number] };
  baselineCapturedNow: boolean;
  checkedAt: string;
}

/** Why a reconcile could not converge; `permanent` when retrying cannot help (unknown NHI, misconfiguration). */
export class ReconcileError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'ReconcileError';
  }
}

// The last queued turn per NHI, per pool: this process's reconciles of one NHI wait for each other
// here, holding nothing, instead of each taking a pooled connection to block in pg_advisory_lock —
// a burst on one NHI would otherwise hold the whole pool and stall every other NHI's steps.
const turns = new WeakMap<Pool, Map<string, Promise<void>>>();

async function inProcessTurn<T>(pool: Pool, nhiId: string, fn: () => Promise<T>): Promise<T> {
  let queue = turns.get(pool);
  if (!queue) turns.set(pool, (queue = new Map()));
  const previous = queue.get(nhiId) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  queue.set(nhiId, mine);
  try {
    await previous;
    return await fn();
  } finally {
    done();
    if (queue.get(nhiId) === mine) queue.delete(nhiId);
  }
}

/**
 * Run `fn` holding the NHI's reconcile lock: a session advisory lock across processes (a dead
 * worker's connection ends, so its lock goes with it), taken after this process's own queue for the NHI.
 */
export async function withNhiLock<T>(pool: Pool, nhiId: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return inProcessTurn(pool, nhiId, async () => {
    const client = await pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [RECONCILE_LOCK, nhiId]);
      try {
        return await fn(client);
      } finally {
        await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [RECONCILE_LOCK, nhiId]).catch(() => undefined);
      }
    } finally {
      client.release();
    }
  });
}

/**
 * The baseline, captured the first time the NHI is reconciled, before any intent of this call is
 * committed: what the target holds now, less what active grant intents explain (an elevation's
 * access is not standing access) — and less what an elevation of the older ledger (`grants`, a
 * workflow as holder) holds. Access that ledger recorded as `standing` stays.
 */
async function ensureBaseline(c: PoolClient, nhiId: string, observed: AccessState): Promise<boolean> {
  const intents = await activeIntents(c, nhiId);
  if (intents.baseline || !observed.exists) return false;
  const { rows } = await c.query<{ entitlement: string; standing: boolean }>(
    `SELECT entitlement, bool_or(holder = 'standing') AS standing FROM grants WHERE nhi_id = $1 AND released_at IS NULL GROUP BY entitlement`,
    [nhiId],
  );
  const standing = new Set(rows.filter((r) => r.standing).map((r) => r.entitlement));
  const granted = new Set([...intents.grants.map((g) => g.entitlement), ...rows.filter((r) => !r.standing).map((r) => r.entitlement)]);
  const baseline: Baseline = {
    entitlements: observed.entitlements.filter((e) => standing.has(e) || !granted.has(e)),
    canLogin: observed.canLogin,
    connectionLimit: observed.connectionLimit,
  };
  await c.query('BEGIN');
  try {
    await setBaseline(c, nhiId, baseline);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return true;
}

function connectorFailure(what: string, err: unknown): ReconcileError {
  if (err instanceof ReconcileError) return err;
  const message = `${what}: ${(err as Error)?.message ?? String(err)}`;
  if (err instanceof PermanentConnectorError) return new ReconcileError(message, err.code, true);
  return new ReconcileError(message, 'target_unavailable', false);
}

/** What the active intents want for the NHI (an identity without a baseline yet wants nothing). */
async function desiredFor(c: PoolClient, nhiId: string, connector: Connector): Promise<{ desired: DesiredAccess; intents: ActiveIntents }> {
  const intents = await activeIntents(c, nhiId);
  const baseline = intents.baseline ?? { entitlements: [], canLogin: false, connectionLimit: 0 };
  return { desired: desiredAccess(baseline, intents.grants, intents.restrictions, connector.entitlementCatalogue()), intents };
}

/** How the target differs from the desired access; undefined when it does not. */
export interface AccessDifference {
  /** At the target, not desired. */
  extra: string[];
  /** Desired, not at the target. */
  missing: string[];
  login?: { observed: boolean; desired: boolean };
  connectionLimit?: { observed: number; desired: number };
}

export function differences(observed: AccessState, desired: DesiredAccess): AccessDifference | undefined {
  const d: AccessDifference = {
    extra: observed.entitlements.filter((e) => !desired.entitlements.includes(e)),
    missing: desired.entitlements.filter((e) => !observed.entitlements.includes(e)),
    ...(observed.canLogin !== desired.canLogin ? { login: { observed: observed.canLogin, desired: desired.canLogin } } : {}),
    ...(observed.connectionLimit !== desired.connectionLimit
      ? { connectionLimit: { observed: observed.connectionLimit, desired: desired.connectionLimit } }
      : {}),
  };
  return d.extra.length || d.missing.length || d.login || d.connectionLimit ? d : undefined;
}

/**
 * Compare without changing anything: the desired access, what the target holds, and how they
 * differ (the drift check). An NHI never reconciled has no baseline yet: there is nothing to
 * compare with, so `difference` is undefined and `baselineMissing` says so.
 */
export async function planReconcile(
  deps: ReconcileDeps,
  nhiId: string,
): Promise<{ identity: string; desired: DesiredAccess; observed: AccessState; difference: AccessDifference | undefined; baselineMissing: boolean }> {
  const nhi = await getNhi(deps.pool, nhiId);
  if (!nhi) throw new ReconcileError(`NHI ${nhiId} is not in the inventory`, 'nhi_not_found', true);
  const connector = deps.connectors.get(nhi.connector);
  return withNhiLock(deps.pool, nhiId, async (c) => {
    const observed = await connector.readAccess(nhi.externalRef).catch((err) => {
      throw connectorFailure(`reading ${nhi.externalRef}`, err);
    });
    const { desired, intents } = await desiredFor(c, nhiId, connector);
    const baselineMissing = !intents.baseline;
    const difference = observed.exists && !baselineMissing ? differences(observed, desired) : undefined;
    return { identity: nhi.externalRef, desired, observed, difference, baselineMissing };
  });
}

/** Commits or releases intents: runs under the NHI's lock, after the baseline is captured and before the target changes. */
export type IntentChange = (c: PoolClient) => Promise<void>;

/**
 * Converge the NHI's target on its desired access and return what the target says afterwards.
 * With `change`, the intents it commits or releases are committed first (their own statements,
 * before anything at the target), so a crash after that converges on the next call.
 */
export async function reconcile(deps: ReconcileDeps, nhiId: string, ctx: ReconcileContext, change?: IntentChange): Promise<VerifiedAccess> {
  const nhi = await getNhi(deps.pool, nhiId);
  if (!nhi) throw new ReconcileError(`NHI ${nhiId} is not in the inventory`, 'nhi_not_found', true);
  const connector = deps.connectors.get(nhi.connector);
  const identity = nhi.externalRef;
  const result = await withNhiLock(deps.pool, nhiId, async (c) => {
    let before: AccessState;
    try {
      before = await connector.readAccess(identity);
    } catch (err) {
      throw connectorFailure(`reading ${identity}`, err);
    }
    const captured = await ensureBaseline(c, nhiId, before);
    if (change) await change(c);
    const { desired, intents } = await desiredFor(c, nhiId, connector);
    if (!before.exists) return { desired, intents, observed: before, before, captured };
    const same = differences(before, desired) === undefined;
    let observed = before;
    if (!same) {
      try {
        observed = await connector.apply(identity, { entitlements: desired.entitlements, canLogin: desired.canLogin, connectionLimit: desired.connectionLimit });
      } catch (err) {
        if (err instanceof PermanentConnectorError && err.code === ConnectorErrorCode.UnknownIdentity) {
          observed = { exists: false, canLogin: false, connectionLimit: 0, entitlements: [] };
        } else throw connectorFailure(`applying the desired access to ${identity}`, err);
      }
    }
    if (observed.exists) {
      // A receipt comes from the read-back: a read of its own after the change, still under the
      // NHI's lock (another reconcile of this NHI changing the target in between is no divergence).
      const again = await connector.readAccess(identity).catch((err) => {
        throw connectorFailure(`reading ${identity} back`, err);
      });
      const converged = !again.exists || differences(again, desired) === undefined;
      if (!converged) throw new ReconcileError(`${identity} is not at its desired access after reconcile (now ${JSON.stringify(again)})`, 'not_converged', false);
    }
    return { desired, intents, observed, before, captured };
  });

  const { desired, intents, observed, before } = result;
  const changes: VerifiedAccess['changes'] = {
    granted: observed.entitlements.filter((e) => !before.entitlements.includes(e)),
    revoked: before.entitlements.filter((e) => !observed.entitlements.includes(e)),
    ...(observed.exists && before.canLogin !== observed.canLogin ? { login: [before.canLogin, observed.canLogin] as [boolean, boolean] } : {}),
    ...(observed.exists && before.connectionLimit !== observed.connectionLimit
      ? { connectionLimit: [before.connectionLimit, observed.connectionLimit] as [number, number] }
      : {}),
  };
  const verified: VerifiedAccess = { nhiId, identity, desired, intents, observed, changes, baselineCapturedNow: result.captured, checkedAt: new Date().toISOString() };
  const changed = changes.granted.length + changes.revoked.length > 0 || changes.login !== undefined || changes.connectionLimit !== undefined;
  await appendAudit(deps.pool, {
    workflowId: ctx.workflowId,
    stepId: `${ctx.stepId}:reconcile`,
    scenario: ctx.scenario,
    nhiId,
    actor: ctx.actor,
    action: 'access.reconcile',
    outcome: !observed.exists ? 'identity_gone' : changed ? 'converged' : 'already_converged',
    target: { connector: nhi.connector, identity, reason: ctx.reason },
    decision: { desired: { entitlements: desired.entitlements, canLogin: desired.canLogin, connectionLimit: desired.connectionLimit }, withheld: desired.withheld, restrictedBy: desired.restrictedBy },
    readback: { observed, changes, baselineCapturedNow: result.captured },
  });
  return verified;
}
