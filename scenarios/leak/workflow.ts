// Leak containment: alert(s) → incident → end elevations ‖ quarantine → rotate (saga) → end the
// pre-rotation sessions → verify → release the quarantine → close with the timeline. Every short
// step is a local activity, so a healthy containment is one workflow task with no task-queue round
// trips. A step that keeps failing escalates and goes on retrying; one that cannot succeed is
// compensated and the workflow waits, escalated, for a retry. Local activities keep the SDK's
// default cancellation (wait until the activity has finished), so an undo never runs beside the
// step it undoes. Only the main flow schedules activities (a branch that did would make their order
// depend on which result came back first, and a replay could disagree).
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
  allHandlersFinished,
  ActivityFailure,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastLocal, notification, untilDone } from '../../workflows/activity-presets';
import { causeMessage, ErrorType, NON_RETRYABLE } from '../../workflows/errors';
import {
  alertSignal,
  DEFAULT_LEAK_SETTINGS,
  maxSeverity,
  retrySignal,
  statusQuery,
  type LeakAlert,
  type LeakContainmentInput,
  type LeakState,
  type LeakStatus,
} from './contract';
import { Saga } from '../../workflows/saga';
import { NhiStateKey } from '../../workflows/search-attributes';
import { checkInputVersion } from '../../workflows/versioning';

type Activities = ReturnType<typeof createActivities>;

const local = proxyLocalActivities<Activities>(fastLocal);
const durable = proxyActivities<Activities>(untilDone);
const notifyActivity = proxyActivities<Activities>(notification).notify;

const MINUTE = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

type Arg<K extends keyof Activities> = Parameters<Activities[K]>[0];
type Result<K extends keyof Activities> = Awaited<ReturnType<Activities[K]>>;

/** A failure retrying cannot fix (the activity said so, or its type is in the shared list). */
function isPermanent(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure && (cause.nonRetryable || NON_RETRYABLE.includes(cause.type ?? ''));
}

export async function leakContainment(input: LeakContainmentInput): Promise<LeakStatus> {
  checkInputVersion('leakContainment', input.version, [1]);
  const { workflowId, runId } = workflowInfo();
  const settings = { ...DEFAULT_LEAK_SETTINGS, ...input.settings };
  const status: LeakStatus = {
    version: 1,
    workflowId,
    runId,
    nhiId: input.nhiId,
    state: 'opening',
    severity: 'low',
    alerts: [],
    duplicates: 0,
    escalated: false,
    attempts: 0,
    timeline: [],
  };
  const seen = new Set<string>();
  const mergedIncidentIds: string[] = [];
  let retryRequested = false;
  let escalations = 0;
  const troubled = new Set<string>();

  const event = (name: string, detail?: string) => status.timeline.push({ at: iso(Date.now()), event: name, detail });
  const transition = (state: LeakState, detail?: string) => {
    status.state = state;
    event(state, detail);
    upsertSearchAttributes([{ key: NhiStateKey, value: state }]);
    refreshDetails();
  };
  function refreshDetails() {
    const sources = [...new Set(status.alerts.map((a) => a.label))];
    const lines = [`**${status.state}** — ${status.nhiId} (${status.severity})`, `alerts: ${sources.join(', ') || 'none yet'}${status.duplicates ? ` (+${status.duplicates} repeats)` : ''}`];
    if (status.incidentId) lines.push(`incident ${status.incidentId}`);
    if (status.rotation) lines.push(`credential v${status.rotation.newVersion} ${status.rotation.activated ? 'active' : 'staged'} (sha256 ${status.rotation.newFingerprint.slice(0, 12)}…)`);
    if (status.quarantine) lines.push(`quarantine ${status.quarantine.state === 'in_force' ? 'in force' : 'released'}${status.quarantine.withheld.length ? ` (withholding ${status.quarantine.withheld.join(', ')})` : ''}`);
    if (status.sessionsTerminated !== undefined) lines.push(`sessions terminated: ${status.sessionsTerminated}`);
    if (status.verification?.limitedBy) lines.push(`⚠ ${status.verification.limitedBy.note}`);
    if (status.elevations?.length) lines.push(`elevations ended: ${status.elevations.map((e) => `${e.workflowId} (${e.outcome})`).join(', ')}`);
    if (status.detectedToContainedMs !== undefined) lines.push(`contained ${status.receivedToContainedMs} ms after the alert arrived (${status.detectedToContainedMs} ms after detection)`);
    if (status.escalated) lines.push(`⚠ escalated${status.failure ? `: ${status.failure}` : ''}`);
    setCurrentDetails(lines.join('\n'));
  }

  function addAlert(a: LeakAlert) {
    if (!a?.key) return;
    if (seen.has(a.key)) {
      status.duplicates++;
      event('duplicate alert', a.summary);
      refreshDetails();
      return;
    }
    seen.add(a.key);
    status.alerts.push(a);
    status.severity = status.alerts.length === 1 ? a.severity : maxSeverity(status.severity, a.severity);
    if (!status.detectedAt || Date.parse(a.detectedAt) < Date.parse(status.detectedAt)) status.detectedAt = a.detectedAt;
    status.receivedAt ??= a.receivedAt;
    // A triaged incident bound while this containment runs becomes part of it.
    if (a.incidentId && status.incidentId && a.incidentId !== status.incidentId && !mergedIncidentIds.includes(a.incidentId)) mergedIncidentIds.push(a.incidentId);
    event(status.alerts.length === 1 ? 'alert' : 'alert joined', `${a.summary} [${a.action}, ${a.severity}, matched by ${a.matchedBy}]`);
    // A fresh alert while escalated is a reason to try again.
    if (status.state === 'escalated' && a.trigger) retryRequested = true;
    refreshDetails();
  }

  setHandler(statusQuery, () => status);
  setHandler(alertSignal, addAlert);
  setHandler(retrySignal, (r) => {
    if (status.state !== 'escalated') return;
    retryRequested = true;
    event('retry requested', [r?.by, r?.reason].filter(Boolean).join(': ') || undefined);
  });

  // Signal-with-start delivers the first alert with the start; a plain start waits briefly for it.
  if (!(await condition(() => status.alerts.length > 0, MINUTE))) {
    throw ApplicationFailure.nonRetryable('no alert arrived: start leak containment with signal-with-start', ErrorType.InvalidRequest);
  }
  const first = status.alerts[0];
  status.incidentId = first.incidentId ?? uuid4();
  // The incident's clock starts at detection, which happened before the alert reached us.
  status.timeline.unshift({ at: status.detectedAt ?? first.detectedAt, event: 'detected', detail: first.summary });
  for (const a of status.alerts.slice(1)) if (a.incidentId && a.incidentId !== status.incidentId && !mergedIncidentIds.includes(a.incidentId)) mergedIncidentIds.push(a.incidentId);
  const incidentId = status.incidentId;
  const audited = { incidentId, nhiId: status.nhiId };

  /** Local first; a transient failure past its retries escalates and then retries durably until done. */
  async function step<K extends keyof Activities>(name: K, args: Arg<K>): Promise<Result<K>> {
    try {
      return (await (local[name] as (a: Arg<K>) => Promise<unknown>)(args)) as Result<K>;
    } catch (err) {
      if (isCancellation(err) || isPermanent(err)) throw err;
      if (!troubled.has(name)) {
        troubled.add(name);
        await escalate(`${name} keeps failing (${causeMessage(err)}); still retrying`);
      }
      return (await (durable[name] as (a: Arg<K>) => Promise<unknown>)(args)) as Result<K>;
    }
  }

  const pending: Promise<void>[] = [];
  /** Notifications never hold up or fail the containment: an undelivered one goes on the timeline. */
  function notify(n: Parameters<Activities['notify']>[0]): void {
    pending.push(
      notifyActivity(n).then(
        () => undefined,
        (err) => {
          if (!isCancellation(err)) event('notification not delivered', `${n.kind}: ${causeMessage(err)}`);
        },
      ),
    );
  }

  async function escalate(reason: string) {
    status.escalated = true;
    status.failure = reason;
    escalations++;
    event('escalated', reason);
    refreshDetails();
    // Best effort: the store being down is often why we escalate; the notification still goes out.
    try {
      await local.escalateLeakIncident({ ...audited, reason, escalation: escalations, timeline: status.timeline, alerts: status.alerts });
    } catch (err) {
      if (isCancellation(err)) throw err;
      event('incident update failed', causeMessage(err));
    }
    notify({ id: `${incidentId}:escalation:${escalations}`, kind: 'escalation', severity: 'critical', nhiId: status.nhiId, text: `ESCALATION: leak containment of ${status.nhiId} (incident ${incidentId}): ${reason}`, details: { incidentId } });
  }

  const saga = new Saga();
  // Undone when the containment ends, whichever way it ends: the quarantine.
  const ending = new Saga();
  try {
    refreshDetails();
    await step('openLeakIncident', { ...audited, alerts: status.alerts, severity: status.severity, timeline: status.timeline });
    event('incident opened', incidentId);
    notify({
      id: `${incidentId}:opened`,
      kind: 'leak.detected',
      severity: status.severity === 'critical' || status.severity === 'high' ? 'critical' : 'warning',
      nhiId: status.nhiId,
      text: `Leak of ${status.nhiId}'s credential (${first.label}, ${status.severity}): containment started — ${first.summary}`,
      details: { incidentId, evidenceUrl: first.evidenceUrl ?? null },
    });
    // Ending elevations runs beside the rotation; it is awaited (and a failure escalated) before the incident closes.
    let elevationsFailed: string | undefined;
    const elevations = local
      .endLeakElevations({ ...audited, waitMs: settings.elevationRevokeWaitMs })
      .then((ended) => {
        status.elevations = ended;
        if (ended.length) event('elevations ended', ended.map((e) => `${e.workflowId}: ${e.outcome}`).join(', '));
      })
      .catch((err) => {
        if (isCancellation(err)) return;
        elevationsFailed = causeMessage(err);
        event('ending elevations failed', elevationsFailed);
        refreshDetails();
      });
    // The quarantine holds while the containment runs; its release is registered before it is set.
    ending.add('release the quarantine', async () => {
      status.quarantine = await step('releaseLeakQuarantine', audited);
      event('quarantine released', status.quarantine.entitlements.length ? `entitlements now: ${status.quarantine.entitlements.join(', ')}` : undefined);
    });

    for (;;) {
      status.attempts++;
      try {
        await contain(`${incidentId}:${status.attempts}`);
        break;
      } catch (err) {
        if (isCancellation(err)) throw err;
        const outcomes = await saga.compensate();
        const undone = outcomes.length ? ` (compensated: ${outcomes.map((o) => `${o.name} ${o.ok ? 'ok' : `failed: ${o.error}`}`).join('; ')})` : '';
        if (status.rotation && !status.rotation.activated) status.rotation = undefined;
        retryRequested = false;
        transition('escalated', causeMessage(err));
        await escalate(`containment could not complete: ${causeMessage(err)}${undone}. Fix the cause, then send the retry signal.`);
        while (!retryRequested) {
          if (!(await condition(() => retryRequested, settings.escalationReminderMinutes * MINUTE))) {
            notify({ id: `${incidentId}:reminder:${status.timeline.length}`, kind: 'escalation', severity: 'critical', nhiId: status.nhiId, text: `STILL ESCALATED: leak of ${status.nhiId} is not contained (incident ${incidentId}): ${status.failure}` });
          }
        }
      }
    }

    await elevations;
    if (elevationsFailed) await escalate(`ending running elevations failed: ${elevationsFailed}`);
    const now = Date.now();
    status.containedAt = iso(now);
    if (status.detectedAt) status.detectedToContainedMs = now - Date.parse(status.detectedAt);
    if (status.receivedAt) status.receivedToContainedMs = now - Date.parse(status.receivedAt);
    transition('contained', `${status.receivedToContainedMs} ms after the alert arrived`);
    await endQuarantine();
    await step('closeLeakIncident', { incidentId, status, mergedIncidentIds });
    notify({
      id: `${incidentId}:contained`,
      kind: 'leak.contained',
      severity: 'info',
      nhiId: status.nhiId,
      text: `Contained: ${status.nhiId}'s credential rotated (v${status.rotation?.newVersion}), ${status.sessionsTerminated ?? 0} session(s) ended, old credential denied — ${status.receivedToContainedMs} ms after the alert${status.verification?.limitedBy ? `. ${status.verification.limitedBy.note}` : ''}`,
      details: { incidentId, receivedToContainedMs: status.receivedToContainedMs ?? null, detectedToContainedMs: status.detectedToContainedMs ?? null },
    });
    await Promise.all(pending);
    await condition(allHandlersFinished);
    return status;
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        const outcomes = await saga.compensate();
        status.failure = `cancelled before containment completed${outcomes.length ? ` (compensated: ${outcomes.map((o) => `${o.name} ${o.ok ? 'ok' : `failed: ${o.error}`}`).join('; ')})` : ''}`;
        await endQuarantine();
        transition('escalated', status.failure);
        await local.escalateLeakIncident({ ...audited, reason: status.failure, escalation: escalations + 1, timeline: status.timeline, alerts: status.alerts });
      });
    }
    throw err;
  } finally {
    // Whatever ended the workflow (a permanent failure too), the quarantine does not outlive it.
    if (ending.size) await CancellationScope.nonCancellable(endQuarantine);
  }

  /**
   * Quarantine the NHI: what elevations add is withheld, so none can be used or granted anew while
   * the containment runs (and while it waits, escalated). It does not hold up the rotation: a
   * quarantine that cannot be set is escalated, and tried again with the next attempt.
   */
  async function quarantine() {
    try {
      status.quarantine = await local.quarantineLeakNhi(audited);
      event('quarantined', status.quarantine.withheld.length ? `withholding ${status.quarantine.withheld.join(', ')}` : 'no elevated access to withhold');
      refreshDetails();
    } catch (err) {
      if (isCancellation(err)) throw err;
      event('quarantine failed', causeMessage(err));
      await escalate(`quarantining the NHI failed: ${causeMessage(err)}; the rotation goes on`);
    }
  }

  async function endQuarantine() {
    for (const o of await ending.compensate()) if (!o.ok) event('quarantine release failed', o.error);
    refreshDetails();
  }

  /** The undo of a rotation may find the target holding the new credential: then it is the active one. */
  async function undoRotation(args: Arg<'undoStagedCredential'>) {
    const { outcome } = await step('undoStagedCredential', args);
    event('rotation undone', outcome === 'activated_instead' ? 'the target holds the new credential: activated instead of discarded' : outcome);
    if (outcome === 'activated_instead' && status.rotation?.rotationId === args.rotationId) status.rotation = { ...status.rotation, activated: true };
  }

  async function contain(rotationId: string) {
    if (status.quarantine?.state !== 'in_force') await quarantine();
    // A rotation that completed in an earlier attempt stays: retries only redo what is left.
    if (!status.rotation?.activated) {
      transition('rotating');
      const args = { ...audited, rotationId };
      // The undo goes in before the step: whatever happened at the target, the identity keeps a working credential.
      saga.add('undo the staged credential', () => undoRotation(args));
      status.rotation = await step('stageLeakCredential', args);
      refreshDetails();
      status.rotation = await step('applyLeakCredential', args);
      saga.clear();
      event('rotated', `v${status.rotation.newVersion} active (sha256 ${status.rotation.newFingerprint.slice(0, 12)}…), old version retired`);
    }
    const args = { ...audited, rotationId: status.rotation.rotationId };
    // The pre-rotation sessions end before anything is probed: they may hold the connection limit.
    transition('invalidating_sessions');
    status.sessionsTerminated = (await step('invalidateLeakedSessions', args)).terminated;
    event('sessions ended', `${status.sessionsTerminated} pre-rotation session(s) terminated`);
    transition('verifying');
    const v = await step('verifyLeakContainment', args);
    status.verification = v;
    const fresh = `new ${v.newCredential}${v.newCode ? ` (${v.newCode})` : ''}`;
    event('verified', `old credential ${v.oldCredential}${v.oldCode ? ` (${v.oldCode})` : ''}, ${fresh}, ${v.preRotationSessions} pre-rotation sessions${v.limitedBy ? `; ${v.limitedBy.note}` : ''}`);
  }
}
