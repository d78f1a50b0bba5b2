// A staging at a target that issues its own credentials (AWS access keys, OpenBao secret-ids) must
// survive a worker that dies between the target making the new credential and the secret store
// keeping it: such a credential works and nobody holds it. Before the target is first asked, the
// ids of the credentials it holds are recorded (credential_issues, keyed by rotation id); a retried
// staging deletes every credential that is neither among them nor known to the store — the crashed
// attempt's — and adopts one the store kept as a pending version no rotation refers to (the crash
// came after the store, before the rotation row). Ids and fingerprints only, never values.
import type { Pool } from 'pg';
import type { Connector } from '../../connectors/types';
import type { SecretRef, SecretStore } from '../../lib/secret-store';
import { atTarget } from './activity-support';

/**
 * One staging per NHI at a time: a concurrent one (a timed-out attempt still running) would
 * otherwise take the other's fresh credential for a stray. A transaction-level advisory lock on a
 * connection of its own: released when the work ends or the worker's connection dies.
 */
export async function withStagingLock<T>(pool: Pool, nhiId: string, fn: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`credential-staging:${nhiId}`]);
    const out = await fn();
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export interface StrayCheck {
  /** Ids of credentials a crashed attempt issued and nobody stored, deleted at the target. */
  removed: string[];
  /** A pending version an earlier attempt stored for a credential the target still holds: used instead of issuing again. */
  adopted?: SecretRef;
}

/**
 * Before a staging asks the target for a credential (under withStagingLock): the first attempt
 * records what the target holds; a retry removes what its crashed predecessors left behind.
 */
export async function clearStrayCredentials(
  deps: { pool: Pool; secrets: SecretStore },
  a: { rotationId: string; nhiId: string; identity: string; connector: Connector },
): Promise<StrayCheck> {
  const { connector, identity } = a;
  if (!connector.listCredentialIds || !connector.retireCredentialById) return { removed: [] };
  const held = await atTarget(`listing the credentials of ${identity}`, () => connector.listCredentialIds!(identity));
  const { rows } = await deps.pool.query<{ held_before: string[] }>('SELECT held_before FROM credential_issues WHERE rotation_id = $1', [a.rotationId]);
  if (!rows[0]) {
    await deps.pool.query('INSERT INTO credential_issues (rotation_id, nhi_id, held_before) VALUES ($1, $2, $3) ON CONFLICT (rotation_id) DO NOTHING', [a.rotationId, a.nhiId, held]);
    return { removed: [] };
  }
  const before = new Set(rows[0].held_before);
  const out: StrayCheck = { removed: [] };
  for (const id of held.filter((x) => !before.has(x))) {
    const known = await deps.secrets.findByCredentialId(a.nhiId, id);
    if (known.length) {
      if (!out.adopted && known[0].status === 'pending' && !(await referencedByRotation(deps.pool, known[0].ref))) out.adopted = known[0];
      continue; // the store holds it: someone's, not a stray
    }
    const r = await atTarget(`deleting a stray credential of ${identity}`, () => connector.retireCredentialById!(identity, id));
    if (r.removed) out.removed.push(id);
  }
  return out;
}

async function referencedByRotation(pool: Pool, ref: string): Promise<boolean> {
  const { rows } = await pool.query('SELECT 1 FROM rotations WHERE new_ref = $1 OR old_ref = $1 LIMIT 1', [ref]);
  return rows.length > 0;
}
