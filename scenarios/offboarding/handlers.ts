// The offboarding's message handlers: the status query and the abort / confirm updates. They only
// record what was asked (in `requests`); the flow acts on it. Who may abort or confirm is looked up
// server-side (the principals table), never taken from the message.
import { ApplicationFailure, condition, proxyActivities, setHandler } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastCall } from '../../workflows/activity-presets';
import { ErrorType } from '../../workflows/errors';
import { abortUpdate, confirmUpdate, FINALISED_STATES, statusQuery, type OffboardingStatus } from './contract';
import { iso } from './status';
import type { Authority } from '../../lib/authority';

const acts = proxyActivities<ReturnType<typeof createActivities>>(fastCall);

const closed = (message: string) => ApplicationFailure.create({ message, type: ErrorType.RequestClosed });

/** What the updates asked for, set by the handlers and read by the flow. */
export interface Requests {
  abort?: { by: string; reason: string; at: string };
  confirm?: { by: string; comment?: string };
  /** Set by the flow in the same step that decides to finalise: an abort accepted later would restore nothing. */
  finalising: boolean;
}

export function setOffboardingHandlers(a: { status: OffboardingStatus; requests: Requests; run: string; isFinal(): boolean; event(name: string, detail?: string): void }): void {
  const { status, requests, run, isFinal, event } = a;
  const nhiId = status.nhiId;
  /** Refused abort/confirm attempts, each audited under its own step id. */
  let refusals = 0;

  setHandler(statusQuery, () => status);

  const abortClosed = () => {
    if (FINALISED_STATES.includes(status.state) || requests.finalising) {
      return closed(`offboarding of ${nhiId} is finalised (${status.state}): its credentials are deleted, there is nothing to restore`);
    }
    if (isFinal()) return closed(`offboarding of ${nhiId} is ${status.state}`);
    if (requests.confirm) return closed(`offboarding of ${nhiId} was confirmed by ${requests.confirm.by} and is being finalised`);
    return undefined;
  };
  const confirmClosed = () => {
    if (FINALISED_STATES.includes(status.state) || isFinal()) return closed(`offboarding of ${nhiId} is ${status.state}`);
    if (requests.abort) return closed(`offboarding of ${nhiId} is being aborted by ${requests.abort.by}`);
    return undefined;
  };
  /** The principal's roles come from the server (principals table), never from the message. */
  async function authorize(action: 'abort' | 'confirm', by: string, claimedRoles: unknown, authority?: Authority) {
    const v = await acts.checkOffboardingActor({ nhiId, run, step: `refused:${++refusals}`, principal: by, action, requestedBy: status.requestedBy, claimedRoles, ...(authority ? { authority } : {}) });
    if (!v.allowed) throw ApplicationFailure.create({ message: `${by} may not ${action} this offboarding: ${v.reasons.join('; ')}`, type: ErrorType.NotAllowed, nonRetryable: true });
  }

  setHandler(
    abortUpdate,
    async (u) => {
      await authorize('abort', u.by, u.roles, u.authority);
      // The flow may have moved on while the roles were looked up.
      const no = abortClosed();
      if (no) throw no;
      requests.abort ??= { by: u.by, reason: u.reason, at: iso(Date.now()) };
      // Answer once the release is reconciled and verified (or the flow ended otherwise, e.g. denied).
      await condition(isFinal);
      return status;
    },
    {
      validator: (u) => {
        if (!u?.by || typeof u.reason !== 'string' || !u.reason.trim()) throw ApplicationFailure.create({ message: 'by and reason are required', type: ErrorType.InvalidRequest });
        const no = abortClosed();
        if (no) throw no;
      },
    },
  );

  setHandler(
    confirmUpdate,
    async (c) => {
      await authorize('confirm', c.by, c.roles, c.authority);
      const no = confirmClosed();
      if (no) throw no;
      if (!requests.confirm) {
        requests.confirm = { by: c.by, comment: c.comment };
        status.confirmedBy = c.by;
        event('confirm requested', `${c.by}${c.comment ? `: ${c.comment}` : ''}`);
      }
      // Answer once finalised (or if the flow ended otherwise).
      await condition(() => status.state === 'watching' || isFinal());
      return status;
    },
    {
      validator: (c) => {
        if (!c?.by) throw ApplicationFailure.create({ message: 'by is required', type: ErrorType.InvalidRequest });
        const no = confirmClosed();
        if (no) throw no;
      },
    },
  );
}
