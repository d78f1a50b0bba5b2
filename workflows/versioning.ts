// How workflow code changes under running workflows (docs/versioning.md): every change to what a
// workflow does — its commands: activities, timers, children, markers, continue-as-new — goes behind
// `patched(<id>)` with an id listed here, so that a run started on older code replays its history
// unchanged and takes the new path only from the point it reaches live. Removing an old branch
// later goes through `deprecatePatch(<id>)` first, once no run older than the patch is open.
// Inputs carry a `version`: each workflow reads it (checkInputVersion) and refuses one it does not know.
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import { ErrorType } from './errors';

/** Patch ids in use, oldest first, with the change each one guards. */
export const PATCHES = {
  /**
   * Anomaly: evidence signals no longer re-arm the wait's timer (it fires at the deadline it was
   * set for, and the wait goes on if evidence moved that deadline later), and the case continues
   * as new before its history grows past the budget.
   */
  anomalyBoundedHistory: 'anomaly-bounded-history',
  /** JIT: an active window continues as new after many extensions (or when Temporal suggests it). */
  jitContinueAsNew: 'jit-continue-as-new',
  /** Offboarding: a high or critical NHI waits after grace for a second person's confirmation. */
  offboardingSecondPerson: 'offboarding-second-person-v1',
  /**
   * JIT: the policy decision, grants, releases, audit rows and notifications run as local
   * activities (no task-queue round trip, no workflow task to hear each result), and the NhiState
   * search attribute skips the transient `granting` / `revoking` (set only when a revocation escalates).
   */
  jitLocalSteps: 'jit-local-steps',
} as const;

/**
 * Reject an input `version` this code does not know (a newer client against an older worker):
 * non-retryable, so it fails at once with a clear message instead of misreading the input.
 */
export function checkInputVersion(workflow: string, version: unknown, supported: readonly number[]): void {
  if (version === undefined) return; // plain JSON started by hand: read as the oldest supported shape
  if (typeof version !== 'number' || !supported.includes(version)) {
    throw ApplicationFailure.nonRetryable(`${workflow}: input version ${JSON.stringify(version)} is not supported by this worker (supported: ${supported.join(', ')})`, ErrorType.InvalidRequest);
  }
}

/** The per-run history budget: what makes a long-lived workflow continue as new. */
export const HISTORY_BUDGET = {
  /** Continue as new past this many events in one run (Temporal's hard limit is 51 200). */
  maxEventsPerRun: 6000,
  /** ... or past this many signals in one run (each one adds events even when nothing changes). */
  maxSignalsPerRun: 500,
} as const;

/** Has this run used its budget (or does Temporal suggest continuing as new)? */
export function historyBudgetSpent(signalsThisRun = 0): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength >= HISTORY_BUDGET.maxEventsPerRun || signalsThisRun >= HISTORY_BUDGET.maxSignalsPerRun;
}
