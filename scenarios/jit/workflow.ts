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
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastCall, notification, untilDone } from '../../workflows/activity-presets';
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

type Activities = ReturnType<typeof createActivities>;

const acts = proxyActivities<Activities>(fastCall);
const notify = proxyActivities<Activities>(notification).notify;
const revokeForever = proxyActivities<Activities>(untilDone).releaseEntitlement;

const MINUTE = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

export async function jitElevation(input: JitElevationInput): Promise<JitStatus> {
  const { workflowId } = workflowInfo();
  const s: JitStatus = {
    version: 1,
    workflowId,
    nhiId: input.nhiId,
    state: 'evaluating',
    requestedBy: input.requestedBy,
    requestedAt: input.requestedAt,
    justification: input.justification,
    ticket: input.ticket,
    changeId: input.changeId,
    durationMinutes: input.durationMinutes,
    startAt: input.startAt,
    breakGlass: Boolean(input.breakGlass),
    needsReview: false,
    requiredApprovals: 0,
    approvals: [],
    extensions: [],
    entitlements: input.entitlements.map((entitlement) => ({ entitlement, present: null, otherHolders: [] })),
    escalated: false,
    timeline: [],
  };
  // Bounded retries for a revocation attempt; past them an escalation is raised and it goes on forever.
  const revokeOnce = proxyActivities<Activities>({
    ...untilDone,
    retry: { ...untilDone.retry, maximumAttempts: Math.max(1, input.settings.revokeEscalationAttempts) },
  }).releaseEntitlement;

  let endReason: JitEndReason | undefined;
  let expiresAtMs = 0;
  let granted = false;
  const mutex = new Mutex();
  const isFinal = () => JIT_FINAL_STATES.includes(s.state);

  const event = (name: string, detail?: string) => s.timeline.push({ at: iso(Date.now()), event: name, detail });
  const transition = (state: JitState, detail?: string) => {
    s.state = state;
    // A final state carries why it ended from the moment it is reached.
    if (JIT_FINAL_STATES.includes(state)) s.endReason = endReason ?? s.endReason;
    event(state, detail);
    upsertSearchAttributes([{ key: NhiStateKey, value: state }]);
    refreshDetails();
  };
  function refreshDetails() {
    const lines = [`**${s.state}** — ${s.nhiId} → ${input.entitlements.join(', ')}`, `requested by ${s.requestedBy}: ${s.justification}`];
    if (s.state === 'awaiting_approval') lines.push(`approvals ${s.approvals.length}/${s.requiredApprovals} (until ${s.approvalDeadline})`);
    if (s.expiresAt && (s.state === 'active' || s.state === 'granting')) lines.push(`expires ${s.expiresAt}`);
    if (s.endReason) lines.push(`ended: ${s.endReason}${s.endedBy ? ` by ${s.endedBy}` : ''}`);
    if (s.escalated) lines.push('⚠ revocation escalated');
    setCurrentDetails(lines.join('\n'));
  }

  // --- message handlers -------------------------------------------------------------------
  setHandler(statusQuery, () => s);

  setHandler(
    approveUpdate,
    (a) =>
      mutex.runExclusive(async () => {
        const verdict = await acts.checkApprover({ approver: a.approver, requestedBy: s.requestedBy, nhiId: s.nhiId, entitlements: input.entitlements });
        if (!verdict.allowed) throw ApplicationFailure.create({ message: `${a.approver} may not approve this request: ${verdict.reasons.join('; ') || 'no policy allows it'}`, type: ErrorType.NotAllowed, nonRetryable: true });
        if (s.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${s.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
        if (s.approvals.some((x) => x.by === a.approver)) return s; // one principal counts once
        s.approvals.push({ by: a.approver, at: iso(Date.now()), comment: a.comment });
        event('approved', `${a.approver} (${s.approvals.length}/${s.requiredApprovals})`);
        await acts.recordAudit({ stepId: `approve:${a.approver}`, scenario: 'jit', nhiId: s.nhiId, actor: a.approver, action: 'elevation.approve', outcome: 'approved', details: { comment: a.comment ?? null, count: s.approvals.length, required: s.requiredApprovals } });
        refreshDetails();
        return s;
      }),
    {
      validator: (a) => {
        if (s.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${s.state}, not awaiting approval`, type: ErrorType.RequestClosed });
        if (!a?.approver) throw ApplicationFailure.create({ message: 'approver is required', type: ErrorType.InvalidRequest });
        if (a.approver === s.requestedBy) throw ApplicationFailure.create({ message: 'the requester can never approve their own request', type: ErrorType.SelfApproval });
        if (s.approvals.some((x) => x.by === a.approver)) throw ApplicationFailure.create({ message: `${a.approver} has already approved; one principal counts once`, type: ErrorType.AlreadyApproved });
      },
    },
  );

  setHandler(
    denyUpdate,
    (d) =>
      mutex.runExclusive(async () => {
        const verdict = await acts.checkApprover({ approver: d.approver, requestedBy: s.requestedBy, nhiId: s.nhiId, entitlements: input.entitlements });
        if (!verdict.allowed) throw ApplicationFailure.create({ message: `${d.approver} may not decide on this request`, type: ErrorType.NotAllowed, nonRetryable: true });
        if (s.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${s.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
        s.denial = { by: d.approver, at: iso(Date.now()), reason: d.reason };
        await acts.recordAudit({ stepId: 'deny', scenario: 'jit', nhiId: s.nhiId, actor: d.approver, action: 'elevation.deny', outcome: 'denied', details: { reason: d.reason } });
        return s;
      }),
    {
      validator: (d) => {
        if (s.state !== 'awaiting_approval') throw ApplicationFailure.create({ message: `request is ${s.state}, not awaiting approval`, type: ErrorType.RequestClosed });
        if (!d?.approver || !d.reason) throw ApplicationFailure.create({ message: 'approver and reason are required', type: ErrorType.InvalidRequest });
        if (d.approver === s.requestedBy) throw ApplicationFailure.create({ message: 'the requester cannot decide on their own request', type: ErrorType.SelfApproval });
      },
    },
  );

  setHandler(
    extendUpdate,
    (x) =>
      mutex.runExclusive(async () => {
        if (s.state !== 'active' || endReason) throw ApplicationFailure.create({ message: `elevation is ${s.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
        const total = s.durationMinutes + s.extensions.reduce((n, e) => n + e.minutes, 0) + x.minutes;
        const d = await acts.evaluateExtension({
          nhiId: s.nhiId,
          entitlements: input.entitlements,
          durationMinutes: input.durationMinutes,
          ticket: input.ticket,
          breakGlass: input.breakGlass,
          requestedBy: s.requestedBy,
          extraMinutes: x.minutes,
          totalMinutes: total,
          extensionNumber: s.extensions.length + 1,
        });
        if (d.outcome === 'deny') {
          throw ApplicationFailure.create({ message: `extension to ${total} minutes rejected: ${d.reasons.join('; ') || 'policy denies it'}`, type: ErrorType.PolicyDenied, nonRetryable: true, details: [d] });
        }
        s.extensions.push({ by: x.by, at: iso(Date.now()), minutes: x.minutes, reason: x.reason });
        expiresAtMs += x.minutes * MINUTE;
        s.expiresAt = iso(expiresAtMs);
        event('extended', `+${x.minutes}m by ${x.by}, now until ${s.expiresAt}`);
        await acts.recordAudit({ stepId: `extend:${s.extensions.length}`, scenario: 'jit', nhiId: s.nhiId, actor: x.by, action: 'elevation.extend', outcome: 'extended', decision: d, details: { minutes: x.minutes, expiresAt: s.expiresAt, reason: x.reason ?? null } });
        refreshDetails();
        return s;
      }),
    {
      validator: (x) => {
        if (s.state !== 'active' || endReason) throw ApplicationFailure.create({ message: `elevation is ${s.state}, not active`, type: ErrorType.RequestClosed });
        if (!x || !Number.isInteger(x.minutes) || x.minutes <= 0) throw ApplicationFailure.create({ message: 'minutes must be a positive integer', type: ErrorType.InvalidRequest });
        if (x.by !== s.requestedBy) throw ApplicationFailure.create({ message: 'only the requester can extend an elevation', type: ErrorType.NotAllowed });
      },
    },
  );

  setHandler(
    revokeUpdate,
    async (r) => {
      // Who may end it is looked up server-side; roles in the message are ignored.
      const verdict = await acts.checkRevoker({ by: r.by, requestedBy: s.requestedBy, nhiId: s.nhiId, ...(r.byWorkflow ? { byWorkflow: r.byWorkflow } : {}) });
      if (!verdict.allowed) {
        throw ApplicationFailure.create({ message: `${r.by} may not end this elevation: ${verdict.reasons.join('; ') || 'only the requester, an approver or an admin can'}`, type: ErrorType.NotAllowed, nonRetryable: true });
      }
      if (isFinal() || endReason) throw ApplicationFailure.create({ message: `elevation is ${s.state}`, type: ErrorType.RequestClosed, nonRetryable: true });
      endReason = 'revoked_early';
      s.endedBy = r.by;
      s.endComment = r.reason;
      // Answer once the revocation is verified (or the request was closed before any grant).
      await condition(() => isFinal());
      return s;
    },
    {
      validator: (r) => {
        if (isFinal() || endReason) throw ApplicationFailure.create({ message: `elevation is ${s.state}`, type: ErrorType.RequestClosed });
        if (!r?.by) throw ApplicationFailure.create({ message: 'by is required', type: ErrorType.InvalidRequest });
      },
    },
  );

  setHandler(closeWindowSignal, (c) => {
    if (isFinal() || endReason) return;
    if (c?.changeId && input.changeId && c.changeId !== input.changeId) return;
    endReason = 'change_window_closed';
    s.endedBy = c?.by ?? 'deployment tooling';
    s.endComment = c?.reason;
  });

  // --- the flow ------------------------------------------------------------------------------
  const saga = new Saga();
  try {
    refreshDetails();
    const facts = {
      nhiId: input.nhiId,
      entitlements: input.entitlements,
      durationMinutes: input.durationMinutes,
      ticket: input.ticket,
      breakGlass: input.breakGlass,
      requestedBy: input.requestedBy,
    };
    const decision = await acts.evaluateElevation(facts);
    s.decision = decision;
    s.requiredApprovals = decision.outcome === 'needs_approval' ? decision.requiredApprovals : 0;
    event('policy', `${decision.outcome}${decision.reasons.length ? `: ${decision.reasons.join('; ')}` : ''}`);

    if (decision.outcome === 'deny') {
      transition('denied', decision.reasons.join('; '));
      return await finish();
    }
    if (decision.outcome === 'break_glass') {
      s.needsReview = true;
      await notify({ id: `${workflowId}:break-glass`, kind: 'jit.break_glass', severity: 'warning', nhiId: s.nhiId, text: `Break-glass elevation of ${s.nhiId} (${input.entitlements.join(', ')}) by ${s.requestedBy}: marked for review`, details: { ticket: input.ticket ?? null } });
    }
    if (decision.outcome === 'needs_approval') {
      const deadline = Date.now() + input.settings.approvalTimeoutMinutes * MINUTE;
      s.approvalDeadline = iso(deadline);
      transition('awaiting_approval', `${s.requiredApprovals} approval(s) needed`);
      await notify({ id: `${workflowId}:approval-requested`, kind: 'jit.approval_requested', severity: 'info', nhiId: s.nhiId, text: `${s.requestedBy} asks for ${input.entitlements.join(', ')} on ${s.nhiId} for ${input.durationMinutes}m: ${input.justification}` });
      const answered = await condition(
        () => s.approvals.length >= s.requiredApprovals || s.denial !== undefined || endReason !== undefined,
        Math.max(1, deadline - Date.now()),
      );
      // Let an approve/deny in flight finish (they hold the mutex). Not allHandlersFinished: a revoke
      // that withdraws the request answers only once the request is closed, so it would wait forever.
      await mutex.runExclusive(async () => undefined);
      if (s.denial) {
        transition('denied', `by ${s.denial.by}: ${s.denial.reason}`);
        return await finish();
      }
      if (endReason) {
        transition('cancelled', `withdrawn by ${s.endedBy}`);
        return await finish();
      }
      if (!answered) {
        transition('expired', 'no answer before the approval deadline; nothing granted');
        await acts.recordAudit({ stepId: 'approval-expired', scenario: 'jit', nhiId: s.nhiId, actor: 'system', action: 'elevation.expire', outcome: 'expired', details: { deadline: s.approvalDeadline } });
        return await finish();
      }
    }

    if (input.startAt && Date.parse(input.startAt) > Date.now()) {
      transition('scheduled', `starts ${input.startAt}`);
      await condition(() => endReason !== undefined, Date.parse(input.startAt) - Date.now());
      if (endReason) {
        transition('cancelled', `withdrawn by ${s.endedBy} before the start`);
        return await finish();
      }
    }

    // Grant the bundle: the undo is registered before each grant.
    expiresAtMs = Date.now() + input.durationMinutes * MINUTE;
    s.expiresAt = iso(expiresAtMs);
    transition('granting');
    for (const [i, entitlement] of input.entitlements.entries()) {
      saga.add(`revoke ${entitlement}`, async () => {
        s.entitlements[i] = await revokeForever({ nhiId: s.nhiId, entitlement, actor: 'system', reason: 'rollback', stepId: `rollback:${entitlement}` });
      });
      s.entitlements[i] = await acts.grantEntitlement({ nhiId: s.nhiId, entitlement, expiresAt: s.expiresAt, actor: s.requestedBy });
    }
    granted = true;
    saga.clear(); // from here on, the revocation below is what ends access

    // The clock starts at grant time.
    expiresAtMs = Date.now() + input.durationMinutes * MINUTE;
    s.grantedAt = iso(Date.now());
    s.expiresAt = iso(expiresAtMs);
    transition('active', `until ${s.expiresAt}`);
    await notify({ id: `${workflowId}:granted`, kind: 'jit.granted', severity: 'info', nhiId: s.nhiId, text: `${s.nhiId} holds ${input.entitlements.join(', ')} until ${s.expiresAt}${s.needsReview ? ' (break-glass, review needed)' : ''}` });

    let warnedFor = 0;
    const warnMs = input.settings.expiryWarningMinutes * MINUTE;
    while (endReason === undefined) {
      const now = Date.now();
      if (now >= expiresAtMs) {
        endReason = 'window_expired';
        break;
      }
      const warnAt = expiresAtMs - warnMs;
      if (now >= warnAt && warnedFor !== expiresAtMs && warnMs < input.durationMinutes * MINUTE) {
        warnedFor = expiresAtMs;
        await notify({ id: `${workflowId}:warn:${s.expiresAt}`, kind: 'jit.expiring', severity: 'info', nhiId: s.nhiId, text: `${s.nhiId}'s elevation (${input.entitlements.join(', ')}) ends at ${s.expiresAt}` });
        continue;
      }
      const next = warnedFor === expiresAtMs || warnAt <= now ? expiresAtMs : warnAt;
      const seen = expiresAtMs;
      await condition(() => endReason !== undefined || expiresAtMs !== seen, Math.max(1, next - now));
    }
    await revokeAll(endReason);
    transition('revoked', endReason);
    return await finish();
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        endReason = 'cancelled';
        s.endedBy ??= 'temporal (cancel request)';
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
      s.failure = causeMessage(err);
      const outcomes = await saga.compensate();
      transition('rolled_back', s.failure);
      await CancellationScope.nonCancellable(() =>
        acts.recordAudit({ stepId: 'rolled-back', scenario: 'jit', nhiId: s.nhiId, actor: 'system', action: 'elevation.rollback', outcome: 'rolled_back', readback: s.entitlements, details: { cause: s.failure, compensations: outcomes } }),
      );
      return await finish();
    }
    throw err;
  }

  async function revokeAll(reason: JitEndReason) {
    s.endReason = reason;
    transition('revoking', reason);
    await CancellationScope.nonCancellable(async () => {
      for (const [i, entitlement] of input.entitlements.entries()) {
        const args = { nhiId: s.nhiId, entitlement, actor: s.endedBy ?? 'system', reason };
        try {
          s.entitlements[i] = await revokeOnce(args);
        } catch (err) {
          if (!s.escalated) {
            s.escalated = true;
            event('escalated', `revocation of ${entitlement} keeps failing: ${causeMessage(err)}`);
            refreshDetails();
            await acts.recordAudit({ stepId: `escalate:${entitlement}`, scenario: 'jit', nhiId: s.nhiId, actor: 'system', action: 'revocation.escalate', outcome: 'escalated', details: { entitlement, attempts: input.settings.revokeEscalationAttempts } });
            await notify({ id: `${workflowId}:escalate:${entitlement}`, kind: 'escalation', severity: 'critical', nhiId: s.nhiId, text: `ESCALATION: revoking ${entitlement} from ${s.nhiId} keeps failing; still retrying` });
          }
          s.entitlements[i] = await revokeForever(args);
        }
      }
    });
  }

  async function finish(): Promise<JitStatus> {
    await CancellationScope.nonCancellable(async () => {
      if (granted || s.state === 'rolled_back') {
        // The receipt, derived from each entitlement's last read-back: nothing this elevation gave is
        // left unless another holder (an elevation, the baseline) still wants it.
        const left = s.entitlements.filter((e) => e.present === true && e.otherHolders.length === 0).map((e) => e.entitlement);
        await acts.recordAudit({
          stepId: 'receipt',
          scenario: 'jit',
          nhiId: s.nhiId,
          actor: 'system',
          action: 'elevation.receipt',
          outcome: left.length ? 'access_remains' : 'no_standing_access',
          readback: s.entitlements,
          details: { ...(left.length ? { remaining: left } : {}), endReason: s.endReason ?? endReason ?? null, grantedAt: s.grantedAt ?? null, state: s.state },
        });
      }
    });
    refreshDetails();
    await condition(allHandlersFinished);
    return s;
  }
}
