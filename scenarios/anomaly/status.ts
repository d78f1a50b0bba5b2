// What an anomaly case publishes: its deadlines and the details line of the UI, and the texts its
// timeline and notifications use. Pure functions of the status and the moments the workflow
// recorded (never the time of asking), so they are safe in the workflow bundle.
import {
  ANOMALY_FINAL_STATES,
  type AnomalyEvidence,
  type AnomalySettings,
  type AnomalyStatus,
  type RestoreReadback,
  type ThrottleReadback,
} from './contract';

export const MINUTE = 60_000;
export const iso = (ms: number) => new Date(ms).toISOString();
export const rate = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/** Where the case stands, as the workflow recorded it: what its deadlines follow from. */
export interface Progress {
  /** When the current level was applied. */
  levelAtMs: number;
  lastEvidenceMs: number;
  /** New evidence since the current level was applied: the anomaly persists. */
  evidenceSinceLevel: boolean;
  level2Failed: boolean;
  containmentTried: boolean;
  /** Awaiting confirmation: when the next reminder goes out. */
  reminderAtMs?: number;
}

export const isFinalStatus = (episode: AnomalyStatus) => ANOMALY_FINAL_STATES.includes(episode.state);

/**
 * What the current state has scheduled: the next reminder while a person must decide; while
 * throttled, the automatic restore (policy AutoRestore, after a quiet period) and the step-up on
 * silence. Computed from moments already recorded (last evidence, level applied, reminder timer
 * started), never from the time of asking, so every publish carries the deadlines its state
 * implies and the workflow's wait loop waits for exactly these.
 */
export function deadlines(episode: AnomalyStatus, progress: Progress, settings: AnomalySettings): { autoRestoreAt?: number; stepUpAt?: number } {
  if (episode.state === 'awaiting_confirmation') return { stepUpAt: progress.reminderAtMs };
  if ((episode.state !== 'throttled_l1' && episode.state !== 'throttled_l2') || episode.level === 0) return {};
  const quietMinutes = episode.decision?.autoRestoreAfterMinutes ?? null;
  const autoRestoreAt = quietMinutes !== null ? progress.lastEvidenceMs + quietMinutes * MINUTE : undefined;
  // Where policy restores by itself, silence steps up only while the anomaly persists.
  const persists = quietMinutes === null || progress.evidenceSinceLevel;
  const stepUpAt =
    !progress.containmentTried && persists
      ? progress.levelAtMs + (episode.level === 1 && !progress.level2Failed ? settings.ackTimeoutMinutes : settings.escalationTimeoutMinutes) * MINUTE
      : undefined;
  return { autoRestoreAt, stepUpAt };
}

/** The details line of the UI (setCurrentDetails), from a status whose deadlines are already set. */
export function statusDetails(episode: AnomalyStatus, progress: Progress, settings: AnomalySettings): string {
  const isFinal = isFinalStatus(episode);
  const latest = episode.evidence.at(-1);
  const levelText = episode.level === 0 ? 'not throttled' : episode.level === 1 ? `level 1: CONNECTION LIMIT ${settings.connectionLimit}, write access withheld, read access kept` : 'level 2: login suspended, sessions ended';
  const lines = [`**${episode.state}** — ${episode.nhiId} (${levelText})`];
  if (latest) lines.push(`evidence: ${episode.evidenceCount}${episode.duplicates ? ` (+${episode.duplicates} repeats)` : ''}; latest ${rate(latest.observedRate)}/min vs ${rate(latest.baselineRate)}/min (${latest.source})`);
  if (episode.decision) lines.push(`policy: ${episode.decision.automatic ? 'automatic throttle' : 'a person must confirm'}${episode.decision.autoRestoreAfterMinutes !== null ? `; auto-restore after ${episode.decision.autoRestoreAfterMinutes} quiet minutes` : ''}`);
  if (episode.incidentId) lines.push(`incident ${episode.incidentId}`);
  if (episode.stepUpAt && !isFinal) lines.push(`no answer by ${episode.stepUpAt} → ${episode.level === 0 ? 'a reminder' : episode.level === 1 && !progress.level2Failed ? 'level 2' : 'containment'}`);
  if (episode.autoRestoreAt && !isFinal) lines.push(`restored automatically at ${episode.autoRestoreAt} if quiet`);
  if (episode.containment) lines.push(`containment ${episode.containment.workflowId} (${episode.containment.mode}${episode.containment.state ? `, ${episode.containment.state}` : ''})`);
  if (episode.cleared) lines.push(`cleared by ${episode.cleared.by}: ${episode.cleared.reason}`);
  if (episode.confirmed) lines.push(`confirmed malicious by ${episode.confirmed.by}`);
  if (episode.failure) lines.push(`⚠ ${episode.failure}`);
  return lines.join('\n');
}

/** The latest evidence in words, for notifications and the containment's alert. */
export function describeLatest(episode: AnomalyStatus): string {
  const e = episode.evidence.at(-1);
  return e ? `${rate(e.observedRate)}/min against a baseline of ${rate(e.baselineRate)}/min (${e.source})` : 'anomalous usage';
}

/** The timeline detail of one detection. */
export const evidenceDetail = (e: AnomalyEvidence) =>
  `${rate(e.observedRate)}/min vs baseline ${rate(e.baselineRate)}/min from ${e.source}${e.detail ? `: ${e.detail}` : ''}`;

/** The timeline detail of a level applied and verified. */
export function throttledDetail(level: 1 | 2, rb: ThrottleReadback): string {
  const kept = rb.keptReadOnly.length ? ` (read access kept: ${rb.keptReadOnly.join(', ')})` : '';
  return `CONNECTION LIMIT ${rb.connectionLimit}${rb.removed.length ? `, withheld ${rb.removed.join(', ')}${kept}` : ''}${level === 2 ? `, login refused, ${rb.sessionsTerminated ?? 0} session(s) ended` : ''} (verified)`;
}

/** The timeline detail of a verified release: what other intents still hold back. */
export function restoredDetail(r: RestoreReadback): string {
  const others = `${r.restrictedBy.length ? `; still restricted by ${r.restrictedBy.join(', ')}` : ''}${r.withheld.length ? `; withheld: ${r.withheld.map((w) => w.entitlement).join(', ')}` : ''}`;
  return r.after.exists ? `throttle released (verified)${others}` : 'the identity is gone at the target: nothing to give back';
}
