// Usage intake and anomaly throttling. `POST /v1/usage` takes batches of usage events (bucketed per
// NHI per minute, then the detector runs on what changed); `POST /v1/anomalies` lets an external
// detector (a SIEM) report an anomaly directly. Either starts (or joins, by signal-with-start on
// `anomaly-<nhiId>`) the NHI's throttle; analysts clear it, confirm it malicious, or approve a
// throttle that policy would not apply by itself. The Updates carry only the caller's id: the
// workflow looks its roles up server-side and asks policy.
import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { Router } from 'express';
import { z } from 'zod';
import { resolveDetectorSettings } from './detector';
import { getNhi, nhiIdSchema, text } from '../../lib/inventory';
import {
  anomalySettingsFrom,
  detectorSettingsFrom,
  ingestUsage,
  MAX_USAGE_BATCH,
  raiseAnomaly,
  raiseDetections,
  usageHistory,
  validateUsageItems,
} from './usage';
import {
  anomalyWorkflowId,
  approveThrottleUpdate,
  clearUpdate,
  confirmUpdate,
  statusQuery,
  type AnomalyEvidence,
  type AnomalyStatus,
} from './contract';
import { ApiError } from '../../api/errors';
import { defineRoute } from '../../api/route';
import type { ScenarioDeps } from '../../api/scenarios';
import { queryInt } from '../../api/validation';
import { mapUpdateError, requireRunning } from '../../api/workflow-errors';
import { signAuthority, type SignedMessage } from '../../lib/authority';

const itemErrorSchema = z.strictObject({ index: z.number().int(), path: z.string(), message: z.string() }).meta({ id: 'UsageItemError' });

const raisedSchema = z
  .strictObject({
    nhiId: z.string(),
    minute: z.string(),
    observedRate: z.number(),
    threshold: z.number().nullable(),
    workflowId: z.string().nullable().meta({ description: 'The throttle started or joined; null when it could not be reached (the next detection tries again)' }),
    error: z.string().optional(),
  })
  .meta({ id: 'RaisedAnomaly' });

const usageResultSchema = z
  .strictObject({
    accepted: z.number().int(),
    rejected: z.number().int(),
    errors: z.array(itemErrorSchema).meta({ description: 'One entry per problem, addressed by the item\'s index in the batch' }),
    anomalies: z.array(raisedSchema),
  })
  .meta({ id: 'UsageIngestResult' });

const anomalyReportSchema = z
  .strictObject({
    nhiId: nhiIdSchema,
    observedRate: z.number().finite().nonnegative().max(1e9).meta({ description: 'Events per minute observed' }),
    baselineRate: z.number().finite().nonnegative().max(1e9).meta({ description: 'Events per minute expected' }),
    source: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'a detector name: letters, digits, _ . : - (at most 64)').meta({ example: 'siem:splunk' }),
    detail: text(1000).optional(),
    eventId: z.string().regex(/^[\x21-\x7e]{1,128}$/, '1-128 visible ASCII characters').optional().meta({ description: 'The detector\'s id for this finding: a resend with the same id is counted once' }),
    detectedAt: z.iso.datetime({ offset: true }).optional(),
  })
  .meta({ id: 'AnomalyReport', description: 'An anomaly found by an external detector.' });

const anomalyRefSchema = z.strictObject({ nhiId: z.string(), workflowId: z.string(), statusUrl: z.string() }).meta({ id: 'AnomalyRef' });
const anomalyStatusSchema = z
  .record(z.string(), z.unknown())
  .meta({ id: 'AnomalyStatus', description: 'The throttle\'s status query: state, level, evidence, read-backs, deadlines, containment, timeline.' });
const usageHistorySchema = z
  .strictObject({
    nhiId: z.string(),
    buckets: z.array(z.strictObject({ minute: z.string(), count: z.number() })),
    baseline: z
      .strictObject({ mean: z.number(), sigma: z.number(), samples: z.number().int(), throughMinute: z.string().nullable(), lastAlertMinute: z.string().nullable() })
      .nullable(),
  })
  .meta({ id: 'UsageHistory' });

const nhiParams = z.strictObject({ nhiId: nhiIdSchema });

export function createAnomalyRouter(deps: ScenarioDeps): Router {
  const sign = (workflowId: string, message: SignedMessage, principal: string) => signAuthority(deps.authorityKey, { workflowId, message, principal });
  const router = Router();
  const { pool } = deps;
  const { client, taskQueue } = deps.temporal;
  const temporal = { client, taskQueue };
  const detector = resolveDetectorSettings({ ...detectorSettingsFrom(deps.config ?? {}), ...deps.detectorSettings });
  const settings = { ...anomalySettingsFrom(deps.config ?? {}), ...deps.anomalySettings };
  const handle = (nhiId: string): WorkflowHandle => client.workflow.getHandle(anomalyWorkflowId(nhiId));

  async function statusOf(nhiId: string): Promise<AnomalyStatus> {
    try {
      return await handle(nhiId).query(statusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || (err as Error)?.name === 'WorkflowNotFoundError') throw ApiError.notFound(`no anomaly throttle for ${nhiId}`);
      throw err;
    }
  }

  /** 404 when there never was a throttle for this NHI, 409 when the latest one has finished. */
  async function running(nhiId: string): Promise<WorkflowHandle> {
    const h = handle(nhiId);
    try {
      await requireRunning(h, 'anomaly throttle');
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || (err as Error)?.name === 'WorkflowNotFoundError') throw ApiError.notFound(`no open anomaly for ${nhiId}`);
      throw err;
    }
    return h;
  }

  defineRoute(router, {
    method: 'post',
    path: '/v1/usage',
    summary: `Report usage events (a batch of up to ${MAX_USAGE_BATCH})`,
    description:
      'A JSON array of `{nhiId, at, count?, operation?}` (see UsageEvent). Events are added to per-NHI per-minute buckets; the detector then runs for each NHI the batch touched, and an anomaly starts or joins the NHI\'s throttle. ' +
      'Items are checked one by one: bad ones (unknown NHI, negative or absurd counts, timestamps more than 5 minutes ahead or older than 7 days) are listed by index while the rest are accepted. A batch with no valid item is a 400; a batch over the limit a 413.',
    tags: ['anomaly'],
    roles: ['detector'],
    body: z.array(z.unknown()).min(1, 'send at least one event').meta({ description: 'UsageEvent items' }),
    responses: {
      202: { description: 'Accepted (possibly in part: see errors)', schema: usageResultSchema },
      413: { description: `More than ${MAX_USAGE_BATCH} events in one batch (or a body over the size limit)` },
    },
    handler: async ({ body, principal }) => {
      if (body.length > MAX_USAGE_BATCH) throw new ApiError(413, 'payload_too_large', `at most ${MAX_USAGE_BATCH} events per batch (got ${body.length})`);
      const { valid, errors, nhis } = await validateUsageItems(pool, body);
      if (!valid.length) throw ApiError.validation(errors.map((e) => ({ path: e.path, message: e.message })), 'No valid usage event in the batch');
      const detections = await ingestUsage(pool, valid, nhis, detector);
      const anomalies = await raiseDetections(pool, temporal, detections, 'usage', principal.id, settings);
      return { accepted: valid.length, rejected: new Set(errors.map((e) => e.index)).size, errors, anomalies };
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/usage/:nhiId',
    summary: 'An NHI\'s recent usage buckets and its detector baseline',
    tags: ['anomaly'],
    params: nhiParams,
    query: z.strictObject({ minutes: queryInt({ min: 1, max: 7 * 24 * 60 }).default(60) }),
    responses: { 200: { description: 'Buckets (oldest first) and the baseline', schema: usageHistorySchema } },
    handler: async ({ params, query }) => {
      if (!(await getNhi(pool, params.nhiId))) throw ApiError.notFound(`unknown NHI ${params.nhiId}`);
      return usageHistory(pool, params.nhiId, query.minutes);
    },
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/anomalies',
    summary: 'Report an anomaly found by an external detector (starts or joins the NHI\'s throttle)',
    description: 'observedRate must exceed baselineRate and be at least the anomaly floor (ANOMALY_MIN_RATE, default 10 per minute); otherwise 400 and nothing starts.',
    tags: ['anomaly'],
    roles: ['detector'],
    body: anomalyReportSchema,
    responses: {
      202: { description: 'Throttle started or joined', schema: anomalyRefSchema },
      409: { description: 'The NHI is being (or has been) offboarded' },
    },
    handler: async ({ body, principal, res }) => {
      // A report that shows no excess is not an anomaly: it would throttle any NHI on a detector's word.
      if (!(body.observedRate > body.baselineRate)) {
        throw ApiError.validation([{ path: 'body.observedRate', message: `observedRate (${body.observedRate}) must exceed baselineRate (${body.baselineRate})` }]);
      }
      if (body.observedRate < detector.minRate) {
        throw ApiError.validation([{ path: 'body.observedRate', message: `observedRate (${body.observedRate}) is below the anomaly floor of ${detector.minRate} events per minute (ANOMALY_MIN_RATE)` }]);
      }
      const nhi = await getNhi(pool, body.nhiId);
      if (!nhi) throw ApiError.validation([{ path: 'body.nhiId', message: `unknown NHI ${body.nhiId}` }]);
      if (nhi.status === 'offboarding' || nhi.status === 'offboarded') throw ApiError.conflict(`${body.nhiId} is ${nhi.status}: the offboarding owns its access`);
      const now = new Date().toISOString();
      const evidence: AnomalyEvidence = {
        key: `${body.source}:${body.eventId ?? randomUUID()}`,
        source: body.source,
        kind: 'external',
        observedRate: body.observedRate,
        baselineRate: body.baselineRate,
        ...(body.detail ? { detail: body.detail } : {}),
        reportedBy: principal.id,
        detectedAt: body.detectedAt ? new Date(body.detectedAt).toISOString() : now,
        receivedAt: now,
      };
      const { workflowId } = await raiseAnomaly(temporal, body.nhiId, evidence, settings);
      res.location(`/v1/anomalies/${body.nhiId}`);
      return { nhiId: body.nhiId, workflowId, statusUrl: `/v1/anomalies/${body.nhiId}` };
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/anomalies/:nhiId',
    summary: 'The latest anomaly throttle of an NHI (state, level, evidence, read-backs, timeline)',
    tags: ['anomaly'],
    params: nhiParams,
    responses: { 200: { description: 'The status query', schema: anomalyStatusSchema } },
    handler: ({ params }) => statusOf(params.nhiId),
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/anomalies/:nhiId/clear',
    summary: 'Clear (false positive): release the throttle and verify the access; answers once verified',
    tags: ['anomaly'],
    roles: ['approver'],
    params: nhiParams,
    body: z.strictObject({ reason: z.string().trim().min(3).max(500) }),
    responses: {
      200: { description: 'Cleared: the throttle released and the access verified', schema: anomalyStatusSchema },
      202: { description: 'Release under way (still verifying)', schema: anomalyStatusSchema },
      409: { description: 'The anomaly has finished, or is not open to this now' },
    },
    handler: async ({ params, body, principal, res }) => {
      const h = await running(params.nhiId);
      try {
        const update = await h.startUpdate(clearUpdate, { args: [{ by: principal.id, reason: body.reason, authority: sign(h.workflowId, 'clear', principal.id) }], waitForStage: 'ACCEPTED' });
        const result = await Promise.race([update.result(), new Promise<null>((r) => setTimeout(() => r(null), deps.anomalyUpdateWaitMs ?? 20_000).unref())]);
        if (result) return result;
        res.status(202);
        return statusOf(params.nhiId);
      } catch (err) {
        throw mapUpdateError(err);
      }
    },
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/anomalies/:nhiId/confirm',
    summary: 'Confirm (malicious): leak containment starts as a child (rotation, sessions); the throttle stays until it ends',
    tags: ['anomaly'],
    roles: ['approver'],
    params: nhiParams,
    body: z.strictObject({ comment: text(500).optional() }),
    responses: {
      200: { description: 'Containment started (its progress shows in the status)', schema: anomalyStatusSchema },
      409: { description: 'The anomaly has finished, or is not open to this now' },
    },
    handler: async ({ params, body, principal }) => {
      const h = await running(params.nhiId);
      try {
        return await h.executeUpdate(confirmUpdate, { args: [{ by: principal.id, comment: body.comment, authority: sign(h.workflowId, 'confirm', principal.id) }] });
      } catch (err) {
        throw mapUpdateError(err);
      }
    },
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/anomalies/:nhiId/approve-throttle',
    summary: 'Approve a throttle policy would not apply by itself (e.g. a critical NHI); answers once level 1 is verified',
    tags: ['anomaly'],
    roles: ['approver'],
    params: nhiParams,
    body: z.strictObject({ comment: text(500).optional() }),
    responses: {
      200: { description: 'Throttled (level 1, verified)', schema: anomalyStatusSchema },
      409: { description: 'The anomaly is not awaiting confirmation' },
    },
    handler: async ({ params, body, principal }) => {
      const h = await running(params.nhiId);
      try {
        return await h.executeUpdate(approveThrottleUpdate, { args: [{ by: principal.id, comment: body.comment, authority: sign(h.workflowId, 'approveThrottle', principal.id) }] });
      } catch (err) {
        throw mapUpdateError(err);
      }
    },
  });

  return router;
}
