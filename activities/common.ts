// Activities every scenario uses: inventory facts, the audit trail, notifications.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Pool } from 'pg';
import { appendAudit, type AuditEventInput } from '../lib/audit';
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
