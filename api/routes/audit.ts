// The audit trail over HTTP: any authenticated principal may read it (auditors need no special
// role); verifying the whole hash chain is heavier and admin-only.
import { Router } from 'express';
import type { Pool } from 'pg';
import { z } from 'zod';
import { queryAudit, verifyAuditChain } from '../../lib/audit';
import { nhiIdSchema, text } from '../../lib/inventory';
import { defineRoute } from '../route';
import { limitParam } from '../validation';

export const auditEventSchema = z
  .object({
    seq: z.number().int(),
    id: z.string(),
    at: z.iso.datetime(),
    workflowId: z.string(),
    stepId: z.string(),
    scenario: z.string().nullable(),
    nhiId: z.string().nullable(),
    actor: z.string(),
    action: z.string(),
    outcome: z.string(),
    decision: z.unknown(),
    target: z.unknown(),
    readback: z.unknown(),
    details: z.record(z.string(), z.unknown()),
    prevHash: z.string(),
    hash: z.string(),
  })
  .meta({ id: 'AuditEvent' });

const auditPageSchema = z
  .strictObject({
    events: z.array(auditEventSchema),
    nextCursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page' }),
  })
  .meta({ id: 'AuditPage' });

const verificationSchema = z
  .strictObject({
    ok: z.boolean(),
    checked: z.number().int(),
    brokenAt: z.strictObject({ seq: z.number().int(), reason: z.string() }).optional(),
  })
  .meta({ id: 'AuditVerification' });

export function createAuditRouter({ pool }: { pool: Pool }): Router {
  const router = Router();

  defineRoute(router, {
    method: 'get',
    path: '/v1/audit',
    summary: 'Audit events, oldest first',
    tags: ['audit'],
    query: z.strictObject({
      nhiId: nhiIdSchema.optional(),
      workflowId: text(1000).optional(),
      since: z.iso.datetime({ offset: true }).optional().meta({ description: 'ISO 8601 timestamp: events at or after it' }),
      limit: limitParam(100, 1000),
      cursor: z.string().regex(/^\d{1,15}$/, 'must be a cursor returned by a previous page').optional(),
    }),
    responses: { 200: { description: 'A page of events', schema: auditPageSchema } },
    handler: async ({ query }) => {
      const page = await queryAudit(pool, {
        nhiId: query.nhiId,
        workflowId: query.workflowId,
        since: query.since ? new Date(query.since) : undefined,
        after: query.cursor ? Number(query.cursor) : undefined,
        limit: query.limit,
      });
      return { events: page.events, nextCursor: page.nextCursor === null ? null : String(page.nextCursor) };
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/audit/verify',
    summary: 'Recompute the audit hash chain',
    description: 'Reports the first row whose hash or link does not match (a tampered or removed row).',
    tags: ['audit'],
    roles: ['admin'],
    responses: { 200: { description: 'The verification result', schema: verificationSchema } },
    handler: () => verifyAuditChain(pool),
  });

  return router;
}
