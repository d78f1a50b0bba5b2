// Interaction suite (issue 9), the pairs with JIT elevation: two overlapping elevations, JIT ×
// throttle, JIT × offboarding, JIT × leak. Each runs the real workflows on the local Temporal dev
// server with a real worker, against real Postgres roles. After every step the target's own state is
// asserted (memberships, login, connection limit, and real logins with each password); at the end,
// no intent of a finished workflow is left in the ledger. Each test has a fresh NHI, so the pairs
// are independent of each other and of the demo estate. Last, three on one NHI (JIT × throttle ×
// leak) with the elevation's revocation held. The other pairs: ./pairs-restrictions.test.ts.
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { Pool } from 'pg';
import { createActivities } from '../../activities';
import { activeIntents, intentsOf } from '../../enforcement/intents';
import { approveUpdate, JIT_WORKFLOW_TYPE, statusQuery as jitStatusQuery, type JitStatus } from '../../scenarios/jit/contract';
import { confirmUpdate, statusQuery as offboardingStatusQuery } from '../../scenarios/offboarding/contract';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';
import { createHarness } from './harness';

let w: TestWorld;
let h: ReturnType<typeof createHarness>;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'local', runWorker: true });
  h = createHarness(w);
}, 120_000);

afterAll(async () => w?.teardown());

const none: never[] = [];

describe('JIT × JIT', () => {
  test('two overlapping elevations of one entitlement: the first to end keeps it for the second; the second\'s other entitlement is not the first\'s to take', async () => {
    const { nhiId, password } = await h.freshNhi('jj');
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });

    const first = await h.activeJit(nhiId, ['estate_readonly']);
    expect(first.s.decision?.outcome).toBe('auto_approve');
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: -1 });

    const second = await h.activeJit(nhiId, ['estate_readonly', 'estate_writer']);
    expect(second.s.entitlements).toEqual([
      expect.objectContaining({ entitlement: 'estate_readonly', present: true, otherHolders: [first.h.workflowId] }),
      expect.objectContaining({ entitlement: 'estate_writer', present: true, otherHolders: [] }),
    ]);
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });
    expect(await h.ledger(nhiId)).toEqual(
      [`${first.h.workflowId}:grant:estate_readonly`, `${second.h.workflowId}:grant:estate_readonly`, `${second.h.workflowId}:grant:estate_writer`].sort(),
    );

    // The first ends ("I'm done"): estate_readonly stays for the second, estate_writer is not its own.
    const r1 = await h.revokeJit(first.h);
    expect(r1).toMatchObject({ state: 'revoked', endReason: 'revoked_early' });
    expect(r1.entitlements).toEqual([expect.objectContaining({ entitlement: 'estate_readonly', present: true, otherHolders: [second.h.workflowId] })]);
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });
    expect((await second.h.query(jitStatusQuery)).state).toBe('active');
    expect(await h.ledger(nhiId)).toEqual([`${second.h.workflowId}:grant:estate_readonly`, `${second.h.workflowId}:grant:estate_writer`]);
    await h.expectLogins(nhiId, [[password, 'ok']]);

    // The second ends: nothing is left.
    const r2 = await h.revokeJit(second.h);
    expect(r2.state).toBe('revoked');
    expect(r2.entitlements.map((e) => [e.entitlement, e.present, e.otherHolders])).toEqual([
      ['estate_readonly', false, []],
      ['estate_writer', false, []],
    ]);
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    await h.expectNoIntents(first.h.workflowId, second.h.workflowId);
    expect(await h.ledger(nhiId)).toEqual([]);
  });
});

describe('JIT × JIT, two releases of one entitlement at once', () => {
  test("each receipt says who else held it at the moment of its own read-back, never a later read of the ledger", async () => {
    const { nhiId } = await h.freshNhi('jr');
    const [a, b] = [`jit-${nhiId}-a`, `jit-${nhiId}-b`];
    const as = <R>(workflowId: string, fn: () => Promise<R>) =>
      new MockActivityEnvironment({ workflowExecution: { workflowId, runId: randomUUID() } } as never).run(fn) as Promise<R>;
    const acts = createActivities(w.deps);
    const until = new Date(Date.now() + 3_600_000).toISOString();
    for (const wf of [a, b]) await as(wf, () => acts.grantEntitlement({ nhiId, entitlement: 'estate_readonly', expiresAt: until, actor: 'test' }));

    // B's whole release lands in the gap after A's reconcile let go of the NHI's lock and before A's
    // receipt is written (at A's reconcile audit row): the moment two windows ending together meet.
    let gap: (() => Promise<unknown>) | undefined = () => as(b, () => acts.releaseEntitlement({ nhiId, entitlement: 'estate_readonly', actor: 'test', reason: 'expired' }));
    let bReceipt: unknown;
    const pool = new Proxy(w.deps.pool, {
      get(target, prop) {
        if (prop === 'query') {
          return async (text: unknown, params?: unknown[]) => {
            if (gap && typeof text === 'string' && text.includes('audit_append') && params?.[2] === a && params?.[3] === 'release:estate_readonly:reconcile') {
              const run = gap;
              gap = undefined;
              bReceipt = await run();
            }
            return target.query(text as string, params);
          };
        }
        const v = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as Pool;
    const aReceipt = await as(a, () => createActivities({ ...w.deps, pool }).releaseEntitlement({ nhiId, entitlement: 'estate_readonly', actor: 'test', reason: 'expired' }));

    expect(gap).toBeUndefined(); // the gap was met
    // A's read-back saw the entitlement still there for B: its receipt names B, as of that read.
    expect(aReceipt).toMatchObject({ present: true, otherHolders: [b] });
    // B released last: gone, verified, nobody else.
    expect(bReceipt).toMatchObject({ present: false, otherHolders: [] });
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });
    await h.expectNoIntents(a, b);
  });
});

describe('JIT × throttle', () => {
  test('a live elevation under a level-1 throttle: withheld, its read-only form stands in, limit 2; clearing gives it back (never cuts a live grant); its revocation takes it', async () => {
    const { nhiId, password } = await h.freshNhi('jt');
    const jit = await h.activeJit(nhiId, ['estate_admin']);
    await h.expectTarget(nhiId, { groups: ['estate_admin'], login: true, limit: -1 });

    const anomaly = await h.throttle(nhiId);
    const l1 = await h.anomalyUntil(nhiId, 'throttled_l1');
    expect(l1.levels[0]).toMatchObject({ level: 1, connectionLimit: 2, removed: ['estate_admin'], keptReadOnly: ['estate_readonly'], verified: true });
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    // The elevation still holds its intent: withheld, not removed.
    expect((await jit.h.query(jitStatusQuery)).state).toBe('active');
    expect(await h.ledger(nhiId)).toEqual([`${anomaly.workflowId}:throttle`, `${jit.h.workflowId}:grant:estate_admin`].sort());
    expect(await w.inventoryStatus(nhiId)).toBe('throttled');

    const cleared = await h.clearThrottle(nhiId);
    expect(cleared).toMatchObject({ state: 'cleared', restored: { exact: true, restrictedBy: [], withheld: [] } });
    await h.expectTarget(nhiId, { groups: ['estate_admin'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    expect((await jit.h.query(jitStatusQuery)).state).toBe('active');
    expect(await w.inventoryStatus(nhiId)).toBe('active');

    const ended = await h.revokeJit(jit.h);
    expect(ended.state).toBe('revoked');
    expect(ended.entitlements).toEqual([expect.objectContaining({ entitlement: 'estate_admin', present: false, otherHolders: [] })]);
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    await h.expectNoIntents(jit.h.workflowId, anomaly.workflowId);
  });

  test('the elevation ends while the throttle holds: its read-only stand-in goes with it; clear gives back the baseline only', async () => {
    const { nhiId, password } = await h.freshNhi('je');
    const jit = await h.activeJit(nhiId, ['estate_writer']);
    await h.expectTarget(nhiId, { groups: ['estate_writer'], login: true, limit: -1 });
    const anomaly = await h.throttle(nhiId);
    await h.anomalyUntil(nhiId, 'throttled_l1');
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });

    // estate_readonly stood in for the elevation's estate_writer: with the elevation, it goes.
    const ended = await h.revokeJit(jit.h);
    expect(ended.state).toBe('revoked');
    expect(ended.entitlements).toEqual([expect.objectContaining({ entitlement: 'estate_writer', present: false, otherHolders: [] })]);
    await h.expectTarget(nhiId, { groups: none, login: true, limit: 2 });
    expect(await h.ledger(nhiId)).toEqual([`${anomaly.workflowId}:throttle`]);

    await h.clearThrottle(nhiId);
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    await h.expectNoIntents(jit.h.workflowId, anomaly.workflowId);
  });

  test('an elevation approved while a throttle holds the NHI ends rolled_back (AccessWithheld) and never reaches the target', async () => {
    const { nhiId, password } = await h.freshNhi('jw');
    // Requested while the NHI is active (a throttled NHI cannot even ask), approved once it is throttled.
    const jit = await h.requestJit(nhiId, ['estate_admin']);
    await h.jitUntil(jit, 'awaiting_approval');
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });

    const anomaly = await h.throttle(nhiId);
    await h.anomalyUntil(nhiId, 'throttled_l1');
    await h.expectTarget(nhiId, { groups: none, login: true, limit: 2 });

    await jit.executeUpdate(approveUpdate, { args: [{ approver: 'bob', comment: 'ok', authority: w.sign(jit.workflowId, 'approve', 'bob') }] });
    const end = (await jit.result()) as JitStatus;
    expect(end.state).toBe('rolled_back');
    expect(end.grantedAt).toBeUndefined();
    expect(end.failure).toMatch(new RegExp(`estate_admin is withheld from ${nhiId} by ${anomaly.workflowId} \\(throttle\\)`));
    expect(end.timeline.map((t) => t.event)).not.toContain('active');
    expect(end.entitlements).toEqual([expect.objectContaining({ entitlement: 'estate_admin', present: false })]);
    // Not even for a moment: no reconcile of this elevation granted anything at the target.
    const { rows } = await w.db.pool.query<{ action: string; outcome: string; readback: { changes?: { granted: string[] } } }>(
      'SELECT action, outcome, readback FROM audit_events WHERE workflow_id = $1 ORDER BY seq',
      [jit.workflowId],
    );
    expect(rows.find((r) => r.action === 'entitlement.grant')).toMatchObject({ outcome: 'withheld' });
    expect(rows.filter((r) => r.action === 'access.reconcile').flatMap((r) => r.readback.changes?.granted ?? [])).toEqual([]);
    await h.expectTarget(nhiId, { groups: none, login: true, limit: 2 });
    expect(await h.ledger(nhiId)).toEqual([`${anomaly.workflowId}:throttle`]);

    // Clearing brings back the baseline, with no elevation hidden behind the throttle.
    await h.clearThrottle(nhiId);
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    await h.expectNoIntents(jit.workflowId, anomaly.workflowId);
  });
});

describe('JIT × offboarding', () => {
  test('offboarding ends a live elevation (revoked) and turns access off; abort in grace gives the baseline back, not the ended elevation', async () => {
    const { nhiId, password } = await h.freshNhi('jo', { baseline: ['estate_readonly'] });
    const jit = await h.activeJit(nhiId, ['estate_writer']);
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });

    const off = await h.offboard(nhiId);
    const grace = await h.offboardingUntil(off, 'grace');
    expect(grace.otherScenarios?.elevations).toEqual([expect.objectContaining({ workflowId: jit.h.workflowId, outcome: 'revoked', state: 'revoked' })]);
    expect(grace.attestation?.outcome).toBe('no_standing_access');
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    await h.expectLogins(nhiId, [[password, '28000']]);
    expect(await jit.h.query(jitStatusQuery)).toMatchObject({ state: 'revoked', endReason: 'revoked_early', endedBy: off.workflowId });
    expect(await h.ledger(nhiId)).toEqual([`${off.workflowId}:login_disabled`, `${off.workflowId}:offboarded`]);

    const aborted = await h.abortOffboarding(off);
    expect(aborted).toMatchObject({ state: 'aborted', restored: { canLogin: true, connectionLimit: -1, entitlements: ['estate_readonly'] } });
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    expect(await w.inventoryStatus(nhiId)).toBe('active');
    await h.expectNoIntents(jit.h.workflowId, off.workflowId);
    expect(await h.ledger(nhiId)).toEqual([]);
  });

  test('confirmed instead: finalised with the elevation ended; only the offboarding\'s `offboarded` intent is left, also once the watch is cancelled', async () => {
    const { nhiId, password } = await h.freshNhi('jf', { baseline: ['estate_readonly'] });
    const jit = await h.activeJit(nhiId, ['estate_writer']);
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });

    const off = await h.offboard(nhiId, { graceDays: 1, watchDays: 1 });
    await h.offboardingUntil(off, 'grace');
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    expect((await jit.h.query(jitStatusQuery)).state).toBe('revoked');

    // A high NHI: policy wants a second person, an admin other than the requester (admin).
    await expect(off.executeUpdate(confirmUpdate, { args: [{ by: 'admin', comment: 'go', authority: w.sign(off.workflowId, 'confirm', 'admin') }] })).rejects.toMatchObject({ cause: { type: 'NotAllowed' } });
    const watching = await off.executeUpdate(confirmUpdate, { args: [{ by: 'admin-2', comment: 'go', authority: w.sign(off.workflowId, 'confirm', 'admin-2') }] });
    expect(watching).toMatchObject({ state: 'watching', confirmedBy: 'admin-2', intents: { restrictions: ['offboarded'] } });
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    await h.expectLogins(nhiId, [[password, '28000']]);
    expect((await activeIntents(w.db.pool, nhiId)).baseline).toEqual({ entitlements: [], canLogin: false, connectionLimit: -1 });
    expect(await w.inventoryStatus(nhiId)).toBe('offboarded');

    await off.cancel();
    await expect(off.result()).rejects.toThrow();
    expect(await off.query(offboardingStatusQuery)).toMatchObject({ state: 'completed', watch: { cancelled: true } });
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    await h.expectNoIntents(jit.h.workflowId);
    expect(await intentsOf(w.db.pool, off.workflowId)).toEqual([{ nhiId, kind: 'restrict', subject: 'offboarded' }]);
    expect(await h.ledger(nhiId)).toEqual([`${off.workflowId}:offboarded`]);
  });
});

describe('JIT × leak', () => {
  test('containment ends a live elevation, rotates (old password 28P01, new one works) and releases its quarantine: the baseline only', async () => {
    const { nhiId, password } = await h.freshNhi('jl', { baseline: ['estate_readonly'] });
    const jit = await h.activeJit(nhiId, ['estate_writer']);
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);

    const containment = await h.leak(nhiId);
    const s = await h.leakResult(containment);
    expect(s).toMatchObject({
      state: 'contained',
      elevations: [{ workflowId: jit.h.workflowId, outcome: 'revoked' }],
      quarantine: { state: 'released', withheld: [], entitlements: ['estate_readonly'] },
      verification: { oldCredential: 'denied', oldCode: '28P01', newCredential: 'granted', preRotationSessions: 0 },
    });
    expect(await jit.h.query(jitStatusQuery)).toMatchObject({ state: 'revoked', endedBy: 'leak-containment' });
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: -1 });
    const fresh = await w.activePassword(nhiId);
    expect(fresh).not.toBe(password);
    await h.expectLogins(nhiId, [
      [password, '28P01'],
      [fresh, 'ok'],
    ]);
    await h.expectNoIntents(jit.h.workflowId, containment.workflowId);
    expect(await h.ledger(nhiId)).toEqual([]);
  });

  test('an elevation still awaiting approval when the leak comes is withdrawn (cancelled) and never granted', async () => {
    const { nhiId, password } = await h.freshNhi('jp', { baseline: ['estate_readonly'] });
    const jit = await h.requestJit(nhiId, ['estate_writer']);
    await h.jitUntil(jit, 'awaiting_approval');
    await h.untilVisible(JIT_WORKFLOW_TYPE, nhiId, jit.workflowId);
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: -1 });

    const containment = await h.leak(nhiId);
    const s = await h.leakResult(containment);
    expect(s).toMatchObject({ state: 'contained', elevations: [{ workflowId: jit.workflowId, outcome: 'cancelled' }], verification: { newCredential: 'granted' } });
    expect((await jit.result()) as JitStatus).toMatchObject({ state: 'cancelled', endedBy: 'leak-containment' });
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [
      [password, '28P01'],
      [await w.activePassword(nhiId), 'ok'],
    ]);
    await h.expectNoIntents(jit.workflowId, containment.workflowId);
  });
});


// Three on one NHI. The elevation's revocation is held on its own worker (a slow target), so the
// containment's quarantine is in force while the elevation's grant intent still lives: the window
// every containment of an elevated NHI opens (the quarantine is reconciled beside the revoke).
describe('JIT × throttle × leak, the elevation\'s revocation held', () => {
  const gates = new Map<string, Promise<void>>();
  let queue: string;
  let held: Worker;
  let running: Promise<void>;

  beforeAll(async () => {
    queue = `${w.taskQueue}-held`;
    const real = createActivities(w.deps);
    held = await w.createWorker(
      {
        async releaseEntitlement(r: Parameters<typeof real.releaseEntitlement>[0]) {
          await gates.get(r.nhiId);
          return real.releaseEntitlement(r);
        },
      },
      { taskQueue: queue },
    );
    running = held.run();
  }, 60_000);

  afterAll(async () => {
    held?.shutdown();
    await running;
  });

  /** Raise a leak while the elevation's release is held; resolves once the quarantine has reached the target. */
  async function leakWhileRevocationHeld(nhiId: string) {
    let open!: () => void;
    gates.set(nhiId, new Promise<void>((r) => (open = r)));
    const containment = await h.leak(nhiId, { elevationRevokeWaitMs: 20_000 });
    await waitFor('quarantine reconciled', async () => {
      const { rows } = await w.db.pool.query(`SELECT 1 FROM audit_events WHERE workflow_id = $1 AND step_id LIKE '%:quarantine:reconcile'`, [containment.workflowId]);
      return rows.length > 0;
    }, 20_000);
    return { containment, open };
  }

  test('a quarantined elevation keeps no read access through its read-only stand-in', async () => {
    const { nhiId, password } = await h.freshNhi('tq');
    const jit = await h.activeJit(nhiId, ['estate_writer'], queue);
    await h.expectTarget(nhiId, { groups: ['estate_writer'], login: true, limit: -1 });
    const anomaly = await h.throttle(nhiId);
    await h.anomalyUntil(nhiId, 'throttled_l1');
    // estate_readonly stands in for the elevation's estate_writer.
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });

    const { containment, open } = await leakWhileRevocationHeld(nhiId);
    try {
      expect(await h.ledger(nhiId)).toEqual([`${anomaly.workflowId}:throttle`, `${containment.workflowId}:quarantine`, `${jit.h.workflowId}:grant:estate_writer`].sort());
      // The quarantine withholds what grants add beyond the baseline (empty): the stand-in is the grant's too.
      await h.expectTarget(nhiId, { groups: none, login: true, limit: 2 });
    } finally {
      open();
      await h.leakResult(containment).catch(() => undefined);
    }
    const s = await h.leakResult(containment);
    expect(s).toMatchObject({ state: 'contained', elevations: [{ workflowId: jit.h.workflowId, outcome: 'revoked' }] });
    await h.expectTarget(nhiId, { groups: none, login: true, limit: 2 });
    await h.clearThrottle(nhiId);
    await h.expectTarget(nhiId, { groups: none, login: true, limit: -1 });
    await h.expectLogins(nhiId, [
      [password, '28P01'],
      [await w.activePassword(nhiId), 'ok'],
    ]);
    await h.expectNoIntents(jit.h.workflowId, anomaly.workflowId, containment.workflowId);
  });

  test('the quarantine keeps the baseline: its read access under the throttle stays though an elevation also holds estate_readonly', async () => {
    const { nhiId, password } = await h.freshNhi('tb', { baseline: ['estate_writer'] });
    const jit = await h.activeJit(nhiId, ['estate_readonly'], queue);
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });
    const anomaly = await h.throttle(nhiId);
    await h.anomalyUntil(nhiId, 'throttled_l1');
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });

    const { containment, open } = await leakWhileRevocationHeld(nhiId);
    try {
      // Level 1 leaves the baseline read access (estate_readonly for its estate_writer); the quarantine keeps the baseline.
      await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });
    } finally {
      open();
      await h.leakResult(containment).catch(() => undefined);
    }
    const s = await h.leakResult(containment);
    expect(s).toMatchObject({ state: 'contained', elevations: [{ workflowId: jit.h.workflowId, outcome: 'revoked' }] });
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });
    await h.clearThrottle(nhiId);
    await h.expectTarget(nhiId, { groups: ['estate_writer'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [
      [password, '28P01'],
      [await w.activePassword(nhiId), 'ok'],
    ]);
    await h.expectNoIntents(jit.h.workflowId, anomaly.workflowId, containment.workflowId);
  });
});
