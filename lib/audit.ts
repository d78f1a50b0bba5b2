// The audit trail: append-only, hash-chained (each row stores the previous row's hash), idempotent
// on (workflowId, stepId) so a retried activity never writes a second row.
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';

export const GENESIS_HASH = '0'.repeat(64);
const CHAIN_LOCK = 872_341_002;

export interface AuditEventInput {
  workflowId: string;
  /** Unique within the workflow: a retry of the same step reuses it. */
  stepId: string;
  scenario?: string | null;
  nhiId?: string | null;
  /** Who or what triggered the step: a principal id, `system`, a detector. */
  actor: string;
  action: string;
  outcome: string;
  decision?: unknown;
  target?: unknown;
  readback?: unknown;
  details?: Record<string, unknown>;
}

export interface AuditEvent extends Required<Omit<AuditEventInput, 'decision' | 'target' | 'readback'>> {
  seq: number;
  id: string;
  at: string;
  decision: unknown;
  target: unknown;
  readback: unknown;
  prevHash: string;
  hash: string;
}

/** JSON with sorted keys, so the hash does not depend on how jsonb reorders them. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

type Hashable = Omit<AuditEvent, 'seq' | 'id' | 'hash'>;

export function hashEvent(e: Hashable): string {
  const body = canonicalJson({
    prevHash: e.prevHash,
    at: e.at,
    workflowId: e.workflowId,
    stepId: e.stepId,
    scenario: e.scenario,
    nhiId: e.nhiId,
    actor: e.actor,
    action: e.action,
    outcome: e.outcome,
    decision: e.decision,
    target: e.target,
    readback: e.readback,
    details: e.details,
  });
  return createHash('sha256').update(body).digest('hex');
}

interface Row {
  seq: string;
  id: string;
  at: Date;
  workflow_id: string;
  step_id: string;
  scenario: string | null;
  nhi_id: string | null;
  actor: string;
  action: string;
  outcome: string;
  decision: unknown;
  target: unknown;
  readback: unknown;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

const fromRow = (r: Row): AuditEvent => ({
  seq: Number(r.seq),
  id: r.id,
  at: r.at.toISOString(),
  workflowId: r.workflow_id,
  stepId: r.step_id,
  scenario: r.scenario,
  nhiId: r.nhi_id,
  actor: r.actor,
  action: r.action,
  outcome: r.outcome,
  decision: r.decision,
  target: r.target,
  readback: r.readback,
  details: r.details,
  prevHash: r.prev_hash,
  hash: r.hash,
});

// Round-trip through JSON so the hashed value is exactly what jsonb will hand back.
const normal = (v: unknown) => (v === undefined ? null : JSON.parse(JSON.stringify(v)));

/**
 * The canonical JSON hashEvent hashes, in the three pieces around `at` and `prevHash` (sorted keys:
 * action, actor, at, decision, details, nhiId, outcome, prevHash, readback, scenario, stepId, target,
 * workflowId), for the database to join with the two values it knows only under the chain lock.
 */
export function hashPieces(e: Omit<Hashable, 'at' | 'prevHash'>): { beforeAt: string; beforePrev: string; afterPrev: string } {
  const j = JSON.stringify;
  return {
    beforeAt: `{"action":${j(e.action)},"actor":${j(e.actor)},"at":`,
    beforePrev: `,"decision":${canonicalJson(e.decision)},"details":${canonicalJson(e.details)},"nhiId":${j(e.nhiId)},"outcome":${j(e.outcome)},"prevHash":`,
    afterPrev: `,"readback":${canonicalJson(e.readback)},"scenario":${j(e.scenario)},"stepId":${j(e.stepId)},"target":${canonicalJson(e.target)},"workflowId":${j(e.workflowId)}}`,
  };
}

/**
 * Append one event; a retry of the same (workflowId, stepId) returns the row already written. One
 * statement (migrations/011_audit_append.sql): every writer queues on the chain lock, and it is held
 * only while the database links, hashes and inserts the row, never across a round trip to this process.
 */
export async function appendAudit(pool: Pool, input: AuditEventInput): Promise<AuditEvent> {
  const event: Omit<Hashable, 'at' | 'prevHash'> = {
    workflowId: input.workflowId,
    stepId: input.stepId,
    scenario: input.scenario ?? null,
    nhiId: input.nhiId ?? null,
    actor: input.actor,
    action: input.action,
    outcome: input.outcome,
    decision: normal(input.decision),
    target: normal(input.target),
    readback: normal(input.readback),
    details: normal(input.details ?? {}),
  };
  const pieces = hashPieces(event);
  const { rows } = await pool.query<Row>('SELECT * FROM audit_append($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)', [
    CHAIN_LOCK,
    GENESIS_HASH,
    event.workflowId,
    event.stepId,
    event.scenario,
    event.nhiId,
    event.actor,
    event.action,
    event.outcome,
    JSON.stringify(event.decision),
    JSON.stringify(event.target),
    JSON.stringify(event.readback),
    JSON.stringify(event.details),
    pieces.beforeAt,
    pieces.beforePrev,
    pieces.afterPrev,
  ]);
  return fromRow(rows[0]);
}

export interface ChainVerification {
  ok: boolean;
  checked: number;
  /** The first row whose stored hash or link does not match, if any. */
  brokenAt?: { seq: number; reason: string };
}

/** Recompute the whole chain in order (streamed in pages) and report the first broken link. */
export async function verifyAuditChain(pool: Pool, pageSize = 1000): Promise<ChainVerification> {
  let prev = GENESIS_HASH;
  let after = 0;
  let checked = 0;
  for (;;) {
    const { rows } = await pool.query<Row>('SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2', [after, pageSize]);
    if (rows.length === 0) return { ok: true, checked };
    for (const row of rows) {
      const e = fromRow(row);
      if (e.prevHash !== prev) return { ok: false, checked, brokenAt: { seq: e.seq, reason: 'prev_hash does not link to the previous row' } };
      if (hashEvent(e) !== e.hash) return { ok: false, checked, brokenAt: { seq: e.seq, reason: 'row content does not match its hash' } };
      prev = e.hash;
      after = e.seq;
      checked++;
    }
  }
}

export interface AuditQuery {
  nhiId?: string;
  workflowId?: string;
  since?: Date;
  /** Cursor: return events with seq greater than this. */
  after?: number;
  limit: number;
}

export async function queryAudit(pool: Pool, q: AuditQuery): Promise<{ events: AuditEvent[]; nextCursor: number | null }> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (q.nhiId) where.push(`nhi_id = $${args.push(q.nhiId)}`);
  if (q.workflowId) where.push(`workflow_id = $${args.push(q.workflowId)}`);
  if (q.since) where.push(`at >= $${args.push(q.since)}`);
  if (q.after) where.push(`seq > $${args.push(q.after)}`);
  const sql = `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT $${args.push(q.limit + 1)}`;
  const { rows } = await pool.query<Row>(sql, args);
  const events = rows.slice(0, q.limit).map(fromRow);
  return { events, nextCursor: rows.length > q.limit ? events[events.length - 1].seq : null };
}
