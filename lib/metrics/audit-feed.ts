// Domain metrics from the audit trail. Every enforcement step is audited once (idempotent on
// workflow and step), by whichever worker ran it, so reading the trail forward is the one place that
// sees every containment, revoke, drift and escalation without touching workflow code.
// Counters count what was appended since this process first scraped (ordinary Prometheus counter
// semantics: a restart starts again from zero and rate() copes).
import type { Pool } from 'pg';
import { Counter, Histogram, type Registry } from 'prom-client';

/** Latency buckets (seconds) from tens of milliseconds to minutes: containment and revoke lags. */
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300];
/** Rows read per query, and at most this many queries per scrape (the rest waits for the next one). */
const PAGE = 2000;
const MAX_PAGES = 25;

interface FeedRow {
  seq: string;
  at: Date;
  scenario: string | null;
  action: string;
  outcome: string;
  details: Record<string, unknown> | null;
  revoke_reason: string | null;
  window_end: string | null;
}

// The window's end for a revoke: the last expiry this elevation recorded before it (a grant, or an
// extension that moved it), so an extended window is measured from its new end.
const FEED_SQL = `
  SELECT r.seq, r.at, r.scenario, r.action, r.outcome, r.details,
         r.target->>'reason' AS revoke_reason,
         CASE WHEN r.action = 'entitlement.revoke' THEN (
           SELECT coalesce(e.details->>'expiresAt', e.target->>'expiresAt')
             FROM audit_events e
            WHERE e.workflow_id = r.workflow_id AND e.seq < r.seq
              AND ((e.action = 'entitlement.grant' AND e.outcome = 'granted') OR e.action = 'elevation.extend')
            ORDER BY e.seq DESC LIMIT 1)
         END AS window_end
    FROM audit_events r
   WHERE r.seq > $1
   ORDER BY r.seq
   LIMIT $2`;

export interface AuditFeed {
  /**
   * Read the rows appended since the last call into the series; the first call only sets the start.
   * Calls are queued, never concurrent: two scrapes at once must not count a row twice.
   */
  refresh(): Promise<void>;
}

export function createAuditFeed(pool: Pool, registry: Registry): AuditFeed {
  const events = new Counter({
    name: 'nhi_audit_events_total',
    help: 'Audit events appended, by scenario, action and outcome (business outcomes: revoked, contained, offboarded, denied, …)',
    labelNames: ['scenario', 'action', 'outcome'],
    registers: [registry],
  });
  const containment = new Histogram({
    name: 'nhi_containment_duration_seconds',
    help: 'Leak containment: from the alert (received by us, or detected by the scanner) to the verified containment',
    labelNames: ['scenario', 'from'],
    buckets: LAG_BUCKETS,
    registers: [registry],
  });
  const revocationLag = new Histogram({
    name: 'nhi_revocation_lag_seconds',
    help: "JIT: from an elevation window's end to the verified revoke of each entitlement",
    labelNames: ['scenario'],
    buckets: LAG_BUCKETS,
    registers: [registry],
  });
  const drift = new Counter({
    name: 'nhi_reconcile_drift_found_total',
    help: 'Drift found at a target by the drift check (outcome: reverted or reported)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const escalations = new Counter({
    name: 'nhi_escalations_total',
    help: 'Escalations to a human (a step that keeps failing, a containment handed over), by scenario and action',
    labelNames: ['scenario', 'action'],
    registers: [registry],
  });

  let cursor: bigint | undefined;

  function observe(row: FeedRow) {
    const scenario = row.scenario ?? 'none';
    events.inc({ scenario, action: row.action, outcome: row.outcome });
    if (row.action.endsWith('.escalate')) escalations.inc({ scenario, action: row.action });
    if (row.action === 'access.drift') drift.inc({ outcome: row.outcome });
    if (row.action === 'leak.incident_close') {
      for (const [from, key] of [['received', 'receivedToContainedMs'], ['detected', 'detectedToContainedMs']] as const) {
        const ms = row.details?.[key];
        if (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) containment.observe({ scenario, from }, ms / 1000);
      }
    }
    if (row.action === 'entitlement.revoke' && row.revoke_reason === 'window_expired' && row.window_end) {
      const end = Date.parse(row.window_end);
      // A timer never fires early; a negative lag could only be clock skew between database and worker.
      if (Number.isFinite(end)) revocationLag.observe({ scenario }, Math.max(0, row.at.getTime() - end) / 1000);
    }
  }

  async function readForward() {
    if (cursor === undefined) {
      const { rows } = await pool.query<{ seq: string | null }>('SELECT max(seq)::text AS seq FROM audit_events');
      cursor = BigInt(rows[0]?.seq ?? '0');
      return;
    }
    for (let page = 0; page < MAX_PAGES; page++) {
      const from: string = String(cursor);
      const { rows } = await pool.query<FeedRow>(FEED_SQL, [from, PAGE]);
      for (const row of rows) {
        observe(row);
        cursor = BigInt(row.seq);
      }
      if (rows.length < PAGE) return;
    }
  }

  let queue: Promise<void> = Promise.resolve();
  return {
    refresh() {
      const run = queue.then(readForward);
      queue = run.catch(() => undefined);
      return run;
    },
  };
}
