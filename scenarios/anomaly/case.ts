// One anomaly case's state and how it is published: the status the query returns (`episode`), the
// moments its deadlines follow from (`progress`), what people and other scenarios asked
// (`requests`), its timeline, the NhiState search attribute, the UI's details line, the incident
// record, and notifications that never hold the flow up. Workflow code: activities as types only.
import { allHandlersFinished, CancellationScope, condition, continueAsNew, isCancellation, proxyActivities, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { fastCall, notification } from '../../workflows/activity-presets';
import { causeMessage } from '../../workflows/errors';
import { NhiStateKey } from '../../workflows/search-attributes';
import { addTimelineEntry } from '../../workflows/timeline';
import { DEFAULT_ANOMALY_SETTINGS, type AnomalyCarried, type AnomalyEvidence, type AnomalyState, type AnomalyStatus, type AnomalyThrottlingInput, type SupersedeInput } from './contract';
import { deadlines, evidenceDetail, isFinalStatus, iso, statusDetails, type Progress } from './status';

type Activities = ReturnType<typeof createActivities>;

const acts = proxyActivities<Activities>(fastCall);
const notifyActivity = proxyActivities<Activities>(notification).notify;

const MAX_EVIDENCE = 50;
/** Dedupe keys remembered: repeats of recent detections (a redelivery, a retried report). */
const SEEN_MAX = 1000;

/** What people and other scenarios asked for, set by the handlers and read by the flow. */
export interface Requests {
  clear?: { by: string; at: string; reason: string };
  confirm?: { by: string; at: string; comment?: string };
  approve?: { by: string; at: string; comment?: string };
  superseded?: SupersedeInput;
}

export type AnomalyCase = ReturnType<typeof openAnomalyCase>;

export function openAnomalyCase(input: AnomalyThrottlingInput) {
  const { workflowId, runId } = workflowInfo();
  const settings = { ...DEFAULT_ANOMALY_SETTINGS, ...input.settings };
  const carried = input.resume;
  // The workflow id is reused by later episodes: audit step ids carry this episode's first run id.
  const run = carried?.run ?? runId;
  const episode: AnomalyStatus = carried
    ? { ...carried.episode, runs: (carried.episode.runs ?? 0) + 1 }
    : {
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
  const seen = new Set<string>(carried?.seenKeys ?? []);
  const requests: Requests = {};
  const progress: Progress = carried?.progress ?? { levelAtMs: 0, lastEvidenceMs: 0, evidenceSinceLevel: false, level2Failed: false, containmentTried: false };
  /** Signals this run has taken: part of its history budget. */
  const budget = { signals: 0 };

  const isFinal = () => isFinalStatus(episode);
  const event = (name: string, detail?: string) => addTimelineEntry(episode, name, detail);
  const transition = (state: AnomalyState, detail?: string) => {
    episode.state = state;
    event(state, detail);
    upsertSearchAttributes([{ key: NhiStateKey, value: state }]);
    publish();
  };

  /**
   * Publish the status: the deadlines together with the state they follow from (one synchronous
   * step, so a query never sees a state without its schedule), and the details line of the UI.
   */
  function publish() {
    const d = deadlines(episode, progress, settings);
    episode.autoRestoreAt = d.autoRestoreAt !== undefined ? iso(d.autoRestoreAt) : undefined;
    episode.stepUpAt = d.stepUpAt !== undefined ? iso(d.stepUpAt) : undefined;
    setCurrentDetails(statusDetails(episode, progress, settings));
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
    budget.signals++;
    if (!e?.key || isFinal()) return;
    if (seen.has(e.key)) {
      episode.duplicates++;
      return;
    }
    seen.add(e.key);
    if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value!);
    episode.evidence.push(e);
    if (episode.evidence.length > MAX_EVIDENCE) episode.evidence.shift();
    episode.evidenceCount++;
    episode.firstDetectedAt ??= e.detectedAt;
    episode.lastEvidenceAt = iso(Date.now());
    progress.lastEvidenceMs = Date.now();
    progress.evidenceSinceLevel = true;
    event(episode.evidenceCount === 1 ? 'anomaly' : 'anomaly joined', evidenceDetail(e));
    publish();
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

  /** The last step of every ending: published, notifications delivered (or recorded), handlers done. */
  async function finish(): Promise<AnomalyStatus> {
    publish();
    await Promise.all(pending);
    await condition(allHandlersFinished);
    return episode;
  }

  /**
   * Continue as new with where the case stands, once notifications are out and no handler is
   * running. False (and no continue-as-new) when a request arrived meanwhile: the flow answers it.
   */
  async function continueAsNewNow(where: Omit<AnomalyCarried, 'run' | 'episode' | 'progress' | 'seenKeys'>): Promise<false> {
    const asked = () => Boolean(requests.approve || requests.clear || requests.confirm || requests.superseded);
    await Promise.all(pending);
    await condition(() => asked() || allHandlersFinished());
    if (asked()) return false;
    event('continue-as-new', `after ${budget.signals} signal(s) and ${workflowInfo().historyLength} events in this run`);
    publish();
    return continueAsNew<(i: AnomalyThrottlingInput) => Promise<AnomalyStatus>>({
      ...input,
      resume: { ...where, run, episode, progress, seenKeys: [...seen] },
    });
  }

  return { workflowId, run, settings, episode, progress, requests, budget, isFinal, event, transition, publish, notify, addEvidence, closeIncident, finish, continueAsNewNow };
}
