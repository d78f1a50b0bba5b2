// Offboarding: policy → inventory `offboarding` → disable (intents `login_disabled`, then
// `offboarded`, each reconciled and verified; then sessions ended) → ask the NHI's other scenarios to stop →
// prove and attest → grace (abort releases this workflow's intents and reconciles: the NHI gets
// exactly what the other intents and the baseline want; confirm skips ahead) → finalise (baseline
// emptied, `offboarded` kept, secrets erased) → watch (each re-check is a reconcile that reverts
// drift; continue-as-new keeps history small). Enforcement never gives up: bounded attempts, then an
// escalation, then retries without limit. Authority for abort/confirm is looked up server-side.
// Here: the flow and its steps; the message handlers are in handlers.ts, the status and its texts in status.ts.
import {
  allHandlersFinished,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastCall, longWithHeartbeat, notification, untilDone } from '../../workflows/activity-presets';
import { causeMessage } from '../../workflows/errors';
import {
  DEFAULT_OFFBOARDING_SETTINGS,
  OFFBOARDING_FINAL_STATES,
  OFFBOARDING_SCENARIO,
  type Attestation,
  type NhiInventoryStatus,
  type OffboardingInput,
  type OffboardingState,
  type OffboardingStatus,
  type StopScenariosResult,
  type WatchCheckResult,
} from './contract';
import { setOffboardingHandlers, type Requests } from './handlers';
import { awaitSecondPerson, SAFEGUARDS_PATCH } from './safeguards';
import { checkInput, DAY, describeAccess, DRIFT_MAX, initialStatus, iso, MINUTE, statusDetails, TIMELINE_CARRIED, TIMELINE_MAX } from './status';
import { Saga } from '../../workflows/saga';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { checkInputVersion } from '../../workflows/versioning';

type Activities = ReturnType<typeof createActivities>;

const acts = proxyActivities<Activities>(fastCall);
/** Waits for each running elevation to verify its own revocation. */
const reach = proxyActivities<Activities>(longWithHeartbeat);
const notify = proxyActivities<Activities>(notification).notify;
const forever = proxyActivities<Activities>(untilDone);

/** Proof rounds (disable again, prove again) before the failing proof is escalated. */
const PROOF_ROUNDS_BEFORE_ESCALATION = 3;
// Only a guard for a policy set without the @graceDays/@watchDays its conventions require.
const FALLBACK_GRACE_DAYS = 7;
const FALLBACK_WATCH_DAYS = 30;

export async function offboarding(input: OffboardingInput): Promise<OffboardingStatus> {
  checkInputVersion('offboarding', input.version, [1]);
  const info = workflowInfo();
  const settings = { ...DEFAULT_OFFBOARDING_SETTINGS, ...(input.settings ?? {}) };
  if (!input.resume) checkInput(input, settings);
  const run = input.requestId ?? input.resume?.requestId ?? info.firstExecutionRunId.slice(0, 8);
  const bounded = proxyActivities<Activities>({
    ...untilDone,
    retry: { ...untilDone.retry, maximumAttempts: settings.escalationAttempts },
  });

  const status = initialStatus(input, settings, info.workflowId, run);
  const nhiId = status.nhiId;

  const requests: Requests = { finalising: false };
  /** Has an access-changing step started? Then a failure fails closed (intents stay). */
  let enforcing = false;
  const saga = new Saga();
  const isFinal = () => OFFBOARDING_FINAL_STATES.includes(status.state);

  const event = (name: string, detail?: string) => {
    status.timeline.push({ at: iso(Date.now()), event: name, detail });
    if (status.timeline.length > TIMELINE_MAX) status.timeline.splice(0, status.timeline.length - TIMELINE_MAX);
  };
  const transition = (state: OffboardingState, detail?: string) => {
    status.state = state;
    event(state, detail);
    upsertSearchAttributes([{ key: NhiStateKey, value: state }]);
    refreshDetails();
  };
  const refreshDetails = () => setCurrentDetails(statusDetails(status));

  setOffboardingHandlers({ status, requests, run, isFinal, event });

  // Every run says what it is about (also when started from the UI or the CLI without them).
  upsertSearchAttributes([
    { key: NhiIdKey, value: nhiId },
    { key: ScenarioKey, value: OFFBOARDING_SCENARIO },
    { key: NhiStateKey, value: status.state },
  ]);

  // --- the flow ------------------------------------------------------------------------------
  try {
    if (input.resume) {
      refreshDetails();
      await watch();
      return await finish();
    }
    refreshDetails();
    const d = await acts.evaluateOffboard({ nhiId, run, requestedBy: input.requestedBy, reason: input.reason, ticket: input.ticket, graceDays: input.graceDays, watchDays: input.watchDays, authority: input.authority });
    status.decision = d.evidence;
    status.connector = d.connector;
    status.identity = d.identity;
    status.previousStatus = d.status;
    event('policy', `${d.evidence.allowed ? 'allowed' : 'denied'}${d.evidence.reasons.length ? `: ${d.evidence.reasons.join('; ')}` : ''}`);
    if (!d.evidence.allowed) {
      transition('denied', d.evidence.reasons.join('; '));
      return await finish();
    }
    status.graceDays = input.graceDays ?? d.evidence.defaultGraceDays ?? FALLBACK_GRACE_DAYS;
    status.watchDays = input.watchDays ?? d.evidence.defaultWatchDays ?? FALLBACK_WATCH_DAYS;

    await markOffboarding(d.status);
    if (requests.abort) return await abortNow();

    await disable();
    if (requests.abort) return await abortNow();

    // Only once access is off: a throttle that ends now (superseded) gives nothing back meanwhile.
    transition('stopping_scenarios');
    status.otherScenarios = await stopOtherScenarios();
    if (requests.abort) return await abortNow();

    await proveAndAttest();
    if (requests.abort) return await abortNow();

    await grace(status.graceDays);
    if (requests.abort) return await abortNow();
    requests.finalising = true; // same step as the check above: no abort is accepted from here on

    await finalise(status.watchDays);
    await watch();
    return await finish();
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() => endCancelled());
      throw err;
    }
    status.failure = causeMessage(err);
    await CancellationScope.nonCancellable(() => endFailed());
    throw err;
  }

  // --- the steps -----------------------------------------------------------------------------

  /** Inventory status `offboarding`, its undo registered first (back to the status it had). */
  async function markOffboarding(previous: NhiInventoryStatus) {
    saga.add(`inventory back to ${previous}`, () => forever.restoreInventoryStatus({ nhiId, run, status: previous, actor: requests.abort?.by ?? 'system' }));
    const marked = await acts.markOffboarding({ nhiId, run, actor: input.requestedBy });
    status.credentials = marked.credentials;
    event('inventory', 'status offboarding');
  }

  /** This workflow's intents committed (their release registered as the undo first), then disabled. */
  async function disable() {
    // The undo before the step: release exactly this workflow's intents (others' stay) and reconcile.
    saga.add('release the offboarding intents', async () => {
      const r = await enforce('release the offboarding intents', (a) =>
        a.releaseOffboarding({ nhiId, run, actor: requests.abort?.by ?? 'system', reason: requests.abort?.reason ?? 'rollback' }),
      );
      status.restored = r.after;
      if (status.intents) status.intents.releasedAt = iso(Date.now());
    });
    transition('disabling');
    enforcing = true;
    status.intents = { owner: info.workflowId, restrictions: ['login_disabled', 'offboarded'], committedAt: iso(Date.now()) };
    await disableAll(1);
  }

  /** Prove no standing access is left (disabling again until it holds), then record the attestation. */
  async function proveAndAttest() {
    transition('proving');
    let attestation: Attestation;
    for (let round = 1; ; round++) {
      status.proofRounds = round;
      attestation = await enforce('prove', (a) => a.proveNoAccess({ nhiId }));
      if (attestation.outcome === 'no_standing_access') break;
      const failing = attestation.checks.filter((c) => !c.ok).map((c) => c.check);
      event('proof failed', failing.join(', '));
      await acts.recordAudit({ stepId: `${run}:proof:${round}`, scenario: OFFBOARDING_SCENARIO, nhiId, actor: 'system', action: 'offboarding.proof', outcome: 'access_remains', readback: attestation.checks });
      if (round >= PROOF_ROUNDS_BEFORE_ESCALATION) {
        if (round === PROOF_ROUNDS_BEFORE_ESCALATION) await escalate('prove no standing access', new Error(`failing checks: ${failing.join(', ')}`));
        await sleep(Math.min(round, 15) * MINUTE); // do not spin against a target that keeps access
      }
      await disableAll(round + 1);
    }
    status.attestation = attestation;
    await acts.recordAudit({
      stepId: `${run}:attestation`,
      scenario: OFFBOARDING_SCENARIO,
      nhiId,
      actor: 'system',
      action: 'offboarding.attestation',
      outcome: attestation.outcome,
      target: { connector: attestation.connector, identity: attestation.identity },
      readback: attestation.checks,
      details: { at: attestation.at, dependents: attestation.dependents, intents: status.intents ?? null, proofRounds: status.proofRounds },
    });
    event('attested', `${attestation.checks.length} checks passed`);
    await notify({
      id: `${info.workflowId}:${run}:attested`,
      kind: 'offboarding.disabled',
      severity: attestation.dependents.length ? 'warning' : 'info',
      nhiId,
      text: `${nhiId}: access removed and proven (${attestation.checks.length} checks)${attestation.dependents.length ? `; now failing: ${attestation.dependents.map((x) => x.id).join(', ')}` : ''}; grace ${status.graceDays} day(s)`,
      details: { dependents: attestation.dependents },
    });
  }

  /** The grace period: a durable timer that an abort or a confirm ends early. */
  async function grace(graceDays: number) {
    const graceMs = graceDays * DAY;
    if (graceMs > 0 && !requests.confirm) {
      status.graceEndsAt = iso(Date.now() + graceMs);
      transition('grace', `until ${status.graceEndsAt}`);
      await condition(() => requests.abort !== undefined || requests.confirm !== undefined, graceMs); // durable timer
    }
    if (patched(SAFEGUARDS_PATCH)) await awaitSecondPerson({ status, requests, event, refresh: refreshDetails });
  }

  /** Baseline emptied, `offboarded` kept, credentials erased: from here there is nothing to restore. */
  async function finalise(watchDays: number) {
    if (requests.confirm) {
      await acts.recordAudit({ stepId: `${run}:confirm`, scenario: OFFBOARDING_SCENARIO, nhiId, actor: requests.confirm.by, action: 'offboarding.confirm', outcome: 'confirmed', details: { comment: requests.confirm.comment ?? null } });
    }
    transition('finalising');
    // Nothing may have come back during the grace period before the credentials go.
    const pre = await enforce('pre-finalise check', (a) => a.recheckAccess({ nhiId, run, check: 'pre-finalise' }));
    await onDrift(pre);
    const fin = await enforce('finalise', (a) => a.finaliseOffboarding({ nhiId, run, actor: requests.confirm?.by ?? 'system' }));
    saga.clear(); // the baseline is empty and the secrets are gone: there is nothing to restore any more
    if (status.intents) status.intents.restrictions = ['offboarded'];
    status.credentials = fin.credentials;
    status.finalisedAt = iso(Date.now());
    status.watch.endsAt = iso(Date.now() + watchDays * DAY);
    event('finalised', `baseline emptied, 'offboarded' kept; ${fin.deletedNow} stored credential(s) erased; role left NOLOGIN`);
    await notify({ id: `${info.workflowId}:${run}:finalised`, kind: 'offboarding.finalised', severity: 'info', nhiId, text: `${nhiId} is offboarded: baseline emptied, credentials erased, role left NOLOGIN; watching for ${watchDays} day(s)` });
  }

  async function escalate(step: string, err: unknown) {
    const detail = causeMessage(err);
    status.escalations.push({ at: iso(Date.now()), step, detail });
    const n = status.escalations.length;
    event('escalated', `${step}: ${detail}`);
    refreshDetails();
    await acts.recordAudit({ stepId: `${run}:escalate:${n}`, scenario: OFFBOARDING_SCENARIO, nhiId, actor: 'system', action: 'enforcement.escalate', outcome: 'escalated', details: { step, detail, attempts: settings.escalationAttempts } });
    await notify({ id: `${info.workflowId}:${run}:escalate:${n}`, kind: 'escalation', severity: 'critical', nhiId, text: `ESCALATION: offboarding of ${nhiId} — ${step} keeps failing (${detail}); still retrying` });
  }

  /** A step that must eventually succeed: bounded attempts, an escalation, then no limit. */
  async function enforce<T>(step: string, call: (a: Activities) => Promise<T>): Promise<T> {
    try {
      return await call(bounded);
    } catch (err) {
      if (isCancellation(err)) throw err;
      await escalate(step, err);
      return await call(forever);
    }
  }

  /** Each access step commits this workflow's intent and reconciles; sessions are an action after it. */
  async function disableAll(round: number) {
    const base = { nhiId, run };
    status.disable.login = await enforce('disable login', (a) => a.disableLogin({ ...base, step: `disable:${round}:login` }));
    status.disable.entitlements = await enforce('revoke entitlements', (a) => a.revokeEntitlements({ ...base, step: `disable:${round}:entitlements` }));
    status.disable.sessions = await enforce('end sessions', (a) => a.endSessions({ ...base, step: `disable:${round}:sessions` }));
    refreshDetails();
  }

  async function stopOtherScenarios(): Promise<StopScenariosResult> {
    try {
      return await reach.stopOtherScenarios({ nhiId, run, by: info.workflowId, reason: `offboarding: ${input.reason}` });
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Their access goes with the revocation below; the elevations themselves need a person.
      await escalate('end running elevations', err);
      return { elevations: [], throttles: { supported: false, ended: [] }, skipped: `could not reach the other workflows: ${causeMessage(err)}` };
    }
  }

  async function onDrift(r: WatchCheckResult) {
    if (r.clean) return;
    status.watch.driftTotal += r.drift.length;
    status.watch.drift = [...status.watch.drift, ...r.drift].slice(-DRIFT_MAX);
    const what = r.drift.map((d) => d.detail).join('; ');
    event('drift reverted', what);
    refreshDetails();
    await notify({
      id: `${info.workflowId}:${run}:drift:${r.check}`,
      kind: 'offboarding.drift',
      severity: 'warning',
      nhiId,
      text: `Access reappeared on offboarded ${nhiId} outside the orchestrator and was removed again: ${what}`,
      details: { check: r.check, drift: r.drift },
    });
  }

  async function finish(): Promise<OffboardingStatus> {
    refreshDetails();
    await condition(allHandlersFinished);
    return status;
  }

  async function abortNow(): Promise<OffboardingStatus> {
    const a = requests.abort!;
    status.abort = { by: a.by, at: a.at, reason: a.reason };
    transition('restoring', `abort by ${a.by}: ${a.reason}: releasing this offboarding's intents`);
    const outcomes = await saga.compensate();
    const failed = outcomes.filter((o) => !o.ok);
    if (failed.length) {
      status.failure = `restore failed: ${failed.map((f) => `${f.name}: ${f.error}`).join('; ')}`;
      transition('failed', status.failure);
    } else {
      transition('aborted', status.restored ? `intents released: ${describeAccess(status.restored)}` : 'nothing had changed at the target');
    }
    await CancellationScope.nonCancellable(async () => {
      await acts.recordAudit({
        stepId: `${run}:aborted`,
        scenario: OFFBOARDING_SCENARIO,
        nhiId,
        actor: a.by,
        action: 'offboarding.abort',
        outcome: status.state,
        readback: status.restored ?? null,
        details: { reason: a.reason, intents: status.intents ?? null, compensations: outcomes },
      });
      await notify({
        id: `${info.workflowId}:${run}:aborted`,
        kind: 'offboarding.aborted',
        severity: status.state === 'aborted' ? 'info' : 'critical',
        nhiId,
        text:
          status.state === 'aborted'
            ? `Offboarding of ${nhiId} aborted by ${a.by} (${a.reason}): its intents released, access is what the other intents and the baseline want (verified)`
            : `Abort of ${nhiId}'s offboarding failed: ${status.failure}`,
      });
    });
    return finish();
  }

  async function watch(): Promise<void> {
    if (status.state !== 'watching') transition('watching', `until ${status.watch.endsAt}`);
    const endsAt = Date.parse(status.watch.endsAt!);
    // Checks keep to their planned times (a slow check does not push the later ones); after
    // continue-as-new, nextCheckAt is the planned time of the check just done.
    let anchor = Date.parse(status.watch.nextCheckAt ?? status.finalisedAt!);
    let checksThisRun = 0;
    for (;;) {
      const now = Date.now();
      if (now >= endsAt) break;
      const next = Math.min(anchor + settings.checkIntervalMinutes * MINUTE, endsAt);
      anchor = next;
      status.watch.nextCheckAt = iso(next);
      refreshDetails();
      if (next > now) await sleep(next - now); // durable timer
      const n = status.watch.checks + 1;
      const r = await enforce(`watch check ${n}`, (a) => a.recheckAccess({ nhiId, run, check: n }));
      status.watch.checks = n;
      status.watch.lastCheckAt = iso(Date.now());
      await onDrift(r);
      checksThisRun++;
      if (Date.now() < endsAt && (checksThisRun >= settings.checksPerRun || workflowInfo().continueAsNewSuggested)) {
        event('continue-as-new', `after check ${n}`);
        status.timeline = status.timeline.slice(-TIMELINE_CARRIED);
        await condition(allHandlersFinished);
        await continueAsNew<typeof offboarding>({ ...input, requestId: run, resume: status });
      }
    }
    status.watch.nextCheckAt = undefined;
    transition('completed', `${status.watch.checks} check(s), ${status.watch.driftTotal} drift event(s) reverted`);
    await acts.recordAudit({ stepId: `${run}:completed`, scenario: OFFBOARDING_SCENARIO, nhiId, actor: 'system', action: 'offboarding.complete', outcome: 'offboarded', details: { checks: status.watch.checks, driftTotal: status.watch.driftTotal, runs: status.runs } });
    await notify({ id: `${info.workflowId}:${run}:completed`, kind: 'offboarding.completed', severity: 'info', nhiId, text: `Offboarding of ${nhiId} complete: ${status.watch.checks} watch check(s), ${status.watch.driftTotal} drift event(s) reverted` });
  }

  /** Cancelled: after finalisation the watch just ends; before it, everything is put back, like an abort. */
  async function endCancelled() {
    if (status.finalisedAt) {
      // Nothing to undo after finalisation: the watch just ends.
      status.watch.cancelled = true;
      status.watch.nextCheckAt = undefined;
      transition('completed', 'watch cancelled');
      await acts.recordAudit({ stepId: `${run}:watch-cancelled`, scenario: OFFBOARDING_SCENARIO, nhiId, actor: 'temporal (cancel request)', action: 'offboarding.complete', outcome: 'watch_cancelled', details: { checks: status.watch.checks } });
      await finish();
    } else {
      // Compensate, don't strand: a cancelled offboarding puts everything back, like an abort.
      requests.abort ??= { by: 'temporal (cancel request)', reason: 'workflow cancelled', at: iso(Date.now()) };
      await abortNow();
    }
  }

  /**
   * Failed. Before the first access step nothing changed at the target: put the inventory back.
   * After it, fail closed: the intents stay, access stays removed and the record stays `offboarding`.
   */
  async function endFailed() {
    if (!enforcing && saga.size) await saga.compensate();
    transition('failed', status.failure);
    await acts.recordAudit({ stepId: `${run}:failed`, scenario: OFFBOARDING_SCENARIO, nhiId, actor: 'system', action: 'offboarding.fail', outcome: 'failed', details: { cause: status.failure } });
    await notify({ id: `${info.workflowId}:${run}:failed`, kind: 'escalation', severity: 'critical', nhiId, text: `Offboarding of ${nhiId} failed: ${status.failure}` });
    await condition(allHandlersFinished);
  }
}
