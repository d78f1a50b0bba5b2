// Anomaly throttling: detection(s) → policy (automatic, or a person confirms) → level 1 (a throttle
// intent of this workflow: connection limit lowered, write access withheld, read access kept; applied
// by the reconciler and verified from the read-back) → incident + owner notified → wait for: clear,
// confirm (leak containment as a child, the throttle kept until it ends), silence (level 2: login
// suspended; then containment), or a quiet period (automatic restore where policy allows). However
// the case ends, its intents are released and reconciled (a compensation registered before the first
// throttle step, run in a non-cancellable scope): what other intents want — a live elevation, an
// offboarding — stays. Releases are never abandoned.
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  ParentClosePolicy,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { createActivities } from '../../activities';
import { fastCall, normalCall, notification, untilDone } from '../../workflows/activity-presets';
import {
  ANOMALY_FINAL_STATES,
  ANOMALY_OPEN_STATES,
  anomalySignal,
  approveThrottleUpdate,
  clearUpdate,
  confirmUpdate,
  DEFAULT_ANOMALY_SETTINGS,
  statusQuery,
  supersedeSignal,
  type AnomalyEvidence,
  type AnomalyState,
  type AnomalyStatus,
  type AnomalyThrottlingInput,
  type SupersedeInput,
} from './contract';
import { causeMessage, ErrorType } from '../../workflows/errors';
import { alertSignal, LEAK_SCENARIO, LEAK_WORKFLOW_TYPE, leakSummary, leakWorkflowId, type LeakAlert, type LeakContainmentInput, type LeakStatus } from '../leak/contract';
import { Mutex } from '../../workflows/mutex';
import { Saga } from '../../workflows/saga';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';

type Activities = ReturnType<typeof createActivities>;

const acts = proxyActivities<Activities>(fastCall);
const enforce = proxyActivities<Activities>(normalCall);
const restoreForever = proxyActivities<Activities>(untilDone).restoreThrottle;
const notifyActivity = proxyActivities<Activities>(notification).notify;

const MINUTE = 60_000;
const MAX_EVIDENCE = 50;
const iso = (ms: number) => new Date(ms).toISOString();

const closed = (message: string) => ApplicationFailure.create({ message, type: ErrorType.RequestClosed, nonRetryable: true });

export async function anomalyThrottling(input: AnomalyThrottlingInput): Promise<AnomalyStatus> {
  const { workflowId, runId } = workflowInfo();
  const settings = { ...DEFAULT_ANOMALY_SETTINGS, ...input.settings };
  // The workflow id is reused by later episodes: audit step ids carry this run's id.
  const run = runId;
  const episode: AnomalyStatus = {
    version: 1,
    workflowId,
    runId,
    nhiId: input.nhiId,
    state: 'evaluating',
    level: 0,
    evidence: [],
    evidenceCount: 0,
    duplicates: 0,
    levels: [],
    escalated: false,
    timeline: [],
  };
  const restoreOnce = proxyActivities<Activities>({
    ...untilDone,
    retry: { ...untilDone.retry, maximumAttempts: Math.max(1, settings.restoreEscalationAttempts) },
  }).restoreThrottle;

  const seen = new Set<string>();
  const mutex = new Mutex();
  let clearRequest: { by: string; at: string; reason: string } | undefined;
  let confirmRequest: { by: string; at: string; comment?: string } | undefined;
  let approveRequest: { by: string; at: string; comment?: string } | undefined;
  let superseded: SupersedeInput | undefined;
  let levelAtMs = 0;
  let lastEvidenceMs = 0;
  /** New evidence since the current level was applied: the anomaly persists. */
  let evidenceSinceLevel = false;
  let level2Failed = false;
  let containmentTried = false;
  /** Awaiting confirmation: when the next reminder goes out. */
  let reminderAtMs: number | undefined;
  let owner = '';
  /** How the case ends, for the release that the saga runs (registered before the first throttle step). */
  let ending = { reason: 'rollback of a failed throttle', actor: 'system', step: 'rollback' };

  const isFinal = () => ANOMALY_FINAL_STATES.includes(episode.state);
  const event = (name: string, detail?: string) => episode.timeline.push({ at: iso(Date.now()), event: name, detail });
  const transition = (state: AnomalyState, detail?: string) => {
    episode.state = state;
    event(state, detail);
    upsertSearchAttributes([{ key: NhiStateKey, value: state }]);
    publish();
  };
  const rate = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

  /**
   * What the current state has scheduled: the next reminder while a person must decide; while
   * throttled, the automatic restore (policy AutoRestore, after a quiet period) and the step-up on
   * silence. Computed from moments already recorded (last evidence, level applied, reminder timer
   * started), never from the time of asking, so every publish carries the deadlines its state
   * implies and the wait loop below waits for exactly these.
   */
  function deadlines(): { autoRestoreAt?: number; stepUpAt?: number } {
    if (episode.state === 'awaiting_confirmation') return { stepUpAt: reminderAtMs };
    if ((episode.state !== 'throttled_l1' && episode.state !== 'throttled_l2') || episode.level === 0) return {};
    const quietMinutes = episode.decision?.autoRestoreAfterMinutes ?? null;
    const autoRestoreAt = quietMinutes !== null ? lastEvidenceMs + quietMinutes * MINUTE : undefined;
    // Where policy restores by itself, silence steps up only while the anomaly persists.
    const persists = quietMinutes === null || evidenceSinceLevel;
    const stepUpAt = !containmentTried && persists ? levelAtMs + (episode.level === 1 && !level2Failed ? settings.ackTimeoutMinutes : settings.escalationTimeoutMinutes) * MINUTE : undefined;
    return { autoRestoreAt, stepUpAt };
  }

  /**
   * Publish the status: the deadlines together with the state they follow from (one synchronous
   * step, so a query never sees a state without its schedule), and the details line of the UI.
   */
  function publish() {
    const d = deadlines();
    episode.autoRestoreAt = d.autoRestoreAt !== undefined ? iso(d.autoRestoreAt) : undefined;
    episode.stepUpAt = d.stepUpAt !== undefined ? iso(d.stepUpAt) : undefined;
    const latest = episode.evidence.at(-1);
    const levelText = episode.level === 0 ? 'not throttled' : episode.level === 1 ? `level 1: CONNECTION LIMIT ${settings.connectionLimit}, write access withheld, read access kept` : 'level 2: login suspended, sessions ended';
    const lines = [`**${episode.state}** — ${episode.nhiId} (${levelText})`];
    if (latest) lines.push(`evidence: ${episode.evidenceCount}${episode.duplicates ? ` (+${episode.duplicates} repeats)` : ''}; latest ${rate(latest.observedRate)}/min vs ${rate(latest.baselineRate)}/min (${latest.source})`);
    if (episode.decision) lines.push(`policy: ${episode.decision.automatic ? 'automatic throttle' : 'a person must confirm'}${episode.decision.autoRestoreAfterMinutes !== null ? `; auto-restore after ${episode.decision.autoRestoreAfterMinutes} quiet minutes` : ''}`);
    if (episode.incidentId) lines.push(`incident ${episode.incidentId}`);
    if (episode.stepUpAt && !isFinal()) lines.push(`no answer by ${episode.stepUpAt} → ${episode.level === 0 ? 'a reminder' : episode.level === 1 && !level2Failed ? 'level 2' : 'containment'}`);
    if (episode.autoRestoreAt && !isFinal()) lines.push(`restored automatically at ${episode.autoRestoreAt} if quiet`);
    if (episode.containment) lines.push(`containment ${episode.containment.workflowId} (${episode.containment.mode}${episode.containment.state ? `, ${episode.containment.state}` : ''})`);
    if (episode.cleared) lines.push(`cleared by ${episode.cleared.by}: ${episode.cleared.reason}`);
    if (episode.confirmed) lines.push(`confirmed malicious by ${episode.confirmed.by}`);
    if (episode.failure) lines.push(`⚠ ${episode.failure}`);
    setCurrentDetails(lines.join('\n'));
  }

  const pending: Promise<void>[] = [];
  /** Notifications never hold up or fail enforcement: an undelivered one goes on the timeline. */
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

  function addEvidence(e: AnomalyEvidence) {
    if (!e?.key || isFinal()) return;
    if (seen.has(e.key)) {
      episode.duplicates++;
      return;
    }
    seen.add(e.key);
    episode.evidence.push(e);
    if (episode.evidence.length > MAX_EVIDENCE) episode.evidence.shift();
    episode.evidenceCount++;
    episode.firstDetectedAt ??= e.detectedAt;
    episode.lastEvidenceAt = iso(Date.now());
    lastEvidenceMs = Date.now();
    evidenceSinceLevel = true;
    event(episode.evidenceCount === 1 ? 'anomaly' : 'anomaly joined', `${rate(e.observedRate)}/min vs baseline ${rate(e.baselineRate)}/min from ${e.source}${e.detail ? `: ${e.detail}` : ''}`);
    publish();
  }

  // --- message handlers -------------------------------------------------------------------
  setHandler(statusQuery, () => episode);
  setHandler(anomalySignal, addEvidence);
  // A supersede releases the throttle, so it is not taken on the sender's word: only while the
  // inventory (server-side) says the NHI is being offboarded — the offboarding marks it first.
  setHandler(supersedeSignal, async (x) => {
    if (isFinal() || superseded) return;
    const by = x?.by ?? 'another scenario';
    const reason = x?.reason ?? 'superseded';
    const check = await acts.checkSupersede({ nhiId: episode.nhiId });
    if (isFinal() || superseded) return;
    if (!check.allowed) {
      event('supersede refused', `${by}: ${reason} — ${episode.nhiId} is ${check.status}, not being offboarded`);
      publish();
      return;
    }
    superseded = { by, reason };
    event('superseded', `${superseded.by}: ${superseded.reason}`);
  });

  const openState = (what: string) => {
    if (!ANOMALY_OPEN_STATES.includes(episode.state)) {
      throw ApplicationFailure.create({ message: `${what}: the anomaly of ${episode.nhiId} is ${episode.state}${episode.state === 'evaluating' ? ' (try again in a moment)' : ''}`, type: ErrorType.RequestClosed });
    }
    if (clearRequest || confirmRequest) throw ApplicationFailure.create({ message: `${what}: already ${clearRequest ? 'cleared' : 'confirmed'}`, type: ErrorType.RequestClosed });
  };
  /**
   * Policy (Throttle as that person) decides who may act on an anomaly. The person's roles are read
   * server-side by the activity (the `principals` table); nothing in the message payload but the id
   * is used — a `roles` field someone adds in the Temporal UI is never read.
   */
  async function requireAnalyst(by: string, what: string) {
    const v = await acts.checkAnomalyAnalyst({ nhiId: episode.nhiId, principal: by });
    if (!v.allowed) throw ApplicationFailure.create({ message: `${by} may not ${what}: ${v.reasons.join('; ') || 'no policy allows it'}`, type: ErrorType.NotAllowed, nonRetryable: true });
  }

  setHandler(
    clearUpdate,
    async (c) => {
      await mutex.runExclusive(async () => {
        await requireAnalyst(c.by, `clear the anomaly of ${episode.nhiId}`);
        if (!ANOMALY_OPEN_STATES.includes(episode.state) || clearRequest || confirmRequest) throw closed(`the anomaly of ${episode.nhiId} is ${episode.state}`);
        clearRequest = { by: c.by, at: iso(Date.now()), reason: c.reason };
        event('clear requested', `${c.by}: ${c.reason}`);
      });
      // Answer once access is back and verified.
      await condition(isFinal);
      return episode;
    },
    {
      validator: (c) => {
        if (!c?.by || !c.reason) throw ApplicationFailure.create({ message: 'by and reason are required', type: ErrorType.InvalidRequest });
        openState('clear');
      },
    },
  );

  setHandler(
    confirmUpdate,
    async (c) => {
      await mutex.runExclusive(async () => {
        await requireAnalyst(c.by, `confirm the anomaly of ${episode.nhiId}`);
        if (!ANOMALY_OPEN_STATES.includes(episode.state) || clearRequest || confirmRequest) throw closed(`the anomaly of ${episode.nhiId} is ${episode.state}`);
        confirmRequest = { by: c.by, at: iso(Date.now()), comment: c.comment };
        event('confirmed malicious', [c.by, c.comment].filter(Boolean).join(': '));
      });
      // Answer once the containment has started (it runs on; the status shows its progress), or failed.
      await condition(() => isFinal() || !confirmRequest || (episode.state === 'escalating' && episode.containment !== undefined));
      return episode;
    },
    {
      validator: (c) => {
        if (!c?.by) throw ApplicationFailure.create({ message: 'by is required', type: ErrorType.InvalidRequest });
        openState('confirm');
      },
    },
  );

  setHandler(
    approveThrottleUpdate,
    async (a) => {
      await mutex.runExclusive(async () => {
        await requireAnalyst(a.by, `throttle ${episode.nhiId}`);
        if (episode.state !== 'awaiting_confirmation' || approveRequest || clearRequest || confirmRequest) throw closed(`the anomaly of ${episode.nhiId} is ${episode.state}, not awaiting confirmation`);
        approveRequest = { by: a.by, at: iso(Date.now()), comment: a.comment };
        episode.throttleApproved = approveRequest;
        event('throttle approved', [a.by, a.comment].filter(Boolean).join(': '));
      });
      // Answer once level 1 is verified at the target (or the throttle ended otherwise).
      await condition(() => episode.level > 0 || isFinal());
      return episode;
    },
    {
      validator: (a) => {
        if (!a?.by) throw ApplicationFailure.create({ message: 'by is required', type: ErrorType.InvalidRequest });
        if (episode.state !== 'awaiting_confirmation') throw ApplicationFailure.create({ message: `the anomaly of ${episode.nhiId} is ${episode.state}, not awaiting confirmation`, type: ErrorType.RequestClosed });
      },
    },
  );

  // --- the flow ------------------------------------------------------------------------------
  // Signal-with-start delivers the first detection with the start; a plain start waits briefly for it.
  if (!(await condition(() => episode.evidence.length > 0, MINUTE))) {
    throw ApplicationFailure.nonRetryable('no anomaly arrived: start anomaly throttling with signal-with-start', ErrorType.InvalidRequest);
  }
  const saga = new Saga();
  const incidentId = uuid4();
  const audited = { scenario: 'anomaly', nhiId: episode.nhiId };
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
      notify({
        id: `${workflowId}:${run}:throttled`,
        kind: 'anomaly.throttled',
        severity: 'warning',
        nhiId: episode.nhiId,
        text: `${episode.nhiId} (owner ${owner}) is throttled: ${describeLatest()}. Clear it if this is expected, confirm it if malicious; no answer by ${iso(levelAtMs + settings.ackTimeoutMinutes * MINUTE)} suspends its login.`,
        details: { owner, incidentId, level: 1 },
      });
    } else {
      // The first reminder is due a timeout after asking; the loop below republishes it when its timer starts.
      reminderAtMs = Date.now() + settings.ackTimeoutMinutes * MINUTE;
      transition('awaiting_confirmation', decision.reasons.join('; '));
      episode.incidentId = incidentId;
      await acts.openAnomalyIncident({ incidentId, nhiId: episode.nhiId, run, evidence: episode.evidence, decision, timeline: episode.timeline });
      event('incident opened', incidentId);
      notify({
        id: `${workflowId}:${run}:confirmation-needed`,
        kind: 'anomaly.confirmation_needed',
        severity: 'critical',
        nhiId: episode.nhiId,
        text: `${episode.nhiId} (owner ${owner}) shows anomalous usage: ${describeLatest()}. Policy does not throttle it automatically (${decision.reasons.join('; ')}): approve the throttle, clear, or confirm malicious.`,
        details: { owner, incidentId },
      });
      // Silence here only repeats the call, louder: policy says a person decides for this NHI.
      for (let reminder = 1; ; reminder++) {
        reminderAtMs = Date.now() + settings.ackTimeoutMinutes * MINUTE;
        publish();
        const answered = await condition(() => Boolean(approveRequest || clearRequest || confirmRequest || superseded), settings.ackTimeoutMinutes * MINUTE);
        if (answered) break;
        event('reminder', `no answer after ${reminder * settings.ackTimeoutMinutes} minutes`);
        notify({ id: `${workflowId}:${run}:reminder:${reminder}`, kind: 'escalation', severity: 'critical', nhiId: episode.nhiId, text: `STILL UNANSWERED: anomalous usage of ${episode.nhiId} (owner ${owner}) needs a decision: ${describeLatest()}` });
      }
      reminderAtMs = undefined;
      publish();
      // (No allHandlersFinished here: the approve handler waits for the throttle this flow applies next.)
      if (superseded) return await endSuperseded();
      if (clearRequest) {
        // Nothing was changed at the target: nothing to restore.
        episode.cleared = clearRequest;
        transition('cleared', `by ${clearRequest.by} before any throttle: ${clearRequest.reason}`);
        await acts.recordAudit({ ...audited, stepId: `${run}:clear`, actor: clearRequest.by, action: 'anomaly.clear', outcome: 'cleared', details: { reason: clearRequest.reason, restored: false } });
        await closeIncident('resolved', 'cleared');
        return await finish();
      }
      if (approveRequest) {
        if (!(await throttle(1, approveRequest.by))) return await finish();
        notify({ id: `${workflowId}:${run}:throttled`, kind: 'anomaly.throttled', severity: 'warning', nhiId: episode.nhiId, text: `${episode.nhiId} is throttled (approved by ${approveRequest.by}): ${describeLatest()}`, details: { owner, incidentId, level: 1 } });
      }
    }

    // Throttled (or confirmed before any throttle): wait for an answer, a quiet period, or silence.
    for (;;) {
      if (superseded) return await endSuperseded();
      if (clearRequest) {
        episode.cleared = clearRequest;
        await acts.recordAudit({ ...audited, stepId: `${run}:clear`, actor: clearRequest.by, action: 'anomaly.clear', outcome: 'restoring', details: { reason: clearRequest.reason } });
        await endThrottle(`cleared by ${clearRequest.by}: ${clearRequest.reason}`, clearRequest.by, 'restore');
        transition('cleared', `by ${clearRequest.by}: ${clearRequest.reason}`);
        await closeIncident('resolved', 'cleared');
        notify({ id: `${workflowId}:${run}:cleared`, kind: 'anomaly.cleared', severity: 'info', nhiId: episode.nhiId, text: `${episode.nhiId}'s anomaly was cleared by ${clearRequest.by}; its throttle released and the access verified`, details: { owner, incidentId } });
        return await finish();
      }
      if (confirmRequest) {
        episode.confirmed = confirmRequest;
        await acts.recordAudit({ ...audited, stepId: `${run}:confirm`, actor: confirmRequest.by, action: 'anomaly.confirm', outcome: 'escalating', details: { comment: confirmRequest.comment ?? null } });
        if (await escalateToContainment(`confirmed malicious by ${confirmRequest.by}${confirmRequest.comment ? `: ${confirmRequest.comment}` : ''}`, confirmRequest.by)) return await finish();
        continue;
      }

      const now = Date.now();
      const quietMinutes = episode.decision?.autoRestoreAfterMinutes ?? null;
      // The same deadlines the state was published with (here it is throttled, or awaiting a retried confirmation).
      const { autoRestoreAt, stepUpAt } = deadlines();

      const deadline = Math.min(autoRestoreAt ?? Infinity, stepUpAt ?? Infinity);
      const count = episode.evidenceCount;
      const woken = () => Boolean(clearRequest || confirmRequest || superseded) || episode.evidenceCount !== count;
      if (deadline === Infinity) {
        await condition(woken);
        continue;
      }
      if (deadline > now && (await condition(woken, deadline - now))) continue;
      // A deadline passed.
      const at = Date.now();
      if (autoRestoreAt !== undefined && at >= autoRestoreAt) {
        await acts.recordAudit({ ...audited, stepId: `${run}:auto-restore-decision`, actor: 'system', action: 'anomaly.auto_restore', outcome: 'restoring', decision: episode.decision, details: { quietMinutes, lastEvidenceAt: episode.lastEvidenceAt ?? null } });
        await endThrottle(`no new anomaly for ${quietMinutes} minutes (policy auto-restore)`, 'system', 'auto-restore');
        transition('auto_restored', `quiet for ${quietMinutes} minutes`);
        await closeIncident('resolved', 'auto_restored');
        notify({ id: `${workflowId}:${run}:auto-restored`, kind: 'anomaly.auto_restored', severity: 'info', nhiId: episode.nhiId, text: `${episode.nhiId} was quiet for ${quietMinutes} minutes: its throttle released automatically and the access verified`, details: { owner, incidentId } });
        return await finish();
      }
      if (stepUpAt !== undefined && at >= stepUpAt) {
        if (episode.level === 1 && !level2Failed) {
          await acts.recordAudit({ ...audited, stepId: `${run}:step-up:l2`, actor: 'system', action: 'anomaly.step_up', outcome: 'level_2', details: { unansweredMinutes: settings.ackTimeoutMinutes } });
          if (await throttle(2, 'system')) {
            notify({
              id: `${workflowId}:${run}:level-2`,
              kind: 'anomaly.level_2',
              severity: 'critical',
              nhiId: episode.nhiId,
              text: `NO ANSWER: ${episode.nhiId} (owner ${owner}) is now suspended (login refused, sessions ended) after ${settings.ackTimeoutMinutes} minutes without an answer. Leak containment starts in ${settings.escalationTimeoutMinutes} minutes unless cleared.`,
              details: { owner, incidentId, level: 2 },
            });
          }
          continue;
        }
        if (await escalateToContainment(`no answer within ${settings.ackTimeoutMinutes + settings.escalationTimeoutMinutes} minutes`, 'system')) return await finish();
      }
    }
  } catch (err) {
    // However it ends — cancelled or failed — its intents are released (the saga's compensation).
    await CancellationScope.nonCancellable(async () => {
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
    });
    throw err;
  }

  function describeLatest(): string {
    const e = episode.evidence.at(-1);
    return e ? `${rate(e.observedRate)}/min against a baseline of ${rate(e.baselineRate)}/min (${e.source})` : 'anomalous usage';
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
      levelAtMs = Date.now();
      evidenceSinceLevel = false;
      const kept = rb.keptReadOnly.length ? ` (read access kept: ${rb.keptReadOnly.join(', ')})` : '';
      transition(level === 1 ? 'throttled_l1' : 'throttled_l2', `CONNECTION LIMIT ${rb.connectionLimit}${rb.removed.length ? `, withheld ${rb.removed.join(', ')}${kept}` : ''}${level === 2 ? `, login refused, ${rb.sessionsTerminated ?? 0} session(s) ended` : ''} (verified)`);
      return true;
    } catch (err) {
      if (isCancellation(err)) throw err;
      episode.failure = `throttle level ${level} failed: ${causeMessage(err)}`;
      event('throttle failed', episode.failure);
      notify({ id: `${workflowId}:${run}:throttle-failed:${level}`, kind: 'escalation', severity: 'critical', nhiId: episode.nhiId, text: `ESCALATION: ${episode.failure} (${episode.nhiId}, owner ${owner})` });
      if (level === 2) {
        // Level 1 (at least) still holds — the ledger keeps wanting level 2 until the case ends;
        // the next step is containment.
        level2Failed = true;
        levelAtMs = Date.now();
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
      notify({ id: `${workflowId}:${run}:${step}:release-failed`, kind: 'escalation', severity: 'critical', nhiId: episode.nhiId, text: `ESCALATION: ${episode.failure} (${episode.nhiId}, owner ${owner})` });
      // The workflow fails (the catch below records it): never a final state that says access is back.
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
        notify({ id: `${workflowId}:${run}:${step}:escalate`, kind: 'escalation', severity: 'critical', nhiId: episode.nhiId, text: `ESCALATION: releasing ${episode.nhiId}'s throttle keeps failing (${causeMessage(err)}); still retrying` });
        episode.restored = await restoreForever(args);
      }
    });
    episode.level = 0;
    const r = episode.restored;
    if (!r) return;
    const others = `${r.restrictedBy.length ? `; still restricted by ${r.restrictedBy.join(', ')}` : ''}${r.withheld.length ? `; withheld: ${r.withheld.map((w) => w.entitlement).join(', ')}` : ''}`;
    event('restored', r.after.exists ? `throttle released (verified)${others}` : 'the identity is gone at the target: nothing to give back');
  }

  /**
   * Escalate to leak containment (rotation, sessions) as a child workflow `leak-<nhiId>`; one that
   * is already running is joined instead. The throttle's intent stays while it runs (the containment
   * works under it), and is released when it ends.
   * Returns false when the containment failed (the throttle stays and waits for an answer).
   */
  async function escalateToContainment(reason: string, by: string): Promise<boolean> {
    containmentTried = true;
    episode.escalated = true;
    episode.containment = undefined;
    transition('escalating', reason);
    await acts.recordAudit({ ...audited, stepId: `${run}:escalate`, actor: by, action: 'anomaly.escalate', outcome: 'containment', details: { reason, level: episode.level } });
    const now = iso(Date.now());
    const alert: LeakAlert = {
      key: `anomaly:${workflowId}:${run}`,
      source: 'generic',
      externalId: `generic:anomaly-throttling:${episode.nhiId}`,
      label: 'anomaly-throttling',
      action: by === 'system' ? 'unanswered' : 'confirmed',
      trigger: true,
      severity: 'high',
      fingerprints: [],
      detectedAt: episode.firstDetectedAt ?? now,
      receivedAt: now,
      summary: `anomalous usage of ${episode.nhiId}: ${describeLatest()} — ${reason}`,
      matchedBy: 'nhi_id',
      ...(by !== 'system' ? { reportedBy: by } : {}),
    };
    notify({ id: `${workflowId}:${run}:escalated`, kind: 'escalation', severity: 'critical', nhiId: episode.nhiId, text: `ESCALATION: ${episode.nhiId} (owner ${owner}) goes to leak containment (${reason}): credential rotation and session invalidation`, details: { owner, incidentId } });
    const leakId = leakWorkflowId(episode.nhiId);
    let result: Promise<LeakStatus | undefined>;
    try {
      const child = await startChild(LEAK_WORKFLOW_TYPE, {
        workflowId: leakId,
        args: [{ version: 1, nhiId: episode.nhiId } satisfies LeakContainmentInput],
        // The containment outlives this workflow (and its cancellation): it must finish.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        cancellationType: ChildWorkflowCancellationType.ABANDON,
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        staticSummary: leakSummary(episode.nhiId, alert),
        staticDetails: alert.summary,
        typedSearchAttributes: [
          { key: NhiIdKey, value: episode.nhiId },
          { key: ScenarioKey, value: LEAK_SCENARIO },
          { key: NhiStateKey, value: 'opening' },
        ],
      });
      await child.signal(alertSignal, alert);
      episode.containment = { workflowId: leakId, mode: 'started', reason, startedAt: iso(Date.now()) };
      result = child.result() as Promise<LeakStatus>;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      // A containment of this NHI is already running (a leak alert got there first): join it.
      await getExternalWorkflowHandle(leakId).signal(alertSignal, alert);
      episode.containment = { workflowId: leakId, mode: 'joined', reason, startedAt: iso(Date.now()) };
      result = (async () => {
        for (;;) {
          const p = await acts.containmentProgress({ workflowId: leakId });
          if (episode.containment) episode.containment.state = p.state;
          if (!p.running) {
            if (p.status !== 'COMPLETED') throw new Error(`containment ${leakId} ended ${p.status.toLowerCase()}`);
            return undefined;
          }
          publish();
          await sleep(MINUTE);
        }
      })();
    }
    event('containment', `${episode.containment.mode} ${leakId}`);
    publish();
    // Settled either way, so a containment failing after a supersede is no unhandled rejection.
    const settled = result.then(
      (status) => ({ ok: true as const, status }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    const ended = await Promise.race([settled, condition(() => superseded !== undefined).then(() => 'superseded' as const)]);
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
      notify({ id: `${workflowId}:${run}:containment-failed`, kind: 'escalation', severity: 'critical', nhiId: episode.nhiId, text: `ESCALATION: ${episode.failure}; ${episode.nhiId} stays throttled — clear it or retry the confirmation` });
      // Another confirm may try again; silence does not re-escalate.
      confirmRequest = undefined;
      return false;
    }
    await endThrottle(`containment ${leakId} finished: credential rotated, sessions ended`, 'system', 'restore-after-containment');
    transition('escalated', `contained by ${leakId}`);
    await closeIncident('closed', 'escalated', true, { containment: episode.containment });
    notify({ id: `${workflowId}:${run}:contained`, kind: 'anomaly.escalated', severity: 'warning', nhiId: episode.nhiId, text: `${episode.nhiId}: leak containment finished (credential rotated, sessions ended); throttle released and the access verified`, details: { owner, incidentId, containment: leakId } });
    return true;
  }

  /**
   * Another scenario took over (offboarding): release this throttle's intent and reconcile. The
   * superseding scenario's own restriction keeps access off; a throttle nobody owns never stays behind.
   */
  async function endSuperseded(): Promise<AnomalyStatus> {
    const level = episode.level;
    await endThrottle(`superseded by ${superseded?.by}: ${superseded?.reason}`, 'system', 'restore-superseded');
    const others = episode.restored?.restrictedBy ?? [];
    transition('superseded', `${superseded?.by}: ${superseded?.reason}${episode.restored ? ` (throttle released${others.length ? `; restricted by ${others.join(', ')}` : ''})` : ''}`);
    await acts.recordAudit({ ...audited, stepId: `${run}:superseded`, actor: superseded?.by ?? 'system', action: 'anomaly.supersede', outcome: 'superseded', details: { reason: superseded?.reason ?? null, level, released: episode.restored ?? null } });
    await closeIncident('closed', 'superseded');
    return finish();
  }

  async function closeIncident(status: 'resolved' | 'closed' | 'escalated', outcome: string, closedNow = true, details: Record<string, unknown> = {}) {
    if (!episode.incidentId) return;
    await CancellationScope.nonCancellable(() =>
      acts.updateAnomalyIncident({
        incidentId: episode.incidentId!,
        nhiId: episode.nhiId,
        run,
        step: outcome,
        status,
        outcome,
        details: { evidenceCount: episode.evidenceCount, levels: episode.levels, restored: episode.restored ?? null, cleared: episode.cleared ?? null, confirmed: episode.confirmed ?? null, ...details },
        timeline: episode.timeline,
        closed: closedNow,
      }),
    );
  }

  async function finish(): Promise<AnomalyStatus> {
    publish();
    await Promise.all(pending);
    await condition(allHandlersFinished);
    return episode;
  }
}
