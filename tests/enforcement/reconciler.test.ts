// The reconciler on a real estate: intents in, the target's real state out. Every assertion reads
// Postgres itself (w.roleState / w.memberships), not what the reconciler says it did.
import { commitIntent, releaseIntents, activeIntents } from '../../enforcement/intents';
import { Client, Pool } from 'pg';
import { RECONCILE_LOCK, reconcile, withNhiLock, type ReconcileContext } from '../../enforcement/reconciler';
import { createTestWorld, type TestWorld } from '../helpers/world';

let w: TestWorld;
let step = 0;
const ctx = (workflowId = 'test-wf'): ReconcileContext => ({ workflowId, stepId: `s${++step}`, scenario: 'test', actor: 'tester', reason: 'test' });
const deps = () => ({ pool: w.db.pool, connectors: w.deps.connectors });

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping' });
}, 60_000);
afterAll(async () => {
  await w?.teardown();
});

test('the first reconcile captures the baseline from the target and changes nothing', async () => {
  const before = await w.roleState('partner_acme');
  const v = await reconcile(deps(), 'partner_acme', ctx());
  expect(v.baselineCapturedNow).toBe(true);
  expect(v.changes).toEqual({ granted: [], revoked: [] });
  expect(await w.roleState('partner_acme')).toEqual(before);
  expect((await activeIntents(w.db.pool, 'partner_acme')).baseline).toEqual({ entitlements: ['estate_readonly'], canLogin: true, connectionLimit: -1 });
  expect((await reconcile(deps(), 'partner_acme', ctx())).baselineCapturedNow).toBe(false);
});

test('the baseline is not taken from an elevation of the older ledger (grants held by a workflow); its standing rows are', async () => {
  await w.addNhi({ id: 'svc_old_ledger' });
  // As the elevation workflow before the intents ledger did: granted through the connector, recorded in `grants`.
  for (const e of ['estate_readonly', 'estate_writer']) await w.connector.grant(w.role('svc_old_ledger'), e);
  await w.db.pool.query(
    `INSERT INTO grants (nhi_id, entitlement, holder) VALUES ('svc_old_ledger', 'estate_writer', 'jit-old'), ('svc_old_ledger', 'estate_readonly', 'jit-old'), ('svc_old_ledger', 'estate_readonly', 'standing')`,
  );
  const v = await reconcile(deps(), 'svc_old_ledger', ctx());
  expect(v.baselineCapturedNow).toBe(true);
  expect((await activeIntents(w.db.pool, 'svc_old_ledger')).baseline?.entitlements).toEqual(['estate_readonly']);
  // Not an intent, not standing: the reconciler takes it away rather than make it standing access.
  expect(await w.memberships('svc_old_ledger')).toEqual([w.ent('estate_readonly')]);
});

test('a grant intent is applied and read back; releasing it takes exactly it away', async () => {
  const v = await reconcile(deps(), 'partner_acme', ctx('jit-a'), (c) => commitIntent(c, 'partner_acme', 'jit-a', { kind: 'grant', entitlement: 'estate_writer' }));
  expect(v.observed.entitlements).toEqual(['estate_readonly', 'estate_writer']);
  expect(v.changes.granted).toEqual(['estate_writer']);
  expect(await w.memberships('partner_acme')).toEqual([w.ent('estate_readonly'), w.ent('estate_writer')]);
  const r = await reconcile(deps(), 'partner_acme', ctx('jit-a'), (c) => releaseIntents(c, 'partner_acme', 'jit-a').then(() => undefined));
  expect(r.changes.revoked).toEqual(['estate_writer']);
  expect(await w.memberships('partner_acme')).toEqual([w.ent('estate_readonly')]);
});

test('two overlapping grants: the first release keeps it, the second takes it', async () => {
  for (const owner of ['jit-b1', 'jit-b2']) {
    await reconcile(deps(), 'ci_deployer', ctx(owner), (c) => commitIntent(c, 'ci_deployer', owner, { kind: 'grant', entitlement: 'estate_admin' }));
  }
  await reconcile(deps(), 'ci_deployer', ctx('jit-b1'), (c) => releaseIntents(c, 'ci_deployer', 'jit-b1').then(() => undefined));
  expect(await w.memberships('ci_deployer')).toContain(w.ent('estate_admin'));
  await reconcile(deps(), 'ci_deployer', ctx('jit-b2'), (c) => releaseIntents(c, 'ci_deployer', 'jit-b2').then(() => undefined));
  expect(await w.memberships('ci_deployer')).toEqual([w.ent('estate_readonly')]);
});

test('a throttle withholds a live grant and keeps read access; clearing it brings the grant back, never cuts it', async () => {
  const nhi = 'svc_payments'; // baseline: estate_writer, its only membership
  await reconcile(deps(), nhi, ctx('jit-c'), (c) => commitIntent(c, nhi, 'jit-c', { kind: 'grant', entitlement: 'estate_admin' }));
  const t = await reconcile(deps(), nhi, ctx('anomaly-c'), (c) => commitIntent(c, nhi, 'anomaly-c', { kind: 'restrict', restriction: 'throttle', level: 1, connectionLimit: 2 }));
  expect(t.desired.withheld).toEqual([
    { entitlement: 'estate_admin', by: ['anomaly-c'] },
    { entitlement: 'estate_writer', by: ['anomaly-c'] },
  ]);
  let s = await w.roleState(nhi);
  expect(s.rolconnlimit).toBe(2);
  expect(s.memberships.map((m) => m.group)).toEqual([w.ent('estate_readonly')]);
  // Read access stays: SELECT on payments through estate_readonly.
  const { rows } = await w.estateAdmin.query(`SELECT has_table_privilege($1, 'payments', 'SELECT') AS can_read, has_table_privilege($1, 'payments', 'INSERT') AS can_write`, [w.role(nhi)]);
  expect(rows[0]).toEqual({ can_read: true, can_write: false });

  await reconcile(deps(), nhi, ctx('anomaly-c'), (c) => releaseIntents(c, nhi, 'anomaly-c').then(() => undefined));
  s = await w.roleState(nhi);
  expect(s.rolconnlimit).toBe(-1);
  expect(s.memberships.map((m) => m.group)).toEqual([w.ent('estate_admin'), w.ent('estate_writer')]);
  await reconcile(deps(), nhi, ctx('jit-c'), (c) => releaseIntents(c, nhi, 'jit-c').then(() => undefined));
  expect(await w.memberships(nhi)).toEqual([w.ent('estate_writer')]);
});

test('crash between target and ledger: the grant reached the target, the worker died; the retry converges and the release leaves nothing standing', async () => {
  const nhi = 'agent_reports';
  await reconcile(deps(), nhi, ctx()); // baseline: estate_readonly
  const crashing = {
    pool: w.db.pool,
    connectors: {
      get: () =>
        new Proxy(w.connector, {
          get(target, prop, receiver) {
            if (prop !== 'apply') return Reflect.get(target, prop, receiver);
            return async (...args: Parameters<typeof target.apply>) => {
              await target.apply(...args);
              throw new Error('worker killed right after the target changed');
            };
          },
        }),
    },
  };
  await expect(reconcile(crashing, nhi, ctx('jit-d'), (c) => commitIntent(c, nhi, 'jit-d', { kind: 'grant', entitlement: 'estate_writer' }))).rejects.toThrow(/worker killed/);
  expect(await w.memberships(nhi)).toEqual([w.ent('estate_readonly'), w.ent('estate_writer')]);
  // Temporal retries the step: same intent, same state as a clean run.
  const retry = await reconcile(deps(), nhi, ctx('jit-d'), (c) => commitIntent(c, nhi, 'jit-d', { kind: 'grant', entitlement: 'estate_writer' }));
  expect(retry.changes).toEqual({ granted: [], revoked: [] });
  expect((await activeIntents(w.db.pool, nhi)).baseline?.entitlements).toEqual(['estate_readonly']);
  await reconcile(deps(), nhi, ctx('jit-d'), (c) => releaseIntents(c, nhi, 'jit-d').then(() => undefined));
  expect(await w.memberships(nhi)).toEqual([w.ent('estate_readonly')]);
});

test('concurrent reconciles of one NHI serialise: every grant lands, none is lost', async () => {
  const nhi = 'svc_conc';
  await w.addNhi({ id: nhi });
  const owners = ['jit-e1', 'jit-e2', 'jit-e3'];
  const ents = ['estate_readonly', 'estate_writer', 'estate_admin'];
  await Promise.all(owners.map((o, i) => reconcile(deps(), nhi, ctx(o), (c) => commitIntent(c, nhi, o, { kind: 'grant', entitlement: ents[i] }))));
  expect(await w.memberships(nhi)).toEqual([w.ent('estate_admin'), w.ent('estate_readonly'), w.ent('estate_writer')]);
  await Promise.all(owners.map((o) => reconcile(deps(), nhi, ctx(o), (c) => releaseIntents(c, nhi, o).then(() => undefined))));
  expect(await w.memberships(nhi)).toEqual([]);
});

test('access that appeared outside the orchestrator is drift: the next reconcile reverts it and says so', async () => {
  const nhi = 'partner_acme';
  await w.estateAdmin.query(`GRANT ${w.ent('estate_admin')} TO ${w.role(nhi)} GRANTED BY ${w.connectorRole}`);
  const v = await reconcile(deps(), nhi, ctx('drift-check'));
  expect(v.changes.revoked).toEqual(['estate_admin']);
  expect(await w.memberships(nhi)).toEqual([w.ent('estate_readonly')]);
});

test('offboarded wins over everything; removing it restores exactly what the other intents want', async () => {
  const nhi = 'ci_deployer';
  await reconcile(deps(), nhi, ctx('jit-f'), (c) => commitIntent(c, nhi, 'jit-f', { kind: 'grant', entitlement: 'estate_writer' }));
  const before = await w.roleState(nhi);
  await reconcile(deps(), nhi, ctx('off-f'), (c) => commitIntent(c, nhi, 'off-f', { kind: 'restrict', restriction: 'offboarded' }));
  expect(await w.roleState(nhi)).toMatchObject({ rolcanlogin: false, memberships: [] });
  await reconcile(deps(), nhi, ctx('off-f'), (c) => releaseIntents(c, nhi, 'off-f').then(() => undefined));
  expect(await w.roleState(nhi)).toEqual(before);
  await reconcile(deps(), nhi, ctx('jit-f'), (c) => releaseIntents(c, nhi, 'jit-f').then(() => undefined));
});

test("a burst of one NHI's reconciles waits in the process, not on pooled connections: another NHI's goes through", async () => {
  // A pool of 3: before, the burst's waiters each took a connection to block in pg_advisory_lock,
  // so with one holder and two waiters every connection was taken and the other NHI's step waited
  // for the whole burst.
  const pool = new Pool({ connectionString: w.db.url, max: 3 });
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const all: Promise<unknown>[] = [];
  try {
    const order: string[] = [];
    const holder = withNhiLock(pool, 'burst_a', async () => {
      await gate;
      order.push('a0');
    });
    const burst = [1, 2, 3, 4].map((i) => withNhiLock(pool, 'burst_a', async () => void order.push(`a${i}`)));
    await new Promise((r) => setTimeout(r, 200));
    const other = withNhiLock(pool, 'burst_b', async (c) => {
      await c.query('SELECT 1');
      order.push('b');
    });
    all.push(holder, ...burst, other);
    await Promise.race([other, new Promise((r) => setTimeout(r, 5000))]);
    expect(order).toEqual(['b']);
    // Of the burst, only the holder has a connection.
    expect(pool.totalCount - pool.idleCount).toBe(1);
    open();
    await Promise.all(all);
    // One at a time, in the order they asked.
    expect(order).toEqual(['b', 'a0', 'a1', 'a2', 'a3', 'a4']);
  } finally {
    open();
    await Promise.allSettled(all);
    await pool.end();
  }
});

test("another process's holder of an NHI's lock is still waited for (the advisory lock, across processes)", async () => {
  const other = new Client({ connectionString: w.db.url });
  await other.connect();
  try {
    // What another worker process holding the NHI's reconcile lock looks like to this one.
    await other.query('SELECT pg_advisory_lock($1, hashtext($2))', [RECONCILE_LOCK, 'cross_a']);
    let ran = false;
    const waiting = withNhiLock(w.db.pool, 'cross_a', async () => void (ran = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(ran).toBe(false);
    await other.query('SELECT pg_advisory_unlock($1, hashtext($2))', [RECONCILE_LOCK, 'cross_a']);
    await waiting;
    expect(ran).toBe(true);
  } finally {
    await other.end();
  }
});
