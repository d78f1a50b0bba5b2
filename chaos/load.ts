// The chaos run's load and its message faults: JIT elevations (revoked early with a duplicated and a
// foreign revoke, or left to expire) and leak alerts (duplicated, and an older one arriving last).
// The Temporal server may be restarting at any moment, so every message the run must get through
// is sent again until the workflow shows it arrived — as a caller of the API would retry.
import { randomBytes } from 'node:crypto';
import { WorkflowUpdateStage, type Client } from '@temporalio/client';
import type { Authority, SignedMessage } from '../lib/authority';
import { JIT_FINAL_STATES, jitWorkflowId, revokeUpdate, statusQuery, type JitElevationInput } from '../scenarios/jit/contract';
import { jitElevation } from '../scenarios/jit/workflow';
import { alertSignal, LEAK_WORKFLOW_TYPE, leakWorkflowId, type LeakAlert } from '../scenarios/leak/contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../workflows/search-attributes';

export interface LoadHost {
  env: { client: Client };
  taskQueue: string;
  sign(workflowId: string, message: SignedMessage, principal: string): Authority;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Call until it answers (a restarting server refuses for a few seconds), for at most `ms`. */
async function persist<T>(fn: () => Promise<T>, ms = 60_000): Promise<T> {
  for (const until = Date.now() + ms; ; await sleep(500)) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > until) throw err;
    }
  }
}

export async function startElevation(w: LoadHost, nhiId: string, durationMinutes: number) {
  const input: JitElevationInput = {
    version: 1,
    nhiId,
    entitlements: ['estate_readonly'],
    justification: 'chaos run',
    durationMinutes,
    requestedBy: 'alice',
    requestedAt: new Date().toISOString(),
    settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 3 },
  };
  const workflowId = jitWorkflowId(nhiId, randomBytes(4).toString('hex'));
  return w.env.client.workflow.start(jitElevation, {
    taskQueue: w.taskQueue,
    workflowId,
    args: [{ authority: w.sign(workflowId, 'start', 'alice'), ...input }],
    // Short enough that a task held by a killed worker is handed on within the round.
    workflowTaskTimeout: '3s',
  });
}

/**
 * Once granted: the requester's revoke twice at once (the second a replay of a used nonce), then —
 * if neither got through a server restart — freshly signed ones until the elevation is ending, and
 * an unsigned one (the Temporal UI: someone else, who may only narrow) after.
 */
export async function revokeWithDuplicates(w: LoadHost, workflowId: string, faults: Record<string, number>, waitMs: number) {
  const handle = w.env.client.workflow.getHandle(workflowId);
  const status = () => handle.query(statusQuery).catch(() => undefined);
  // Until granted (or over): a stuck elevation shows in the invariants, not as a hung run.
  for (const until = Date.now() + waitMs; Date.now() < until; await sleep(200)) {
    const s = await status();
    if (s && (s.state === 'active' || JIT_FINAL_STATES.includes(s.state))) break;
  }
  const revoke = (authority?: Authority) =>
    handle.startUpdate(revokeUpdate, { args: [authority ? { by: 'alice', reason: 'chaos: done early', authority } : { by: 'admin', reason: 'chaos: late revoke from the UI' }], waitForStage: WorkflowUpdateStage.ACCEPTED });
  const signed = w.sign(workflowId, 'revoke', 'alice');
  await Promise.allSettled([revoke(signed), revoke(signed)]);
  faults['duplicated revoke']++;
  for (const until = Date.now() + waitMs; Date.now() < until; await sleep(500)) {
    const s = await status();
    if (s && (s.endedBy || JIT_FINAL_STATES.includes(s.state))) break;
    if (s) await revoke(w.sign(workflowId, 'revoke', 'alice')).catch(() => undefined);
  }
  await revoke().catch(() => undefined);
  faults['revoke by someone else (unsigned)']++;
}

function alertFor(nhiId: string, detectedAt: Date): LeakAlert {
  const id = randomBytes(4).toString('hex');
  return {
    key: `generic:chaos:${id}|reported|`,
    source: 'generic',
    externalId: `generic:chaos:${id}`,
    label: 'chaos',
    action: 'reported',
    trigger: true,
    severity: 'high',
    fingerprints: [],
    detectedAt: detectedAt.toISOString(),
    receivedAt: new Date().toISOString(),
    summary: `chaos alert ${id} for ${nhiId}`,
    matchedBy: 'nhi_id',
  };
}

/** An alert, the same alert again, then an older one arriving last. */
export async function startLeak(w: LoadHost, nhiId: string, faults: Record<string, number>) {
  const first = alertFor(nhiId, new Date());
  const handle = await w.env.client.workflow.signalWithStart(LEAK_WORKFLOW_TYPE, {
    taskQueue: w.taskQueue,
    workflowId: leakWorkflowId(nhiId),
    args: [{ version: 1, nhiId }],
    signal: alertSignal,
    signalArgs: [first],
    workflowTaskTimeout: '3s',
    typedSearchAttributes: [
      { key: NhiIdKey, value: nhiId },
      { key: ScenarioKey, value: 'leak' },
      { key: NhiStateKey, value: 'opening' },
    ],
  });
  await handle.signal(alertSignal, first);
  faults['duplicated alert']++;
  await handle.signal(alertSignal, alertFor(nhiId, new Date(Date.now() - 60_000)));
  faults['reordered alert']++;
  return handle;
}

/** The cause of a failure, with the run's names and ports taken out so that equal causes count together. */
const causeOf = (message: string) =>
  message.replace(/\bc[0-9a-f]{6}_svc_chaos_\w+/g, '<role>').replace(/\bsvc_chaos_\w+/g, '<nhi>').replace(/:\d{4,5}\b/g, ':<port>').slice(0, 200);

/**
 * How the workflow ended (`jitElevation: revoked`) and the failure it recorded, if any; asked again
 * across server restarts. Undefined if still open at `until`.
 */
export async function outcomeBy(client: Client, workflowId: string, until: number): Promise<{ outcome: string; cause?: string } | undefined> {
  const handle = client.workflow.getHandle(workflowId);
  for (;;) {
    const d = await persist(() => handle.describe(), Math.max(0, until - Date.now())).catch(() => undefined);
    if (d && d.status.name !== 'RUNNING') {
      const result = d.status.name === 'COMPLETED' ? await persist(() => handle.result() as Promise<{ state?: string; failure?: string }>).catch(() => undefined) : undefined;
      return { outcome: `${d.type}: ${result?.state ?? d.status.name.toLowerCase()}`, ...(result?.failure ? { cause: causeOf(result.failure) } : {}) };
    }
    if (Date.now() > until) return undefined;
    await sleep(1000);
  }
}

/** Activities of the running workflows being retried now (attempt 2 or later), with the last failure of each. */
export async function retryingActivities(client: Client, taskQueue: string): Promise<{ activity: string; attempt: number; failure: string }[]> {
  const out: { activity: string; attempt: number; failure: string }[] = [];
  for await (const wf of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'` })) {
    const d = await client.workflow.getHandle(wf.workflowId).describe();
    for (const a of d.raw.pendingActivities ?? []) {
      if ((a.attempt ?? 0) >= 2) out.push({ activity: a.activityType?.name ?? '?', attempt: a.attempt ?? 0, failure: a.lastFailure?.message ?? '' });
    }
  }
  return out;
}
