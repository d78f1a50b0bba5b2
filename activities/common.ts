// Activities every scenario uses: inventory facts, the audit trail, notifications.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Pool } from 'pg';
import { appendAudit, type AuditEventInput } from '../lib/audit';
import { checkSignature, useNonce, type Authority, type AuthorityCheck, type SignedMessage } from '../lib/authority';
import { getNhi, type Nhi } from '../lib/inventory';
import { getPrincipal } from '../lib/principals';
import type { Notification } from '../lib/notifier';
import { ErrorType } from '../workflows/errors';
import type { ActivityDeps } from './deps';

export type NhiRecord = Nhi;

/** The inventory record, or a non-retryable NhiNotFound failure. */
export async function loadNhi(pool: Pool, id: string): Promise<NhiRecord> {
  const nhi = await getNhi(pool, id);
  if (!nhi) throw ApplicationFailure.nonRetryable(`NHI ${id} is not in the inventory`, ErrorType.NhiNotFound);
  return nhi;
}

/**
 * The roles the server holds for a principal: authority inside workflows comes from here, never
 * from a message's payload. An unknown principal has none.
 */
export async function principalRoles(pool: Pool, id: string): Promise<string[]> {
  return (await getPrincipal(pool, id))?.roles ?? [];
}

/** The workflow an activity runs for: audit rows and notifications are keyed on it. */
export function currentWorkflowId(): string {
  const id = Context.current().info.workflowExecution?.workflowId;
  if (!id) throw new Error('this activity must run on behalf of a workflow');
  return id;
}

/**
 * The principal a signed message really comes from (lib/authority.ts): the signature, this
 * workflow, the message, the expiry, the nonce used once (Temporal's retry of this activity is the
 * same use). With `claimed`, the payload's named principal must be the signed one. Anything else is
 * a non-retryable NotAllowed naming what is wrong — the message is not honoured.
 */
export async function verifiedPrincipal(deps: Pick<ActivityDeps, 'pool' | 'authorityKey'>, authority: Authority | undefined, message: SignedMessage, claimed?: string): Promise<string> {
  const check = await signedPrincipal(deps, authority, message, claimed);
  if (!check.ok) throw ApplicationFailure.create({ message: `${message} refused: ${check.reason}`, type: ErrorType.NotAllowed, nonRetryable: true });
  return check.principal;
}

/** verifiedPrincipal's check, as an answer rather than a failure (for steps that record refusals). */
export async function signedPrincipal(deps: Pick<ActivityDeps, 'pool' | 'authorityKey'>, authority: Authority | undefined, message: SignedMessage, claimed?: string): Promise<AuthorityCheck> {
  const info = Context.current().info;
  const execution = info.workflowExecution;
  if (!execution) throw new Error('this activity must run on behalf of a workflow');
  const check = checkSignature(deps.authorityKey, authority, { workflowId: execution.workflowId, message });
  if (!check.ok) return check;
  if (claimed !== undefined && claimed !== check.principal) return { ok: false, reason: `signed by ${check.principal}, but the message names ${claimed}` };
  return useNonce(deps.pool, authority!, `${execution.runId}:${info.activityId}`);
}

export type AuditStep = Omit<AuditEventInput, 'workflowId'>;

export function createCommonActivities(deps: ActivityDeps) {
  return {
    async recordAudit(step: AuditStep): Promise<{ seq: number; hash: string }> {
      const e = await appendAudit(deps.pool, { ...step, workflowId: currentWorkflowId() });
      return { seq: e.seq, hash: e.hash };
    },

    async notify(n: Omit<Notification, 'workflowId'>): Promise<{ delivered: number }> {
      return deps.notifier.notify({ ...n, workflowId: currentWorkflowId() });
    },
  };
}
