// The desired-access rule, one row per combination of intents: which wins is decided here only.
import { desiredAccess, type Baseline, type GrantWish, type RestrictionWish } from '../../enforcement/desired';

const catalogue = {
  writeCapable: ['writer', 'admin'],
  readOnlyForm: { writer: 'readonly', admin: 'readonly' },
};
const base = (entitlements: string[], over: Partial<Baseline> = {}): Baseline => ({ entitlements, canLogin: true, connectionLimit: -1, ...over });
const grant = (owner: string, entitlement: string): GrantWish => ({ owner, entitlement });
const throttle = (owner: string, level: 1 | 2, connectionLimit = 2): RestrictionWish => ({ owner, restriction: 'throttle', level, connectionLimit });
const restrict = (owner: string, restriction: RestrictionWish['restriction']): RestrictionWish => ({ owner, restriction });

type Row = [string, Baseline, GrantWish[], RestrictionWish[], { entitlements: string[]; canLogin: boolean; connectionLimit: number; withheld?: unknown[]; restrictedBy?: string[] }];

const rows: Row[] = [
  ['baseline alone', base(['readonly']), [], [], { entitlements: ['readonly'], canLogin: true, connectionLimit: -1, withheld: [], restrictedBy: [] }],
  ['baseline ∪ one grant', base(['readonly']), [grant('jit-1', 'writer')], [], { entitlements: ['readonly', 'writer'], canLogin: true, connectionLimit: -1 }],
  ['two overlapping grants of one entitlement: one entitlement', base([]), [grant('jit-1', 'writer'), grant('jit-2', 'writer')], [], { entitlements: ['writer'], canLogin: true, connectionLimit: -1 }],
  ['a grant of what the baseline has changes nothing', base(['writer']), [grant('jit-1', 'writer')], [], { entitlements: ['writer'], canLogin: true, connectionLimit: -1 }],
  [
    'throttle L1 removes write access and keeps read access through the read-only form',
    base(['writer']), [], [throttle('anomaly-1', 1)],
    { entitlements: ['readonly'], canLogin: true, connectionLimit: 2, withheld: [{ entitlement: 'writer', by: ['anomaly-1'] }], restrictedBy: ['anomaly-1'] },
  ],
  [
    'throttle L1 withholds an elevation too, and the elevation comes back when the throttle goes',
    base(['readonly']), [grant('jit-1', 'admin')], [throttle('anomaly-1', 1)],
    { entitlements: ['readonly'], canLogin: true, connectionLimit: 2, withheld: [{ entitlement: 'admin', by: ['anomaly-1'] }] },
  ],
  ['no throttle: the same elevation is there', base(['readonly']), [grant('jit-1', 'admin')], [], { entitlements: ['admin', 'readonly'], canLogin: true, connectionLimit: -1 }],
  ['throttle L2 also turns login off', base(['readonly']), [], [throttle('anomaly-1', 2)], { entitlements: ['readonly'], canLogin: false, connectionLimit: 2 }],
  ['two throttles: the lower limit and the higher level win', base(['writer'], { connectionLimit: 10 }), [], [throttle('a', 1, 5), throttle('b', 2, 3)], { entitlements: ['readonly'], canLogin: false, connectionLimit: 3 }],
  ['a throttle never raises a lower standing limit', base([], { connectionLimit: 1 }), [], [throttle('a', 1, 2)], { entitlements: [], canLogin: true, connectionLimit: 1 }],
  [
    'quarantine suppresses elevations, keeps the baseline and login',
    base(['readonly']), [grant('jit-1', 'writer'), grant('jit-2', 'readonly')], [restrict('leak-1', 'quarantine')],
    { entitlements: ['readonly'], canLogin: true, connectionLimit: -1, withheld: [{ entitlement: 'writer', by: ['leak-1'] }] },
  ],
  [
    'throttle × quarantine: a quarantined elevation leaves no read-only stand-in behind',
    base([]), [grant('jit-1', 'writer')], [throttle('anomaly-1', 1), restrict('leak-1', 'quarantine')],
    { entitlements: [], canLogin: true, connectionLimit: 2, withheld: [{ entitlement: 'writer', by: ['anomaly-1', 'leak-1'] }] },
  ],
  [
    'throttle × quarantine: the baseline keeps the read access the throttle leaves it, though an elevation of the same is quarantined',
    base(['writer']), [grant('jit-1', 'readonly')], [throttle('anomaly-1', 1), restrict('leak-1', 'quarantine')],
    { entitlements: ['readonly'], canLogin: true, connectionLimit: 2, withheld: [{ entitlement: 'writer', by: ['anomaly-1'] }] },
  ],
  ['login_disabled keeps entitlements', base(['readonly']), [grant('jit-1', 'writer')], [restrict('off-1', 'login_disabled')], { entitlements: ['readonly', 'writer'], canLogin: false, connectionLimit: -1 }],
  [
    'offboarded: nothing, whatever else is wanted',
    base(['readonly']), [grant('jit-1', 'writer')], [restrict('off-1', 'offboarded'), throttle('anomaly-1', 1)],
    {
      entitlements: [], canLogin: false, connectionLimit: 2,
      withheld: [{ entitlement: 'readonly', by: ['off-1'] }, { entitlement: 'writer', by: ['anomaly-1', 'off-1'] }],
      restrictedBy: ['off-1', 'anomaly-1'],
    },
  ],
  ['offboarded × quarantine: still nothing', base(['writer']), [], [restrict('leak-1', 'quarantine'), restrict('off-1', 'offboarded')], { entitlements: [], canLogin: false, connectionLimit: -1, restrictedBy: ['off-1', 'leak-1'] }],
  ['a baseline without login stays without login', base(['readonly'], { canLogin: false }), [grant('jit-1', 'writer')], [], { entitlements: ['readonly', 'writer'], canLogin: false, connectionLimit: -1 }],
  ['an entitlement the catalogue does not know is kept as it is by a throttle', base(['other_role']), [], [throttle('a', 1)], { entitlements: ['other_role'], canLogin: true, connectionLimit: 2 }],
];

test.each(rows)('%s', (_name, baseline, grants, restrictions, expected) => {
  expect(desiredAccess(baseline, grants, restrictions, catalogue)).toMatchObject(expected);
});

test('ending a scenario is removing its intents: the rest is exactly what it was before', () => {
  const baseline = base(['readonly']);
  const grants = [grant('jit-1', 'writer')];
  const before = desiredAccess(baseline, grants, [], catalogue);
  const during = desiredAccess(baseline, grants, [throttle('anomaly-1', 1)], catalogue);
  expect(during.entitlements).toEqual(['readonly']);
  expect(desiredAccess(baseline, grants, [], catalogue)).toEqual(before);
});

test('order of intents does not matter', () => {
  const baseline = base(['readonly', 'writer']);
  const grants = [grant('b', 'admin'), grant('a', 'writer')];
  const restrictions = [throttle('z', 1, 4), restrict('q', 'quarantine'), throttle('y', 2, 3)];
  expect(desiredAccess(baseline, [...grants].reverse(), [...restrictions].reverse(), catalogue)).toEqual(
    desiredAccess(baseline, grants, restrictions, catalogue),
  );
});
