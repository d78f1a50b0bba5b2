// The anomaly case's message handlers: status query, evidence and supersede signals, and the
// clear / confirm / approve updates. They only record what was asked (in `requests`); the
// workflow's flow acts on it. Authority is looked up server-side, never taken from the payload.
import { ApplicationFailure, condition, proxyActivities, setHandler } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastCall } from '../../workflows/activity-presets';
import { ErrorType } from '../../workflows/errors';
import { Mutex } from '../../workflows/mutex';
import {
  ANOMALY_OPEN_STATES,
  anomalySignal,
  approveThrottleUpdate,
  clearUpdate,
  confirmUpdate,
  statusQuery,
  supersedeSignal,
} from './contract';
import type { AnomalyCase } from './case';
import { iso } from './status';
import type { Authority } from '../../lib/authority';

const acts = proxyActivities<ReturnType<typeof createActivities>>(fastCall);

const closed = (message: string) => ApplicationFailure.create({ message, type: ErrorType.RequestClosed, nonRetryable: true });

export function setAnomalyHandlers({ episode, requests, isFinal, event, publish, addEvidence }: AnomalyCase): void {
  const mutex = new Mutex();

  setHandler(statusQuery, () => episode);
  setHandler(anomalySignal, addEvidence);
  // A supersede releases the throttle, so it is not taken on the sender's word: only while the
  // inventory (server-side) says the NHI is being offboarded — the offboarding marks it first.
  setHandler(supersedeSignal, async (x) => {
    if (isFinal() || requests.superseded) return;
    const by = x?.by ?? 'another scenario';
    const reason = x?.reason ?? 'superseded';
    const check = await acts.checkSupersede({ nhiId: episode.nhiId });
    if (isFinal() || requests.superseded) return;
    if (!check.allowed) {
      event('supersede refused', `${by}: ${reason} — ${episode.nhiId} is ${check.status}, not being offboarded`);
      publish();
      return;
    }
    requests.superseded = { by, reason };
    event('superseded', `${requests.superseded.by}: ${requests.superseded.reason}`);
  });

  const openState = (what: string) => {
    if (!ANOMALY_OPEN_STATES.includes(episode.state)) {
      throw ApplicationFailure.create({ message: `${what}: the anomaly of ${episode.nhiId} is ${episode.state}${episode.state === 'evaluating' ? ' (try again in a moment)' : ''}`, type: ErrorType.RequestClosed });
    }
    if (requests.clear || requests.confirm) throw ApplicationFailure.create({ message: `${what}: already ${requests.clear ? 'cleared' : 'confirmed'}`, type: ErrorType.RequestClosed });
  };
  /**
   * Policy (Throttle as that person) decides who may act on an anomaly. The person's roles are read
   * server-side by the activity (the `principals` table); nothing in the message payload but the id
   * is used — a `roles` field someone adds in the Temporal UI is never read.
   */
  async function requireAnalyst(by: string, what: string, message: 'clear' | 'confirm' | 'approveThrottle', authority?: Authority): Promise<string> {
    const v = await acts.checkAnomalyAnalyst({ nhiId: episode.nhiId, principal: by, message, ...(authority ? { authority } : {}) });
    if (!v.allowed) throw ApplicationFailure.create({ message: `${by} may not ${what}: ${v.reasons.join('; ') || 'no policy allows it'}`, type: ErrorType.NotAllowed, nonRetryable: true });
    return v.actor ?? by;
  }

  setHandler(
    clearUpdate,
    async (c) => {
      await mutex.runExclusive(async () => {
        await requireAnalyst(c.by, `clear the anomaly of ${episode.nhiId}`, 'clear', c.authority);
        if (!ANOMALY_OPEN_STATES.includes(episode.state) || requests.clear || requests.confirm) throw closed(`the anomaly of ${episode.nhiId} is ${episode.state}`);
        requests.clear = { by: c.by, at: iso(Date.now()), reason: c.reason };
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
        await requireAnalyst(c.by, `confirm the anomaly of ${episode.nhiId}`, 'confirm', c.authority);
        if (!ANOMALY_OPEN_STATES.includes(episode.state) || requests.clear || requests.confirm) throw closed(`the anomaly of ${episode.nhiId} is ${episode.state}`);
        requests.confirm = { by: c.by, at: iso(Date.now()), comment: c.comment };
        event('confirmed malicious', [c.by, c.comment].filter(Boolean).join(': '));
      });
      // Answer once the containment has started (it runs on; the status shows its progress), or failed.
      await condition(() => isFinal() || !requests.confirm || (episode.state === 'escalating' && episode.containment !== undefined));
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
        const by = await requireAnalyst(a.by, `throttle ${episode.nhiId}`, 'approveThrottle', a.authority);
        if (episode.state !== 'awaiting_confirmation' || requests.approve || requests.clear || requests.confirm) throw closed(`the anomaly of ${episode.nhiId} is ${episode.state}, not awaiting confirmation`);
        requests.approve = { by, at: iso(Date.now()), comment: a.comment };
        episode.throttleApproved = requests.approve;
        event('throttle approved', [by, a.comment].filter(Boolean).join(': '));
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
}
