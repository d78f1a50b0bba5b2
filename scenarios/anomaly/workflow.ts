// Anomaly throttling: detection(s) → policy (automatic, or a person confirms) → level 1 (a throttle
// intent of this workflow: connection limit lowered, write access withheld, read access kept; applied
// by the reconciler and verified from the read-back) → incident + owner notified → wait for: clear,
// confirm (leak containment as a child, the throttle kept until it ends), silence (level 2: login
// suspended; then containment), or a quiet period (automatic restore where policy allows). However
// the case ends, its intents are released and reconciled (a compensation registered before the first
// throttle step, run in a non-cancellable scope): what other intents want — a live elevation, an
// offboarding — stays. Releases are never abandoned.
// Here: the flow and its steps. The case's state and publishing are in case.ts (texts and deadlines
// in status.ts), the message handlers in handlers.ts, the hand-over to leak containment in containment.ts.
import { ApplicationFailure, CancellationScope, condition, ContinueAsNew, isCancellation, patched, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { causeMessage, ErrorType } from '../../workflows/errors';
import { fastCall, normalCall, untilDone } from '../../workflows/activity-presets';
import { Saga } from '../../workflows/saga';
import { checkInputVersion, historyBudgetSpent, PATCHES } from '../../workflows/versioning';
import { leakWorkflowId, type LeakStatus } from '../leak/contract';
import { openAnomalyCase, type Requests } from './case';
import { containmentAlert, startOrJoinContainment } from './containment';
import type { AnomalyStatus, AnomalyThrottlingInput, ThrottlePolicyEvidence } from './contract';
import { setAnomalyHandlers } from './handlers';
import { deadlines, describeLatest, iso, MINUTE, restoredDetail, throttledDetail } from './status';

type Activities = ReturnType<typeof createActivities>;

const acts = proxyActivities<Activities>(fastCall);
const enforce = proxyActivities<Activities>(normalCall);
const restoreForever = proxyActivities<Activities>(untilDone).restoreThrottle;

export async function anomalyThrottling(input: AnomalyThrottlingInput): Promise<AnomalyStatus> {
  checkInputVersion('anomalyThrottling', input.version, [1]);
  const anomalyCase = openAnomalyCase(input);
  const { workflowId, run, settings, episode, progress, requests, budget, isFinal, event, transition, publish, notify, closeIncident, finish, continueAsNewNow } = anomalyCase;
  const restoreOnce = proxyActivities<Activities>({
    ...untilDone,
    retry: { ...untilDone.retry, maximumAttempts: Math.max(1, settings.restoreEscalationAttempts) },
  }).restoreThrottle;
  let owner = input.resume?.owner ?? '';
  /** How the case ends, for the release that the saga runs (registered before the first throttle step). */
  let ending = { reason: 'rollback of a failed throttle', actor: 'system', step: 'rollback' };

  setAnomalyHandlers(anomalyCase);
  /** A notification about this case, keyed by this episode's run (a retry sends nothing twice). */
  const tell = (key: string, kind: string, severity: 'info' | 'warning' | 'critical', text: string, details?: Record<string, unknown>) =>
    notify({ id: `${workflowId}:${run}:${key}`, kind, severity, nhiId: episode.nhiId, text, details });

  // --- the flow ------------------------------------------------------------------------------
  const saga = new Saga();
  const audited = { scenario: 'anomaly', nhiId: episode.nhiId };
  const resume = input.resume;
  const incidentId = resume?.episode.incidentId ?? uuid4();
  if (resume) {
    // Continued as new: the throttle this case holds is released however it ends, as before.
    if (resume.holdsThrottle) saga.add('release the throttle', () => release(ending.reason, ending.actor, ending.step));
    try {
      publish();
      if (resume.phase === 'awaiting_confirmation') {
        await remindUntilAnswered(resume.reminders);
        return await afterConfirmationAnswer();
      }
      return await awaitAnswerOrDeadline();
    } catch (err) {
      if (err instanceof ContinueAsNew) throw err;
      await CancellationScope.nonCancellable(() => releaseAfter(err));
      throw err;
    }
  }
  // Signal-with-start delivers the first detection with the start; a plain start waits briefly for it.
  if (!(await condition(() => episode.evidence.length > 0, MINUTE))) {
    throw ApplicationFailure.nonRetryable('no anomaly arrived: start anomaly throttling with signal-with-start', ErrorType.InvalidRequest);
  }
  try {
    publish();
    const { decision, nhi } = await acts.decideAnomalyThrottle({ nhiId: episode.nhiId, run, evidence: episode.evidence });
    episode.decision = decision;
    owner = nhi.owner;
    event('policy', `${decision.automatic ? 'automatic' : 'needs confirmation'}${decision.reasons.length ? `: ${decision.reasons.join('; ')}` : ''}`);
    if (nhi.status === 'offboarding' || nhi.status === 'offboarded') {
      transition('dismissed', `${episode.nhiId} is ${nhi.status}: the offboarding owns its access`);
      await acts.recordAudit({ ...audited, stepId: `${run}:dismissed`, actor: 'system', action: 'anomaly.dismiss', outcome: 'dismissed', details: { status: nhi.status } });
      return await finish();
    }

    if (decision.automatic) {
      if (!(await throttle(1, 'system'))) return await finish();
      episode.incidentId = incidentId;
      await acts.openAnomalyIncident({ incidentId, nhiId: episode.nhiId, run, evidence: episode.evidence, decision, timeline: episode.timeline });
      event('incident opened', incidentId);
      tell('throttled', 'anomaly.throttled', 'warning', `${episode.nhiId} (owner ${owner}) is throttled: ${describeLatest(episode)}. Clear it if this is expected, confirm it if malicious; no answer by ${iso(progress.levelAtMs + settings.ackTimeoutMinutes * MINUTE)} suspends its login.`, { owner, incidentId, level: 1 });
    } else {
      await askUntilAnswered(decision);
      return await afterConfirmationAnswer();
    }
    return await awaitAnswerOrDeadline();
  } catch (err) {
    // Continued as new: the next run holds what this one held.
    if (err instanceof ContinueAsNew) throw err;
    // However it ends — cancelled or failed — its intents are released (the saga's compensation).
    await CancellationScope.nonCancellable(() => releaseAfter(err));
    throw err;
  }

  // --- the steps -----------------------------------------------------------------------------

  /**
   * Policy wants a person to decide: open the incident and ask, then remind (louder, never
   * anything more) until someone approves, clears or confirms, or another scenario supersedes.
   */
  async function askUntilAnswered(decision: ThrottlePolicyEvidence): Promise<void> {
    // The first reminder is due a timeout after asking; the loop below republishes it when its timer starts.
    progress.reminderAtMs = Date.now() + settings.ackTimeoutMinutes * MINUTE;
    transition('awaiting_confirmation', decision.reasons.join('; '));
    episode.incidentId = incidentId;
    await acts.openAnomalyIncident({ incidentId, nhiId: episode.nhiId, run, evidence: episode.evidence, decision, timeline: episode.timeline });
    event('incident opened', incidentId);
    tell('confirmation-needed', 'anomaly.confirmation_needed', 'critical', `${episode.nhiId} (owner ${owner}) shows anomalous usage: ${describeLatest(episode)}. Policy does not throttle it automatically (${decision.reasons.join('; ')}): approve the throttle, clear, or confirm malicious.`, { owner, incidentId });
    await remindUntilAnswered(0);
  }

  /**
   * Silence only repeats the call, louder: policy says a person decides for this NHI. Evidence that
   * arrives meanwhile is recorded and wakes nothing; the case continues as new when its run's
   * history budget is spent (`sent`: reminders already sent, also by earlier runs).
   */
  async function remindUntilAnswered(sent: number): Promise<void> {
    const answered = () => Boolean(requests.approve || requests.clear || requests.confirm || requests.superseded);
    for (let reminder = sent + 1; ; reminder++) {
      // A resumed case keeps the reminder it had scheduled; otherwise the next is a timeout away.
      if (!(input.resume && reminder === sent + 1 && progress.reminderAtMs !== undefined)) progress.reminderAtMs = Date.now() + settings.ackTimeoutMinutes * MINUTE;
      publish();
      const bounded = patched(PATCHES.anomalyBoundedHistory);
      const woken = await condition(() => answered() || (bounded && historyBudgetSpent(budget.signals)), Math.max(1, progress.reminderAtMs - Date.now()));
      if (woken) {
        // The budget, not an answer: carry on in a new run, the same reminder still scheduled
        // (back here only if a request arrived meanwhile).
        if (!answered()) await continueAsNewNow({ phase: 'awaiting_confirmation', owner, reminders: reminder - 1, holdsThrottle: saga.size > 0 });
        break;
      }
      event('reminder', `no answer after ${reminder * settings.ackTimeoutMinutes} minutes`);
      tell(`reminder:${reminder}`, 'escalation', 'critical', `STILL UNANSWERED: anomalous usage of ${episode.nhiId} (owner ${owner}) needs a decision: ${describeLatest(episode)}`);
    }
    progress.reminderAtMs = undefined;
    publish();
  }

  /** A person answered the call for a decision: act on the answer. */
  async function afterConfirmationAnswer(): Promise<AnomalyStatus> {
    // (No allHandlersFinished here: the approve handler waits for the throttle this flow applies next.)
    if (requests.superseded) return await endSuperseded();
    if (requests.clear) return await clearedBeforeThrottle(requests.clear);
    if (requests.approve) {
      if (!(await throttle(1, requests.approve.by))) return await finish();
      tell('throttled', 'anomaly.throttled', 'warning', `${episode.nhiId} is throttled (approved by ${requests.approve.by}): ${describeLatest(episode)}`, { owner, incidentId: episode.incidentId, level: 1 });
    }
    return await awaitAnswerOrDeadline();
  }

  /** Cleared while awaiting confirmation: nothing was changed at the target, nothing to restore. */
  async function clearedBeforeThrottle(clear: NonNullable<Requests['clear']>): Promise<AnomalyStatus> {
    episode.cleared = clear;
    transition('cleared', `by ${clear.by} before any throttle: ${clear.reason}`);
    await acts.recordAudit({ ...audited, stepId: `${run}:clear`, actor: clear.by, action: 'anomaly.clear', outcome: 'cleared', details: { reason: clear.reason, restored: false } });
    await closeIncident('resolved', 'cleared');
    return await finish();
  }

  /** Throttled (or confirmed before any throttle): wait for an answer, a quiet period, or silence. */
  async function awaitAnswerOrDeadline(): Promise<AnomalyStatus> {
    for (;;) {
      if (requests.superseded) return await endSuperseded();
      if (requests.clear) return await clearedWhileThrottled(requests.clear);
      if (requests.confirm) {
        episode.confirmed = requests.confirm;
        await acts.recordAudit({ ...audited, stepId: `${run}:confirm`, actor: requests.confirm.by, action: 'anomaly.confirm', outcome: 'escalating', details: { comment: requests.confirm.comment ?? null } });
        if (await escalateToContainment(`confirmed malicious by ${requests.confirm.by}${requests.confirm.comment ? `: ${requests.confirm.comment}` : ''}`, requests.confirm.by)) return await finish();
        continue;
      }

      const bounded = patched(PATCHES.anomalyBoundedHistory);
      if (bounded && historyBudgetSpent(budget.signals)) {
        await continueAsNewNow({ phase: 'throttled', owner, reminders: 0, holdsThrottle: saga.size > 0 });
        continue; // a request arrived meanwhile
      }
      const now = Date.now();
      const quietMinutes = episode.decision?.autoRestoreAfterMinutes ?? null;
      // The same deadlines the state was published with (here it is throttled, or awaiting a retried confirmation).
      const { autoRestoreAt, stepUpAt } = deadlines(episode, progress, settings);

      const deadline = Math.min(autoRestoreAt ?? Infinity, stepUpAt ?? Infinity);
      const count = episode.evidenceCount;
      const asked = () => Boolean(requests.clear || requests.confirm || requests.superseded);
      const nextDeadline = () => {
        const d = deadlines(episode, progress, settings);
        return Math.min(d.autoRestoreAt ?? Infinity, d.stepUpAt ?? Infinity);
      };
      // Evidence moves deadlines. Bounded: a later one is found when the timer fires, so only an
      // earlier one (or the spent budget) wakes the wait — no timer re-armed per detection.
      const woken = bounded ? () => asked() || nextDeadline() < deadline || historyBudgetSpent(budget.signals) : () => asked() || episode.evidenceCount !== count;
      if (deadline === Infinity) {
        await condition(woken);
        continue;
      }
      if (deadline > now && (await condition(woken, deadline - now))) continue;
      // The timer fired. Bounded: what is due now (evidence may have moved a deadline later; then the loop waits on).
      const due = bounded ? deadlines(episode, progress, settings) : { autoRestoreAt, stepUpAt };
      const at = Date.now();
      if (due.autoRestoreAt !== undefined && at >= due.autoRestoreAt) return await autoRestore(quietMinutes);
      if (due.stepUpAt !== undefined && at >= due.stepUpAt) {
        if (episode.level === 1 && !progress.level2Failed) {
          await acts.recordAudit({ ...audited, stepId: `${run}:step-up:l2`, actor: 'system', action: 'anomaly.step_up', outcome: 'level_2', details: { unansweredMinutes: settings.ackTimeoutMinutes } });
          if (await throttle(2, 'system')) {
            tell('level-2', 'anomaly.level_2', 'critical', `NO ANSWER: ${episode.nhiId} (owner ${owner}) is now suspended (login refused, sessions ended) after ${settings.ackTimeoutMinutes} minutes without an answer. Leak containment starts in ${settings.escalationTimeoutMinutes} minutes unless cleared.`, { owner, incidentId, level: 2 });
          }
          continue;
        }
        if (await escalateToContainment(`no answer within ${settings.ackTimeoutMinutes + settings.escalationTimeoutMinutes} minutes`, 'system')) return await finish();
      }
    }
  }

  /** A false positive: release the throttle, verified, and close the incident. */
  async function clearedWhileThrottled(clear: NonNullable<Requests['clear']>): Promise<AnomalyStatus> {
    episode.cleared = clear;
    await acts.recordAudit({ ...audited, stepId: `${run}:clear`, actor: clear.by, action: 'anomaly.clear', outcome: 'restoring', details: { reason: clear.reason } });
    await endThrottle(`cleared by ${clear.by}: ${clear.reason}`, clear.by, 'restore');
    transition('cleared', `by ${clear.by}: ${clear.reason}`);
    await closeIncident('resolved', 'cleared');
    tell('cleared', 'anomaly.cleared', 'info', `${episode.nhiId}'s anomaly was cleared by ${clear.by}; its throttle released and the access verified`, { owner, incidentId });
    return await finish();
  }

  /** Quiet for the period policy names: the throttle is released by itself. */
  async function autoRestore(quietMinutes: number | null): Promise<AnomalyStatus> {
    await acts.recordAudit({ ...audited, stepId: `${run}:auto-restore-decision`, actor: 'system', action: 'anomaly.auto_restore', outcome: 'restoring', decision: episode.decision, details: { quietMinutes, lastEvidenceAt: episode.lastEvidenceAt ?? null } });
    await endThrottle(`no new anomaly for ${quietMinutes} minutes (policy auto-restore)`, 'system', 'auto-restore');
    transition('auto_restored', `quiet for ${quietMinutes} minutes`);
    await closeIncident('resolved', 'auto_restored');
    tell('auto-restored', 'anomaly.auto_restored', 'info', `${episode.nhiId} was quiet for ${quietMinutes} minutes: its throttle released automatically and the access verified`, { owner, incidentId });
    return await finish();
  }

  /** The flow failed or was cancelled: release what it holds, then record how it ended (the failure is rethrown). */
  async function releaseAfter(err: unknown): Promise<void> {
    const cancelled = isCancellation(err);
    const held = saga.size > 0;
    let releaseFailed = false;
    try {
      if (cancelled) await endThrottle('cancelled (Temporal cancel request)', 'system', 'restore-cancelled');
      else await endThrottle(`the workflow failed: ${causeMessage(err)}`, 'system', 'restore-failed');
    } catch (releaseErr) {
      releaseFailed = true;
      event('release failed', causeMessage(releaseErr));
    }
    if (cancelled && !releaseFailed) {
      if (isFinal()) return;
      episode.failure = 'cancelled';
      transition('cleared', held ? 'cancelled: throttle released' : 'cancelled');
      await closeIncident('resolved', 'cancelled');
      await finish();
      return;
    }
    episode.failure ??= causeMessage(err);
    if (!isFinal()) {
      episode.escalated = true;
      transition('failed', episode.failure);
      await closeIncident('escalated', 'failed', false).catch((e) => event('incident update failed', causeMessage(e)));
    }
  }

  /** Apply a level and verify it; false when level 1 could not be applied (then released, `failed`). */
  async function throttle(level: 1 | 2, actor: string): Promise<boolean> {
    // The undo goes in before the first step, and stays until the case ends: releasing this
    // workflow's intents is how every ending (and the rollback of a failed level 1) gives access back.
    if (!saga.size) saga.add('release the throttle', () => release(ending.reason, ending.actor, ending.step));
    try {
      const rb = await enforce.applyThrottle({ nhiId: episode.nhiId, run, level, connectionLimit: settings.connectionLimit, actor });
      episode.levels.push(rb);
      episode.level = level;
      progress.levelAtMs = Date.now();
      progress.evidenceSinceLevel = false;
      transition(level === 1 ? 'throttled_l1' : 'throttled_l2', throttledDetail(level, rb));
      return true;
    } catch (err) {
      if (isCancellation(err)) throw err;
      episode.failure = `throttle level ${level} failed: ${causeMessage(err)}`;
      event('throttle failed', episode.failure);
      tell(`throttle-failed:${level}`, 'escalation', 'critical', `ESCALATION: ${episode.failure} (${episode.nhiId}, owner ${owner})`);
      if (level === 2) {
        // Level 1 (at least) still holds — the ledger keeps wanting level 2 until the case ends;
        // the next step is containment.
        progress.level2Failed = true;
        progress.levelAtMs = Date.now();
        publish();
        return false;
      }
      ending = { reason: 'rollback of a failed throttle', actor: 'system', step: 'rollback' };
      const outcomes = await saga.compensate();
      episode.escalated = true;
      transition('failed', `${episode.failure}; compensated: ${outcomes.map((o) => `${o.name} ${o.ok ? 'ok' : `failed: ${o.error}`}`).join('; ')}`);
      await CancellationScope.nonCancellable(() =>
        acts.recordAudit({ ...audited, stepId: `${run}:throttle-failed`, actor: 'system', action: 'access.throttle', outcome: 'rolled_back', details: { cause: episode.failure, compensations: outcomes } }),
      );
      if (episode.incidentId) await closeIncident('escalated', 'throttle_failed', false);
      return false;
    }
  }

  /**
   * End the case's hold on access: run the saga (its one undo releases this workflow's intents and
   * reconciles). Nothing to do when no throttle step ever ran. A release that cannot succeed (a
   * permanent failure) fails the workflow, escalated, rather than claim access is back.
   */
  async function endThrottle(reason: string, actor: string, step: string) {
    if (!saga.size) return;
    ending = { reason, actor, step };
    const outcomes = await saga.compensate();
    const failed = outcomes.filter((o) => !o.ok);
    if (failed.length) {
      episode.escalated = true;
      episode.failure = `releasing the throttle failed: ${failed.map((o) => o.error).join('; ')}`;
      tell(`${step}:release-failed`, 'escalation', 'critical', `ESCALATION: ${episode.failure} (${episode.nhiId}, owner ${owner})`);
      // The workflow fails (releaseAfter records it): never a final state that says access is back.
      throw ApplicationFailure.create({ message: episode.failure, type: ErrorType.EnforcementFailed, nonRetryable: true });
    }
  }

  /** Release this workflow's intents, verified; a release that keeps failing escalates and goes on retrying. */
  async function release(reason: string, actor: string, step: string) {
    transition('restoring', reason);
    await CancellationScope.nonCancellable(async () => {
      const args = { nhiId: episode.nhiId, run, actor, reason, step };
      try {
        episode.restored = await restoreOnce(args);
      } catch (err) {
        episode.escalated = true;
        event('escalated', `releasing the throttle keeps failing: ${causeMessage(err)}`);
        publish();
        await acts.recordAudit({ ...audited, stepId: `${run}:${step}:escalate`, actor: 'system', action: 'restore.escalate', outcome: 'escalated', details: { cause: causeMessage(err), attempts: settings.restoreEscalationAttempts } });
        tell(`${step}:escalate`, 'escalation', 'critical', `ESCALATION: releasing ${episode.nhiId}'s throttle keeps failing (${causeMessage(err)}); still retrying`);
        episode.restored = await restoreForever(args);
      }
    });
    episode.level = 0;
    const r = episode.restored;
    if (!r) return;
    event('restored', restoredDetail(r));
  }

  /**
   * Escalate to leak containment (rotation, sessions) as a child workflow `leak-<nhiId>`; one that
   * is already running is joined instead. The throttle's intent stays while it runs (the containment
   * works under it), and is released when it ends.
   * Returns false when the containment failed (the throttle stays and waits for an answer).
   */
  async function escalateToContainment(reason: string, by: string): Promise<boolean> {
    progress.containmentTried = true;
    episode.escalated = true;
    episode.containment = undefined;
    transition('escalating', reason);
    await acts.recordAudit({ ...audited, stepId: `${run}:escalate`, actor: by, action: 'anomaly.escalate', outcome: 'containment', details: { reason, level: episode.level } });
    const alert = containmentAlert({ workflowId, run, episode, reason, by, now: iso(Date.now()) });
    tell('escalated', 'escalation', 'critical', `ESCALATION: ${episode.nhiId} (owner ${owner}) goes to leak containment (${reason}): credential rotation and session invalidation`, { owner, incidentId });
    const leakId = leakWorkflowId(episode.nhiId);
    const { mode, result } = await startOrJoinContainment(episode.nhiId, alert, (state, running) => {
      if (episode.containment) episode.containment.state = state;
      if (running) publish();
    });
    episode.containment = { workflowId: leakId, mode, reason, startedAt: iso(Date.now()) };
    event('containment', `${episode.containment.mode} ${leakId}`);
    publish();
    // Settled either way, so a containment failing after a supersede is no unhandled rejection.
    const settled = result.then(
      (status: LeakStatus | undefined) => ({ ok: true as const, status }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    const ended = await Promise.race([settled, condition(() => requests.superseded !== undefined).then(() => 'superseded' as const)]);
    if (ended === 'superseded') {
      await endSuperseded();
      return true;
    }
    if (ended.ok) {
      episode.containment.state = ended.status?.state ?? episode.containment.state ?? 'contained';
      episode.containment.finishedAt = iso(Date.now());
      event('contained', `${leakId}: ${episode.containment.state}`);
    } else {
      if (isCancellation(ended.error)) throw ended.error;
      episode.failure = `containment ${leakId} failed: ${causeMessage(ended.error)}`;
      transition(episode.level === 2 ? 'throttled_l2' : episode.level === 1 ? 'throttled_l1' : 'awaiting_confirmation', episode.failure);
      tell('containment-failed', 'escalation', 'critical', `ESCALATION: ${episode.failure}; ${episode.nhiId} stays throttled — clear it or retry the confirmation`);
      // Another confirm may try again; silence does not re-escalate.
      requests.confirm = undefined;
      return false;
    }
    await endThrottle(`containment ${leakId} finished: credential rotated, sessions ended`, 'system', 'restore-after-containment');
    transition('escalated', `contained by ${leakId}`);
    await closeIncident('closed', 'escalated', true, { containment: episode.containment });
    tell('contained', 'anomaly.escalated', 'warning', `${episode.nhiId}: leak containment finished (credential rotated, sessions ended); throttle released and the access verified`, { owner, incidentId, containment: leakId });
    return true;
  }

  /**
   * Another scenario took over (offboarding): release this throttle's intent and reconcile. The
   * superseding scenario's own restriction keeps access off; a throttle nobody owns never stays behind.
   */
  async function endSuperseded(): Promise<AnomalyStatus> {
    const { superseded } = requests;
    const level = episode.level;
    await endThrottle(`superseded by ${superseded?.by}: ${superseded?.reason}`, 'system', 'restore-superseded');
    const others = episode.restored?.restrictedBy ?? [];
    transition('superseded', `${superseded?.by}: ${superseded?.reason}${episode.restored ? ` (throttle released${others.length ? `; restricted by ${others.join(', ')}` : ''})` : ''}`);
    await acts.recordAudit({ ...audited, stepId: `${run}:superseded`, actor: superseded?.by ?? 'system', action: 'anomaly.supersede', outcome: 'superseded', details: { reason: superseded?.reason ?? null, level, released: episode.restored ?? null } });
    await closeIncident('closed', 'superseded');
    return finish();
  }
}
