// JIT elevation: policy → approvals → (scheduled start) → grant bundle (saga) → active window →
// revoke and verify → receipt. Revocation is never abandoned and survives cancellation.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
  continueAsNew,
  ContinueAsNew,
  patched,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastCall } from '../../workflows/activity-presets';
import { causeMessage, ErrorType } from '../../workflows/errors';
import {
  approveUpdate,
  closeWindowSignal,
  denyUpdate,
  extendUpdate,
  JIT_FINAL_STATES,
  revokeUpdate,
  statusQuery,
  type JitElevationInput,
  type JitEndReason,
  type JitState,
  type JitStatus,
} from './contract';
import { Mutex } from '../../workflows/mutex';
import { Saga } from '../../workflows/saga';
import { NhiStateKey } from '../../workflows/search-attributes';
import { checkInputVersion, historyBudgetSpent, PATCHES } from '../../workflows/versioning';
import { initialStatus, iso, statusDetails } from './status';
import { addTimelineEntry } from '../../workflows/timeline';
import { jitSteps, localSteps } from './steps';

type Activities = ReturnType<typeof createActivities>;

// Approver and revoker checks and extension decisions stay regular activities (they answer updates).
const acts = proxyActivities<Activities>(fastCall);
/** Transient states the NhiState search attribute skips on the patched path (see PATCHES.jitLocalSteps). */
const UNLISTED_STATES: readonly JitState[] = ['granting', 'revoking'];

const MINUTE = 60_000;
/** An active window continues as new after this many extensions in one run. */
const EXTENSIONS_PER_RUN = 100;

export async function jitElevation(input: JitElevationInput): Promise<JitStatus> {
  checkInputVersion('jitElevation', input.version, [1]);
  const { workflowId } = workflowInfo();
  const carried = input.resume;
  const status = initialStatus(input, workflowId);
  // Bounded retries for a revocation attempt (revokeOnce); past them an escalation is raised and it goes on forever.
  const { evaluateElevation, grantEntitlement, recordAudit, notify, revokeOnce, revokeForever } = jitSteps(input.settings.revokeEscalationAttempts);

  let endReason: JitEndReason | undefined;
  let expiresAtMs = carried?.expiresAtMs ?? 0;
  let granted = Boolean(carried);
  let extensionsThisRun = 0;
  const mutex = new Mutex();
  const isFinal = () => JIT_FINAL_STATES.includes(status.state);

  const event = (name: string, detail?: string) => addTimelineEntry(status, name, detail);
  const transition = (state: JitState, detail?: string) => {
    status.state = state;
    // A final state carries why it ended from the moment it is reached.
    if (JIT_FINAL_STATES.includes(state)) status.endReason = endReason ?? status.endReason;
    event(state, detail);
    if (!(UNLISTED_STATES.includes(state) && localSteps())) upsertSearchAttributes([{ key: NhiStateKey, value: state }]);
    refreshDetails();
  };
  const refreshDetails = () => setCurrentDetails(statusDetails(status, input.entitlements));

  // --- message handlers -------------------------------------------------------------------
  setHandler(statusQuery, () => status);

  setHandler(
    approveUpdate,
    (a) =>
      mutex.runExclusive(async () => {
        const verdict = await acts.checkApprover({ approver: a.approver, requestedBy: status.requestedBy, nhiId: status.nhiId, entitlements: input.entitlements, message: 'approve', authority: a.authority });
        if (!verdict.allowed) throw ApplicationFailure.create({ message: `${a.approver} may not approve this request: ${verdict.reasons.join('; ') || 'no policy allows it'}`, type: ErrorType.NotAllowed, nonRetryable: true });
        if (status.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${status.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
        if (status.approvals.some((x) => x.by === a.approver)) return status; // one principal counts once
        status.approvals.push({ by: a.approver, at: iso(Date.now()), comment: a.comment });
        event('approved', `${a.approver} (${status.approvals.length}/${status.requiredApprovals})`);
        await recordAudit({ stepId: `approve:${a.approver}`, scenario: 'jit', nhiId: status.nhiId, actor: a.approver, action: 'elevation.approve', outcome: 'approved', details: { comment: a.comment ?? null, count: status.approvals.length, required: status.requiredApprovals } });
        refreshDetails();
        return status;
      }),
    {
      validator: (a) => {
        if (status.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${status.state}, not awaiting approval`, type: ErrorType.RequestClosed });
        if (!a?.approver) throw ApplicationFailure.create({ message: 'approver is required', type: ErrorType.InvalidRequest });
        if (a.approver === status.requestedBy) throw ApplicationFailure.create({ message: 'the requester can never approve their own request', type: ErrorType.SelfApproval });
        if (status.approvals.some((x) => x.by === a.approver)) throw ApplicationFailure.create({ message: `${a.approver} has already approved; one principal counts once`, type: ErrorType.AlreadyApproved });
      },
    },
  );

  setHandler(
    denyUpdate,
    (d) =>
      mutex.runExclusive(async () => {
        const verdict = await acts.checkApprover({ approver: d.approver, requestedBy: status.requestedBy, nhiId: status.nhiId, entitlements: input.entitlements, message: 'deny', authority: d.authority });
        if (!verdict.allowed) throw ApplicationFailure.create({ message: `${d.approver} may not decide on this request`, type: ErrorType.NotAllowed, nonRetryable: true });
        if (status.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${status.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
        status.denial = { by: d.approver, at: iso(Date.now()), reason: d.reason };
        await recordAudit({ stepId: 'deny', scenario: 'jit', nhiId: status.nhiId, actor: d.approver, action: 'elevation.deny', outcome: 'denied', details: { reason: d.reason } });
        return status;
      }),
    {
      validator: (d) => {
        if (status.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${status.state}, not awaiting approval`, type: ErrorType.RequestClosed });
        if (!d?.approver || !d.reason) throw ApplicationFailure.create({ message: 'approver and reason are required', type: ErrorType.InvalidRequest });
        if (d.approver === status.requestedBy) throw ApplicationFailure.create({ message: 'the requester cannot decide on their own request', type: ErrorType.SelfApproval });
      },
    },
  );

  setHandler(
    extendUpdate,
    (x) =>
      mutex.runExclusive(async () => {
        if (status.state !== 'active' || endReason) throw ApplicationFailure.create({ message: `elevation is ${status.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
        const total = status.durationMinutes + status.extensions.reduce((n, e) => n + e.minutes, 0) + x.minutes;
        const d = await acts.evaluateExtension({
          nhiId: status.nhiId,
          entitlements: input.entitlements,
          durationMinutes: input.durationMinutes,
          ticket: input.ticket,
          breakGlass: input.breakGlass,
          requestedBy: status.requestedBy,
          extraMinutes: x.minutes,
          totalMinutes: total,
          extensionNumber: status.extensions.length + 1,
          by: x.by,
          authority: x.authority,
        });
        if (d.outcome === 'deny') {
          throw ApplicationFailure.create({ message: `extension to ${total} minutes rejected: ${d.reasons.join('; ') || 'policy denies it'}`, type: ErrorType.PolicyDenied, nonRetryable: true, details: [d] });
        }
        status.extensions.push({ by: x.by, at: iso(Date.now()), minutes: x.minutes, reason: x.reason });
        extensionsThisRun++;
        expiresAtMs += x.minutes * MINUTE;
        status.expiresAt = iso(expiresAtMs);
        event('extended', `+${x.minutes}m by ${x.by}, now until ${status.expiresAt}`);
        await recordAudit({ stepId: `extend:${status.extensions.length}`, scenario: 'jit', nhiId: status.nhiId, actor: x.by, action: 'elevation.extend', outcome: 'extended', decision: d, details: { minutes: x.minutes, expiresAt: status.expiresAt, reason: x.reason ?? null } });
        refreshDetails();
        return status;
      }),
    {
      validator: (x) => {
        if (status.state !== 'active' || endReason) throw ApplicationFailure.create({ message: `elevation is ${status.state}, not active`, type: ErrorType.RequestClosed });
        if (!x || !Number.isInteger(x.minutes) || x.minutes <= 0) throw ApplicationFailure.create({ message: 'minutes must be a positive integer', type: ErrorType.InvalidRequest });
        if (x.by !== status.requestedBy) throw ApplicationFailure.create({ message: 'only the requester can extend an elevation', type: ErrorType.NotAllowed });
      },
    },
  );

  setHandler(
    revokeUpdate,
    async (r) => {
      // Who may end it is looked up server-side; roles in the message are ignored.
      const verdict = await acts.checkRevoker({ by: r.by, requestedBy: status.requestedBy, nhiId: status.nhiId, ...(r.byWorkflow ? { byWorkflow: r.byWorkflow } : {}), ...(r.authority ? { authority: r.authority } : {}) });
      if (!verdict.allowed) {
        throw ApplicationFailure.create({ message: `${r.by} may not end this elevation: ${verdict.reasons.join('; ') || 'only the requester, an approver or an admin can'}`, type: ErrorType.NotAllowed, nonRetryable: true });
      }
      if (isFinal() || endReason) throw ApplicationFailure.create({ message: `elevation is ${status.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
      endReason = 'revoked_early';
      status.endedBy = verdict.actor ?? r.by;
      status.endComment = r.reason;
      // Answer once the revocation is verified (or the request was closed before any grant).
      await condition(() => isFinal());
      return status;
    },
    {
      validator: (r) => {
        if (isFinal() || endReason) throw ApplicationFailure.create({ message: `elevation is ${status.state}`, type: ErrorType.RequestClosed });
        if (!r?.by) throw ApplicationFailure.create({ message: 'by is required', type: ErrorType.InvalidRequest });
      },
    },
  );

  setHandler(closeWindowSignal, (c) => {
    if (isFinal() || endReason) return;
    if (c?.changeId && input.changeId && c.changeId !== input.changeId) return;
    endReason = 'change_window_closed';
    status.endedBy = c?.by ?? 'deployment tooling';
    status.endComment = c?.reason;
  });

  // --- the flow ------------------------------------------------------------------------------
  const saga = new Saga();
  try {
    refreshDetails();
    if (carried) return await activeWindow(carried.warnedFor);
    const facts = {
      nhiId: input.nhiId,
      entitlements: input.entitlements,
      durationMinutes: input.durationMinutes,
      ticket: input.ticket,
      breakGlass: input.breakGlass,
      requestedBy: input.requestedBy,
    };
    const decision = await evaluateElevation({ ...facts, authority: input.authority });
    status.decision = decision;
    status.requiredApprovals = decision.outcome === 'needs_approval' ? decision.requiredApprovals : 0;
    event('policy', `${decision.outcome}${decision.reasons.length ? `: ${decision.reasons.join('; ')}` : ''}`);

    if (decision.outcome === 'deny') {
      transition('denied', decision.reasons.join('; '));
      return await finish();
    }
    if (decision.outcome === 'break_glass') {
      status.needsReview = true;
      await notify({ id: `${workflowId}:break-glass`, kind: 'jit.break_glass', severity: 'warning', nhiId: status.nhiId, text: `Break-glass elevation of ${status.nhiId} (${input.entitlements.join(', ')}) by ${status.requestedBy}: marked for review`, details: { ticket: input.ticket ?? null } });
    }
    if (decision.outcome === 'needs_approval') {
      const deadline = Date.now() + input.settings.approvalTimeoutMinutes * MINUTE;
      status.approvalDeadline = iso(deadline);
      transition('awaiting_approval', `${status.requiredApprovals} approval(s) needed`);
      await notify({ id: `${workflowId}:approval-requested`, kind: 'jit.approval_requested', severity: 'info', nhiId: status.nhiId, text: `${status.requestedBy} asks for ${input.entitlements.join(', ')} on ${status.nhiId} for ${input.durationMinutes}m: ${input.justification}` });
      const answered = await condition(
        () => status.approvals.length >= status.requiredApprovals || status.denial !== undefined || endReason !== undefined,
        Math.max(1, deadline - Date.now()),
      );
      // Let an approve/deny in flight finish (they hold the mutex). Not allHandlersFinished: a revoke
      // that withdraws the request answers only once the request is closed, so it would wait forever.
      await mutex.runExclusive(async () => undefined);
      if (status.denial) {
        transition('denied', `by ${status.denial.by}: ${status.denial.reason}`);
        return await finish();
      }
      if (endReason) {
        transition('cancelled', `withdrawn by ${status.endedBy}`);
        return await finish();
      }
      if (!answered) {
        transition('expired', 'no answer before the approval deadline; nothing granted');
        await recordAudit({ stepId: 'approval-expired', scenario: 'jit', nhiId: status.nhiId, actor: 'system', action: 'elevation.expire', outcome: 'expired', details: { deadline: status.approvalDeadline } });
        return await finish();
      }
    }

    if (input.startAt && Date.parse(input.startAt) > Date.now()) {
      transition('scheduled', `starts ${input.startAt}`);
      await condition(() => endReason !== undefined, Date.parse(input.startAt) - Date.now());
      if (endReason) {
        transition('cancelled', `withdrawn by ${status.endedBy} before the start`);
        return await finish();
      }
    }

    // Grant the bundle: the undo is registered before each grant.
    expiresAtMs = Date.now() + input.durationMinutes * MINUTE;
    status.expiresAt = iso(expiresAtMs);
    transition('granting');
    for (const [i, entitlement] of input.entitlements.entries()) {
      saga.add(`revoke ${entitlement}`, async () => {
        status.entitlements[i] = await revokeForever({ nhiId: status.nhiId, entitlement, actor: 'system', reason: 'rollback', stepId: `rollback:${entitlement}` });
      });
      status.entitlements[i] = await grantEntitlement({ nhiId: status.nhiId, entitlement, expiresAt: status.expiresAt, actor: status.requestedBy });
    }
    granted = true;
    saga.clear(); // from here on, the revocation below is what ends access

    // The clock starts at grant time.
    expiresAtMs = Date.now() + input.durationMinutes * MINUTE;
    status.grantedAt = iso(Date.now());
    status.expiresAt = iso(expiresAtMs);
    transition('active', `until ${status.expiresAt}`);
    await notify({ id: `${workflowId}:granted`, kind: 'jit.granted', severity: 'info', nhiId: status.nhiId, text: `${status.nhiId} holds ${input.entitlements.join(', ')} until ${status.expiresAt}${status.needsReview ? ' (break-glass, review needed)' : ''}` });

    return await activeWindow(0);
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        endReason = 'cancelled';
        status.endedBy ??= 'temporal (cancel request)';
        if (granted) {
          await revokeAll('cancelled');
          transition('revoked', 'cancelled');
        } else if (saga.size) {
          await saga.compensate();
          transition('cancelled', 'cancelled while granting; partial grants revoked');
        } else {
          transition('cancelled');
        }
        await finish();
      });
      throw err;
    }
    if (saga.size) {
      // A grant failed for good: undo what was granted and end rolled back, with the cause.
      status.failure = causeMessage(err);
      const outcomes = await saga.compensate();
      transition('rolled_back', status.failure);
      await CancellationScope.nonCancellable(() =>
        recordAudit({ stepId: 'rolled-back', scenario: 'jit', nhiId: status.nhiId, actor: 'system', action: 'elevation.rollback', outcome: 'rolled_back', readback: status.entitlements, details: { cause: status.failure, compensations: outcomes } }),
      );
      return await finish();
    }
    throw err;
  }

  /**
   * The active window until it ends: a warning before expiry, extensions move the expiry; then
   * revoke and verify. After many extensions (or when Temporal suggests it) it continues as new.
   */
  async function activeWindow(warnedAt: number): Promise<JitStatus> {
    let warnedFor = warnedAt;
    const warnMs = input.settings.expiryWarningMinutes * MINUTE;
    while (endReason === undefined) {
      const now = Date.now();
      if (now >= expiresAtMs) {
        endReason = 'window_expired';
        break;
      }
      if (patched(PATCHES.jitContinueAsNew) && (extensionsThisRun >= EXTENSIONS_PER_RUN || historyBudgetSpent())) {
        // An extension in flight finishes first (it holds the mutex); a revoke sets endReason.
        await mutex.runExclusive(async () => undefined);
        await condition(() => endReason !== undefined || allHandlersFinished());
        if (endReason !== undefined) break;
        event('continue-as-new', `after ${status.extensions.length} extension(s)`);
        await continueAsNew<typeof jitElevation>({ ...input, resume: { status, expiresAtMs, warnedFor } });
      }
      const warnAt = expiresAtMs - warnMs;
      if (now >= warnAt && warnedFor !== expiresAtMs && warnMs < input.durationMinutes * MINUTE) {
        warnedFor = expiresAtMs;
        await notify({ id: `${workflowId}:warn:${status.expiresAt}`, kind: 'jit.expiring', severity: 'info', nhiId: status.nhiId, text: `${status.nhiId}'s elevation (${input.entitlements.join(', ')}) ends at ${status.expiresAt}` });
        continue;
      }
      const next = warnedFor === expiresAtMs || warnAt <= now ? expiresAtMs : warnAt;
      const seen = expiresAtMs;
      await condition(() => endReason !== undefined || expiresAtMs !== seen, Math.max(1, next - now));
    }
    await revokeAll(endReason);
    transition('revoked', endReason);
    return await finish();
  }

  async function revokeAll(reason: JitEndReason) {
    status.endReason = reason;
    transition('revoking', reason);
    await CancellationScope.nonCancellable(async () => {
      for (const [i, entitlement] of input.entitlements.entries()) {
        const args = { nhiId: status.nhiId, entitlement, actor: status.endedBy ?? 'system', reason };
        try {
          status.entitlements[i] = await revokeOnce(args);
        } catch (err) {
          if (!status.escalated) {
            status.escalated = true;
            event('escalated', `revocation of ${entitlement} keeps failing: ${causeMessage(err)}`);
            // The patched path lists `revoking` only now: a revocation that keeps failing is findable.
            if (localSteps()) upsertSearchAttributes([{ key: NhiStateKey, value: 'revoking' }]);
            refreshDetails();
            await recordAudit({ stepId: `escalate:${entitlement}`, scenario: 'jit', nhiId: status.nhiId, actor: 'system', action: 'revocation.escalate', outcome: 'escalated', details: { entitlement, attempts: input.settings.revokeEscalationAttempts } });
            await notify({ id: `${workflowId}:escalate:${entitlement}`, kind: 'escalation', severity: 'critical', nhiId: status.nhiId, text: `ESCALATION: revoking ${entitlement} from ${status.nhiId} keeps failing; still retrying` });
          }
          status.entitlements[i] = await revokeForever(args);
        }
      }
    });
  }

  async function finish(): Promise<JitStatus> {
    await CancellationScope.nonCancellable(async () => {
      if (granted || status.state === 'rolled_back') {
        // The receipt, derived from each entitlement's last read-back: nothing this elevation gave is
        // left unless another holder (an elevation, the baseline) still wants it.
        const left = status.entitlements.filter((e) => e.present === true && e.otherHolders.length === 0).map((e) => e.entitlement);
        await recordAudit({
          stepId: 'receipt',
          scenario: 'jit',
          nhiId: status.nhiId,
          actor: 'system',
          action: 'elevation.receipt',
          outcome: left.length ? 'access_remains' : 'no_standing_access',
          readback: status.entitlements,
          details: { ...(left.length ? { remaining: left } : {}), endReason: status.endReason ?? endReason ?? null, grantedAt: status.grantedAt ?? null, state: status.state },
        });
      }
    });
    refreshDetails();
    await condition(allHandlersFinished);
    return status;
  }
}
