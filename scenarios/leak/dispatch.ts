// What becomes of an alert once it is parsed: containment started or joined (signal-with-start on
// `leak-<nhiId>`, so a second alert joins the running containment), recorded as already contained,
// recorded only, or kept as an unmatched incident for triage — and a triaged incident bound to its
// NHI. Each outcome is audited. At most once per delivery id. The router only parses and answers.
import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { z } from 'zod';
import { appendAudit } from '../../lib/audit';
import { bindIncident, createIncident, unbindIncident, type Incident } from '../../lib/incidents';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { alertLabel, alertSignal, LEAK_SCENARIO, LEAK_WORKFLOW_TYPE, leakSummary, leakWorkflowId, type LeakAlert, type LeakContainmentInput } from './contract';
import type { NormalizedAlert } from './intake';
import { inCooldown } from './cooldown';
import type { PolicyEngine } from '../../lib/policy-engine';
import { contractMatch, resolveTargets, type FingerprintVia, type Match } from './matching';

export const containmentRefSchema = z
  .strictObject({ nhiId: z.string(), workflowId: z.string(), matchedBy: z.string(), statusUrl: z.string() })
  .meta({ id: 'LeakContainmentRef' });
export type ContainmentRef = z.output<typeof containmentRefSchema>;

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

export const emptyResult = (over: Partial<LeakIntakeResult>): LeakIntakeResult => ({
  outcome: 'recorded',
  duplicate: false,
  alert: null,
  containments: [],
  alreadyContained: [],
  incidentId: null,
  reason: null,
  ...over,
});

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

export function createAlertDispatch(deps: { pool: Pool; client: Client; taskQueue: string; /** Enables the rotation cool-down (policy contain-cooldown). */ policy?: PolicyEngine }) {
  const { pool, client, taskQueue } = deps;

  async function startOrJoin(nhiId: string, alert: LeakAlert, matchedBy: Match = alert.matchedBy): Promise<ContainmentRef> {
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

  /** Evidence for the open containment, if one runs (never a start): false when there is none. */
  async function joinRunning(nhiId: string, alert: LeakAlert): Promise<boolean> {
    try {
      await client.workflow.getHandle(leakWorkflowId(nhiId)).signal(alertSignal, alert);
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
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
    const { targets, unmatchedReason } = await resolveTargets(pool, alert, fpVia);
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
      const leakAlert = () => toLeakAlert(alert, receivedAt, t.matchedBy, actor.startsWith('webhook:') ? {} : { reportedBy: actor });
      // Without a fingerprint, an alert from the source whose alert just rotated this NHI is merged.
      const cooldown = t.verdict === 'contain' && contractMatch(t.matchedBy) !== 'fingerprint' && deps.policy
        ? await inCooldown(pool, deps.policy, { nhiId: t.nhiId, source: alert.source, actor })
        : undefined;
      if (cooldown && (await joinRunning(t.nhiId, leakAlert()))) {
        const ref = { nhiId: t.nhiId, workflowId: leakWorkflowId(t.nhiId), matchedBy: t.matchedBy, statusUrl: `/v1/leaks/${t.nhiId}` };
        result.containments.push(ref);
        await auditAlert(ref.workflowId, t.nhiId, actor, 'merged', alert, { matchedBy: t.matchedBy, reason: cooldown });
        continue;
      }
      if (cooldown) {
        t.verdict = 'already_contained';
        t.reason = cooldown;
      }
      if (t.verdict === 'contain') {
        const ref = await startOrJoin(t.nhiId, leakAlert(), t.matchedBy);
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

  /**
   * Triage: bind an unmatched incident to an NHI and start (or join) its containment with the
   * incident's alert; the binding is undone when the start fails. Undefined when another triage
   * bound it meanwhile.
   */
  async function bindAndContain(b: {
    /** The incident id as the caller named it. */
    id: string;
    incident: Incident;
    stored: Omit<LeakAlert, 'key' | 'matchedBy'>;
    nhiId: string;
    by: string;
  }): Promise<{ incident: Incident; containment: ContainmentRef } | undefined> {
    const { id, incident, stored, nhiId, by } = b;
    const bound = await bindIncident(pool, id, { nhiId, workflowId: leakWorkflowId(nhiId), by, at: new Date().toISOString() });
    if (!bound) return undefined;
    const alert: LeakAlert = { ...stored, key: `bound:${incident.id}`, trigger: true, matchedBy: 'bound', incidentId: incident.id, reportedBy: by };
    let containment;
    try {
      containment = await startOrJoin(nhiId, alert);
    } catch (err) {
      await unbindIncident(pool, id);
      throw err;
    }
    await appendAudit(pool, {
      workflowId: containment.workflowId,
      stepId: `bind:${incident.id}`,
      scenario: LEAK_SCENARIO,
      nhiId,
      actor: by,
      action: 'leak.incident_bind',
      outcome: 'containment',
      details: { incidentId: incident.id, externalId: stored.externalId },
    });
    return { incident: bound, containment };
  }

  return { handleAlert, once, bindAndContain };
}
