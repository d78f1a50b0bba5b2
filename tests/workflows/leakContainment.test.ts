// Leak containment on the local Temporal dev server (visibility finds running elevations), against
// real Postgres roles: assertions log in with the old and new passwords and read pg_stat_activity.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { adminOptionGrantSql } from '../../connectors/postgres-roles';
import { projectRoot } from '../../lib/paths';
import { JIT_WORKFLOW_TYPE, statusQuery as jitStatusQuery, type JitElevationInput } from '../../workflows/jitElevation.contract';
import {
  alertSignal,
  LEAK_WORKFLOW_TYPE,
  leakWorkflowId,
  retrySignal,
  statusQuery,
  type LeakAlert,
  type LeakContainmentInput,
  type LeakStatus,
} from '../../workflows/leakContainment.contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { waitFor } from '../helpers/wait';
import { createTestWorld, type TestWorld } from '../helpers/world';

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
  const jit = await w.env.client.workflow.start(JIT_WORKFLOW_TYPE, {
    taskQueue: w.taskQueue,
    workflowId: `jit-svc_etl-${randomBytes(4).toString('hex')}`,
    args: [input],
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
const { SecretStore } = require('./lib/secret-store');
const { WORKFLOWS_PATH } = require('./workers/worker');
(async () => {
  const c = JSON.parse(process.env.CRASH_WORKER);
  const pool = createPool(c.dbUrl);
  const connector = createEstateConnector({ url: c.estateUrl, rolePrefix: c.prefix });
  const real = createActivities({ pool, connectors: { get: () => connector }, secrets: new SecretStore(pool, Buffer.from(c.key, 'base64')), policy: loadNhiPolicies('policies'), notifier: new MemoryNotifier() });
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
