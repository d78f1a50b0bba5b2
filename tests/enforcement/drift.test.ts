// Drift on a real estate: access changed by hand at the target is reverted or reported as policy
// says, audited, and notified; the scheduled workflow runs the same check over the inventory.
import { commitIntent } from '../../enforcement/intents';
import { checkDrift, releaseOrphanedIntents } from '../../enforcement/drift';
import { activeIntents } from '../../enforcement/intents';
import { reconcile } from '../../enforcement/reconciler';
import { getNhi } from '../../lib/inventory';
import type { DriftCheckResult } from '../../enforcement/drift-contract';
import { createTestWorld, type TestWorld } from '../helpers/world';
import { keepHistory } from '../helpers/histories';

let w: TestWorld;
let run = 0;
const deps = () => ({ pool: w.db.pool, connectors: w.deps.connectors, policy: w.deps.policy, notifier: w.notifier });
const ctx = (nhiId: string) => ({ workflowId: `setup-${nhiId}`, stepId: `s${++run}`, scenario: 'test', actor: 'tester', reason: 'setup' });
const nhi = async (id: string) => (await getNhi(w.db.pool, id))!;
const driftAudit = async (nhiId: string) =>
  (await w.db.pool.query(`SELECT outcome, details FROM audit_events WHERE nhi_id = $1 AND action = 'access.drift' ORDER BY seq`, [nhiId])).rows;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping', runWorker: true });
}, 60_000);
afterAll(async () => {
  await w?.teardown();
});

test('an NHI never reconciled gets its baseline captured; then it is in sync and nothing is audited as drift', async () => {
  expect((await checkDrift(deps(), await nhi('partner_acme'), 'run-1')).outcome).toBe('baseline_captured');
  expect((await checkDrift(deps(), await nhi('partner_acme'), 'run-2')).outcome).toBe('in_sync');
  expect(await driftAudit('partner_acme')).toEqual([]);
});

test('a membership granted by hand is reverted, audited with what differed, and notified', async () => {
  await w.estateAdmin.query(`GRANT ${w.ent('estate_admin')} TO ${w.role('partner_acme')} GRANTED BY ${w.connectorRole}`);
  const r = await checkDrift(deps(), await nhi('partner_acme'), 'run-3');
  expect(r).toMatchObject({ outcome: 'reverted', difference: { extra: ['estate_admin'], missing: [] } });
  expect(await w.memberships('partner_acme')).toEqual([w.ent('estate_readonly')]);
  expect(await driftAudit('partner_acme')).toEqual([{ outcome: 'reverted', details: { difference: { extra: ['estate_admin'], missing: [] } } }]);
  expect(w.notifier.sent.some((n) => n.kind === 'drift.reverted' && n.nhiId === 'partner_acme')).toBe(true);
});

test('an offboarded NHI whose login was turned back on by hand is put back; its intents decide, not the last change', async () => {
  await reconcile(deps(), 'ci_deployer', ctx('ci_deployer'), (c) => commitIntent(c, 'ci_deployer', 'off-test', { kind: 'restrict', restriction: 'offboarded' }));
  await w.estateAdmin.query(`ALTER ROLE ${w.role('ci_deployer')} LOGIN`);
  await w.estateAdmin.query(`GRANT ${w.ent('estate_readonly')} TO ${w.role('ci_deployer')} GRANTED BY ${w.connectorRole}`);
  const r = await checkDrift(deps(), await nhi('ci_deployer'), 'run-4');
  expect(r).toMatchObject({ outcome: 'reverted', difference: { extra: ['estate_readonly'], login: { observed: true, desired: false } } });
  expect(await w.roleState('ci_deployer')).toMatchObject({ rolcanlogin: false, memberships: [] });
});

test('tagged drift-report-only: the drift is recorded and reported, the target is left as it is', async () => {
  await w.addNhi({ id: 'svc_watched', tags: ['drift-report-only'] });
  await reconcile(deps(), 'svc_watched', ctx('svc_watched'));
  await w.estateAdmin.query(`GRANT ${w.ent('estate_writer')} TO ${w.role('svc_watched')} GRANTED BY ${w.connectorRole}`);
  const r = await checkDrift(deps(), await nhi('svc_watched'), 'run-5');
  expect(r.outcome).toBe('reported');
  expect(await w.memberships('svc_watched')).toEqual([w.ent('estate_writer')]);
  expect((await driftAudit('svc_watched')).map((a) => a.outcome)).toEqual(['reported']);
  expect(w.notifier.sent.find((n) => n.kind === 'drift.reported' && n.nhiId === 'svc_watched')?.text).toMatch(/drift-report-only/);
});

test('the scheduled workflow checks the whole inventory in one run', async () => {
  const workflowId = `drift-${Date.now()}`;
  const r: DriftCheckResult = await w.env.client.workflow.execute('driftReconciler', {
    taskQueue: w.taskQueue,
    workflowId,
    args: [{ version: 1 }],
  });
  expect(r.checked).toBe(5);
  expect(r.errors).toEqual([]);
  // Never reconciled before: their standing access is captured, nothing changed.
  expect([...r.baselineCaptured].sort()).toEqual(['agent_reports', 'svc_payments']);
  expect(r.inSync).toBe(2);
  expect(r.reverted).toEqual([]);
  expect(r.reported).toEqual(['svc_watched']);
  await keepHistory(w.env.client, 'drift-whole-inventory', workflowId);
  expect(await w.memberships('svc_watched')).toEqual([w.ent('estate_writer')]);
});

test('intents of workflows that no longer run: grants and quarantines are released, a throttle is reported and kept, offboarded stays', async () => {
  const id = 'svc_orphans';
  await w.addNhi({ id });
  // None of these owners runs (never started, or terminated by an operator).
  await reconcile(deps(), id, ctx(id), async (c) => {
    await commitIntent(c, id, 'jit-gone', { kind: 'grant', entitlement: 'estate_admin' });
    await commitIntent(c, id, 'leak-gone', { kind: 'restrict', restriction: 'quarantine' });
    await commitIntent(c, id, 'anomaly-gone', { kind: 'restrict', restriction: 'throttle', level: 1, connectionLimit: 2 });
  });
  const withTemporal = { ...deps(), temporal: { client: w.env.client } };
  const r = await releaseOrphanedIntents(withTemporal, await nhi(id), 'run-orphans');
  expect(r).toEqual({ released: ['jit-gone:estate_admin', 'leak-gone:quarantine'], reported: ['anomaly-gone:throttle'] });
  const left = await activeIntents(w.db.pool, id);
  expect(left.grants).toEqual([]);
  expect(left.restrictions.map((x) => x.owner)).toEqual(['anomaly-gone']);
  expect(await w.roleState(id)).toMatchObject({ rolconnlimit: 2, memberships: [] });
  expect(w.notifier.sent.some((n) => n.kind === 'intent.orphaned' && n.nhiId === id && /anomaly-gone/.test(n.text))).toBe(true);
  const { rows } = await w.db.pool.query(`SELECT outcome FROM audit_events WHERE nhi_id = $1 AND action = 'intent.orphaned'`, [id]);
  expect(rows).toEqual([{ outcome: 'reported' }]);

  // ci_deployer's 'off-test' offboarded intent (above) has no running owner either: it stays.
  expect(await releaseOrphanedIntents(withTemporal, await nhi('ci_deployer'), 'run-orphans-2')).toEqual({ released: [], reported: [] });
  expect((await activeIntents(w.db.pool, 'ci_deployer')).restrictions.map((x) => x.restriction)).toEqual(['offboarded']);
});
