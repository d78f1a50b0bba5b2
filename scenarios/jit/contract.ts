// The JIT elevation contract: what the API, the CLI and tests import (never the workflow body).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Authority } from '../../lib/authority';

export const JIT_WORKFLOW_TYPE = 'jitElevation';
export const JIT_SCENARIO = 'jit';

export interface JitSettings {
  approvalTimeoutMinutes: number;
  expiryWarningMinutes: number;
  /** Failed revocation attempts before an escalation is raised (revocation itself never stops). */
  revokeEscalationAttempts: number;
}

export interface JitElevationInput {
  version: 1;
  nhiId: string;
  /** An all-or-nothing bundle. */
  entitlements: string[];
  justification: string;
  ticket?: string;
  changeId?: string;
  durationMinutes: number;
  /** ISO time; absent means now. */
  startAt?: string;
  breakGlass?: boolean;
  /** The authenticated principal; never taken from a request body. */
  requestedBy: string;
  /** requestedBy signed by the API for this workflow's start: without it the request is refused. */
  authority?: Authority;
  requestedAt: string;
  settings: JitSettings;
  /** Set by the elevation itself when an active window continues as new. Never set by a caller. */
  resume?: JitCarried;
}

/** An active window carried across continue-as-new. */
export interface JitCarried {
  status: JitStatus;
  expiresAtMs: number;
  /** The expiry the warning was sent for (0: none yet). */
  warnedFor: number;
}

export type JitState =
  | 'evaluating'
  | 'awaiting_approval'
  | 'scheduled'
  | 'granting'
  | 'active'
  | 'revoking'
  | 'revoked'
  | 'denied'
  | 'expired'
  | 'rolled_back'
  | 'cancelled';

export const JIT_FINAL_STATES: JitState[] = ['revoked', 'denied', 'expired', 'rolled_back', 'cancelled'];

export type JitEndReason = 'window_expired' | 'change_window_closed' | 'revoked_early' | 'cancelled';

export interface PolicyEvidence {
  outcome: 'deny' | 'auto_approve' | 'needs_approval' | 'break_glass';
  requiredApprovals: number;
  reasons: string[];
  determiningPolicies: string[];
  policySetHash: string;
  maxDurationMinutes?: number;
}

export interface EntitlementReadback {
  entitlement: string;
  /** What the target said at the last read-back. */
  present: boolean | null;
  /** Other elevations still holding it (the target keeps it for them). */
  otherHolders: string[];
  checkedAt?: string;
}

export interface Approval {
  by: string;
  at: string;
  comment?: string;
}

export interface TimelineEntry {
  at: string;
  event: string;
  detail?: string;
}

export interface JitStatus {
  version: 1;
  workflowId: string;
  nhiId: string;
  state: JitState;
  requestedBy: string;
  requestedAt: string;
  justification: string;
  ticket?: string;
  changeId?: string;
  durationMinutes: number;
  startAt?: string;
  breakGlass: boolean;
  /** Break-glass grants are marked for later review. */
  needsReview: boolean;
  decision?: PolicyEvidence;
  requiredApprovals: number;
  approvals: Approval[];
  denial?: { by: string; at: string; reason: string };
  approvalDeadline?: string;
  grantedAt?: string;
  expiresAt?: string;
  extensions: { by: string; at: string; minutes: number; reason?: string }[];
  entitlements: EntitlementReadback[];
  endReason?: JitEndReason;
  endedBy?: string;
  endComment?: string;
  escalated: boolean;
  failure?: string;
  /** The latest entries (capped); the audit trail keeps the full record. */
  timeline: TimelineEntry[];
  /** Timeline entries dropped by the cap. */
  timelineDropped?: number;
  /** Runs this elevation continued as new (an active window extended many times). */
  runs?: number;
}

export interface ApproveInput {
  /** The named principal signed by the API (lib/authority.ts): required, this message widens access. */
  authority?: Authority;
  approver: string;
  comment?: string;
}
export interface DenyInput {
  /** The named principal signed by the API (lib/authority.ts): required, this message widens access. */
  authority?: Authority;
  approver: string;
  reason: string;
}
export interface ExtendInput {
  /** The named principal signed by the API (lib/authority.ts): required, this message widens access. */
  authority?: Authority;
  by: string;
  minutes: number;
  reason?: string;
}
export interface RevokeInput {
  /** The named principal signed by the API. Unsigned (the Temporal UI), the revoke is still honoured — it only narrows access — and recorded as `temporal-ui`. */
  authority?: Authority;
  /** The requester may end their own elevation, approvers and admins any: their roles are looked up server-side. */
  by: string;
  /** Ignored (older callers sent the caller's roles): a message's claim about roles is never trusted. */
  roles?: string[];
  /**
   * A scenario that ends every elevation of the NHI (leak containment, offboarding): its workflow id.
   * The worker checks that it is that NHI's running containment or offboarding.
   */
  byWorkflow?: string;
  reason?: string;
}
/** Plain JSON a person can type in the Temporal UI: {"reason": "deploy finished"}. */
export interface CloseWindowInput {
  reason?: string;
  changeId?: string;
  by?: string;
}

export const approveUpdate = defineUpdate<JitStatus, [ApproveInput]>('approve');
export const denyUpdate = defineUpdate<JitStatus, [DenyInput]>('deny');
export const extendUpdate = defineUpdate<JitStatus, [ExtendInput]>('extend');
export const revokeUpdate = defineUpdate<JitStatus, [RevokeInput]>('revoke');
export const closeWindowSignal = defineSignal<[CloseWindowInput?]>('closeWindow');
export const statusQuery = defineQuery<JitStatus>('status');

/** Workflow ids are business keys: `jit-<nhiId>-<shortid>`. */
export function jitWorkflowId(nhiId: string, shortId: string): string {
  return `jit-${nhiId}-${shortId}`;
}

export function jitSummary(input: Pick<JitElevationInput, 'nhiId' | 'entitlements' | 'durationMinutes' | 'changeId'>): string {
  return `JIT ${input.nhiId} → ${input.entitlements.join(', ')} for ${input.durationMinutes}m${input.changeId ? ` (${input.changeId})` : ''}`;
}
