// Activities every scenario uses: inventory facts, the audit trail, notifications.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Pool } from 'pg';
import { appendAudit, type AuditEventInput } from '../lib/audit';
import type { Notification } from '../lib/notifier';
import { ErrorType } from '../workflows/errors';
import type { ActivityDeps } from './deps';

export interface NhiRecord {
  id: string;
  kind: 'service_account' | 'api_key' | 'token' | 'integration' | 'ai_agent';
  owner: string;
  connector: string;
  externalRef: string;
  criticality: 'low' | 'medium' | 'high' | 'critical';
  tags: string[];
  status: 'active' | 'throttled' | 'offboarding' | 'offboarded';
  usageBaseline: number | null;
  dependents: unknown[];
}

export async function loadNhi(pool: Pool, id: string): Promise<NhiRecord> {
  const { rows } = await pool.query(
    `SELECT id, kind, owner, connector, external_ref, criticality, tags, status, usage_baseline, dependents FROM nhis WHERE id = $1`,
    [id],
  );
  const r = rows[0];
  if (!r) throw ApplicationFailure.nonRetryable(`NHI ${id} is not in the inventory`, ErrorType.NhiNotFound);
  return {
    id: r.id,
    kind: r.kind,
    owner: r.owner,
    connector: r.connector,
    externalRef: r.external_ref,
    criticality: r.criticality,
    tags: r.tags,
    status: r.status,
    usageBaseline: r.usage_baseline,
    dependents: r.dependents,
  };
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
