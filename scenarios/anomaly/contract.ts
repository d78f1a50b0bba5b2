// The anomaly throttling contract: what the API, the collector, the CLI and tests import (never the
// workflow body).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AccessState } from '../../connectors/types';
import type { DetectorSettings } from './detector';
import type { Progress } from './status';
import type { Authority } from '../../lib/authority';

export const ANOMALY_WORKFLOW_TYPE = 'anomalyThrottling';
export const ANOMALY_SCENARIO = 'anomaly';
export const USAGE_COLLECTOR_WORKFLOW_TYPE = 'usageCollector';

export interface AnomalySettings {
  /** At level 1 with no analyst answer for this long (and the anomaly persisting): level 2. */
  ackTimeoutMinutes: number;
  /** At level 2 with still no answer for this long: escalate to leak containment. */
  escalationTimeoutMinutes: number;
  /** Level 1's CONNECTION LIMIT (≥ 1: the containment's verification must still be able to log in). */
  connectionLimit: number;
  /** Failed restore attempts before an escalation is raised (the restore itself never stops). */
  restoreEscalationAttempts: number;
}

export const DEFAULT_ANOMALY_SETTINGS: AnomalySettings = {
  ackTimeoutMinutes: 30,
  escalationTimeoutMinutes: 30,
  connectionLimit: 2,
  restoreEscalationAttempts: 5,
};

export interface AnomalyThrottlingInput {
  version: 1;
  nhiId: string;
  /** Partial settings are completed with DEFAULT_ANOMALY_SETTINGS (plain JSON from the UI works). */
  settings?: Partial<AnomalySettings>;
  /** Set by the case itself when it continues as new: where it stood. Never set by a caller. */
  resume?: AnomalyCarried;
}

/** A case carried across continue-as-new: its status and the moments its deadlines follow from. */
export interface AnomalyCarried {
  /** The first run's id: audit step ids and the episode keep it. */
  run: string;
  /** Where the flow waits: for a person's decision, or throttled (for an answer or a deadline). */
  phase: 'awaiting_confirmation' | 'throttled';
  episode: AnomalyStatus;
  progress: Progress;
  owner: string;
  /** Reminders sent so far while awaiting confirmation. */
  reminders: number;
  /** Dedupe keys of the latest evidence (capped). */
  seenKeys: string[];
  /** This case holds a throttle intent: the new run registers its release again. */
  holdsThrottle: boolean;
}

/** One detection as evidence. Rates are events per minute. */
export interface AnomalyEvidence {
  /** Dedupe key: a repeat of the same detection is counted, not added. */
  key: string;
  /** `usage` (API intake's detector), `collector` (the Postgres collector), or an external detector's name. */
  source: string;
  kind: 'detector' | 'external';
  observedRate: number;
  baselineRate: number;
  sigma?: number;
  threshold?: number;
  baselineSource?: 'history' | 'declared';
  /** The minute judged (ISO), for detector evidence. */
  minute?: string;
  detail?: string;
  /** The principal that reported it, or `collector`. */
  reportedBy: string;
  detectedAt: string;
  receivedAt: string;
}

export type AnomalyState =
  | 'evaluating'
  | 'awaiting_confirmation'
  | 'throttled_l1'
  | 'throttled_l2'
  | 'restoring'
  | 'escalating'
  | 'cleared'
  | 'auto_restored'
  | 'escalated'
  | 'dismissed'
  | 'superseded'
  | 'failed';

export const ANOMALY_FINAL_STATES: AnomalyState[] = ['cleared', 'auto_restored', 'escalated', 'dismissed', 'superseded', 'failed'];
/** States in which clear and confirm are taken. */
export const ANOMALY_OPEN_STATES: AnomalyState[] = ['awaiting_confirmation', 'throttled_l1', 'throttled_l2'];

export type ThrottleLevelNumber = 0 | 1 | 2;

export interface ThrottlePolicyEvidence {
  automatic: boolean;
  needsConfirmation: boolean;
  reasons: string[];
  autoRestoreAfterMinutes: number | null;
  autoRestoreReasons: string[];
  determiningPolicies: string[];
  policySetHash: string;
}

/** What the target said after a level was applied. */
export interface ThrottleReadback {
  level: 1 | 2;
  at: string;
  connectionLimit: number;
  canLogin: boolean;
  entitlements: string[];
  /** Entitlements this throttle withholds (write-capable ones the other intents want). */
  removed: string[];
  /** The read-only forms that stand in for them: read access stays. */
  keptReadOnly: string[];
  sessionsTerminated?: number;
  /** The read-back shows the level: limit at or below it, no write access, read-only forms kept; level 2 also no login, no session. */
  verified: boolean;
}

/** What the target said after this throttle's intents were released. */
export interface RestoreReadback {
  at: string;
  after: AccessState;
  /** Other owners' restrictions still in force (e.g. an offboarding's); none of this throttle's. */
  restrictedBy: string[];
  /** Entitlements the other intents want that those restrictions still withhold. */
  withheld: { entitlement: string; by: string[] }[];
  /** The target holds exactly what the remaining intents want (baseline, live grants, other restrictions). */
  exact: boolean;
}

export interface ContainmentRef {
  workflowId: string;
  /** started: a child of this workflow; joined: one that was already running. */
  mode: 'started' | 'joined';
  reason: string;
  startedAt: string;
  state?: string;
  finishedAt?: string;
}

export interface TimelineEntry {
  at: string;
  event: string;
  detail?: string;
}

export interface AnomalyStatus {
  version: 1;
  workflowId: string;
  runId: string;
  nhiId: string;
  state: AnomalyState;
  level: ThrottleLevelNumber;
  decision?: ThrottlePolicyEvidence;
  /** The latest evidence (capped); evidenceCount counts all. */
  evidence: AnomalyEvidence[];
  evidenceCount: number;
  duplicates: number;
  firstDetectedAt?: string;
  lastEvidenceAt?: string;
  incidentId?: string;
  levels: ThrottleReadback[];
  /** When the current level steps up (or escalates) without an answer. */
  stepUpAt?: string;
  /** When access is restored automatically if no new anomaly arrives (policy AutoRestore). */
  autoRestoreAt?: string;
  throttleApproved?: { by: string; at: string; comment?: string };
  cleared?: { by: string; at: string; reason: string };
  confirmed?: { by: string; at: string; comment?: string };
  containment?: ContainmentRef;
  restored?: RestoreReadback;
  escalated: boolean;
  failure?: string;
  /** The latest entries (capped); the full record is the audit trail and the incident. */
  timeline: TimelineEntry[];
  /** Timeline entries dropped by the cap. */
  timelineDropped?: number;
  /** Runs this case continued as new (its history stays small however long it waits). */
  runs?: number;
}

/**
 * `by` names the principal; its roles are looked up server-side (the `principals` table) and policy
 * (Throttle as that principal) decides whether it may. Nothing else in the payload (a `roles`
 * field, say) is read for authority.
 */
export interface ClearInput {
  by: string;
  reason: string;
  /** `by` signed by the API (lib/authority.ts): required, a clear gives access back. */
  authority?: Authority;
}
export interface ConfirmInput {
  by: string;
  comment?: string;
  /** `by` signed by the API: required, a confirmation rotates the credential. */
  authority?: Authority;
}
export interface ApproveThrottleInput {
  by: string;
  comment?: string;
  /** `by` signed by the API. Unsigned (the Temporal UI) it is honoured — it only narrows access — as `temporal-ui`. */
  authority?: Authority;
}
/** Plain JSON a person can type in the Temporal UI: {"by": "offboarding", "reason": "…"}. */
export interface SupersedeInput {
  by?: string;
  reason?: string;
}

/** Signal-with-start delivers each detection; later ones for the same NHI join as evidence. */
export const anomalySignal = defineSignal<[AnomalyEvidence]>('anomaly');
/** False positive: release the throttle and verify; answers once access is back (state `cleared`). */
export const clearUpdate = defineUpdate<AnomalyStatus, [ClearInput]>('clear');
/** Malicious: leak containment runs as a child (rotation, sessions); answers once it has started. */
export const confirmUpdate = defineUpdate<AnomalyStatus, [ConfirmInput]>('confirm');
/** A person approves the throttle policy would not apply by itself; answers once level 1 is verified. */
export const approveThrottleUpdate = defineUpdate<AnomalyStatus, [ApproveThrottleInput]>('approveThrottle');
/**
 * Another scenario takes over (offboarding): end now, releasing this throttle's intent (the
 * offboarding's own restriction keeps access off; no inventory change). Honoured only while the
 * inventory says the NHI is `offboarding` or `offboarded` (the sender's word is not enough: it
 * releases a restriction); otherwise refused on the timeline. The offboarding's
 * stop-other-scenarios hook sends this, after marking the NHI.
 */
export const supersedeSignal = defineSignal<[SupersedeInput?]>('supersede');
export const statusQuery = defineQuery<AnomalyStatus>('status');

/** One throttle per NHI at a time: `anomaly-<nhiId>`. */
export function anomalyWorkflowId(nhiId: string): string {
  return `anomaly-${nhiId}`;
}

export function anomalySummary(nhiId: string, e: Pick<AnomalyEvidence, 'source' | 'observedRate' | 'baselineRate'>): string {
  const r = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
  return `Anomaly ${nhiId}: ${r(e.observedRate)}/min vs ${r(e.baselineRate)}/min (${e.source})`;
}

// --- the collector ----------------------------------------------------------------------------

export const USAGE_COLLECTOR_SCHEDULE_ID = 'usage-collector';

export interface UsageCollectorInput {
  version: 1;
  /** The schedule's interval: a session opened within it counts as a new login. */
  intervalSeconds: number;
  /** Detector parameters (defaults in scenarios/anomaly/detector.ts). */
  detector?: Partial<DetectorSettings>;
  /** Settings for the throttles it starts. */
  anomaly?: Partial<AnomalySettings>;
}

export interface UsageSample {
  nhiId: string;
  sessions: number;
  newSessions: number;
  /** What went into the bucket: sessions + newSessions. */
  count: number;
}

export interface UsageCollectorResult {
  sampledAt: string;
  minute: string;
  samples: UsageSample[];
  /** Already sampled for this minute (a retry or an overlapping run): not counted twice. */
  skipped: string[];
  anomalies: { nhiId: string; workflowId: string | null; observedRate: number; threshold: number | null; error?: string }[];
  errors: { nhiId: string; error: string }[];
}
