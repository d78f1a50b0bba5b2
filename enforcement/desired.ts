// The one rule for what an NHI should have: a pure function of its active intents. Baseline ∪
// grants gives the entitlements; then restrictions take away, strongest last. Every scenario's
// wish is an intent, so two scenarios on one NHI compose here instead of undoing each other.
//
// Which wins, written down once (tests/enforcement/desired.test.ts has a row for each):
//   offboarded      no entitlements, no login                 (strongest)
//   login_disabled  login off; entitlements as they are
//   quarantine      grants (elevations) suppressed; baseline and login stay
//   throttle L2     as L1, and login off
//   throttle L1     write-capable entitlements removed, each replaced by its read-only form where the
//                   connector declares one (read access stays); connection limit lowered
// Restrictions never add an entitlement the NHI would not otherwise have, except a read-only form
// that stands in for a removed write-capable one — and never for a quarantined grant (the
// quarantine is applied first, so nothing derived from a quarantined elevation stays).

export type RestrictionKind = 'throttle' | 'login_disabled' | 'quarantine' | 'offboarded';

export interface Baseline {
  entitlements: string[];
  canLogin: boolean;
  /** -1 = unlimited. */
  connectionLimit: number;
}

export interface GrantWish {
  owner: string;
  entitlement: string;
}

export interface RestrictionWish {
  owner: string;
  restriction: RestrictionKind;
  /** throttle: 1 or 2. */
  level?: 1 | 2;
  /** throttle: the connection limit to apply (the lower of several wins). */
  connectionLimit?: number;
}

/** What the connector says about its entitlements (target-neutral: names only). */
export interface EntitlementCatalogue {
  writeCapable: readonly string[];
  /** Write-capable entitlement → the entitlement that gives the same read access without writes. */
  readOnlyForm: Readonly<Record<string, string>>;
}

export interface DesiredAccess {
  entitlements: string[]; // sorted
  canLogin: boolean;
  connectionLimit: number;
  /** Entitlements some intent wants but a restriction withholds, with who withholds them. */
  withheld: { entitlement: string; by: string[] }[];
  /** Owners of the restrictions in force, strongest first. */
  restrictedBy: string[];
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

function lowerLimit(a: number, b: number | undefined): number {
  if (b === undefined || b < 0) return a;
  return a < 0 ? b : Math.min(a, b);
}

export function desiredAccess(
  baseline: Baseline,
  grants: readonly GrantWish[],
  restrictions: readonly RestrictionWish[],
  catalogue: EntitlementCatalogue,
): DesiredAccess {
  const wanted = new Set([...baseline.entitlements, ...grants.map((g) => g.entitlement)]);
  const have = new Set(wanted);
  let canLogin = baseline.canLogin;
  let connectionLimit = baseline.connectionLimit;
  const withheldBy = new Map<string, Set<string>>();
  const withhold = (entitlement: string, by: string) => {
    if (!have.delete(entitlement) && !wanted.has(entitlement)) return;
    if (!withheldBy.has(entitlement)) withheldBy.set(entitlement, new Set());
    withheldBy.get(entitlement)!.add(by);
  };
  const of = (kind: RestrictionKind) => restrictions.filter((r) => r.restriction === kind);

  // Quarantine first: what grants add beyond the baseline is withheld, and so is anything derived
  // from it (a throttle's read-only stand-in for a quarantined grant).
  const grantOwners = new Map<string, string[]>();
  for (const g of grants) grantOwners.set(g.entitlement, [...(grantOwners.get(g.entitlement) ?? []), g.owner]);
  const quarantined = new Set<string>();
  for (const q of of('quarantine')) {
    for (const e of grantOwners.keys()) {
      if (baseline.entitlements.includes(e)) continue;
      quarantined.add(e);
      withhold(e, q.owner);
    }
  }
  const throttles = of('throttle');
  if (throttles.length) {
    const writeCapable = new Set(catalogue.writeCapable);
    for (const t of throttles) {
      for (const e of [...wanted].filter((x) => writeCapable.has(x))) {
        withhold(e, t.owner);
        const readOnly = catalogue.readOnlyForm[e];
        if (readOnly !== undefined && !writeCapable.has(readOnly) && !quarantined.has(e)) have.add(readOnly);
      }
      connectionLimit = lowerLimit(connectionLimit, t.connectionLimit);
      if (t.level === 2) canLogin = false;
    }
  }
  if (of('login_disabled').length) canLogin = false;
  for (const o of of('offboarded')) {
    for (const e of [...have, ...wanted]) withhold(e, o.owner);
    have.clear();
    canLogin = false;
  }

  const strength: Record<RestrictionKind, number> = { offboarded: 0, login_disabled: 1, quarantine: 2, throttle: 3 };
  const restrictedBy = [...restrictions]
    .sort((a, b) => strength[a.restriction] - strength[b.restriction] || (b.level ?? 0) - (a.level ?? 0) || (a.owner < b.owner ? -1 : 1))
    .map((r) => r.owner);
  return {
    entitlements: sorted(have),
    canLogin,
    connectionLimit,
    withheld: sorted(withheldBy.keys())
      .filter((e) => !have.has(e))
      .map((e) => ({ entitlement: e, by: sorted(withheldBy.get(e)!) })),
    restrictedBy: [...new Set(restrictedBy)],
  };
}
