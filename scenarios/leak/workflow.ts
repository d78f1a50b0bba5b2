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
  const { workflowId, runId } = workflowInfo();
  const settings = { ...DEFAULT_LEAK_SETTINGS, ...input.settings };
  const s: LeakStatus = {
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

  const event = (name: string, detail?: string) => s.timeline.push({ at: iso(Date.now()), event: name, detail });
  const transition = (state: LeakState, detail?: string) => {
    s.state = state;
    event(state, detail);
    upsertSearchAttributes([{ key: NhiStateKey, value: state }]);
    refreshDetails();
  };
  function refreshDetails() {
    const sources = [...new Set(s.alerts.map((a) => a.label))];
    const lines = [`**${s.state}** — ${s.nhiId} (${s.severity})`, `alerts: ${sources.join(', ') || 'none yet'}${s.duplicates ? ` (+${s.duplicates} repeats)` : ''}`];
    if (s.incidentId) lines.push(`incident ${s.incidentId}`);
    if (s.rotation) lines.push(`credential v${s.rotation.newVersion} ${s.rotation.activated ? 'active' : 'staged'} (sha256 ${s.rotation.newFingerprint.slice(0, 12)}…)`);
    if (s.quarantine) lines.push(`quarantine ${s.quarantine.state === 'in_force' ? 'in force' : 'released'}${s.quarantine.withheld.length ? ` (withholding ${s.quarantine.withheld.join(', ')})` : ''}`);
    if (s.sessionsTerminated !== undefined) lines.push(`sessions terminated: ${s.sessionsTerminated}`);
    if (s.verification?.limitedBy) lines.push(`⚠ ${s.verification.limitedBy.note}`);
    if (s.elevations?.length) lines.push(`elevations ended: ${s.elevations.map((e) => `${e.workflowId} (${e.outcome})`).join(', ')}`);
    if (s.detectedToContainedMs !== undefined) lines.push(`contained ${s.receivedToContainedMs} ms after the alert arrived (${s.detectedToContainedMs} ms after detection)`);
    if (s.escalated) lines.push(`⚠ escalated${s.failure ? `: ${s.failure}` : ''}`);
    setCurrentDetails(lines.join('\n'));
  }

  function addAlert(a: LeakAlert) {
    if (!a?.key) return;
    if (seen.has(a.key)) {
      s.duplicates++;
      event('duplicate alert', a.summary);
      refreshDetails();
      return;
    }
    seen.add(a.key);
    s.alerts.push(a);
    s.severity = s.alerts.length === 1 ? a.severity : maxSeverity(s.severity, a.severity);
    if (!s.detectedAt || Date.parse(a.detectedAt) < Date.parse(s.detectedAt)) s.detectedAt = a.detectedAt;
    s.receivedAt ??= a.receivedAt;
    // A triaged incident bound while this containment runs becomes part of it.
    if (a.incidentId && s.incidentId && a.incidentId !== s.incidentId && !mergedIncidentIds.includes(a.incidentId)) mergedIncidentIds.push(a.incidentId);
    event(s.alerts.length === 1 ? 'alert' : 'alert joined', `${a.summary} [${a.action}, ${a.severity}, matched by ${a.matchedBy}]`);
    // A fresh alert while escalated is a reason to try again.
    if (s.state === 'escalated' && a.trigger) retryRequested = true;
    refreshDetails();
  }

  setHandler(statusQuery, () => s);
  setHandler(alertSignal, addAlert);
  setHandler(retrySignal, (r) => {
    if (s.state !== 'escalated') return;
    retryRequested = true;
    event('retry requested', [r?.by, r?.reason].filter(Boolean).join(': ') || undefined);
  });

  // Signal-with-start delivers the first alert with the start; a plain start waits briefly for it.
  if (!(await condition(() => s.alerts.length > 0, MINUTE))) {
    throw ApplicationFailure.nonRetryable('no alert arrived: start leak containment with signal-with-start', ErrorType.InvalidRequest);
  }
  const first = s.alerts[0];
  s.incidentId = first.incidentId ?? uuid4();
  // The incident's clock starts at detection, which happened before the alert reached us.
  s.timeline.unshift({ at: s.detectedAt ?? first.detectedAt, event: 'detected', detail: first.summary });
  for (const a of s.alerts.slice(1)) if (a.incidentId && a.incidentId !== s.incidentId && !mergedIncidentIds.includes(a.incidentId)) mergedIncidentIds.push(a.incidentId);
  const incidentId = s.incidentId;
  const audited = { incidentId, nhiId: s.nhiId };

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
    s.escalated = true;
    s.failure = reason;
    escalations++;
    event('escalated', reason);
    refreshDetails();
    // Best effort: the store being down is often why we escalate; the notification still goes out.
    try {
      await local.escalateLeakIncident({ ...audited, reason, escalation: escalations, timeline: s.timeline, alerts: s.alerts });
    } catch (err) {
      if (isCancellation(err)) throw err;
      event('incident update failed', causeMessage(err));
    }
    notify({ id: `${incidentId}:escalation:${escalations}`, kind: 'escalation', severity: 'critical', nhiId: s.nhiId, text: `ESCALATION: leak containment of ${s.nhiId} (incident ${incidentId}): ${reason}`, details: { incidentId } });
  }

  const saga = new Saga();
  // Undone when the containment ends, whichever way it ends: the quarantine.
  const ending = new Saga();
  try {
    refreshDetails();
    await step('openLeakIncident', { ...audited, alerts: s.alerts, severity: s.severity, timeline: s.timeline });
    event('incident opened', incidentId);
    notify({
      id: `${incidentId}:opened`,
      kind: 'leak.detected',
      severity: s.severity === 'critical' || s.severity === 'high' ? 'critical' : 'warning',
      nhiId: s.nhiId,
      text: `Leak of ${s.nhiId}'s credential (${first.label}, ${s.severity}): containment started — ${first.summary}`,
      details: { incidentId, evidenceUrl: first.evidenceUrl ?? null },
    });
    // Ending elevations runs beside the rotation; it is awaited (and a failure escalated) before the incident closes.
    let elevationsFailed: string | undefined;
    const elevations = local
      .endLeakElevations({ ...audited, waitMs: settings.elevationRevokeWaitMs })
      .then((ended) => {
        s.elevations = ended;
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
      s.quarantine = await step('releaseLeakQuarantine', audited);
      event('quarantine released', s.quarantine.entitlements.length ? `entitlements now: ${s.quarantine.entitlements.join(', ')}` : undefined);
    });

    for (;;) {
      s.attempts++;
      try {
        await contain(`${incidentId}:${s.attempts}`);
        break;
      } catch (err) {
        if (isCancellation(err)) throw err;
        const outcomes = await saga.compensate();
        const undone = outcomes.length ? ` (compensated: ${outcomes.map((o) => `${o.name} ${o.ok ? 'ok' : `failed: ${o.error}`}`).join('; ')})` : '';
        if (s.rotation && !s.rotation.activated) s.rotation = undefined;
        retryRequested = false;
        transition('escalated', causeMessage(err));
        await escalate(`containment could not complete: ${causeMessage(err)}${undone}. Fix the cause, then send the retry signal.`);
        while (!retryRequested) {
          if (!(await condition(() => retryRequested, settings.escalationReminderMinutes * MINUTE))) {
            notify({ id: `${incidentId}:reminder:${s.timeline.length}`, kind: 'escalation', severity: 'critical', nhiId: s.nhiId, text: `STILL ESCALATED: leak of ${s.nhiId} is not contained (incident ${incidentId}): ${s.failure}` });
          }
        }
      }
    }

    await elevations;
    if (elevationsFailed) await escalate(`ending running elevations failed: ${elevationsFailed}`);
    const now = Date.now();
    s.containedAt = iso(now);
    if (s.detectedAt) s.detectedToContainedMs = now - Date.parse(s.detectedAt);
    if (s.receivedAt) s.receivedToContainedMs = now - Date.parse(s.receivedAt);
    transition('contained', `${s.receivedToContainedMs} ms after the alert arrived`);
    await endQuarantine();
    await step('closeLeakIncident', { incidentId, status: s, mergedIncidentIds });
    notify({
      id: `${incidentId}:contained`,
      kind: 'leak.contained',
      severity: 'info',
      nhiId: s.nhiId,
      text: `Contained: ${s.nhiId}'s credential rotated (v${s.rotation?.newVersion}), ${s.sessionsTerminated ?? 0} session(s) ended, old credential denied — ${s.receivedToContainedMs} ms after the alert${s.verification?.limitedBy ? `. ${s.verification.limitedBy.note}` : ''}`,
      details: { incidentId, receivedToContainedMs: s.receivedToContainedMs ?? null, detectedToContainedMs: s.detectedToContainedMs ?? null },
    });
    await Promise.all(pending);
    await condition(allHandlersFinished);
    return s;
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        const outcomes = await saga.compensate();
        s.failure = `cancelled before containment completed${outcomes.length ? ` (compensated: ${outcomes.map((o) => `${o.name} ${o.ok ? 'ok' : `failed: ${o.error}`}`).join('; ')})` : ''}`;
        await endQuarantine();
        transition('escalated', s.failure);
        await local.escalateLeakIncident({ ...audited, reason: s.failure, escalation: escalations + 1, timeline: s.timeline, alerts: s.alerts });
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
      s.quarantine = await local.quarantineLeakNhi(audited);
      event('quarantined', s.quarantine.withheld.length ? `withholding ${s.quarantine.withheld.join(', ')}` : 'no elevated access to withhold');
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
    if (outcome === 'activated_instead' && s.rotation?.rotationId === args.rotationId) s.rotation = { ...s.rotation, activated: true };
  }

  async function contain(rotationId: string) {
    if (s.quarantine?.state !== 'in_force') await quarantine();
    // A rotation that completed in an earlier attempt stays: retries only redo what is left.
    if (!s.rotation?.activated) {
      transition('rotating');
      const args = { ...audited, rotationId };
      // The undo goes in before the step: whatever happened at the target, the identity keeps a working credential.
      saga.add('undo the staged credential', () => undoRotation(args));
      s.rotation = await step('stageLeakCredential', args);
      refreshDetails();
      s.rotation = await step('applyLeakCredential', args);
      saga.clear();
      event('rotated', `v${s.rotation.newVersion} active (sha256 ${s.rotation.newFingerprint.slice(0, 12)}…), old version retired`);
    }
    const args = { ...audited, rotationId: s.rotation.rotationId };
    // The pre-rotation sessions end before anything is probed: they may hold the connection limit.
    transition('invalidating_sessions');
    s.sessionsTerminated = (await step('invalidateLeakedSessions', args)).terminated;
    event('sessions ended', `${s.sessionsTerminated} pre-rotation session(s) terminated`);
    transition('verifying');
    const v = await step('verifyLeakContainment', args);
    s.verification = v;
    const fresh = `new ${v.newCredential}${v.newCode ? ` (${v.newCode})` : ''}`;
    event('verified', `old credential ${v.oldCredential}${v.oldCode ? ` (${v.oldCode})` : ''}, ${fresh}, ${v.preRotationSessions} pre-rotation sessions${v.limitedBy ? `; ${v.limitedBy.note}` : ''}`);
  }
}
