// Per-NHI cool-down of repeated rotations from the same source (policy contain-cooldown): is the
// NHI's current credential the one a containment started by this source and sender issued less than
// @cooldownMinutes ago? Then another alert from them without a fingerprint is merged, not rotated.
// A fingerprint of a live credential never reaches this (matching contains it at once).
import type { Pool } from 'pg';
import { getNhi } from '../../lib/inventory';
import { ask, EntityType, nhiEntity, numeric, PolicyAction, principalEntity, uid } from '../../lib/policy-decisions';
import type { PolicyEngine } from '../../lib/policy-engine';
import { principalRoles } from '../../activities/common';

export async function cooldownMinutes(pool: Pool, policy: PolicyEngine, nhiId: string, actor: string): Promise<number> {
  const nhi = await getNhi(pool, nhiId);
  if (!nhi) return 0;
  const principal = { id: actor, roles: actor.startsWith('webhook:') ? ['detector'] : await principalRoles(pool, actor) };
  const d = ask(policy, PolicyAction.Contain, principal, uid(EntityType.Nhi, nhi.id), [principalEntity(principal), nhiEntity(nhi)]);
  return d.decision === 'allow' ? (numeric(policy, d, 'cooldownMinutes', 'max') ?? 0) : 0;
}

/** Why this alert is merged rather than contained again, or undefined when it is not in a cool-down. */
export async function inCooldown(pool: Pool, policy: PolicyEngine, a: { nhiId: string; source: string; actor: string }): Promise<string | undefined> {
  const minutes = await cooldownMinutes(pool, policy, a.nhiId, a.actor);
  if (minutes <= 0) return undefined;
  const { rows } = await pool.query<{ version: number; activated_at: Date; alert_at: Date }>(
    `SELECT s.version, s.activated_at, e.at AS alert_at
       FROM secrets s
       JOIN LATERAL (SELECT at FROM audit_events
                      WHERE nhi_id = s.nhi_id AND action = 'leak.alert' AND outcome = 'containment'
                        AND actor = $2 AND details->>'source' = $3 AND at <= s.activated_at + interval '1 minute'
                        AND at > now() - make_interval(mins => $4)
                      ORDER BY seq DESC LIMIT 1) e ON true
      WHERE s.nhi_id = $1 AND s.status = 'active' AND s.activated_at > now() - make_interval(mins => $4)`,
    [a.nhiId, a.actor, a.source, minutes],
  );
  const r = rows[0];
  if (!r) return undefined;
  return `cool-down: credential version ${r.version} was issued at ${r.activated_at.toISOString()} by the containment an alert from ${a.source} (${a.actor}) started; alerts from it within ${minutes} minutes are merged unless they carry the fingerprint of the current credential`;
}
