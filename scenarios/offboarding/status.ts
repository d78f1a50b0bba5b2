// What an offboarding publishes and checks before it starts: its input's validation, its first
// status (or the one carried over by continue-as-new), the details line of the UI and the texts of
// its timeline. Pure functions, safe in the workflow bundle.
import { ApplicationFailure } from '@temporalio/workflow';
import type { AccessState } from '../../connectors/types';
import { ErrorType } from '../../workflows/errors';
import { MAX_GRACE_DAYS, MAX_WATCH_DAYS, type OffboardingInput, type OffboardingSettings, type OffboardingStatus } from './contract';

export const MINUTE = 60_000;
export const DAY = 24 * 60 * MINUTE;
export const TIMELINE_MAX = 100;
/** Timeline entries a continue-as-new carries over. */
export const TIMELINE_CARRIED = 30;
export const DRIFT_MAX = 20;

export const iso = (ms: number) => new Date(ms).toISOString();
export const describeAccess = (a: AccessState) =>
  a.exists ? `${a.entitlements.join(', ') || 'no entitlements'}; login ${a.canLogin ? 'enabled' : 'disabled'}; connection limit ${a.connectionLimit}` : 'the identity no longer exists';

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type: ErrorType.InvalidRequest, nonRetryable: true });
}

export function checkInput(input: OffboardingInput, settings: OffboardingSettings) {
  if (!input?.nhiId || !input.reason || !input.requestedBy) throw invalid('nhiId, reason and requestedBy are required');
  const days = (name: string, v: number | undefined, max: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= max)) throw invalid(`${name} must be a whole number from 0 to ${max}`);
  };
  days('graceDays', input.graceDays, MAX_GRACE_DAYS);
  days('watchDays', input.watchDays, MAX_WATCH_DAYS);
  for (const [k, v] of Object.entries(settings)) {
    if (!Number.isInteger(v) || v < 1) throw invalid(`settings.${k} must be a positive whole number`);
  }
}

/** A new offboarding's status, or, after continue-as-new, the one carried over (one more run). */
export function initialStatus(input: OffboardingInput, settings: OffboardingSettings, workflowId: string, run: string): OffboardingStatus {
  return input.resume
    ? { ...input.resume, runs: input.resume.runs + 1, watch: { ...input.resume.watch, intervalMinutes: settings.checkIntervalMinutes } }
    : {
        version: 1,
        workflowId,
        requestId: run,
        nhiId: input.nhiId,
        state: 'evaluating',
        reason: input.reason,
        ticket: input.ticket,
        requestedBy: input.requestedBy,
        requestedAt: input.requestedAt ?? iso(Date.now()),
        graceDays: input.graceDays ?? null,
        watchDays: input.watchDays ?? null,
        credentials: [],
        disable: {},
        proofRounds: 0,
        watch: { intervalMinutes: settings.checkIntervalMinutes, checks: 0, driftTotal: 0, drift: [] },
        escalations: [],
        runs: 0,
        timeline: [],
      };
}

/** The details line of the UI (setCurrentDetails). */
export function statusDetails(status: OffboardingStatus): string {
  const lines = [
    `**${status.state}** — offboarding ${status.nhiId}${status.identity ? ` (${status.connector}:${status.identity})` : ''}`,
    `by ${status.requestedBy}${status.ticket ? ` [${status.ticket}]` : ''}: ${status.reason}`,
  ];
  if (status.state === 'grace') lines.push(`grace until ${status.graceEndsAt}: abort (admin) releases the offboarding and restores what the other intents want, confirm finalises now`);
  if (status.awaitingSecondPerson) lines.push(`awaiting a second person: an admin other than ${status.requestedBy} must confirm before finalising (or abort)`);
  if (status.attestation) lines.push(`attestation: ${status.attestation.outcome} (${status.attestation.checks.length} checks, ${status.attestation.dependents.length} dependent(s) affected)`);
  if (status.state === 'watching') {
    lines.push(`watching until ${status.watch.endsAt}; next check ${status.watch.nextCheckAt ?? '—'}`);
    lines.push(`${status.watch.checks} check(s) done, ${status.watch.driftTotal} drift event(s) reverted`);
  }
  if (status.abort) lines.push(`aborted by ${status.abort.by}: ${status.abort.reason}`);
  if (status.escalations.length) lines.push(`⚠ ${status.escalations.length} escalation(s); last: ${status.escalations[status.escalations.length - 1].step}`);
  if (status.failure) lines.push(`failed: ${status.failure}`);
  return lines.join('\n');
}
