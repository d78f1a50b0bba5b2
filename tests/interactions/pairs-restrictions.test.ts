// Interaction suite (issue 9), the pairs of restrictions: throttle × leak, throttle × offboarding,
// offboarding × leak. Each runs the real workflows on the local Temporal dev server with a real
// worker, against real Postgres roles. After every step the target's own state is asserted
// (memberships, login, connection limit, and real logins with each password, the leaked one and the
// new one); at the end, no intent of a finished workflow is left in the ledger. Each test has a
// fresh NHI. The pairs with JIT elevation: ./pairs-jit.test.ts.
import { activeIntents } from '../../enforcement/intents';
import { ANOMALY_WORKFLOW_TYPE, anomalyWorkflowId } from '../../scenarios/anomaly/contract';
import { statusQuery as offboardingStatusQuery } from '../../scenarios/offboarding/contract';
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

describe('throttle × leak', () => {
  test('level 1 (CONNECTION LIMIT 2) with two attacker sessions on the old password: contained, sessions gone, old password 28P01; clear puts the limit back', async () => {
    const { nhiId, password } = await h.freshNhi('tl', { baseline: ['estate_writer'] });
    await h.expectTarget(nhiId, { groups: ['estate_writer'], login: true, limit: -1 });
    const anomaly = await h.throttle(nhiId);
    await h.anomalyUntil(nhiId, 'throttled_l1');
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });

    const attacker = await h.attackerSessions(nhiId, password);
    try {
      // The limit is taken: a third login is refused, whatever its password.
      await h.expectLogins(nhiId, [[password, '53300']]);

      const containment = await h.leak(nhiId);
      const s = await h.leakResult(containment);
      expect(s).toMatchObject({ state: 'contained', sessionsTerminated: 2, verification: { oldCredential: 'denied', oldCode: '28P01', newCredential: 'granted', preRotationSessions: 0 } });
      expect(s.verification?.limitedBy).toBeUndefined();
      for (const pid of attacker.pids) expect(await h.alive(pid)).toBe(false);
      // The throttle is not the containment's to lift.
      await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });
      expect((await h.anomalyUntil(nhiId, 'throttled_l1')).level).toBe(1);
      const fresh = await w.activePassword(nhiId);
      await h.expectLogins(nhiId, [
        [password, '28P01'],
        [fresh, 'ok'],
      ]);

      const cleared = await h.clearThrottle(nhiId);
      expect(cleared).toMatchObject({ state: 'cleared', restored: { exact: true, restrictedBy: [] } });
      await h.expectTarget(nhiId, { groups: ['estate_writer'], login: true, limit: -1 });
      await h.expectLogins(nhiId, [
        [fresh, 'ok'],
        [password, '28P01'],
      ]);
      expect(await w.inventoryStatus(nhiId)).toBe('active');
      await h.expectNoIntents(anomaly.workflowId, containment.workflowId);
      expect(await h.ledger(nhiId)).toEqual([]);
    } finally {
      await attacker.close();
    }
  });

  test('level 2 (login off): contained, verified only up to the throttle\'s restriction; clear lets the new credential log in', async () => {
    const { nhiId, password } = await h.freshNhi('t2', { baseline: ['estate_writer'] });
    const anomaly = await h.throttle(nhiId, { ackTimeoutMinutes: 0.05 });
    await h.anomalyUntil(nhiId, 'throttled_l2');
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: false, limit: 2 });
    await h.expectLogins(nhiId, [[password, '28000']]);

    const containment = await h.leak(nhiId);
    const s = await h.leakResult(containment);
    expect(s).toMatchObject({
      state: 'contained',
      verification: { oldCredential: 'denied', oldCode: '28P01', newCredential: 'inconclusive', newCode: '28000', limitedBy: { restriction: 'login_disabled', owners: [anomaly.workflowId] } },
    });
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: false, limit: 2 });
    const fresh = await w.activePassword(nhiId);
    await h.expectLogins(nhiId, [
      [password, '28P01'],
      [fresh, '28000'],
    ]);
    expect((await h.anomalyUntil(nhiId, 'throttled_l2')).level).toBe(2);

    await h.clearThrottle(nhiId);
    await h.expectTarget(nhiId, { groups: ['estate_writer'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [
      [fresh, 'ok'],
      [password, '28P01'],
    ]);
    await h.expectNoIntents(anomaly.workflowId, containment.workflowId);
  });
});

describe('throttle × offboarding', () => {
  test('offboarding supersedes a level-1 throttle; abort brings the baseline back exactly (limit -1, login, memberships), status active, no throttle owned by nothing', async () => {
    const { nhiId, password } = await h.freshNhi('to', { baseline: ['estate_readonly', 'estate_writer'] });
    const before = await w.roleState(nhiId);
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });

    const anomaly = await h.throttle(nhiId);
    await h.anomalyUntil(nhiId, 'throttled_l1');
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: 2 });
    expect(await w.inventoryStatus(nhiId)).toBe('throttled');
    await h.untilVisible(ANOMALY_WORKFLOW_TYPE, nhiId, anomaly.workflowId);

    const off = await h.offboard(nhiId);
    const grace = await h.offboardingUntil(off, 'grace');
    expect(grace.previousStatus).toBe('throttled');
    expect(grace.otherScenarios?.throttles).toMatchObject({ supported: true, found: [anomaly.workflowId], ended: [anomaly.workflowId] });
    const superseded = await h.anomalyUntil(nhiId, 'superseded');
    expect(superseded.restored).toMatchObject({ exact: true, restrictedBy: [off.workflowId] });
    // The throttle's own restriction is gone; the offboarding's keeps access off.
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    await h.expectLogins(nhiId, [[password, '28000']]);
    expect(await h.ledger(nhiId)).toEqual([`${off.workflowId}:login_disabled`, `${off.workflowId}:offboarded`]);
    await h.expectNoIntents(anomaly.workflowId);

    const aborted = await h.abortOffboarding(off);
    expect(aborted.state).toBe('aborted');
    await h.expectTarget(nhiId, { groups: ['estate_readonly', 'estate_writer'], login: true, limit: -1 });
    expect(await w.roleState(nhiId)).toEqual(before);
    await h.expectLogins(nhiId, [[password, 'ok']]);
    expect(await w.inventoryStatus(nhiId)).toBe('active');
    expect((await activeIntents(w.db.pool, nhiId)).restrictions).toEqual([]);
    await h.expectNoIntents(anomalyWorkflowId(nhiId), off.workflowId);
  });

  test('an anomaly reported while the NHI is in its offboarding\'s grace is dismissed and changes nothing; abort gives the baseline back', async () => {
    const { nhiId, password } = await h.freshNhi('ot', { baseline: ['estate_writer'] });
    const off = await h.offboard(nhiId);
    await h.offboardingUntil(off, 'grace');
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });

    const anomaly = await h.throttle(nhiId);
    const dismissed = await h.anomalyUntil(nhiId, 'dismissed');
    expect(dismissed.levels).toEqual([]);
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    expect(await h.ledger(nhiId)).toEqual([`${off.workflowId}:login_disabled`, `${off.workflowId}:offboarded`]);

    await h.abortOffboarding(off);
    await h.expectTarget(nhiId, { groups: ['estate_writer'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [[password, 'ok']]);
    expect(await w.inventoryStatus(nhiId)).toBe('active');
    await h.expectNoIntents(anomaly.workflowId, off.workflowId);
  });
});

describe('offboarding × leak', () => {
  test('a leak during grace (login off): rotated and contained, verified only up to the offboarding\'s restriction; after abort the NEW credential logs in, the old one 28P01', async () => {
    const { nhiId, password } = await h.freshNhi('ol', { baseline: ['estate_readonly'] });
    const off = await h.offboard(nhiId);
    await h.offboardingUntil(off, 'grace');
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    await h.expectLogins(nhiId, [[password, '28000']]);

    const containment = await h.leak(nhiId);
    const s = await h.leakResult(containment);
    expect(s).toMatchObject({
      state: 'contained',
      verification: {
        oldCredential: 'denied',
        oldCode: '28P01',
        newCredential: 'inconclusive',
        newCode: '28000',
        preRotationSessions: 0,
        limitedBy: { restriction: 'login_disabled', owners: [off.workflowId] },
      },
    });
    // The containment changed the credential, not the offboarding's restriction.
    await h.expectTarget(nhiId, { groups: none, login: false, limit: -1 });
    const fresh = await w.activePassword(nhiId);
    expect(fresh).not.toBe(password);
    await h.expectLogins(nhiId, [
      [password, '28P01'],
      [fresh, '28000'],
    ]);
    expect((await off.query(offboardingStatusQuery)).state).toBe('grace');

    const aborted = await h.abortOffboarding(off);
    expect(aborted.state).toBe('aborted');
    await h.expectTarget(nhiId, { groups: ['estate_readonly'], login: true, limit: -1 });
    await h.expectLogins(nhiId, [
      [fresh, 'ok'],
      [password, '28P01'],
    ]);
    // The abort's own evidence probed the stored (new) credential: granted.
    const { rows } = await w.db.pool.query(`SELECT readback FROM audit_events WHERE workflow_id = $1 AND action = 'offboarding.release'`, [off.workflowId]);
    expect(rows.map((r) => r.readback.probe?.access)).toEqual(['granted']);
    expect(await w.inventoryStatus(nhiId)).toBe('active');
    await h.expectNoIntents(off.workflowId, containment.workflowId);
    expect(await h.ledger(nhiId)).toEqual([]);
  });
});
