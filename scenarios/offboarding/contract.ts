// The offboarding contract: what the API, the CLI and tests import (never the workflow body).
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { AccessState } from '../../connectors/types';
import type { Authority } from '../../lib/authority';

export const OFFBOARDING_WORKFLOW_TYPE = 'offboarding';
export const OFFBOARDING_SCENARIO = 'offboarding';

/** Ranges the API enforces (and the workflow re-checks for starts that bypass the API). */
export const MAX_GRACE_DAYS = 90;
export const MAX_WATCH_DAYS = 730;

export interface OffboardingSettings {
  /** Minutes between watch-period re-checks (a day by default). */
  checkIntervalMinutes: number;
  /** Re-checks per run before continue-as-new, so history stays small over a year of watching. */
  checksPerRun: number;
  /** Failed attempts of an enforcement step before an escalation is raised (the step itself never stops). */
  escalationAttempts: number;
}

export const DEFAULT_OFFBOARDING_SETTINGS: OffboardingSettings = {
  checkIntervalMinutes: 24 * 60,
  checksPerRun: 50,
  escalationAttempts: 5,
};

export interface OffboardingInput {
  version: 1;
  nhiId: string;
  reason: string;
  ticket?: string;
  /** Absent: the policy's default. */
  graceDays?: number;
  watchDays?: number;
  /** The authenticated principal; never taken from a request body. */
  requestedBy: string;
  /** requestedBy signed by the API for this start: without it the offboarding is denied. */
  authority?: Authority;
  requestedAt: string;
  /**
   * Short id of this offboarding. The workflow id is reused after an abort, so audit step ids start
   * with this (the audit trail is idempotent per workflow id and step id). Default: from the run id.
   */
  requestId?: string;
  /** Partial settings are completed with DEFAULT_OFFBOARDING_SETTINGS (plain JSON from the UI works). */
  settings?: Partial<OffboardingSettings>;
  /** Continue-as-new carries the watch period's state here; never set it yourself. */
  resume?: OffboardingStatus;
}

export type OffboardingState =
  | 'evaluating'
  | 'stopping_scenarios'
  | 'disabling'
  | 'proving'
  | 'grace'
  | 'restoring'
  | 'finalising'
  | 'watching'
  | 'aborted'
  | 'completed'
  | 'denied'
  | 'failed';

export const OFFBOARDING_FINAL_STATES: OffboardingState[] = ['aborted', 'completed', 'denied', 'failed'];
/** From here on the secrets are gone and the baseline is empty: abort answers 409. */
export const FINALISED_STATES: OffboardingState[] = ['finalising', 'watching', 'completed'];

export type NhiInventoryStatus = 'active' | 'throttled' | 'offboarding' | 'offboarded';

export interface OffboardPolicyEvidence {
  allowed: boolean;
  reasons: string[];
  determiningPolicies: string[];
  policySetHash: string;
  defaultGraceDays: number | null;
  defaultWatchDays: number | null;
  /** Safeguards of high and critical NHIs (absent in histories from before them). */
  minGraceDays?: number;
  secondPersonRequired?: boolean;
}

/** A credential the secret store holds for the NHI: reference and fingerprint, never the value. */
export interface CredentialRecord {
  ref: string;
  version: number;
  status: string;
  fingerprint: string;
}

export interface AttestationCheck {
  /** no_entitlements | login_disabled | credential_refused:v<N> | no_live_sessions */
  check: string;
  ok: boolean;
  evidence: Record<string, unknown>;
}

/** A workload or NHI registered as using this one, and what fails for it now. */
export interface DependentImpact {
  id: string;
  kind?: string;
  owner?: string;
  description?: string;
  impact: string;
}

/** The "no standing access" proof: each check with the target's read-back as evidence. */
export interface Attestation {
  nhiId: string;
  connector: string;
  identity: string;
  at: string;
  outcome: 'no_standing_access' | 'access_remains';
  checks: AttestationCheck[];
  dependents: DependentImpact[];
}

export interface ElevationEnded {
  workflowId: string;
  /** revoked: verified by the elevation itself; already_ending / finished: it was closing anyway. */
  outcome: 'revoked' | 'already_ending' | 'finished' | 'unreachable';
  state?: string;
  detail?: string;
}

export interface StopScenariosResult {
  elevations: ElevationEnded[];
  /** Running anomaly throttles found, and those signalled to stop (superseded: each releases its own intent). */
  throttles: { supported: boolean; ended: string[]; found?: string[]; note?: string };
  /** Set when this worker has no Temporal client to reach other workflows with. */
  skipped?: string;
}

export interface StepReadback {
  at: string;
  /** Did this call change the target (false: it was already so)? */
  changed: boolean;
  detail: Record<string, unknown>;
}

/** The offboarding's own intents in the ledger (owner: this workflow id); an abort releases exactly these. */
export interface OffboardingIntents {
  owner: string;
  /** login_disabled (the first disable step), offboarded (the second; kept after finalisation). */
  restrictions: ('login_disabled' | 'offboarded')[];
  committedAt: string;
  releasedAt?: string;
}

export interface DriftEvent {
  at: string;
  check: number | 'pre-finalise';
  kind: 'login_enabled' | 'entitlement' | 'connection_limit' | 'sessions';
  detail: string;
}

export interface WatchCheckResult {
  check: number | 'pre-finalise';
  at: string;
  clean: boolean;
  drift: DriftEvent[];
  after: AccessState;
}

export interface TimelineEntry {
  at: string;
  event: string;
  detail?: string;
}

export interface OffboardingStatus {
  version: 1;
  workflowId: string;
  requestId: string;
  nhiId: string;
  connector?: string;
  identity?: string;
  state: OffboardingState;
  reason: string;
  ticket?: string;
  requestedBy: string;
  requestedAt: string;
  graceDays: number | null;
  watchDays: number | null;
  decision?: OffboardPolicyEvidence;
  /** The inventory status before offboarding: an abort puts it back (`throttled` only while a throttle intent is still owned). */
  previousStatus?: NhiInventoryStatus;
  otherScenarios?: StopScenariosResult;
  /** What this offboarding holds in the intents ledger; there is no snapshot: an abort releases these. */
  intents?: OffboardingIntents;
  credentials: CredentialRecord[];
  disable: { login?: StepReadback; entitlements?: StepReadback; sessions?: StepReadback };
  proofRounds: number;
  attestation?: Attestation;
  graceEndsAt?: string;
  confirmedBy?: string;
  /** Grace is over; a second person's confirmation (policy) is awaited before finalising. */
  awaitingSecondPerson?: boolean;
  abort?: { by: string; at: string; reason: string };
  /** After an abort: the target's read-back, which is what the other intents and the baseline want. */
  restored?: AccessState;
  finalisedAt?: string;
  watch: {
    endsAt?: string;
    intervalMinutes: number;
    checks: number;
    lastCheckAt?: string;
    nextCheckAt?: string;
    driftTotal: number;
    /** The latest drift events (capped). */
    drift: DriftEvent[];
    cancelled?: boolean;
  };
  escalations: { at: string; step: string; detail: string }[];
  /** Continue-as-new runs so far. */
  runs: number;
  failure?: string;
  timeline: TimelineEntry[];
}

/**
 * `by` is the principal; its roles are looked up server-side (table `principals`): only an admin
 * may abort. A `roles` field is accepted for compatibility and ignored.
 */
export interface AbortInput {
  by: string;
  reason: string;
  /** Ignored: never an authority. */
  roles?: string[];
  /** `by` signed by the API (lib/authority.ts): required, an abort gives access back. */
  authority?: Authority;
}

/** The requester or an admin (roles looked up server-side, as for abort). */
export interface ConfirmInput {
  by: string;
  comment?: string;
  /** Ignored: never an authority. */
  roles?: string[];
  /** `by` signed by the API: required, a confirmation finalises (the credential is erased). */
  authority?: Authority;
}

/** Release this offboarding's intents and reconcile; answers once the read-back is verified (state `aborted`). */
export const abortUpdate = defineUpdate<OffboardingStatus, [AbortInput]>('abort');
/** Skip the rest of the grace period; answers once finalised. */
export const confirmUpdate = defineUpdate<OffboardingStatus, [ConfirmInput]>('confirm');
export const statusQuery = defineQuery<OffboardingStatus>('status');

/** One offboarding per NHI at a time: the workflow id is the business key. */
export function offboardingWorkflowId(nhiId: string): string {
  return `offboard-${nhiId}`;
}

export function offboardingSummary(input: Pick<OffboardingInput, 'nhiId' | 'ticket'>): string {
  return `Offboard ${input.nhiId}${input.ticket ? ` (${input.ticket})` : ''}`;
}
