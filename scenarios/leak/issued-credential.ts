// A staging at a target that issues its own credentials (AWS access keys, OpenBao secret-ids) must
// survive a worker that dies between the target making the new credential and the secret store
// keeping it: such a credential works and nobody holds it. Before the target is first asked, the
// ids of the credentials it holds are recorded (credential_issues, keyed by rotation id); a retried
// staging deletes every credential that is neither among them nor known to the store — the crashed
// attempt's — and adopts one the store kept as a pending version no rotation refers to (the crash
// came after the store, before the rotation row). Ids and fingerprints only, never values.
import type { Pool } from 'pg';
import type { NhiRecord } from '../../activities/common';
import type { Connector } from '../../connectors/types';
import { withTransaction } from '../../lib/db';
import type { SecretRef, SecretStore } from '../../lib/secret-store';
import { atTarget } from './activity-support';

/**
 * One staging per NHI at a time: a concurrent one (a timed-out attempt still running) would
 * otherwise take the other's fresh credential for a stray. A transaction-level advisory lock on a
 * connection of its own: released when the work ends or the worker's connection dies.
 */
export async function withStagingLock<T>(pool: Pool, nhiId: string, fn: () => Promise<T>): Promise<T> {
  return withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`credential-staging:${nhiId}`]);
    return fn();
  });
}

export interface StrayCheck {
  /** Ids of credentials a crashed attempt issued and nobody kept, deleted at the target. */
  removed: string[];
  /** A pending version an earlier attempt stored for a credential the target still holds: used instead of issuing again. */
  adopted?: SecretRef;
  /** Undo only: such pending versions, their credential deleted at the target and the version discarded. */
  discarded: string[];
}

/**
 * Under withStagingLock. Before a staging asks the target for a credential, the first attempt
 * records what the target holds, and a retry removes what its crashed predecessors left behind
 * (`staging`). The undo of a staging that never got its rotation row removes the same, and also
 * what the store kept as a pending version nobody will use (`undo`).
 */
export async function clearStrayCredentials(
  deps: { pool: Pool; secrets: SecretStore },
  a: { rotationId: string; nhiId: string; identity: string; connector: Connector },
  mode: 'staging' | 'undo' = 'staging',
): Promise<StrayCheck> {
  const { connector, identity } = a;
  const out: StrayCheck = { removed: [], discarded: [] };
  if (!connector.listCredentialIds || !connector.retireCredentialById) return out;
  const { rows } = await deps.pool.query<{ held_before: string[] }>('SELECT held_before FROM credential_issues WHERE rotation_id = $1', [a.rotationId]);
  if (!rows[0] && mode === 'undo') return out; // never asked the target
  const held = await atTarget(`listing the credentials of ${identity}`, () => connector.listCredentialIds!(identity));
  if (!rows[0]) {
    await deps.pool.query('INSERT INTO credential_issues (rotation_id, nhi_id, held_before) VALUES ($1, $2, $3) ON CONFLICT (rotation_id) DO NOTHING', [a.rotationId, a.nhiId, held]);
    return out;
  }
  const before = new Set(rows[0].held_before);
  const remove = async (id: string) => (await atTarget(`deleting a stray credential of ${identity}`, () => connector.retireCredentialById!(identity, id))).removed;
  for (const id of held.filter((x) => !before.has(x))) {
    const known = await deps.secrets.findByCredentialId(a.nhiId, id);
    const orphan = known[0]?.status === 'pending' && !(await referencedByRotation(deps.pool, known[0].ref)) ? known[0] : undefined;
    if (orphan && mode === 'staging' && !out.adopted) out.adopted = orphan;
    else if (orphan && mode === 'undo') {
      if (await remove(id)) out.removed.push(id);
      await deps.secrets.discard(orphan.ref);
      out.discarded.push(orphan.ref);
    } else if (!known.length && (await remove(id))) out.removed.push(id);
    // Otherwise the store holds it: someone's, not a stray.
  }
  return out;
}

async function referencedByRotation(pool: Pool, ref: string): Promise<boolean> {
  const { rows } = await pool.query('SELECT 1 FROM rotations WHERE new_ref = $1 OR old_ref = $1 LIMIT 1', [ref]);
  return rows.length > 0;
}

type Audit = (incidentId: string, step: string, e: { nhiId: string; action: string; outcome: string; target?: unknown; readback?: unknown; details?: Record<string, unknown> }) => Promise<unknown>;

/** The audit row of what was removed (nothing removed: no row), with the target's list read back after. */
export async function auditStrays(audit: Audit, a: { incidentId: string; rotationId: string }, nhi: NhiRecord, connector: Connector, check: StrayCheck): Promise<void> {
  if (!check.removed.length && !check.discarded.length) return;
  await audit(a.incidentId, `strays:${a.rotationId}:${[...check.removed, ...check.discarded].join(',')}`, {
    nhiId: nhi.id,
    action: 'credential.stray_remove',
    outcome: 'removed',
    target: { connector: nhi.connector, identity: nhi.externalRef },
    readback: { removed: check.removed, discardedRefs: check.discarded, credentialsNow: await atTarget(`listing the credentials of ${nhi.externalRef}`, () => connector.listCredentialIds!(nhi.externalRef)) },
    details: { rotationId: a.rotationId, note: 'issued by an attempt of this staging that ended before the rotation kept them: nobody would use them' },
  });
}
