// The interaction suite's harness: each scenario started the way its front door starts it (business
// key, search attributes), on the local dev server with a real worker, and the target read straight
// from Postgres. Every pair test calls `expectTarget` after each step and `expectNoIntents` at the end.
import { randomBytes } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import type { Client } from 'pg';
import { activeIntents, intentsOf } from '../../enforcement/intents';
import {
  anomalyWorkflowId,
  clearUpdate,
  statusQuery as anomalyStatusQuery,
  type AnomalySettings,
  type AnomalyState,
  type AnomalyStatus,
} from '../../scenarios/anomaly/contract';
import { raiseAnomaly } from '../../scenarios/anomaly/usage';
import {
  approveUpdate,
  JIT_WORKFLOW_TYPE,
  jitWorkflowId,
  revokeUpdate,
  statusQuery as jitStatusQuery,
  type JitElevationInput,
  type JitState,
  type JitStatus,
} from '../../scenarios/jit/contract';
import { alertSignal, LEAK_WORKFLOW_TYPE, leakWorkflowId, statusQuery as leakStatusQuery, type LeakAlert, type LeakContainmentInput, type LeakStatus } from '../../scenarios/leak/contract';
import {
  abortUpdate,
  OFFBOARDING_WORKFLOW_TYPE,
  offboardingWorkflowId,
  statusQuery as offboardingStatusQuery,
  type OffboardingInput,
  type OffboardingState,
  type OffboardingStatus,
} from '../../scenarios/offboarding/contract';
import { NhiIdKey, NhiStateKey, RequestedByKey, ScenarioKey } from '../../workflows/search-attributes';
import { waitFor } from '../helpers/wait';
import type { TestWorld } from '../helpers/world';

export type Entitlement = 'estate_readonly' | 'estate_writer' | 'estate_admin';
export const WAIT_MS = 30_000;

export function createHarness(w: TestWorld) {
  const client = () => w.env.client;

  /**
   * A fresh service account with this standing access (granted by the connector before any
   * reconcile, so the first reconcile captures it as the baseline) and a password in the store.
   */
  async function freshNhi(name: string, opts: { baseline?: Entitlement[]; criticality?: string } = {}) {
    const nhiId = `${name}_${randomBytes(2).toString('hex')}`;
    const role = await w.addNhi({ id: nhiId, kind: 'service_account', criticality: opts.criticality ?? 'high' });
    for (const e of opts.baseline ?? []) await w.connector.grant(role, e);
    const password = await w.issueCredential(nhiId);
    return { nhiId, password };
  }

  /** The target, as Postgres says: memberships (logical names), login, connection limit. */
  async function expectTarget(nhiId: string, want: { groups: Entitlement[]; login: boolean; limit: number }) {
    const r = await w.roleState(nhiId);
    expect({ groups: r.memberships.map((m) => m.group), login: r.rolcanlogin, limit: r.rolconnlimit }).toEqual({
      groups: [...want.groups].sort().map((g) => w.ent(g)),
      login: want.login,
      limit: want.limit,
    });
  }

  /** Log in with each password: 'ok', or the SQLSTATE the server refused with. */
  async function expectLogins(nhiId: string, want: [password: string, outcome: string][]) {
    const got = [];
    for (const [p] of want) got.push(await w.login(nhiId, p));
    expect(got).toEqual(want.map(([, o]) => o));
  }

  /** No intent of these (finished) workflows is left in the ledger. */
  async function expectNoIntents(...owners: string[]) {
    for (const owner of owners) expect({ owner, intents: await intentsOf(w.db.pool, owner) }).toEqual({ owner, intents: [] });
  }

  /** The NHI's active intents other than the baseline, as owner:kind:subject. */
  async function ledger(nhiId: string) {
    const i = await activeIntents(w.db.pool, nhiId);
    return [...i.grants.map((g) => `${g.owner}:grant:${g.entitlement}`), ...i.restrictions.map((r) => `${r.owner}:${r.restriction}`)].sort();
  }

  /** Visibility is eventually consistent; the scenarios that end others find them through it. */
  async function untilVisible(workflowType: string, nhiId: string, workflowId: string) {
    await waitFor(`${workflowId} visible`, async () => {
      for await (const wf of client().workflow.list({ query: `WorkflowType = "${workflowType}" AND NhiId = "${nhiId}" AND ExecutionStatus = "Running"` })) {
        if (wf.workflowId === workflowId) return true;
      }
      return false;
    }, WAIT_MS);
  }

  // --- JIT ---------------------------------------------------------------------------------

  async function requestJit(nhiId: string, entitlements: Entitlement[], over: Partial<JitElevationInput> = {}, taskQueue = w.taskQueue) {
    const input: JitElevationInput = {
      version: 1,
      nhiId,
      entitlements,
      justification: 'interaction suite elevation',
      ...(entitlements.includes('estate_admin') ? { ticket: 'CHG-9' } : {}),
      durationMinutes: 60,
      requestedBy: 'alice',
      requestedAt: new Date().toISOString(),
      settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 2 },
      ...over,
    };
    const workflowId = jitWorkflowId(nhiId, randomBytes(4).toString('hex'));
    return client().workflow.start(JIT_WORKFLOW_TYPE, {
      taskQueue,
      workflowId,
      args: [{ ...input, authority: w.sign(workflowId, 'start', input.requestedBy) }],
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: NhiIdKey, value: nhiId },
        { key: ScenarioKey, value: 'jit' },
        { key: NhiStateKey, value: 'evaluating' },
        { key: RequestedByKey, value: input.requestedBy },
      ],
    }) as Promise<WorkflowHandle>;
  }

  async function jitUntil(h: WorkflowHandle, state: JitState): Promise<JitStatus> {
    return waitFor(`${h.workflowId} ${state}`, async () => {
      const s = await h.query(jitStatusQuery);
      return s.state === state ? s : null;
    }, WAIT_MS);
  }

  /** Request, approve where needed (bob), and wait until active and visible. */
  async function activeJit(nhiId: string, entitlements: Entitlement[], taskQueue = w.taskQueue) {
    const h = await requestJit(nhiId, entitlements, {}, taskQueue);
    const first = await waitFor(`${h.workflowId} decided`, async () => {
      const s = await h.query(jitStatusQuery);
      return s.state === 'awaiting_approval' || s.state === 'active' ? s : null;
    }, WAIT_MS);
    if (first.state === 'awaiting_approval') await h.executeUpdate(approveUpdate, { args: [{ approver: 'bob', comment: 'ok', authority: w.sign(h.workflowId, 'approve', 'bob') }] });
    const s = await jitUntil(h, 'active');
    await untilVisible(JIT_WORKFLOW_TYPE, nhiId, h.workflowId);
    return { h, s };
  }

  /** The requester's "I'm done": answers once the revocation is verified. */
  const revokeJit = (h: WorkflowHandle, by = 'alice') => h.executeUpdate(revokeUpdate, { args: [{ by, reason: 'done', authority: w.sign(h.workflowId, 'revoke', by) }] });

  // --- anomaly throttling -----------------------------------------------------------------

  /** Signal-with-start as the collector does, with settings that keep level 1 for the whole test. */
  async function throttle(nhiId: string, settings: Partial<AnomalySettings> = {}) {
    const now = new Date().toISOString();
    const evidence = { key: `siem:${nhiId}`, source: 'siem:test', kind: 'external' as const, observedRate: 600, baselineRate: 6, reportedBy: 'detector-bot', detectedAt: now, receivedAt: now };
    const { workflowId } = await raiseAnomaly({ client: client(), taskQueue: w.taskQueue }, nhiId, evidence, { ackTimeoutMinutes: 600, escalationTimeoutMinutes: 600, connectionLimit: 2, ...settings });
    return client().workflow.getHandle(workflowId) as WorkflowHandle;
  }

  async function anomalyUntil(nhiId: string, state: AnomalyState): Promise<AnomalyStatus> {
    const h = client().workflow.getHandle(anomalyWorkflowId(nhiId));
    return waitFor(`anomaly ${nhiId} ${state}`, async () => {
      const s = await h.query(anomalyStatusQuery);
      return s.state === state ? s : null;
    }, WAIT_MS);
  }

  /** An approver's clear: answers once the throttle's intent is released and the read-back checked. */
  const clearThrottle = (nhiId: string) => client().workflow.getHandle(anomalyWorkflowId(nhiId)).executeUpdate(clearUpdate, { args: [{ by: 'bob', reason: 'false positive', authority: w.sign(anomalyWorkflowId(nhiId), 'clear', 'bob') }] });

  // --- leak containment -------------------------------------------------------------------

  async function leak(nhiId: string, settings: LeakContainmentInput['settings'] = {}): Promise<WorkflowHandle> {
    const id = randomBytes(4).toString('hex');
    const now = new Date().toISOString();
    const alert: LeakAlert = {
      key: `generic:scanner:${id}|reported|`,
      source: 'generic',
      externalId: `generic:scanner:${id}`,
      label: 'scanner',
      action: 'reported',
      trigger: true,
      severity: 'critical',
      fingerprints: [],
      detectedAt: now,
      receivedAt: now,
      summary: `generic scanner: ${id}`,
      matchedBy: 'nhi_id',
    };
    const input: LeakContainmentInput = { version: 1, nhiId, settings };
    const h = await client().workflow.signalWithStart(LEAK_WORKFLOW_TYPE, {
      taskQueue: w.taskQueue,
      workflowId: leakWorkflowId(nhiId),
      args: [input],
      signal: alertSignal,
      signalArgs: [alert],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      typedSearchAttributes: [
        { key: NhiIdKey, value: nhiId },
        { key: ScenarioKey, value: 'leak' },
        { key: NhiStateKey, value: 'opening' },
      ],
    });
    return h as unknown as WorkflowHandle;
  }

  /** The containment's end, bounded: a hang fails the test instead of the suite's timeout. */
  async function leakResult(h: WorkflowHandle): Promise<LeakStatus> {
    return waitFor(`${h.workflowId} finished`, async () => {
      const d = await h.describe();
      return d.status.name === 'RUNNING' ? null : ((await h.result()) as LeakStatus);
    }, WAIT_MS, 100).catch(async (err) => {
      const s = (await h.query(leakStatusQuery).catch(() => undefined)) as LeakStatus | undefined;
      throw new Error(`${String(err)}; leak status: ${s?.state} ${s?.failure ?? ''}`);
    });
  }

  // --- offboarding ------------------------------------------------------------------------

  async function offboard(nhiId: string, over: Partial<OffboardingInput> = {}) {
    const input: OffboardingInput = {
      version: 1,
      nhiId,
      reason: 'interaction suite offboarding',
      requestedBy: 'admin',
      requestedAt: new Date().toISOString(),
      requestId: randomBytes(4).toString('hex'),
      graceDays: 5,
      watchDays: 5,
      ...over,
    };
    return client().workflow.start(OFFBOARDING_WORKFLOW_TYPE, {
      taskQueue: w.taskQueue,
      workflowId: offboardingWorkflowId(nhiId),
      args: [{ ...input, authority: w.sign(offboardingWorkflowId(nhiId), 'start', input.requestedBy) }],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: [
        { key: NhiIdKey, value: nhiId },
        { key: ScenarioKey, value: 'offboarding' },
        { key: NhiStateKey, value: 'evaluating' },
        { key: RequestedByKey, value: input.requestedBy },
      ],
    }) as Promise<WorkflowHandle>;
  }

  async function offboardingUntil(h: WorkflowHandle, state: OffboardingState): Promise<OffboardingStatus> {
    return waitFor(`${h.workflowId} ${state}`, async () => {
      const s = await h.query(offboardingStatusQuery);
      if (s.state === 'failed') throw new Error(`offboarding failed: ${s.failure}`);
      return s.state === state ? s : null;
    }, WAIT_MS);
  }

  const abortOffboarding = (h: WorkflowHandle) => h.executeUpdate(abortUpdate, { args: [{ by: 'admin', reason: 'wrong NHI', authority: w.sign(h.workflowId, 'abort', 'admin') }] });

  // --- sessions ---------------------------------------------------------------------------

  async function pidOf(c: Client): Promise<number> {
    return (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  }
  async function alive(pid: number): Promise<boolean> {
    return ((await w.estateAdmin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount ?? 0) > 0;
  }
  /** Sessions opened with the (soon leaked) password, as an attacker would hold them. */
  async function attackerSessions(nhiId: string, password: string, n = 2) {
    const sessions: Client[] = [];
    for (let i = 0; i < n; i++) sessions.push(await w.connectAs(nhiId, password));
    return { sessions, pids: await Promise.all(sessions.map(pidOf)), close: () => Promise.all(sessions.map((x) => x.end().catch(() => undefined))) };
  }

  return {
    freshNhi,
    expectTarget,
    expectLogins,
    expectNoIntents,
    ledger,
    untilVisible,
    requestJit,
    jitUntil,
    activeJit,
    revokeJit,
    throttle,
    anomalyUntil,
    clearThrottle,
    leak,
    leakResult,
    offboard,
    offboardingUntil,
    abortOffboarding,
    alive,
    attackerSessions,
  };
}
