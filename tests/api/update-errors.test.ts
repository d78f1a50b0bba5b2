// Business errors from an activity inside an Update, end to end: real worker, real Temporal dev
// server, real Postgres. The Update's rejection carries the activity's ApplicationFailure two
// causes down; the API answers its 4xx with the activity's message, not a 500, and nothing changes
// at the target.
import { createApiWorld, type ApiWorld } from '../helpers/api-world';
import type { TestWorld } from '../helpers/world';
import { waitFor } from '../helpers/wait';

let api: ApiWorld;
let w: TestWorld;

beforeAll(async () => {
  api = await createApiWorld({
    setup: async (world) => {
      await world.addNhi({ id: 'svc_etl', kind: 'service_account', criticality: 'medium' });
    },
  });
  ({ w } = api);
}, 120_000);

afterAll(async () => api?.teardown());

async function state(id: string) {
  return (await api.get(`/v1/elevations/${id}`)).body;
}
const untilState = (id: string, s: string) => waitFor(`${id} ${s}`, async () => ((await state(id)).state === s ? state(id) : null));

/** The connector stops offering `entitlement` (its configuration changed under a running elevation). */
async function withdraw(entitlement: string): Promise<() => void> {
  const grantable = (await w.connector.listGrantableEntitlements()).filter((e) => e !== entitlement);
  const catalogue = w.connector.entitlementCatalogue();
  const spies = [
    jest.spyOn(w.connector, 'listGrantableEntitlements').mockResolvedValue(grantable),
    jest.spyOn(w.connector, 'entitlementCatalogue').mockReturnValue({ ...catalogue, grantable: catalogue.grantable.filter((e) => e !== entitlement) }),
  ];
  return () => spies.forEach((s) => s.mockRestore());
}

test('extend of an elevation whose entitlement became unknown: 422 with the activity\'s message, access unchanged', async () => {
  const started = await api.post('/v1/elevations', 'alice', {
    nhiId: 'svc_etl',
    entitlements: ['estate_readonly'],
    justification: 'investigate the failed nightly export',
    durationMinutes: 60,
  });
  expect(started.status).toBe(202);
  const id = started.body.id;
  const active = await untilState(id, 'active');
  expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));

  const restore = await withdraw('estate_readonly');
  let res;
  try {
    // The extend handler runs evaluateExtension, which refuses (EntitlementUnknown, non-retryable).
    res = await api.post(`/v1/elevations/${id}/extend`, 'alice', { minutes: 30, reason: 'backfill is slower than planned' }).set('X-Request-Id', 'ext-unknown-1');
  } finally {
    restore();
  }
  expect(res.status).toBe(422);
  expect(res.body).toEqual({
    error: { code: 'entitlement_unknown', message: 'unknown entitlement(s) for svc_etl: estate_readonly', issues: [], requestId: 'ext-unknown-1' },
  });
  expect(res.text).not.toMatch(/Activity task failed|\bat .*\.(ts|js)/);

  // Refused means refused: the elevation and the target are exactly as before.
  const after = await state(id);
  expect(after).toMatchObject({ state: 'active', expiresAt: active.expiresAt, extensions: [] });
  expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));

  const done = await api.post(`/v1/elevations/${id}/revoke`, 'alice', { reason: 'finished' });
  expect(done.status).toBe(200);
  expect(done.body.state).toBe('revoked');
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
});
