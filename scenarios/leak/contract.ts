// The leak containment contract: what the API, the CLI and tests import (never the workflow body).
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { AlertSource, Severity } from './intake';

export const LEAK_WORKFLOW_TYPE = 'leakContainment';
export const LEAK_SCENARIO = 'leak';

export interface LeakSettings {
  /** While escalated, how often the escalation is repeated until someone acts. */
  escalationReminderMinutes: number;
  /** How long the containment waits for running JIT elevations to report their revocation verified. */
  elevationRevokeWaitMs: number;
}

export const DEFAULT_LEAK_SETTINGS: LeakSettings = { escalationReminderMinutes: 60, elevationRevokeWaitMs: 8000 };

export interface LeakContainmentInput {
  version: 1;
  nhiId: string;
  settings?: Partial<LeakSettings>;
}

export type MatchedBy = 'nhi_id' | 'fingerprint' | 'exposure_hint' | 'bound';

/** One alert as evidence: metadata and fingerprints only (the secret value never travels). */
export interface LeakAlert {
  /** Dedupe key within a containment: a redelivery of the same alert and action is counted, not added. */
  key: string;
  source: AlertSource;
  /** `github:acme/x#42`, `gitguardian:3759`, `generic:<detector>:<nhi or fingerprint>`. */
  externalId: string;
  /** Short, for summaries: `github #42`, `gitguardian #3759`, the generic detector's name. */
  label: string;
  deliveryId?: string;
  action: string;
  /** false: recorded as evidence only (e.g. resolved upstream). */
  trigger: boolean;
  severity: Severity;
  repository?: string;
  secretType?: string;
  /** Labelled: `sha256:<hex>`, `hmsl:<hex>`, `gg-secret-hash:<opaque>`. */
  fingerprints: string[];
  evidenceUrl?: string;
  detectedAt: string;
  receivedAt: string;
  summary: string;
  matchedBy: MatchedBy;
  /** Set when the alert came from an incident bound in triage: the containment adopts it. */
  incidentId?: string;
  /** The principal that reported or bound it (generic alerts, triage). */
  reportedBy?: string;
}

export type LeakState = 'opening' | 'rotating' | 'invalidating_sessions' | 'verifying' | 'contained' | 'escalated';

export interface TimelineEntry {
  at: string;
  event: string;
  detail?: string;
}

export interface RotationSummary {
  rotationId: string;
  /** Secret-store references and sha256 fingerprints, never values. */
  oldRef: string | null;
  oldFingerprint: string | null;
  newRef: string;
  newFingerprint: string;
  newVersion: number;
  appliedAt?: string;
  activated: boolean;
}

export interface ElevationEnded {
  workflowId: string;
  /** The elevation's state once the revoke was answered, or why nothing was needed. */
  outcome: string;
}

/** Why the new credential could be verified only up to a point: a restriction an intent holds. */
export interface VerificationLimit {
  restriction: 'login_disabled' | 'connection_limit';
  /** Owners of the intents behind it (workflow ids, or `baseline`). */
  owners: string[];
  /** For people: what was verified, what was not, and why. */
  note: string;
}

export interface ContainmentVerification {
  /** The retired credential, tried against the target: denied (wrong credential, 28P01). `none`: no earlier credential on record. */
  oldCredential: 'denied' | 'none';
  oldCode?: string;
  /**
   * `granted`: a real login with it succeeded. `inconclusive`: the target accepted it and refused
   * the login only because of a restriction an intent holds (`limitedBy` says which and why).
   */
  newCredential: 'granted' | 'inconclusive';
  newCode?: string;
  limitedBy?: VerificationLimit;
  /** Sessions that began before the new credential was set and are still alive: must be 0. */
  preRotationSessions: number;
  checkedAt: string;
}

/** The quarantine this containment holds on the NHI while it runs (a restrict intent, reconciled). */
export interface QuarantineSummary {
  state: 'in_force' | 'released';
  /** Entitlements the quarantine withholds (what grants add beyond the baseline), read back at that step. */
  withheld: string[];
  /** The NHI's entitlements at the target after that step's reconcile. */
  entitlements: string[];
  checkedAt: string;
}

export interface LeakStatus {
  version: 1;
  workflowId: string;
  runId: string;
  nhiId: string;
  state: LeakState;
  incidentId?: string;
  /** The highest severity among the alerts. */
  severity: Severity;
  alerts: LeakAlert[];
  /** Redeliveries and repeats that joined without adding evidence. */
  duplicates: number;
  /** The earliest detection among the alerts, and when the first one reached us. */
  detectedAt?: string;
  receivedAt?: string;
  containedAt?: string;
  detectedToContainedMs?: number;
  receivedToContainedMs?: number;
  rotation?: RotationSummary;
  sessionsTerminated?: number;
  elevations?: ElevationEnded[];
  quarantine?: QuarantineSummary;
  verification?: ContainmentVerification;
  escalated: boolean;
  failure?: string;
  attempts: number;
  timeline: TimelineEntry[];
}

export interface RetryInput {
  by?: string;
  reason?: string;
}

/** Signal-with-start delivers each alert; later alerts for the same NHI join the running containment. */
export const alertSignal = defineSignal<[LeakAlert]>('alert');
/** After an escalation, try the containment again (plain JSON in the Temporal UI: {"by": "oncall"}). */
export const retrySignal = defineSignal<[RetryInput?]>('retry');
export const statusQuery = defineQuery<LeakStatus>('status');

/** One containment per NHI at a time: `leak-<nhiId>`. */
export function leakWorkflowId(nhiId: string): string {
  return `leak-${nhiId}`;
}

const SEVERITY_RANK: Record<Severity, number> = { low: 0, medium: 1, high: 2, critical: 3 };
export function maxSeverity(a: Severity, b: Severity): Severity {
  return SEVERITY_RANK[b] > SEVERITY_RANK[a] ? b : a;
}

/** `github #42`, `gitguardian #3759`, or the generic detector's name. */
export function alertLabel(a: { source: AlertSource; externalId: string }): string {
  if (a.source === 'generic') {
    const rest = a.externalId.slice('generic:'.length);
    const cut = rest.lastIndexOf(':');
    return cut > 0 ? rest.slice(0, cut) : rest;
  }
  const m = /[#:]([^#:]+)$/.exec(a.externalId);
  return m ? `${a.source} #${m[1]}` : a.source;
}

/** `Leak svc_payments (github #42, critical)`. */
export function leakSummary(nhiId: string, alert: Pick<LeakAlert, 'label' | 'severity'>): string {
  return `Leak ${nhiId} (${alert.label}, ${alert.severity})`;
}
