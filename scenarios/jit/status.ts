// What an elevation publishes: its first status and the UI's details line.
// Pure functions of the input and the status, so they are safe in the workflow bundle.
import type { JitElevationInput, JitStatus } from './contract';

export const iso = (ms: number) => new Date(ms).toISOString();

export function initialStatus(input: JitElevationInput, workflowId: string): JitStatus {
  if (input.resume) return { ...input.resume.status, runs: (input.resume.status.runs ?? 0) + 1 };
  return {
    version: 1,
    workflowId,
    nhiId: input.nhiId,
    state: 'evaluating',
    requestedBy: input.requestedBy,
    requestedAt: input.requestedAt,
    justification: input.justification,
    ticket: input.ticket,
    changeId: input.changeId,
    durationMinutes: input.durationMinutes,
    startAt: input.startAt,
    breakGlass: Boolean(input.breakGlass),
    needsReview: false,
    requiredApprovals: 0,
    approvals: [],
    extensions: [],
    entitlements: input.entitlements.map((entitlement) => ({ entitlement, present: null, otherHolders: [] })),
    escalated: false,
    timeline: [],
  };
}

/** The details line of the Temporal UI (setCurrentDetails). */
export function statusDetails(status: JitStatus, entitlements: string[]): string {
  const lines = [`**${status.state}** — ${status.nhiId} → ${entitlements.join(', ')}`, `requested by ${status.requestedBy}: ${status.justification}`];
  if (status.state === 'awaiting_approval') lines.push(`approvals ${status.approvals.length}/${status.requiredApprovals} (until ${status.approvalDeadline})`);
  if (status.expiresAt && (status.state === 'active' || status.state === 'granting')) lines.push(`expires ${status.expiresAt}`);
  if (status.endReason) lines.push(`ended: ${status.endReason}${status.endedBy ? ` by ${status.endedBy}` : ''}`);
  if (status.escalated) lines.push('⚠ revocation escalated');
  return lines.join('\n');
}
