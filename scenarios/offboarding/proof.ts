// The offboarding's proof of "no standing access", read from the target, and what the NHI's
// dependents lose. Read-only: the workflow records the attestation. Secret values are revealed only
// inside the probes and never leave them.
import { activeIntents } from '../../enforcement/intents';
import type { Attestation, AttestationCheck, DependentImpact } from './contract';
import type { NhiRecord } from '../../activities/common';
import type { ActivityDeps } from '../../activities/deps';
import { atTarget, credentialRecords, GONE, message, now, offboardingSupport } from './activity-support';

/** Dependents are free-form on the inventory record: strings or {id, kind, owner, description}. */
export function dependentImpacts(nhi: Pick<NhiRecord, 'connector' | 'externalRef' | 'dependents'>, entitlements: readonly string[]): DependentImpact[] {
  const list = Array.isArray(nhi.dependents) ? nhi.dependents : [];
  const lost = entitlements.length ? `; loses ${entitlements.join(', ')}` : '';
  return list.map((d, i) => {
    const o: Record<string, unknown> = typeof d === 'string' ? { id: d } : d && typeof d === 'object' ? (d as Record<string, unknown>) : { id: String(d) };
    const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
    return {
      id: str('id') ?? `dependent-${i + 1}`,
      kind: str('kind'),
      owner: str('owner'),
      description: str('description'),
      impact: `cannot connect to ${nhi.connector} as ${nhi.externalRef} any more (login refused; credentials deleted when the grace period ends)${lost}`,
    };
  });
}

export function createProofActivities(deps: ActivityDeps) {
  const { target } = offboardingSupport(deps);
  return {
    /**
     * The "no standing access" proof, read from the target: no memberships, login refused (the role
     * says NOLOGIN, and logging in with every credential the store holds is refused), no sessions.
     * Read-only; the workflow records the attestation. What the dependents lose is what the other
     * intents and the baseline want and the offboarding withholds.
     */
    async proveNoAccess(a: { nhiId: string }): Promise<Attestation> {
      const { nhi, connector, identity } = await target(a.nhiId);
      const wanted = await activeIntents(deps.pool, a.nhiId);
      const lost = [...new Set([...(wanted.baseline?.entitlements ?? []), ...wanted.grants.map((g) => g.entitlement)])].sort();
      const access = await atTarget(`reading ${identity}`, GONE, () => connector.readAccess(identity));
      const sessions = access.exists ? await atTarget(`listing sessions of ${identity}`, [], () => connector.listSessions(identity)) : [];
      const checks: AttestationCheck[] = [
        { check: 'no_entitlements', ok: access.entitlements.length === 0, evidence: { entitlements: access.entitlements, identityExists: access.exists } },
        { check: 'login_disabled', ok: !access.canLogin, evidence: { canLogin: access.canLogin, identityExists: access.exists } },
      ];
      for (const c of credentialRecords(await deps.secrets.list(a.nhiId))) {
        const check = `credential_refused:v${c.version}`;
        if (c.status === 'deleted' || c.status === 'discarded') {
          checks.push({ check, ok: true, evidence: { ...c, probed: false, why: 'the store holds no value for it' } });
          continue;
        }
        let value: string;
        try {
          value = await deps.secrets.reveal(c.ref);
        } catch (err) {
          checks.push({ check, ok: true, evidence: { ...c, probed: false, why: `unreadable with this store's key (${message(err)}); login_disabled covers it` } });
          continue;
        }
        if (!access.exists) {
          checks.push({ check, ok: true, evidence: { ...c, probed: false, why: 'the identity no longer exists' } });
          continue;
        }
        const p = await atTarget(`probing ${identity}`, { access: 'denied' as const, code: 'identity_gone' }, () => connector.probe(identity, value));
        // Refused either way: wrong credential (denied) or login refused for another reason (inconclusive).
        checks.push({ check, ok: p.access !== 'granted', evidence: { ...c, probed: true, access: p.access, code: p.code ?? null } });
      }
      checks.push({
        check: 'no_live_sessions',
        ok: sessions.length === 0,
        evidence: { sessions: sessions.map((x) => ({ pid: x.pid, backendStart: x.backendStart, state: x.state })) },
      });
      return {
        nhiId: nhi.id,
        connector: nhi.connector,
        identity,
        at: now(),
        outcome: checks.every((c) => c.ok) ? 'no_standing_access' : 'access_remains',
        checks,
        dependents: dependentImpacts(nhi, lost),
      };
    },
  };
}
