// Leak intake and incidents. Three doors lead to one containment per NHI: `POST /v1/leaks`
// (detectors, bearer token), and the vendor webhooks `POST /webhooks/github` and
// `POST /webhooks/gitguardian`, which live outside /v1 because vendors cannot send our bearer
// token: they authenticate by HMAC signature over the raw body instead.
//
// Each alert is matched to NHIs (fingerprint of an issued credential — for GitHub alerts, when
// GITHUB_TOKEN is set, of the secret fetched from GitHub's REST API — the NHI id, or exposure
// hints), then: contained (signal-with-start on `leak-<nhiId>`, so a second alert joins the running
// containment), recorded as already contained, or kept as an unmatched incident for triage.
import { createHash, randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { appendAudit } from '../../lib/audit';
import { bindIncident, createIncident, getIncident, incidentSchema, incidentStatusSchema, listIncidents, unbindIncident } from '../../lib/incidents';
import { fetchSecretScanningAlert } from './github-alerts';
import { getNhi, nhiIdSchema } from '../../lib/inventory';
import {
  fingerprintsOfKind,
  genericLeakSchema,
  githubAlertRef,
  isIgnored,
  labelFingerprint,
  LeakPayloadError,
  matchByExposureHints,
  normalizeGenericLeak,
  parseGithubAlert,
  parseGitguardianEvent,
  verifyGitguardianSignature,
  verifyGithubSignature,
  type Ignored,
  type NormalizedAlert,
} from './intake';
import {
  alertLabel,
  alertSignal,
  LEAK_SCENARIO,
  LEAK_WORKFLOW_TYPE,
  leakSummary,
  leakWorkflowId,
  statusQuery,
  type LeakAlert,
  type LeakContainmentInput,
  type MatchedBy,
} from './contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { requireRole } from '../../api/auth';
import { ApiError } from '../../api/errors';
import { documentRoute } from '../../api/openapi';
import { defineRoute } from '../../api/route';
import type { ScenarioDeps } from '../../api/scenarios';
import { limitParam } from '../../api/validation';

// ---------------------------------------------------------------------------------------------
// Schemas (responses)

const containmentRefSchema = z
  .strictObject({ nhiId: z.string(), workflowId: z.string(), matchedBy: z.string(), statusUrl: z.string() })
  .meta({ id: 'LeakContainmentRef' });

export const leakIntakeResultSchema = z
  .strictObject({
    outcome: z.enum(['containment', 'already_contained', 'unmatched', 'recorded', 'ignored', 'in_progress']),
    duplicate: z.boolean().meta({ description: 'A redelivery: the first delivery\'s outcome is returned and nothing is done again' }),
    alert: z
      .strictObject({ source: z.string(), externalId: z.string(), action: z.string(), severity: z.string(), summary: z.string() })
      .nullable(),
    containments: z.array(containmentRefSchema),
    alreadyContained: z.array(z.strictObject({ nhiId: z.string(), incidentId: z.string(), reason: z.string() })),
    incidentId: z.string().nullable().meta({ description: 'The unmatched incident awaiting triage, if any' }),
    reason: z.string().nullable(),
  })
  .meta({ id: 'LeakIntakeResult', description: 'What became of an alert.' });
export type LeakIntakeResult = z.output<typeof leakIntakeResultSchema>;

const leakStatusSchema = z
  .record(z.string(), z.unknown())
  .meta({ id: 'LeakStatus', description: 'The containment\'s status query: state, alerts (evidence), rotation refs and fingerprints, quarantine, verification (with `limitedBy` when the new credential could be verified only up to a restriction another intent holds), timeline.' });

const bindResultSchema = z.strictObject({ incident: incidentSchema, containment: containmentRefSchema }).meta({ id: 'IncidentBound' });

// ---------------------------------------------------------------------------------------------

/**
 * How a target was found. `github_api_fingerprint`: the fingerprint of the secret GitHub's REST API
 * returned for the alert. The workflow's evidence (`LeakAlert.matchedBy`) records it as
 * `fingerprint`; intake results, audit rows and incidents name it exactly.
 */
type Match = MatchedBy | 'github_api_fingerprint';
const contractMatch = (m: Match): MatchedBy => (m === 'github_api_fingerprint' ? 'fingerprint' : m);

type Target = { nhiId: string; matchedBy: Match; verdict: 'contain' | 'already_contained'; reason?: string };

/** Where an alert's fingerprints came from, when not from the alert itself. */
type FingerprintVia = { via: 'github_api' };

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

const emptyResult = (over: Partial<LeakIntakeResult>): LeakIntakeResult => ({
  outcome: 'recorded',
  duplicate: false,
  alert: null,
  containments: [],
  alreadyContained: [],
  incidentId: null,
  reason: null,
  ...over,
});

export function createLeakRouter(deps: ScenarioDeps): Router {
  const router = Router();
  const { pool } = deps;
  const { client, taskQueue } = deps.temporal;

  // --- matching ------------------------------------------------------------------------------

  async function resolveTargets(alert: NormalizedAlert, fpVia?: FingerprintVia): Promise<{ targets: Target[]; unmatchedReason?: string }> {
    // 1. A fingerprint of a credential we issued names the NHI, and says whether it is still live.
    const fpMatch: Match = fpVia?.via === 'github_api' ? 'github_api_fingerprint' : 'fingerprint';
    const sha = fingerprintsOfKind(alert, 'sha256').map((f) => f.toLowerCase());
    const hmsl = fingerprintsOfKind(alert, 'hmsl').map((f) => f.toLowerCase());
    if (sha.length || hmsl.length) {
      const { rows } = await pool.query<{ nhi_id: string; status: string; version: number }>(
        'SELECT nhi_id, status, version FROM secrets WHERE fingerprint = ANY($1::text[]) OR hmsl = ANY($2::text[]) ORDER BY created_at DESC',
        [sha, hmsl],
      );
      const live = rows.filter((r) => r.status === 'active' || r.status === 'pending');
      if (live.length) return { targets: [...new Set(live.map((r) => r.nhi_id))].map((nhiId) => ({ nhiId, matchedBy: fpMatch, verdict: 'contain' as const })) };
      if (rows.length) {
        const byNhi = new Map(rows.map((r) => [r.nhi_id, r]));
        return {
          targets: [...byNhi.values()].map((r) => ({
            nhiId: r.nhi_id,
            matchedBy: fpMatch,
            verdict: 'already_contained' as const,
            reason: `the leaked credential (version ${r.version}) is already ${r.status}`,
          })),
        };
      }
    }
    // 2. The NHI named directly (generic alerts), else 3. exposure hints.
    let candidates: { nhiId: string; matchedBy: MatchedBy }[];
    if (alert.nhiId) {
      if (!(await getNhi(pool, alert.nhiId))) return { targets: [], unmatchedReason: `unknown NHI ${alert.nhiId}` };
      candidates = [{ nhiId: alert.nhiId, matchedBy: 'nhi_id' }];
    } else {
      const { rows } = await pool.query<{ id: string; exposure_hints: { repository: string; secretType?: string }[] }>(
        `SELECT id, exposure_hints FROM nhis WHERE exposure_hints <> '[]'::jsonb`,
      );
      const ids = matchByExposureHints(alert, rows.map((r) => ({ id: r.id, exposureHints: r.exposure_hints })));
      if (!ids.length) {
        const where = alert.repository ? `${alert.repository}${alert.secretType ? ` (${alert.secretType})` : ''}` : 'the alert (no repository)';
        return { targets: [], unmatchedReason: `no NHI fingerprint or exposure hint matches ${where}` };
      }
      candidates = ids.map((nhiId) => ({ nhiId, matchedBy: 'exposure_hint' as const }));
    }
    return { targets: await Promise.all(candidates.map((c) => judge(c.nhiId, c.matchedBy, alert.detectedAt))) };
  }

  /**
   * Without a fingerprint, time decides: a credential issued after the leak was detected cannot
   * be the one that leaked (this is what stops a late second alert from rotating again).
   */
  async function judge(nhiId: string, matchedBy: MatchedBy, detectedAt: string): Promise<Target> {
    const { rows } = await pool.query<{ status: string; version: number | null; activated_at: Date | null }>(
      `SELECT n.status, s.version, s.activated_at FROM nhis n LEFT JOIN secrets s ON s.nhi_id = n.id AND s.status = 'active' WHERE n.id = $1`,
      [nhiId],
    );
    const r = rows[0];
    if (r?.status === 'offboarded') return { nhiId, matchedBy, verdict: 'already_contained', reason: `${nhiId} is offboarded: no login, credentials erased` };
    if (r?.activated_at && r.activated_at.getTime() > Date.parse(detectedAt)) {
      return {
        nhiId,
        matchedBy,
        verdict: 'already_contained',
        reason: `the current credential (version ${r.version}) was issued at ${r.activated_at.toISOString()}, after the leak was detected at ${detectedAt}`,
      };
    }
    return { nhiId, matchedBy, verdict: 'contain' };
  }

  // --- acting on an alert --------------------------------------------------------------------

  function toLeakAlert(a: NormalizedAlert, receivedAt: Date, matchedBy: Match, extra: Partial<LeakAlert> = {}): LeakAlert {
    return {
      key: `${a.externalId}|${a.action}|${a.deliveryId ?? ''}`,
      source: a.source,
      externalId: a.externalId,
      label: alertLabel(a),
      ...(a.deliveryId ? { deliveryId: a.deliveryId } : {}),
      action: a.action,
      trigger: a.trigger,
      severity: a.severity,
      ...(a.repository ? { repository: a.repository } : {}),
      ...(a.secretType ? { secretType: a.secretType } : {}),
      fingerprints: a.fingerprints,
      ...(a.evidenceUrl ? { evidenceUrl: a.evidenceUrl } : {}),
      detectedAt: a.detectedAt,
      receivedAt: receivedAt.toISOString(),
      summary: a.summary,
      matchedBy: contractMatch(matchedBy),
      ...extra,
    };
  }

  async function startOrJoin(nhiId: string, alert: LeakAlert, matchedBy: Match = alert.matchedBy): Promise<z.output<typeof containmentRefSchema>> {
    const workflowId = leakWorkflowId(nhiId);
    const input: LeakContainmentInput = { version: 1, nhiId };
    await client.workflow.signalWithStart(LEAK_WORKFLOW_TYPE, {
      taskQueue,
      workflowId,
      args: [input],
      signal: alertSignal,
      signalArgs: [alert],
      // A finished containment's id may be used again: a new leak of the new credential is a new containment.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      staticSummary: leakSummary(nhiId, alert),
      staticDetails: `${alert.summary}\nMatched by ${matchedBy}${alert.evidenceUrl ? `\nEvidence: ${alert.evidenceUrl}` : ''}`,
      typedSearchAttributes: [
        { key: NhiIdKey, value: nhiId },
        { key: ScenarioKey, value: LEAK_SCENARIO },
        { key: NhiStateKey, value: 'opening' },
      ],
    });
    return { nhiId, workflowId, matchedBy, statusUrl: `/v1/leaks/${nhiId}` };
  }

  const auditAlert = (workflowId: string, nhiId: string | null, actor: string, outcome: string, alert: NormalizedAlert, extra: Record<string, unknown> = {}) =>
    appendAudit(pool, {
      workflowId,
      stepId: `alert:${randomUUID()}`,
      scenario: LEAK_SCENARIO,
      nhiId,
      actor,
      action: 'leak.alert',
      outcome,
      details: { source: alert.source, externalId: alert.externalId, action: alert.action, severity: alert.severity, deliveryId: alert.deliveryId ?? null, detectedAt: alert.detectedAt, fingerprints: alert.fingerprints, ...extra },
    });

  async function handleAlert(alert: NormalizedAlert, receivedAt: Date, actor: string, fpVia?: FingerprintVia): Promise<LeakIntakeResult> {
    const summary = { source: alert.source, externalId: alert.externalId, action: alert.action, severity: alert.severity, summary: alert.summary };
    const { targets, unmatchedReason } = await resolveTargets(alert, fpVia);
    const result = emptyResult({ alert: summary });

    if (!alert.trigger) {
      // Recorded only (e.g. resolved upstream): evidence for a running containment, an audit line either way.
      for (const t of targets) {
        try {
          await client.workflow.getHandle(leakWorkflowId(t.nhiId)).signal(alertSignal, toLeakAlert(alert, receivedAt, t.matchedBy));
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
        await auditAlert(leakWorkflowId(t.nhiId), t.nhiId, actor, 'recorded', alert, { matchedBy: t.matchedBy });
      }
      if (!targets.length) await auditAlert('leak-intake', null, actor, 'recorded_unmatched', alert, { reason: unmatchedReason ?? null });
      return { ...result, outcome: 'recorded', reason: `action ${alert.action} is recorded, not acted on` };
    }

    if (!targets.length) {
      const leakAlert = toLeakAlert(alert, receivedAt, 'bound');
      const { matchedBy: _m, key: _k, ...stored } = leakAlert;
      const incident = await createIncident(pool, {
        status: 'unmatched',
        source: alert.source,
        severity: alert.severity,
        fingerprint: alert.fingerprints[0] ?? null,
        details: { alert: stored, reason: unmatchedReason ?? null, actor },
        timeline: [
          { at: alert.detectedAt, event: 'detected', detail: alert.summary },
          { at: receivedAt.toISOString(), event: 'unmatched', detail: unmatchedReason },
        ],
      });
      await auditAlert('leak-intake', null, actor, 'unmatched', alert, { incidentId: incident.id, reason: unmatchedReason ?? null });
      return { ...result, outcome: 'unmatched', incidentId: incident.id, reason: unmatchedReason ?? null };
    }

    for (const t of targets) {
      if (t.verdict === 'contain') {
        const ref = await startOrJoin(t.nhiId, toLeakAlert(alert, receivedAt, t.matchedBy, actor.startsWith('webhook:') ? {} : { reportedBy: actor }), t.matchedBy);
        result.containments.push(ref);
        await auditAlert(ref.workflowId, t.nhiId, actor, 'containment', alert, { matchedBy: t.matchedBy });
      } else {
        const incident = await createIncident(pool, {
          status: 'closed',
          closed: true,
          nhiId: t.nhiId,
          source: alert.source,
          severity: alert.severity,
          fingerprint: alert.fingerprints[0] ?? null,
          details: { outcome: 'already_contained', reason: t.reason, matchedBy: t.matchedBy, alert: summary, actor },
          timeline: [
            { at: alert.detectedAt, event: 'detected', detail: alert.summary },
            { at: receivedAt.toISOString(), event: 'already contained', detail: t.reason },
          ],
        });
        result.alreadyContained.push({ nhiId: t.nhiId, incidentId: incident.id, reason: t.reason ?? 'already contained' });
        await auditAlert(leakWorkflowId(t.nhiId), t.nhiId, actor, 'already_contained', alert, { incidentId: incident.id, reason: t.reason ?? null, matchedBy: t.matchedBy });
      }
    }
    const outcome = result.containments.length ? 'containment' : 'already_contained';
    return { ...result, outcome, reason: result.alreadyContained.map((a) => `${a.nhiId}: ${a.reason}`).join('; ') || null };
  }

  /**
   * At most once per delivery id: a redelivery answers with the first outcome. The claim is
   * released when processing fails, so the vendor's retry is not lost.
   */
  async function once(source: string, deliveryId: string | undefined, fn: () => Promise<LeakIntakeResult>): Promise<LeakIntakeResult> {
    if (!deliveryId) return fn();
    const claimed = await pool.query(
      `INSERT INTO webhook_deliveries (source, delivery_id, outcome) VALUES ($1, $2, '{"state":"processing"}') ON CONFLICT DO NOTHING RETURNING 1`,
      [source, deliveryId],
    );
    if (!claimed.rowCount) {
      const { rows } = await pool.query<{ outcome: { state: string; result?: LeakIntakeResult } }>(
        'SELECT outcome FROM webhook_deliveries WHERE source = $1 AND delivery_id = $2',
        [source, deliveryId],
      );
      const first = rows[0]?.outcome;
      if (first?.result) return { ...first.result, duplicate: true };
      return emptyResult({ outcome: 'in_progress', duplicate: true, reason: 'a delivery with this id is being processed' });
    }
    try {
      const result = await fn();
      await pool.query(`UPDATE webhook_deliveries SET outcome = $3 WHERE source = $1 AND delivery_id = $2`, [source, deliveryId, JSON.stringify({ state: 'done', result })]);
      return result;
    } catch (err) {
      await pool.query('DELETE FROM webhook_deliveries WHERE source = $1 AND delivery_id = $2', [source, deliveryId]).catch(() => undefined);
      throw err;
    }
  }

  const ignoredResult = (r: Ignored): LeakIntakeResult => emptyResult({ outcome: 'ignored', reason: r.reason });
  const send = (res: Response, r: LeakIntakeResult) => res.status(r.duplicate ? 200 : 202).json(r);

  function rejectSignature(req: Request, source: string, reason: string, configured: boolean): never {
    // A security log line and nothing else: no delivery, incident or audit row for an unsigned request.
    req.log.warn(
      { security: 'webhook_signature_rejected', source, reason, configured, deliveryId: oneLine(req.get('x-github-delivery')) || undefined, remoteAddress: req.socket.remoteAddress },
      `${source} webhook rejected: ${reason}`,
    );
    // The caller learns only what a genuine sender can fix (a stale timestamp), not our configuration.
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
    summary: 'Report a leaked credential (by NHI id or the sha256 fingerprint of the secret — never the secret)',
    description:
      'Starts containment of the NHI (`leak-<nhiId>`), or joins the running one as evidence. A fingerprint of a credential already retired is recorded as already contained. An alert that matches no NHI becomes an unmatched incident. Send an Idempotency-Key header to make retries safe.',
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

  /**
   * With GITHUB_TOKEN set: fetch the alert from GitHub's REST API and add the fingerprints (sha256,
   * hmsl) of its secret to the alert, so matching tries credentials we issued before exposure hints.
   * The secret itself never leaves scenarios/leak/github-alerts. On any failure (404, 403, timeout) the alert
   * goes on unchanged — exposure hints, then triage — and the reason is logged.
   */
  async function withGithubApiFingerprints(req: Request, alert: NormalizedAlert): Promise<{ alert: NormalizedAlert; via?: FingerprintVia }> {
    const token = deps.config.GITHUB_TOKEN;
    const ref = githubAlertRef(alert);
    if (!token || !ref) return { alert };
    const r = await fetchSecretScanningAlert({ apiUrl: deps.config.GITHUB_API_URL, token, repository: ref.repository, number: ref.number });
    if (!r.ok) {
      req.log.warn({ source: 'github', externalId: alert.externalId, status: r.status, reason: r.reason }, `GitHub alert lookup failed: ${r.reason}; matching by exposure hints`);
      return { alert };
    }
    const fingerprints = [labelFingerprint('sha256', r.sha256), labelFingerprint('hmsl', r.hmsl), ...alert.fingerprints];
    return { alert: { ...alert, fingerprints: [...new Set(fingerprints)] }, via: { via: 'github_api' } };
  }

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
      const enriched = await withGithubApiFingerprints(req, parsed);
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
      const bound = await bindIncident(pool, params.id, { nhiId: body.nhiId, workflowId: leakWorkflowId(body.nhiId), by: principal.id, at: new Date().toISOString() });
      if (!bound) throw ApiError.conflict(`incident ${params.id} was bound meanwhile`);
      const alert: LeakAlert = { ...stored, key: `bound:${incident.id}`, trigger: true, matchedBy: 'bound', incidentId: incident.id, reportedBy: principal.id };
      let containment;
      try {
        containment = await startOrJoin(body.nhiId, alert);
      } catch (err) {
        await unbindIncident(pool, params.id);
        throw err;
      }
      await appendAudit(pool, {
        workflowId: containment.workflowId,
        stepId: `bind:${incident.id}`,
        scenario: LEAK_SCENARIO,
        nhiId: body.nhiId,
        actor: principal.id,
        action: 'leak.incident_bind',
        outcome: 'containment',
        details: { incidentId: incident.id, externalId: stored.externalId },
      });
      return { incident: bound, containment };
    },
  });

  return router;
}
