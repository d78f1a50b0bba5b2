// Issue 13's findings about destructive input, each tried through the API with a real worker, real
// Temporal (dev server) and the real estate: what an admin may register, what a detector's report
// may start, and that one bad inventory record stops nothing else.
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { adminOptionGrantSql } from '../../connectors/postgres-roles';
import { ConnectorErrorCode } from '../../connectors/types';
import { checkDrift } from '../../enforcement/drift';
import { getNhi } from '../../lib/inventory';
import type { UsageCollectorResult } from '../../scenarios/anomaly/contract';
import { createApiWorld, type ApiWorld } from '../helpers/api-world';
import { waitFor } from '../helpers/wait';

let a: ApiWorld;

beforeAll(async () => {
  a = await createApiWorld({ setup: async (w) => void (await w.addNhi({ id: 'agent_burst', kind: 'ai_agent', criticality: 'medium' })) });
}, 120_000);
afterAll(async () => a?.teardown());

const nhiCount = async () => (await a.w.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM nhis')).rows[0].n;
const body = (over: Record<string, unknown>) => ({ id: 'svc_new', kind: 'service_account', owner: 'team-x', connector: 'postgres', externalRef: 'x', ...over });

describe('POST /v1/nhis registers only what the system can act on', () => {
  test('an unconfigured connector, a superuser, the connector\'s own role, a group role or a missing role: 400, nothing registered', async () => {
    const before = await nhiCount();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ connector: 'f' }, /no connector named "f" is configured \(configured: postgres\)/],
      [{ externalRef: 'postgres' }, /superuser/],
      [{ externalRef: a.w.connectorRole }, /connector's own role/],
      [{ externalRef: a.w.ent('estate_admin') }, /group role|entitlement/],
      [{ externalRef: 'estate_admin' }, /entitlement/],
      [{ externalRef: 'pg_read_all_data' }, /built-in|superuser|ADMIN OPTION/],
      [{ externalRef: `${a.w.prefix}nobody` }, /no role/],
    ];
    for (const [over, message] of cases) {
      const res = await a.post('/v1/nhis', 'admin', body(over));
      expect({ over, status: res.status }).toEqual({ over, status: 400 });
      expect(res.body.error.issues[0].message).toMatch(message);
    }
    expect(await nhiCount()).toBe(before);
  });

  test('a lifecycle status is never taken from the body; a role the connector administers registers as active', async () => {
    const rejected = await a.post('/v1/nhis', 'admin', body({ status: 'offboarded' }));
    expect(rejected.status).toBe(400);
    const role = `${a.w.prefix}svc_new`;
    await a.w.estateAdmin.query(`CREATE ROLE ${role} LOGIN`);
    await a.w.estateAdmin.query(adminOptionGrantSql(a.w.roles, role, a.w.connectorRole));
    const ok = await a.post('/v1/nhis', 'admin', body({ externalRef: role }));
    expect(ok.status).toBe(201);
    expect(ok.body.status).toBe('active');
  });
});

describe('one bad inventory record stops nothing else', () => {
  beforeAll(async () => {
    await a.w.db.pool.query(`INSERT INTO nhis (id, kind, owner, connector, external_ref, criticality) VALUES ('svc_orphan', 'service_account', 'team-x', 'f', 'whatever', 'medium')`);
  });

  test('the usage collector samples every other NHI and names the bad record', async () => {
    const env = new MockActivityEnvironment();
    const r: UsageCollectorResult = await env.run(createActivities(a.w.deps).collectUsage, { version: 1 as const, intervalSeconds: 60 });
    expect(r.errors).toEqual([{ nhiId: 'svc_orphan', error: expect.stringMatching(/no connector named "f" is configured/) }]);
    expect(r.samples.map((s) => s.nhiId)).toEqual(expect.arrayContaining(['agent_burst', 'svc_payments']));
  });

  test('the drift check reports it and goes on with the others', async () => {
    const orphan = (await getNhi(a.w.db.pool, 'svc_orphan'))!;
    expect(await checkDrift(a.w.deps, orphan, 'drift-issue-13')).toMatchObject({ outcome: 'error', error: expect.stringMatching(/no connector named "f"/) });
    expect((await checkDrift(a.w.deps, (await getNhi(a.w.db.pool, 'agent_burst'))!, 'drift-issue-13')).outcome).not.toBe('error');
  });

  test('steps on it fail at once, non-retryable and clearly named; the API answers 409, not 500', async () => {
    const env = new MockActivityEnvironment();
    await expect(env.run(createActivities(a.w.deps).disableLogin, { nhiId: 'svc_orphan', run: 't', step: 'disable' })).rejects.toMatchObject({
      type: 'UnknownConnector',
      nonRetryable: true,
      message: expect.stringMatching(/no connector named "f"/),
    });
    const elevation = await a.post('/v1/elevations', 'alice', { nhiId: 'svc_orphan', entitlements: ['estate_readonly'], justification: 'needs to read the catalogue', durationMinutes: 30 });
    expect(elevation.status).toBe(409);
    expect(elevation.body.error).toMatchObject({ code: ConnectorErrorCode.UnknownConnector });
  });
});

describe('a detector\'s report', () => {
  test('an anomaly needs observed > baseline and the floor: otherwise 400 and no workflow', async () => {
    for (const [observedRate, baselineRate] of [[0, 0], [5, 20], [9, 1]]) {
      const res = await a.post('/v1/anomalies', 'detector-bot', { nhiId: 'agent_burst', observedRate, baselineRate, source: 'siem:test' });
      expect({ observedRate, status: res.status }).toEqual({ observedRate, status: 400 });
    }
    expect((await a.get('/v1/anomalies/agent_burst')).status).toBe(404);
    expect((await a.w.roleState('agent_burst')).rolconnlimit).toBe(-1);
  });

  test('three leak reports from one source seconds apart rotate once: the rest merge; a fingerprint of the current credential still rotates', async () => {
    const nhiId = 'agent_reports';
    const rotations = async () => (await a.w.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rotations WHERE nhi_id = $1 AND status = 'activated'`, [nhiId])).rows[0].n;
    const before = await rotations();
    const report = (extra: Record<string, unknown> = {}) => a.post('/v1/leaks', 'detector-bot', { nhiId, source: 'scanner', severity: 'high', ...extra });
    const contained = async (n: number) =>
      waitFor(`rotation ${n}`, async () => ((await rotations()) === before + n && (await a.get(`/v1/leaks/${nhiId}`)).body.state === 'contained' ? true : null), 30_000);

    expect((await report()).body.outcome).toBe('containment');
    await contained(1);
    for (const extra of [{}, { detectedAt: new Date().toISOString() }]) {
      const again = await report(extra);
      expect(again.status).toBe(202);
      // Joined as evidence while the containment is still closing, else recorded as contained.
      if (again.body.outcome === 'containment') expect(again.body.containments).toEqual([expect.objectContaining({ nhiId, workflowId: `leak-${nhiId}` })]);
      else expect(again.body).toMatchObject({ outcome: 'already_contained', alreadyContained: [{ nhiId, reason: expect.stringMatching(/cool-down/) }] });
    }
    const { rows: merged } = await a.w.db.pool.query<{ outcome: string }>(
      `SELECT outcome FROM audit_events WHERE nhi_id = $1 AND action = 'leak.alert' AND outcome IN ('merged', 'already_contained') ORDER BY seq`,
      [nhiId],
    );
    expect(merged).toHaveLength(2);
    expect(await rotations()).toBe(before + 1);

    // A fingerprint of the current credential once that containment has closed: a new leak, contained again.
    await waitFor('containment closed', async () => ((await a.w.env.client.workflow.getHandle(`leak-${nhiId}`).describe()).status.name === 'RUNNING' ? null : true), 30_000);
    const { createHash } = await import('node:crypto');
    const current = createHash('sha256').update(await a.w.activePassword(nhiId)).digest('hex');
    expect((await report({ nhiId: undefined, fingerprint: current })).body.outcome).toBe('containment');
    await contained(2);
  });
});
