// Leak intake and incidents, HTTP only. Three doors lead to one containment per NHI: `POST /v1/leaks`
// (detectors, bearer token), and the vendor webhooks `POST /webhooks/github` and
// `POST /webhooks/gitguardian`, which live outside /v1 because vendors cannot send our bearer
// token: they authenticate by HMAC signature over the raw body instead.
//
// Each door parses (intake.ts) and hands the alert to dispatch.ts, which matches it to NHIs
// (matching.ts) and contains it, records it as already contained, or keeps it as an unmatched
// incident for triage.
import { createHash } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { getIncident, incidentSchema, incidentStatusSchema, listIncidents } from '../../lib/incidents';
import { getNhi, nhiIdSchema } from '../../lib/inventory';
import {
  genericLeakSchema,
  isIgnored,
  LeakPayloadError,
  normalizeGenericLeak,
  parseGithubAlert,
  parseGitguardianEvent,
  verifyGitguardianSignature,
  verifyGithubSignature,
  type Ignored,
  type NormalizedAlert,
} from './intake';
import { leakWorkflowId, statusQuery, type LeakAlert } from './contract';
import { containmentRefSchema, createAlertDispatch, emptyResult, leakIntakeResultSchema, type LeakIntakeResult } from './dispatch';
import { withGithubApiFingerprints } from './matching';
import { requireRole } from '../../api/auth';
import { ApiError } from '../../api/errors';
import { documentRoute } from '../../api/openapi';
import { defineRoute } from '../../api/route';
import type { ScenarioDeps } from '../../api/scenarios';
import { limitParam } from '../../api/validation';

export { leakIntakeResultSchema, type LeakIntakeResult } from './dispatch';

// ---------------------------------------------------------------------------------------------
// Schemas (responses)

const leakStatusSchema = z
  .record(z.string(), z.unknown())
  .meta({ id: 'LeakStatus', description: 'The containment\'s status query: state, alerts (evidence), rotation refs and fingerprints, quarantine, verification (with `limitedBy` when the new credential could be verified only up to a restriction another intent holds), timeline.' });

const bindResultSchema = z.strictObject({ incident: incidentSchema, containment: containmentRefSchema }).meta({ id: 'IncidentBound' });

// ---------------------------------------------------------------------------------------------

const oneLine = (s: string | undefined, max = 100) => (s ?? '').replace(/[^\x20-\x7e]/g, '?').slice(0, max);

function payloadError(err: unknown): never {
  if (err instanceof LeakPayloadError) {
    throw ApiError.validation(
      err.issues.map((i) => ({ path: i.path ? `body.${i.path}` : 'body', message: i.message })),
      `Invalid ${err.source} payload`,
    );
  }
  throw err;
}

export function createLeakRouter(deps: ScenarioDeps): Router {
  const router = Router();
  const { pool } = deps;
  const { client, taskQueue } = deps.temporal;

  const { handleAlert, once, bindAndContain } = createAlertDispatch({ pool, client, taskQueue, policy: deps.policy });

  const ignoredResult = (r: Ignored): LeakIntakeResult => emptyResult({ outcome: 'ignored', reason: r.reason });
  const send = (res: Response, r: LeakIntakeResult) => res.status(r.duplicate ? 200 : 202).json(r);

  function rejectSignature(req: Request, source: string, reason: string, configured: boolean): never {
    // A security log line and nothing else: no delivery, incident or audit row for an unsigned request.
    req.log.warn(
      { security: 'webhook_signature_rejected', source, reason, configured, deliveryId: oneLine(req.get('x-github-delivery')) || undefined, remoteAddress: req.socket.remoteAddress },
      `${source} webhook rejected: ${reason}`,
    );
    // No secret here: no signature can ever pass, and the sender's operator must be told (the one
    // thing revealed is that this webhook is switched off). Otherwise the caller learns only what a
    // genuine sender can fix (a stale timestamp).
    if (!configured) throw new ApiError(503, 'webhook_not_configured', `this server has no ${source === 'github' ? 'GITHUB' : 'GITGUARDIAN'}_WEBHOOK_SECRET set, so it accepts no ${source} webhook; nothing was recorded`);
    throw ApiError.unauthenticated(`invalid or missing webhook signature${reason === 'stale' ? ' (stale timestamp)' : ''}`);
  }

  // --- generic alerts ------------------------------------------------------------------------

  // Runs before defineRoute's validation so that the intake schema's own messages (e.g. "send the
  // sha256 fingerprint, never the secret" for a `password` field) reach the caller.
  router.post('/v1/leaks', requireRole('detector'), (req, _res, next) => {
    const r = genericLeakSchema.safeParse(req.body ?? {});
    if (!r.success) {
      throw ApiError.validation(
        r.error.issues.map((i) => ({ path: ['body', ...i.path.map(String)].join('.'), message: i.message })),
        'Invalid request body',
      );
    }
    next();
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/leaks',
    summary: 'Report a leaked credential (by NHI id, the sha256 fingerprint of the secret or an AWS access key id — never the secret)',
    description:
      'Starts containment of the NHI (`leak-<nhiId>`), or joins the running one as evidence. The fingerprint may be of a whole stored credential or of the secret half of an AWS access key; `accessKeyId` names a leaked AWS key by its id (not a secret: what AWS exposure alerts give). A fingerprint of a credential already retired is recorded as already contained. An alert that matches no NHI becomes an unmatched incident. Send an Idempotency-Key header to make retries safe.',
    tags: ['leak'],
    roles: ['detector'],
    body: genericLeakSchema,
    responses: {
      202: { description: 'Accepted: containment started or joined, already contained, or unmatched', schema: leakIntakeResultSchema },
      200: { description: 'A repeat of an Idempotency-Key: the first outcome', schema: leakIntakeResultSchema },
    },
    handler: async ({ body, principal, req, res }) => {
      const key = req.get('Idempotency-Key');
      if (key !== undefined && !/^[\x21-\x7e]{1,128}$/.test(key)) {
        throw ApiError.validation([{ path: 'headers.idempotency-key', message: '1-128 visible ASCII characters' }]);
      }
      const receivedAt = new Date();
      const result = await once(`generic:${principal.id}`, key, () => handleAlert(normalizeGenericLeak(body, receivedAt), receivedAt, principal.id));
      send(res, result);
    },
  });

  // --- vendor webhooks (HMAC, outside /v1) ---------------------------------------------------

  router.post('/webhooks/github', async (req, res) => {
    const secret = deps.config.GITHUB_WEBHOOK_SECRET ?? '';
    const raw = req.rawBody ?? Buffer.alloc(0);
    if (!verifyGithubSignature(raw, req.get('x-hub-signature-256'), secret)) {
      rejectSignature(req, 'github', secret ? 'X-Hub-Signature-256 does not match' : 'GITHUB_WEBHOOK_SECRET is not configured', Boolean(secret));
    }
    const receivedAt = new Date();
    const delivery = req.get('x-github-delivery');
    let parsed: NormalizedAlert | Ignored;
    try {
      parsed = parseGithubAlert(req.get('x-github-event'), delivery, req.body);
    } catch (err) {
      payloadError(err);
    }
    const deliveryId = delivery ? oneLine(delivery) : undefined;
    const result = await once('github', deliveryId, async () => {
      if (isIgnored(parsed)) return ignoredResult(parsed);
      const enriched = await withGithubApiFingerprints(deps.config, req.log, parsed);
      return handleAlert(enriched.alert, receivedAt, 'webhook:github', enriched.via);
    });
    send(res, result);
  });

  router.post('/webhooks/gitguardian', async (req, res) => {
    const secret = deps.config.GITGUARDIAN_WEBHOOK_SECRET ?? '';
    const raw = req.rawBody ?? Buffer.alloc(0);
    const signature = req.get('gitguardian-signature');
    const v = verifyGitguardianSignature(raw, signature, req.get('timestamp'), secret, new Date());
    if (!v.ok) rejectSignature(req, 'gitguardian', secret ? v.reason : 'GITGUARDIAN_WEBHOOK_SECRET is not configured', Boolean(secret));
    const receivedAt = new Date();
    // GitGuardian sends no delivery id; an identical replay inside the timestamp tolerance has the same signature.
    const deliveryId = `sig:${createHash('sha256').update(signature ?? '').digest('hex').slice(0, 32)}`;
    let parsed: NormalizedAlert | Ignored;
    try {
      parsed = parseGitguardianEvent(req.body, deliveryId);
    } catch (err) {
      payloadError(err);
    }
    const result = await once('gitguardian', deliveryId, async () => (isIgnored(parsed) ? ignoredResult(parsed) : handleAlert(parsed, receivedAt, 'webhook:gitguardian')));
    send(res, result);
  });

  const webhookDoc = (path: string, summary: string, description: string, headers: z.ZodObject) =>
    documentRoute(router, {
      method: 'post',
      path,
      summary,
      description,
      tags: ['leak', 'webhooks'],
      security: [],
      request: { headers, body: { required: true, content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } },
      responses: {
        202: { description: 'Accepted', content: { 'application/json': { schema: leakIntakeResultSchema } } },
        200: { description: 'A redelivery: the first outcome', content: { 'application/json': { schema: leakIntakeResultSchema } } },
        400: { description: 'Malformed JSON or a payload that is not the vendor\'s schema' },
        401: { description: 'Bad, missing or stale signature (nothing is recorded)' },
        503: { description: 'No webhook secret is configured for this vendor (webhook_not_configured; nothing is recorded)' },
      },
    });
  webhookDoc(
    '/webhooks/github',
    'GitHub secret_scanning_alert webhook',
    'Authenticated by `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with GITHUB_WEBHOOK_SECRET), not a bearer token. Configure the webhook with content type application/json. `created`, `reopened`, `publicly_leaked` and `validated` (active) trigger containment; `resolved` is recorded; other events get 202 with a reason. Redeliveries are recognised by `X-GitHub-Delivery`. With GITHUB_TOKEN set, the alert is fetched from GitHub\'s REST API and the fingerprint of its secret is matched against credentials we issued (`matchedBy: github_api_fingerprint`) before exposure hints.',
    z.object({ 'x-hub-signature-256': z.string(), 'x-github-event': z.string(), 'x-github-delivery': z.string() }),
  );
  webhookDoc(
    '/webhooks/gitguardian',
    'GitGuardian custom webhook',
    'Authenticated by `Gitguardian-Signature` (HMAC-SHA256 of the raw body, keyed with the `Timestamp` header followed by GITGUARDIAN_WEBHOOK_SECRET); timestamps older than 5 minutes are rejected. `incident_triggered`, `new_occurrence`, `incident_reopened` and `incident_regression` trigger containment.',
    z.object({ 'gitguardian-signature': z.string(), timestamp: z.string() }),
  );

  // --- containments and incidents ------------------------------------------------------------

  defineRoute(router, {
    method: 'get',
    path: '/v1/leaks/:nhiId',
    summary: 'The latest leak containment of an NHI (status query: state, evidence, rotation, verification, timeline)',
    tags: ['leak'],
    params: z.strictObject({ nhiId: nhiIdSchema }),
    responses: { 200: { description: 'The status', schema: leakStatusSchema } },
    handler: async ({ params }) => {
      try {
        return await client.workflow.getHandle(leakWorkflowId(params.nhiId)).query(statusQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError || (err as Error)?.name === 'WorkflowNotFoundError') throw ApiError.notFound(`no leak containment for ${params.nhiId}`);
        throw err;
      }
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/incidents',
    summary: 'Incidents, newest first (`status=unmatched` is the triage queue)',
    tags: ['leak'],
    query: z.strictObject({ status: incidentStatusSchema.optional(), nhiId: nhiIdSchema.optional(), limit: limitParam(50, 500) }),
    responses: { 200: { description: 'Incidents', schema: z.strictObject({ items: z.array(incidentSchema) }) } },
    handler: async ({ query }) => ({ items: await listIncidents(pool, query) }),
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/incidents/:id',
    summary: 'One incident with its alerts and timeline',
    tags: ['leak'],
    params: z.strictObject({ id: z.uuid('an incident id (uuid)') }),
    responses: { 200: { description: 'The incident', schema: incidentSchema } },
    handler: async ({ params }) => {
      const incident = await getIncident(pool, params.id);
      if (!incident) throw ApiError.notFound(`incident ${params.id} not found`);
      return incident;
    },
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/incidents/:id/bind',
    summary: 'Triage: bind an unmatched incident to an NHI, which starts (or joins) its containment',
    tags: ['leak'],
    roles: ['detector', 'approver'],
    params: z.strictObject({ id: z.uuid('an incident id (uuid)') }),
    body: z.strictObject({ nhiId: nhiIdSchema }),
    responses: {
      202: { description: 'Bound; containment started or joined', schema: bindResultSchema },
      409: { description: 'The incident is not unmatched (already bound or closed)' },
    },
    handler: async ({ params, body, principal }) => {
      const incident = await getIncident(pool, params.id);
      if (!incident) throw ApiError.notFound(`incident ${params.id} not found`);
      if (!(await getNhi(pool, body.nhiId))) throw ApiError.validation([{ path: 'body.nhiId', message: `unknown NHI ${body.nhiId}` }]);
      if (incident.status !== 'unmatched') throw ApiError.conflict(`incident ${params.id} is ${incident.status}, not unmatched`);
      const stored = (incident.details as { alert?: Omit<LeakAlert, 'key' | 'matchedBy'> }).alert;
      if (!stored) throw ApiError.conflict(`incident ${params.id} has no alert to contain`);
      const bound = await bindAndContain({ id: params.id, incident, stored, nhiId: body.nhiId, by: principal.id });
      if (!bound) throw ApiError.conflict(`incident ${params.id} was bound meanwhile`);
      return bound;
    },
  });

  return router;
}
