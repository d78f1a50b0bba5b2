// Leak containment on the local Temporal dev server (visibility finds running elevations), against
// real Postgres roles: assertions log in with the old and new passwords and read pg_stat_activity.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { Client } from 'pg';
import { createActivities } from '../../../activities';
import { createLeakActivities } from '../../../scenarios/leak/activities';
import { adminOptionGrantSql } from '../../../connectors/postgres-roles';
import type { Connector } from '../../../connectors/types';
import { commitIntent, intentsOf, releaseIntents, type IntentSpec } from '../../../enforcement/intents';
import { reconcile } from '../../../enforcement/reconciler';
import { projectRoot } from '../../../lib/paths';
import { JIT_WORKFLOW_TYPE, statusQuery as jitStatusQuery, type JitElevationInput } from '../../../scenarios/jit/contract';
import {
  alertSignal,
  LEAK_WORKFLOW_TYPE,
  leakWorkflowId,
  retrySignal,
  statusQuery,
  type LeakAlert,
  type LeakContainmentInput,
  type LeakStatus,
} from '../../../scenarios/leak/contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../../workflows/search-attributes';
import { waitFor } from '../../helpers/wait';
import { createTestWorld, type TestWorld } from '../../helpers/world';
import { keepHistory } from '../../helpers/histories';

let w: TestWorld;

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'local', runWorker: true });
}, 120_000);

afterAll(async () => w?.teardown());

function alert(over: Partial<LeakAlert> = {}): LeakAlert {
  const id = randomBytes(4).toString('hex');
  const now = new Date().toISOString();
  return {
    key: `generic:scanner:${id}|reported|`,
    source: 'generic',
    externalId: `generic:scanner:${id}`,
    label: 'scanner',
    action: 'reported',
    trigger: true,
    severity: 'high',
    fingerprints: [],
    detectedAt: now,
    receivedAt: now,
    summary: `generic scanner: ${id}`,
    matchedBy: 'nhi_id',
    ...over,
  };
}

async function contain(nhiId: string, a: LeakAlert, opts: { taskQueue?: string; workflowTaskTimeout?: string } = {}) {
  const input: LeakContainmentInput = { version: 1, nhiId };
  return w.env.client.workflow.signalWithStart(LEAK_WORKFLOW_TYPE, {
    taskQueue: opts.taskQueue ?? w.taskQueue,
    workflowId: leakWorkflowId(nhiId),
    args: [input],
    signal: alertSignal,
    signalArgs: [a],
    staticSummary: `Leak ${nhiId} (${a.label}, ${a.severity})`,
    typedSearchAttributes: [
      { key: NhiIdKey, value: nhiId },
      { key: ScenarioKey, value: 'leak' },
      { key: NhiStateKey, value: 'opening' },
    ],
    ...(opts.workflowTaskTimeout ? { workflowTaskTimeout: opts.workflowTaskTimeout } : {}),
  });
}

async function untilState(nhiId: string, state: LeakStatus['state']) {
  const h = w.env.client.workflow.getHandle(leakWorkflowId(nhiId));
  return waitFor(`leak ${nhiId} ${state}`, async () => {
    const s = await h.query(statusQuery);
    return s.state === state ? s : null;
  }, 30_000);
}

async function rotationsOf(nhiId: string) {
  const { rows } = await w.db.pool.query('SELECT rotation_id, status FROM rotations WHERE nhi_id = $1 ORDER BY created_at', [nhiId]);
  return rows as { rotation_id: string; status: string }[];
}

/** Every string in a value, with byte arrays (payload data in history) decoded as UTF-8. */
function allText(v: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 40 || v === null || v === undefined) return out;
  if (typeof v === 'string') out.push(v);
  else if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'));
  else if (Array.isArray(v)) for (const x of v) allText(x, out, depth + 1);
  else if (typeof v === 'object') for (const x of Object.values(v)) allText(x, out, depth + 1);
  return out;
}

test('generic alert: rotated, old password refused (28P01), new one works, an earlier session is terminated, incident closed', async () => {
  const nhiId = 'ci_deployer';
  const oldPassword = await w.activePassword(nhiId);
  const versionsBefore = (await w.secrets.list(nhiId)).length;
  expect(await w.login(nhiId, oldPassword)).toBe('ok');
  const session = await w.connectAs(nhiId, oldPassword);
  const { rows: pidRows } = await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = pidRows[0].pid;

  const handle = await contain(nhiId, alert({ severity: 'critical', label: 'trufflehog', evidenceUrl: 'https://ci.example.com/runs/1' }));
  const s: LeakStatus = await handle.result();
  await keepHistory(w.env.client, 'leak-contained', handle.workflowId);

  expect(s.state).toBe('contained');
  expect(s.verification).toMatchObject({ oldCredential: 'denied', oldCode: '28P01', newCredential: 'granted', preRotationSessions: 0 });
  expect(s.sessionsTerminated).toBeGreaterThanOrEqual(1);
  expect(s.receivedToContainedMs).toBeGreaterThanOrEqual(0);
  expect(s.timeline.map((t) => t.event)).toEqual(expect.arrayContaining(['alert', 'incident opened', 'rotating', 'rotated', 'sessions ended', 'verified', 'contained']));

  // The target itself: the old password is refused, the new one (from the store) logs in.
  expect(await w.login(nhiId, oldPassword)).toBe('28P01');
  const newPassword = await w.activePassword(nhiId);
  expect(newPassword).not.toBe(oldPassword);
  expect(await w.login(nhiId, newPassword)).toBe('ok');
  const alive = await w.estateAdmin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
  expect(alive.rowCount).toBe(0);
  await expect(session.query('SELECT 1')).rejects.toThrow();
  await session.end().catch(() => undefined);

  // One new version, the old one retired.
  const versions = await w.secrets.list(nhiId);
  expect(versions).toHaveLength(versionsBefore + 1);
  expect(versions.at(-1)).toMatchObject({ status: 'active', fingerprint: s.rotation!.newFingerprint });
  expect(versions.at(-2)).toMatchObject({ status: 'retired', fingerprint: s.rotation!.oldFingerprint });

  // The incident: closed, with the timeline and the evidence.
  const { rows: inc } = await w.db.pool.query('SELECT * FROM incidents WHERE id = $1', [s.incidentId]);
  expect(inc[0]).toMatchObject({ status: 'closed', nhi_id: nhiId, workflow_id: handle.workflowId, severity: 'critical' });
  expect(inc[0].closed_at).toBeTruthy();
  expect(inc[0].details.outcome).toBe('contained');
  expect(inc[0].details.receivedToContainedMs).toBe(s.receivedToContainedMs);
  expect(inc[0].timeline.map((t: { event: string }) => t.event)).toContain('contained');

  // Audit: every step, in order.
  const { rows: audit } = await w.db.pool.query('SELECT step_id, action, outcome, readback, details, target FROM audit_events WHERE workflow_id = $1 ORDER BY seq', [handle.workflowId]);
  const actions = audit.map((a) => a.action);
  for (const a of ['leak.incident_open', 'leak.end_elevations', 'credential.stage', 'credential.rotate', 'sessions.invalidate', 'leak.verify', 'leak.incident_close']) expect(actions).toContain(a);
  expect(actions.indexOf('credential.rotate')).toBeLessThan(actions.indexOf('sessions.invalidate'));
  expect(actions.indexOf('sessions.invalidate')).toBeLessThan(actions.indexOf('leak.verify'));

  expect(w.notifier.sent.filter((n) => n.workflowId === handle.workflowId).map((n) => n.kind)).toEqual(expect.arrayContaining(['leak.detected', 'leak.contained']));

  // Temporal UI: summary and search attributes.
  const d = await handle.describe();
  expect(await d.staticSummary()).toBe('Leak ci_deployer (trufflehog, critical)');
  expect(d.typedSearchAttributes.get(NhiStateKey)).toBe('contained');
  expect(d.typedSearchAttributes.get(ScenarioKey)).toBe('leak');

  // Secrets hygiene: neither value in the history, the audit rows, the incident or the status.
  const history = await handle.fetchHistory();
  const texts = [...allText(history), JSON.stringify(audit), JSON.stringify(inc), JSON.stringify(s), JSON.stringify(w.notifier.sent)];
  for (const secret of [oldPassword, newPassword]) {
    expect(texts.some((t) => t.includes(secret))).toBe(false);
  }
});

test('two alerts from two sources for one NHI: one containment, one rotation, both as evidence', async () => {
  const nhiId = 'partner_acme';
  const versionsBefore = (await w.secrets.list(nhiId)).length;
  const gh = alert({ source: 'github', externalId: 'github:acme/partner#7', label: 'github #7', key: 'github:acme/partner#7|created|d1', severity: 'high', matchedBy: 'exposure_hint' });
  const gg = alert({ source: 'gitguardian', externalId: 'gitguardian:99', label: 'gitguardian #99', key: 'gitguardian:99|incident_triggered|x', severity: 'critical', matchedBy: 'fingerprint' });
  const [h1, h2] = await Promise.all([contain(nhiId, gh), contain(nhiId, gg)]);
  expect(h1.workflowId).toBe(h2.workflowId);
  // A redelivery of the first one joins as a repeat, not as new evidence.
  await contain(nhiId, gh).catch(() => undefined);
  const s: LeakStatus = await w.env.client.workflow.getHandle(leakWorkflowId(nhiId)).result();
  await keepHistory(w.env.client, 'leak-two-alerts-merged', leakWorkflowId(nhiId));
  expect(s.state).toBe('contained');
  expect(s.alerts.map((a) => a.source).sort()).toEqual(['gitguardian', 'github']);
  expect(s.severity).toBe('critical');
  expect(await w.secrets.list(nhiId)).toHaveLength(versionsBefore + 1);
  expect((await rotationsOf(nhiId)).filter((r) => r.status === 'activated')).toHaveLength(1);
  const { rows } = await w.db.pool.query(`SELECT count(*)::int AS n FROM incidents WHERE nhi_id = $1 AND workflow_id = $2`, [nhiId, leakWorkflowId(nhiId)]);
  expect(rows[0].n).toBe(1);
});

test('a running JIT elevation of the NHI is revoked (membership gone in pg_auth_members)', async () => {
  await w.addNhi({ id: 'svc_etl', kind: 'service_account', criticality: 'medium' });
  await w.issueCredential('svc_etl');
  const input: JitElevationInput = {
    version: 1,
    nhiId: 'svc_etl',
    entitlements: ['estate_readonly'],
    justification: 'nightly backfill of reports',
    durationMinutes: 120,
    requestedBy: 'alice',
    requestedAt: new Date().toISOString(),
    settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 2 },
  };
  const jitId = `jit-svc_etl-${randomBytes(4).toString('hex')}`;
  const jit = await w.env.client.workflow.start(JIT_WORKFLOW_TYPE, {
    taskQueue: w.taskQueue,
    workflowId: jitId,
    args: [{ ...input, authority: w.sign(jitId, 'start', input.requestedBy) }],
    typedSearchAttributes: [
      { key: NhiIdKey, value: 'svc_etl' },
      { key: ScenarioKey, value: 'jit' },
    ],
  });
  await waitFor('elevation active', async () => (await jit.query(jitStatusQuery)).state === 'active');
  expect(await w.memberships('svc_etl')).toContain(w.ent('estate_readonly'));
  // Visibility is eventually consistent: the containment lists running elevations through it.
  await waitFor('elevation visible', async () => {
    for await (const _ of w.env.client.workflow.list({ query: `WorkflowType = "jitElevation" AND NhiId = "svc_etl" AND ExecutionStatus = "Running"` })) return true;
    return false;
  });

  const s: LeakStatus = await (await contain('svc_etl', alert())).result();
  expect(s.state).toBe('contained');
  expect(s.elevations).toEqual([{ workflowId: jit.workflowId, outcome: 'revoked' }]);
  expect(await w.memberships('svc_etl')).not.toContain(w.ent('estate_readonly'));
  expect((await jit.result()).endedBy).toBe('leak-containment');
});

test('the target refuses the password change: old credential still works, incident escalated; a retry after the fix contains it', async () => {
  const nhiId = 'svc_locked';
  const role = await w.addNhi({ id: nhiId, kind: 'service_account', criticality: 'high' });
  const oldPassword = await w.issueCredential(nhiId);
  const activeBefore = await w.secrets.active(nhiId);
  // The connector loses its ADMIN OPTION on the role: Postgres no longer lets it ALTER ROLE.
  await w.estateAdmin.query(`REVOKE ADMIN OPTION FOR ${role} FROM ${w.connectorRole}`);
  let restored = false;
  try {
    const handle = await contain(nhiId, alert({ severity: 'critical' }));
    const s = await untilState(nhiId, 'escalated');
    expect(s.escalated).toBe(true);
    expect(s.failure).toMatch(/not administered|permission|privilege/i);
    expect(s.rotation).toBeUndefined();

    // Never stranded: the old credential still logs in, and it is still the active version.
    expect(await w.login(nhiId, oldPassword)).toBe('ok');
    expect((await w.secrets.active(nhiId))?.ref).toBe(activeBefore!.ref);
    const staged = (await w.secrets.list(nhiId)).filter((v) => v.ref !== activeBefore!.ref);
    expect(staged.map((v) => v.status)).toEqual(['discarded']);
    await waitFor('incident escalated', async () => {
      const { rows } = await w.db.pool.query('SELECT status FROM incidents WHERE id = $1', [s.incidentId]);
      return rows[0]?.status === 'escalated';
    });
    const { rows: audit } = await w.db.pool.query('SELECT action, outcome FROM audit_events WHERE workflow_id = $1 ORDER BY seq', [handle.workflowId]);
    expect(audit).toEqual(expect.arrayContaining([{ action: 'credential.rotate_compensate', outcome: 'discarded' }, { action: 'leak.escalate', outcome: 'escalated' }]));
    await waitFor('escalation notified', async () => w.notifier.sent.some((n) => n.kind === 'escalation' && n.nhiId === nhiId));

    // Someone fixes the privilege and asks for a retry.
    await w.estateAdmin.query(adminOptionGrantSql(w.roles, role, w.connectorRole));
    restored = true;
    await handle.signal(retrySignal, { by: 'oncall', reason: 'admin option restored' });
    const done: LeakStatus = await handle.result();
    await keepHistory(w.env.client, 'leak-rotation-failed-compensated-retried', handle.workflowId);
    expect(done.state).toBe('contained');
    expect(done.attempts).toBe(2);
    expect(await w.login(nhiId, oldPassword)).toBe('28P01');
    expect(await w.login(nhiId, await w.activePassword(nhiId))).toBe('ok');
    const { rows: inc } = await w.db.pool.query('SELECT status FROM incidents WHERE id = $1', [done.incidentId]);
    expect(inc[0].status).toBe('closed');
  } finally {
    if (!restored) {
      await w.estateAdmin.query(adminOptionGrantSql(w.roles, role, w.connectorRole));
      await w.env.client.workflow.getHandle(leakWorkflowId(nhiId)).terminate('test cleanup').catch(() => undefined);
    }
  }
});

// A worker in a child process that changes the password at the target and then hangs, so that it
// can be killed (SIGKILL) after the change and before the workflow hears about it.
const CRASH_WORKER = `
const { NativeConnection, Worker } = require('@temporalio/worker');
const { createActivities } = require('./activities');
const { createPool } = require('./lib/db');
const { createEstateConnector } = require('./lib/estate');
const { MemoryNotifier } = require('./lib/notifier');
const { loadNhiPolicies } = require('./lib/policy-decisions');
const { TableSecretStore } = require('./lib/secret-store');
const { WORKFLOWS_PATH } = require('./workers/worker');
(async () => {
  const c = JSON.parse(process.env.CRASH_WORKER);
  const pool = createPool(c.dbUrl);
  const connector = createEstateConnector({ url: c.estateUrl, rolePrefix: c.prefix });
  const real = createActivities({ pool, connectors: { get: () => connector }, secrets: new TableSecretStore(pool, Buffer.from(c.key, 'base64')), policy: loadNhiPolicies('policies'), notifier: new MemoryNotifier() });
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: c.address }),
    namespace: c.namespace, taskQueue: c.taskQueue, maxCachedWorkflows: 0, workflowsPath: WORKFLOWS_PATH,
    activities: { ...real, applyLeakCredential: async (a) => { await real.applyLeakCredential(a); process.send('applied'); return new Promise(() => {}); } },
  });
  process.send('ready');
  await worker.run();
})().catch((err) => { console.error(err); process.exit(1); });
`;

test('worker killed (SIGKILL) mid-containment, after the password changed: the next worker completes it with exactly one rotation', async () => {
  const nhiId = 'svc_crash';
  await w.addNhi({ id: nhiId, kind: 'service_account', criticality: 'high' });
  const oldPassword = await w.issueCredential(nhiId);
  const versionsBefore = (await w.secrets.list(nhiId)).length;
  // Its own task queue, so only the doomed worker can pick the containment up at first.
  const queue = `${w.taskQueue}-crash`;
  const child = spawn(process.execPath, ['-r', '@swc-node/register', '-e', CRASH_WORKER], {
    cwd: projectRoot,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: {
      ...process.env,
      CRASH_WORKER: JSON.stringify({ dbUrl: w.db.url, estateUrl: w.estateUrl, prefix: w.prefix, key: w.secretKey.toString('base64'), address: w.env.address, namespace: w.env.namespace ?? 'default', taskQueue: queue }),
    },
  });
  const messages: string[] = [];
  child.on('message', (m) => messages.push(String(m)));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    await waitFor('crash worker ready', async () => messages.includes('ready'), 60_000);
    // A short workflow task timeout: the task the killed worker held is handed on quickly.
    const handle = await contain(nhiId, alert(), { taskQueue: queue, workflowTaskTimeout: '2s' });
    await waitFor('password changed at the target', async () => messages.includes('applied'));
    expect(await w.login(nhiId, oldPassword)).toBe('28P01');
    child.kill('SIGKILL');
    await exited;

    const second = await w.createWorker({}, { taskQueue: queue });
    const secondRunning = second.run();
    try {
      const s: LeakStatus = await handle.result();
      expect(s.state).toBe('contained');
      expect(s.verification).toMatchObject({ oldCredential: 'denied', newCredential: 'granted' });
      expect(await rotationsOf(nhiId)).toEqual([expect.objectContaining({ status: 'activated' })]);
      const versions = await w.secrets.list(nhiId);
      expect(versions).toHaveLength(versionsBefore + 1);
      expect(versions.map((v) => v.status)).toEqual(['retired', 'active']);
      expect(await w.login(nhiId, await w.activePassword(nhiId))).toBe('ok');
    } finally {
      second.shutdown();
      await secondRunning;
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}, 120_000);

// ---------------------------------------------------------------------------------------------
// Containment under a restriction another scenario holds (issue 9, case 4), and the quarantine.

/** Commit (or release) another workflow's intent on the NHI and reconcile, as that scenario would. */
async function intent(nhiId: string, owner: string, change: { commit: IntentSpec } | { release: true }) {
  return reconcile(
    { pool: w.db.pool, connectors: w.deps.connectors },
    nhiId,
    { workflowId: owner, stepId: `test-${randomBytes(4).toString('hex')}`, scenario: 'test', actor: 'test', reason: 'test' },
    async (c) => {
      if ('commit' in change) await commitIntent(c, nhiId, owner, change.commit);
      else await releaseIntents(c, nhiId, owner);
    },
  );
}

const THROTTLE = 'anomaly-test';

async function pidOf(c: Client): Promise<number> {
  return (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
}

async function alive(pid: number): Promise<boolean> {
  return ((await w.estateAdmin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount ?? 0) > 0;
}

/** Two sessions opened with the (soon leaked) password, as an attacker would hold them. */
async function attackerSessions(nhiId: string, password: string) {
  const sessions = [await w.connectAs(nhiId, password), await w.connectAs(nhiId, password)];
  return { sessions, pids: await Promise.all(sessions.map(pidOf)), close: () => Promise.all(sessions.map((x) => x.end().catch(() => undefined))) };
}

async function auditOf(workflowId: string, incidentId: string) {
  const { rows } = await w.db.pool.query('SELECT step_id, action, outcome, readback FROM audit_events WHERE workflow_id = $1 AND step_id LIKE $2 ORDER BY seq', [workflowId, `${incidentId}:%`]);
  return rows as { step_id: string; action: string; outcome: string; readback: any }[];
}

test('CONNECTION LIMIT 2 held by a throttle, two attacker sessions on the old password: their sessions end before any probe, contained', async () => {
  const nhiId = 'svc_limited';
  await w.addNhi({ id: nhiId, criticality: 'high' });
  const oldPassword = await w.issueCredential(nhiId);
  const throttled = await intent(nhiId, THROTTLE, { commit: { kind: 'restrict', restriction: 'throttle', level: 1, connectionLimit: 2 } });
  expect(throttled.observed.connectionLimit).toBe(2);
  expect(await w.roleState(nhiId)).toMatchObject({ rolcanlogin: true, rolconnlimit: 2 });
  const attacker = await attackerSessions(nhiId, oldPassword);
  try {
    // The limit is taken: a third login, whatever its password, is refused.
    expect(await w.login(nhiId, oldPassword)).toBe('53300');

    const handle = await contain(nhiId, alert({ severity: 'critical' }));
    const s: LeakStatus = await handle.result();
    expect(s.state).toBe('contained');
    expect(s.attempts).toBe(1);
    expect(s.sessionsTerminated).toBe(2);
    expect(s.verification).toMatchObject({ oldCredential: 'denied', oldCode: '28P01', newCredential: 'granted', preRotationSessions: 0 });
    expect(s.verification?.limitedBy).toBeUndefined();

    // The target: the attacker's sessions are gone, the old password is wrong, the new one logs in.
    for (const pid of attacker.pids) expect(await alive(pid)).toBe(false);
    for (const x of attacker.sessions) await expect(x.query('SELECT 1')).rejects.toThrow();
    expect(await w.login(nhiId, oldPassword)).toBe('28P01');
    const newPassword = await w.activePassword(nhiId);
    expect(await w.login(nhiId, newPassword)).toBe('ok');
    // The throttle is not the containment's to lift.
    expect(await w.roleState(nhiId)).toMatchObject({ rolcanlogin: true, rolconnlimit: 2 });

    // Sessions were ended (only those from before the rotation) before anything was probed.
    const audit = await auditOf(handle.workflowId, s.incidentId!);
    const actions = audit.map((a) => a.action);
    expect(actions.indexOf('credential.rotate')).toBeLessThan(actions.indexOf('sessions.invalidate'));
    expect(actions.indexOf('sessions.invalidate')).toBeLessThan(actions.indexOf('leak.verify'));
    expect(audit.find((a) => a.action === 'sessions.invalidate')?.readback).toMatchObject({ terminated: 2, preRotationSessions: 0 });

    // Once the throttle is released, the new credential works without a limit; the old one still not.
    const released = await intent(nhiId, THROTTLE, { release: true });
    expect(released.observed).toMatchObject({ canLogin: true, connectionLimit: -1 });
    expect(await w.roleState(nhiId)).toMatchObject({ rolcanlogin: true, rolconnlimit: -1 });
    expect(await w.login(nhiId, newPassword)).toBe('ok');
    expect(await w.login(nhiId, oldPassword)).toBe('28P01');
    expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
  } finally {
    await attacker.close();
    await intent(nhiId, THROTTLE, { release: true });
  }
});

test('NOLOGIN held by a level-2 throttle: contained, the attacker sessions ended, the new credential verified only up to the restriction, and it says why', async () => {
  const nhiId = 'svc_nologin';
  await w.addNhi({ id: nhiId, criticality: 'high' });
  const oldPassword = await w.issueCredential(nhiId);
  // Sessions opened before the throttle survive NOLOGIN.
  const attacker = await attackerSessions(nhiId, oldPassword);
  try {
    await intent(nhiId, THROTTLE, { commit: { kind: 'restrict', restriction: 'throttle', level: 2 } });
    expect((await w.roleState(nhiId)).rolcanlogin).toBe(false);
    expect(await w.login(nhiId, oldPassword)).toBe('28000');
    for (const pid of attacker.pids) expect(await alive(pid)).toBe(true);

    const handle = await contain(nhiId, alert({ severity: 'critical' }));
    const s: LeakStatus = await handle.result();
    expect(s.state).toBe('contained');
    expect(s.sessionsTerminated).toBe(2);
    expect(s.verification).toMatchObject({
      oldCredential: 'denied',
      oldCode: '28P01',
      newCredential: 'inconclusive',
      newCode: '28000',
      preRotationSessions: 0,
      limitedBy: { restriction: 'login_disabled', owners: [THROTTLE] },
    });
    expect(s.verification?.limitedBy?.note).toMatch(/verified only up to the login restriction.*anomaly-test/);
    expect(s.timeline.find((t) => t.event === 'verified')?.detail).toContain(s.verification!.limitedBy!.note);

    // The target: attacker sessions gone; the old password is wrong (checked before login is refused);
    // the new one is right and refused only because login is off.
    for (const pid of attacker.pids) expect(await alive(pid)).toBe(false);
    expect(await w.login(nhiId, oldPassword)).toBe('28P01');
    const newPassword = await w.activePassword(nhiId);
    expect(await w.login(nhiId, newPassword)).toBe('28000');
    expect(await w.roleState(nhiId)).toMatchObject({ rolcanlogin: false });

    // The incident and the audit say so too.
    const { rows: inc } = await w.db.pool.query('SELECT status, details FROM incidents WHERE id = $1', [s.incidentId]);
    expect(inc[0].status).toBe('closed');
    expect(inc[0].details.verification.limitedBy).toMatchObject({ restriction: 'login_disabled', owners: [THROTTLE] });
    const verify = (await auditOf(handle.workflowId, s.incidentId!)).find((a) => a.action === 'leak.verify');
    expect(verify).toMatchObject({ outcome: 'verified_up_to_restriction', readback: { newProbe: { access: 'inconclusive', code: '28000', credentialAccepted: true } } });

    // Released, the new credential logs in.
    await intent(nhiId, THROTTLE, { release: true });
    expect((await w.roleState(nhiId)).rolcanlogin).toBe(true);
    expect(await w.login(nhiId, newPassword)).toBe('ok');
    expect(await w.login(nhiId, oldPassword)).toBe('28P01');
  } finally {
    await attacker.close();
    await intent(nhiId, THROTTLE, { release: true });
  }
});

describe('with steps held or broken on purpose', () => {
  // One worker for these tests on its own queue; each test hooks steps for its own NHI only.
  const queue = () => `${w.taskQueue}-inject`;
  const hooks: {
    afterSetCredential: Map<string, () => Promise<void>>;
    beforeVerify: Map<string, () => Promise<void>>;
  } = { afterSetCredential: new Map(), beforeVerify: new Map() };
  let worker: Worker;
  let running: Promise<void>;

  beforeAll(async () => {
    const real = createActivities(w.deps);
    // The target as the activities see it: setCredential does its work, then the hook runs.
    const target = new Proxy(w.connector as Connector, {
      get(t, key) {
        if (key === 'setCredential') {
          return async (identity: string, value: string) => {
            await t.setCredential(identity, value);
            const nhiId = [...hooks.afterSetCredential.keys()].find((id) => w.role(id) === identity);
            if (nhiId) await hooks.afterSetCredential.get(nhiId)!();
          };
        }
        const v = Reflect.get(t, key, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    const hooked = createLeakActivities({ ...w.deps, connectors: { get: () => target, configuredConnectors: () => ['postgres'] } });
    worker = await w.createWorker(
      {
        applyLeakCredential: hooked.applyLeakCredential,
        verifyLeakContainment: async (a: { nhiId: string }) => {
          await hooks.beforeVerify.get(a.nhiId)?.();
          return real.verifyLeakContainment(a as Parameters<typeof real.verifyLeakContainment>[0]);
        },
      },
      { taskQueue: queue() },
    );
    running = worker.run();
  }, 60_000);

  afterAll(async () => {
    worker?.shutdown();
    await running;
  });

  test('cancelled right after the new password was set at the target (limit taken, probe refused 53300): the credential is activated, not discarded; the stored one logs in', async () => {
    const nhiId = 'svc_cancel_set';
    await w.addNhi({ id: nhiId, criticality: 'high' });
    const oldPassword = await w.issueCredential(nhiId);
    const oldRef = (await w.secrets.active(nhiId))!.ref;
    await intent(nhiId, THROTTLE, { commit: { kind: 'restrict', restriction: 'throttle', level: 1, connectionLimit: 2 } });
    const attacker = await attackerSessions(nhiId, oldPassword);
    let set!: () => void;
    const wasSet = new Promise<void>((r) => (set = r));
    // After the target took the new password, the step hangs until the workflow cancels it: the ledger never hears of it.
    hooks.afterSetCredential.set(nhiId, async () => {
      set();
      await Promise.race([Context.current().cancelled, new Promise((_, reject) => setTimeout(() => reject(new Error('not cancelled in time')), 10_000))]);
    });
    try {
      // A short workflow task timeout: the cancel reaches a workflow task that waits on a held step sooner.
      const handle = await contain(nhiId, alert({ severity: 'critical' }), { taskQueue: queue(), workflowTaskTimeout: '2s' });
      await wasSet;
      // The target holds the new password already: the old one is wrong there.
      expect(await w.login(nhiId, oldPassword)).toBe('28P01');
      expect((await rotationsOf(nhiId)).map((r) => r.status)).toEqual(['staged']);
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow(WorkflowFailedError);

      // The compensation probed the staged value: refused for the connection limit (the attacker's
      // two sessions), which is inconclusive — the target may hold it, so it became the active one.
      expect((await rotationsOf(nhiId)).map((r) => r.status)).toEqual(['activated']);
      const versions = await w.secrets.list(nhiId);
      expect(versions.find((v) => v.ref === oldRef)?.status).toBe('retired');
      expect(versions.at(-1)?.status).toBe('active');
      const { rows } = await w.db.pool.query(`SELECT outcome, readback FROM audit_events WHERE workflow_id = $1 AND action = 'credential.rotate_compensate'`, [handle.workflowId]);
      expect(rows).toEqual([{ outcome: 'activated_instead', readback: { stagedCredential: { access: 'inconclusive', code: '53300', credentialAccepted: true } } }]);
      const s = await handle.query(statusQuery);
      expect(s.state).toBe('escalated');
      expect(s.failure).toMatch(/cancelled/);

      // The stored active credential is the one the target holds: once a slot is free it logs in.
      const stored = await w.activePassword(nhiId);
      expect(stored).not.toBe(oldPassword);
      expect(await w.login(nhiId, stored)).toBe('53300');
      await attacker.close();
      await waitFor('attacker sessions gone', async () => !(await Promise.all(attacker.pids.map(alive))).some(Boolean));
      expect(await w.login(nhiId, stored)).toBe('ok');
      expect(await w.login(nhiId, oldPassword)).toBe('28P01');
      // The quarantine ended with the workflow.
      expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
    } finally {
      hooks.afterSetCredential.delete(nhiId);
      await attacker.close();
      await intent(nhiId, THROTTLE, { release: true });
    }
  });

  test('quarantine: a grant intent committed during the containment is withheld at the target, and present again once it ends', async () => {
    const nhiId = 'svc_quarantine';
    await w.addNhi({ id: nhiId, criticality: 'medium' });
    await w.issueCredential(nhiId);
    let reached!: () => void;
    const atVerify = new Promise<void>((r) => (reached = r));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    hooks.beforeVerify.set(nhiId, async () => {
      reached();
      await gate;
    });
    const jit = `jit-${nhiId}-test`;
    try {
      const handle = await contain(nhiId, alert(), { taskQueue: queue() });
      await atVerify;
      // (The ledger, not the status query: a query waits while the workflow task holds a running step.)
      expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([{ nhiId, kind: 'restrict', subject: 'quarantine' }]);

      // An elevation asks for access while the containment runs: its intent is kept, its access withheld.
      const during = await intent(nhiId, jit, { commit: { kind: 'grant', entitlement: 'estate_readonly' } });
      expect(during.desired.withheld).toEqual([{ entitlement: 'estate_readonly', by: [handle.workflowId] }]);
      expect(during.observed.entitlements).toEqual([]);
      expect(await w.memberships(nhiId)).toEqual([]);

      open();
      const s: LeakStatus = await handle.result();
      expect(s.state).toBe('contained');
      expect(s.quarantine).toMatchObject({ state: 'released', withheld: [], entitlements: ['estate_readonly'] });
      expect(s.timeline.map((t) => t.event)).toEqual(expect.arrayContaining(['quarantined', 'quarantine released']));
      // Released: the elevation's access is there again at the target.
      expect(await w.memberships(nhiId)).toEqual([w.ent('estate_readonly')]);
      expect(await intentsOf(w.db.pool, handle.workflowId)).toEqual([]);
    } finally {
      open();
      hooks.beforeVerify.delete(nhiId);
      await intent(nhiId, jit, { release: true });
    }
    expect(await w.memberships(nhiId)).toEqual([]);
  });
});
