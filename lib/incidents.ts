// Incidents: the record a leak alert leaves, whether it was contained, found already contained,
// or matched no NHI and waits for triage. Rows hold alerts' metadata and fingerprints, never values.
import type { Pool, PoolClient } from 'pg';
import { z } from 'zod';

export const INCIDENT_STATUSES = ['unmatched', 'open', 'contained', 'escalated', 'closed', 'resolved'] as const;
export type IncidentStatus = (typeof INCIDENT_STATUSES)[number];
export const incidentStatusSchema = z.enum(INCIDENT_STATUSES);

export const incidentTimelineEntrySchema = z
  .strictObject({ at: z.string(), event: z.string(), detail: z.string().optional() })
  .meta({ id: 'IncidentTimelineEntry' });

export const incidentSchema = z
  .strictObject({
    id: z.uuid(),
    kind: z.string().meta({ example: 'leak' }),
    status: incidentStatusSchema,
    nhiId: z.string().nullable(),
    source: z.string().meta({ example: 'github' }),
    severity: z.string(),
    fingerprint: z.string().nullable().meta({ description: 'A labelled fingerprint of the leaked secret (sha256:…, hmsl:…), if the alert had one' }),
    workflowId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    timeline: z.array(incidentTimelineEntrySchema),
    createdAt: z.iso.datetime(),
    closedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: 'Incident', description: 'A leak incident: its alerts (metadata and fingerprints only), status and timeline.' });
export type Incident = z.output<typeof incidentSchema>;
export type TimelineEntry = z.output<typeof incidentTimelineEntrySchema>;

interface Row {
  id: string;
  kind: string;
  status: IncidentStatus;
  nhi_id: string | null;
  source: string;
  severity: string;
  fingerprint: string | null;
  workflow_id: string | null;
  details: Record<string, unknown>;
  timeline: TimelineEntry[];
  created_at: Date;
  closed_at: Date | null;
}

const fromRow = (r: Row): Incident => ({
  id: r.id,
  kind: r.kind,
  status: r.status,
  nhiId: r.nhi_id,
  source: r.source,
  severity: r.severity,
  fingerprint: r.fingerprint,
  workflowId: r.workflow_id,
  details: r.details,
  timeline: r.timeline,
  createdAt: r.created_at.toISOString(),
  closedAt: r.closed_at?.toISOString() ?? null,
});

type Q = Pool | PoolClient;

export interface NewIncident {
  id?: string;
  kind?: string;
  status: IncidentStatus;
  nhiId?: string | null;
  source: string;
  severity: string;
  fingerprint?: string | null;
  workflowId?: string | null;
  details?: Record<string, unknown>;
  timeline?: TimelineEntry[];
  closed?: boolean;
}

export async function createIncident(q: Q, i: NewIncident): Promise<Incident> {
  const { rows } = await q.query<Row>(
    `INSERT INTO incidents (id, kind, status, nhi_id, source, severity, fingerprint, workflow_id, details, timeline, closed_at)
     VALUES (COALESCE($1::uuid, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END) RETURNING *`,
    [
      i.id ?? null,
      i.kind ?? 'leak',
      i.status,
      i.nhiId ?? null,
      i.source,
      i.severity,
      i.fingerprint ?? null,
      i.workflowId ?? null,
      JSON.stringify(i.details ?? {}),
      JSON.stringify(i.timeline ?? []),
      Boolean(i.closed),
    ],
  );
  return fromRow(rows[0]);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function getIncident(q: Q, id: string): Promise<Incident | null> {
  if (!UUID.test(id)) return null;
  const { rows } = await q.query<Row>('SELECT * FROM incidents WHERE id = $1', [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

export interface IncidentFilter {
  status?: IncidentStatus;
  nhiId?: string;
  kind?: string;
  limit?: number;
}

/** Newest first. */
export async function listIncidents(q: Q, f: IncidentFilter = {}): Promise<Incident[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (f.status) where.push(`status = $${args.push(f.status)}`);
  if (f.nhiId) where.push(`nhi_id = $${args.push(f.nhiId)}`);
  if (f.kind) where.push(`kind = $${args.push(f.kind)}`);
  const limit = Math.min(Math.max(f.limit ?? 50, 1), 500);
  const { rows } = await q.query<Row>(
    `SELECT * FROM incidents ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT $${args.push(limit)}`,
    args,
  );
  return rows.map(fromRow);
}

/**
 * Claim an unmatched incident for an NHI (compare-and-set on the status, so two triagers can't
 * bind it twice). Returns null when it is not (or no longer) unmatched.
 */
export async function bindIncident(q: Q, id: string, b: { nhiId: string; workflowId: string; by: string; at: string }): Promise<Incident | null> {
  if (!UUID.test(id)) return null;
  const { rows } = await q.query<Row>(
    `UPDATE incidents SET status = 'open', nhi_id = $2, workflow_id = $3,
            details = details || jsonb_build_object('boundBy', $4::text, 'boundAt', $5::text),
            timeline = timeline || jsonb_build_array(jsonb_build_object('at', $5::text, 'event', 'bound', 'detail', $6::text))
      WHERE id = $1 AND status = 'unmatched' RETURNING *`,
    [id, b.nhiId, b.workflowId, b.by, b.at, `to ${b.nhiId} by ${b.by}`],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Undo a bind whose containment could not be started (the alert must not be lost). */
export async function unbindIncident(q: Q, id: string): Promise<void> {
  await q.query(
    `UPDATE incidents SET status = 'unmatched', nhi_id = NULL, workflow_id = NULL, details = details - 'boundBy' - 'boundAt'
      WHERE id = $1 AND status = 'open'`,
    [id],
  );
}

/**
 * The containment's incident: created on first call, brought up to date on the next (idempotent,
 * so a retried activity writes the same row). An incident bound from triage is adopted as is.
 */
export async function upsertContainmentIncident(
  q: Q,
  i: { id: string; nhiId: string; workflowId: string; source: string; severity: string; fingerprint: string | null; details: Record<string, unknown>; timeline: TimelineEntry[] },
): Promise<Incident> {
  const { rows } = await q.query<Row>(
    `INSERT INTO incidents (id, kind, status, nhi_id, source, severity, fingerprint, workflow_id, details, timeline)
     VALUES ($1, 'leak', 'open', $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (id) DO UPDATE SET
       status = CASE WHEN incidents.status IN ('unmatched', 'open') THEN 'open' ELSE incidents.status END,
       nhi_id = EXCLUDED.nhi_id, workflow_id = EXCLUDED.workflow_id,
       fingerprint = COALESCE(incidents.fingerprint, EXCLUDED.fingerprint),
       details = incidents.details || EXCLUDED.details, timeline = EXCLUDED.timeline
     RETURNING *`,
    [i.id, i.nhiId, i.source, i.severity, i.fingerprint, i.workflowId, JSON.stringify(i.details), JSON.stringify(i.timeline)],
  );
  return fromRow(rows[0]);
}

/** Set status, timeline and details (merged); `closed` stamps closed_at once. */
export async function updateIncident(
  q: Q,
  id: string,
  u: { status: IncidentStatus; details?: Record<string, unknown>; timeline?: TimelineEntry[]; severity?: string; closed?: boolean },
): Promise<Incident | null> {
  const { rows } = await q.query<Row>(
    `UPDATE incidents SET status = $2, details = details || $3::jsonb, timeline = COALESCE($4::jsonb, timeline),
            severity = COALESCE($5, severity), closed_at = CASE WHEN $6 THEN COALESCE(closed_at, now()) ELSE closed_at END
      WHERE id = $1 RETURNING *`,
    [id, u.status, JSON.stringify(u.details ?? {}), u.timeline ? JSON.stringify(u.timeline) : null, u.severity ?? null, Boolean(u.closed)],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}
