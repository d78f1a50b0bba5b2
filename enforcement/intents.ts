// The intents ledger (table `intents`, migrations/005_intents.sql): what each workflow wants for one
// NHI. Committing and releasing an intent are their own transactions, before the reconciler acts,
// so a crash anywhere after the commit converges on the next reconcile instead of leaving access
// nobody owns. Both are idempotent: Temporal retries them.
import type { Pool, PoolClient } from 'pg';
import type { Baseline, GrantWish, RestrictionKind, RestrictionWish } from './desired';

export const BASELINE_OWNER = 'baseline';

type Queryable = Pool | PoolClient;

export type GrantIntent = { kind: 'grant'; entitlement: string; until?: string };
export type RestrictIntent = { kind: 'restrict'; restriction: RestrictionKind; level?: 1 | 2; connectionLimit?: number };
export type IntentSpec = GrantIntent | RestrictIntent;

export interface ActiveIntents {
  baseline: Baseline | undefined;
  grants: (GrantWish & { until: string | null })[];
  restrictions: RestrictionWish[];
}

interface Row {
  owner: string;
  kind: 'baseline' | 'grant' | 'restrict';
  subject: string;
  params: Record<string, unknown>;
  until: Date | null;
}

const subjectOf = (spec: IntentSpec) => (spec.kind === 'grant' ? spec.entitlement : spec.restriction);
const paramsOf = (spec: IntentSpec) =>
  spec.kind === 'restrict' ? { ...(spec.level ? { level: spec.level } : {}), ...(spec.connectionLimit !== undefined ? { connectionLimit: spec.connectionLimit } : {}) } : {};

/** Commit an intent for `owner` (a workflow id). Again with the same subject: its params and until are updated. */
export async function commitIntent(q: Queryable, nhiId: string, owner: string, spec: IntentSpec): Promise<void> {
  if (owner === BASELINE_OWNER) throw new Error(`'${BASELINE_OWNER}' is not a workflow: change the baseline with setBaseline`);
  const until = spec.kind === 'grant' ? (spec.until ?? null) : null;
  await q.query(
    `INSERT INTO intents (nhi_id, owner, kind, subject, params, until) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (nhi_id, owner, kind, subject) WHERE released_at IS NULL
     DO UPDATE SET params = EXCLUDED.params, until = EXCLUDED.until`,
    [nhiId, owner, spec.kind, subjectOf(spec), JSON.stringify(paramsOf(spec)), until],
  );
}

/** Release `owner`'s intents on the NHI (all of them, or those matching `spec`). Returns how many were active. */
export async function releaseIntents(
  q: Queryable,
  nhiId: string,
  owner: string,
  spec?: { kind: IntentSpec['kind']; subject?: string },
): Promise<number> {
  const { rowCount } = await q.query(
    `UPDATE intents SET released_at = now()
      WHERE nhi_id = $1 AND owner = $2 AND kind <> 'baseline' AND released_at IS NULL
        AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR subject = $4)`,
    [nhiId, owner, spec?.kind ?? null, spec?.subject ?? null],
  );
  return rowCount ?? 0;
}

/** Replace the NHI's baseline (an explicit act: the caller audits it). */
export async function setBaseline(q: Queryable, nhiId: string, baseline: Baseline): Promise<void> {
  await q.query(`UPDATE intents SET released_at = now() WHERE nhi_id = $1 AND kind = 'baseline' AND released_at IS NULL`, [nhiId]);
  await q.query(`INSERT INTO intents (nhi_id, owner, kind, subject, params) VALUES ($1, $2, 'baseline', '', $3)`, [
    nhiId,
    BASELINE_OWNER,
    JSON.stringify({ entitlements: [...new Set(baseline.entitlements)].sort(), canLogin: baseline.canLogin, connectionLimit: baseline.connectionLimit }),
  ]);
}

export async function activeIntents(q: Queryable, nhiId: string): Promise<ActiveIntents> {
  const { rows } = await q.query<Row>(
    `SELECT owner, kind, subject, params, until FROM intents WHERE nhi_id = $1 AND released_at IS NULL ORDER BY id`,
    [nhiId],
  );
  const out: ActiveIntents = { baseline: undefined, grants: [], restrictions: [] };
  for (const r of rows) {
    if (r.kind === 'baseline') {
      out.baseline = {
        entitlements: (r.params.entitlements as string[]) ?? [],
        canLogin: r.params.canLogin as boolean,
        connectionLimit: r.params.connectionLimit as number,
      };
    } else if (r.kind === 'grant') {
      out.grants.push({ owner: r.owner, entitlement: r.subject, until: r.until?.toISOString() ?? null });
    } else {
      out.restrictions.push({
        owner: r.owner,
        restriction: r.subject as RestrictionKind,
        ...(r.params.level !== undefined ? { level: r.params.level as 1 | 2 } : {}),
        ...(r.params.connectionLimit !== undefined ? { connectionLimit: r.params.connectionLimit as number } : {}),
      });
    }
  }
  return out;
}

/** Active intents of one owner, for a workflow's status and for hand-offs. */
export async function intentsOf(q: Queryable, owner: string): Promise<{ nhiId: string; kind: string; subject: string }[]> {
  const { rows } = await q.query<{ nhiId: string; kind: string; subject: string }>(
    `SELECT nhi_id AS "nhiId", kind, subject FROM intents WHERE owner = $1 AND released_at IS NULL ORDER BY id`,
    [owner],
  );
  return rows;
}
