// Usage signals: validation of intake items, per-NHI per-minute bucket upserts, the incremental
// detector run on ingest, and starting (or joining) the NHI's anomaly throttle. Shared by the API
// (`POST /v1/usage`), the collector activity and the benchmark.
import type { Client } from '@temporalio/client';
import { ensureIntervalSchedule } from '../../lib/schedules';
import type { Pool } from 'pg';
import { z } from 'zod';
import {
  ANOMALY_SCENARIO,
  ANOMALY_WORKFLOW_TYPE,
  anomalySignal,
  anomalySummary,
  anomalyWorkflowId,
  USAGE_COLLECTOR_SCHEDULE_ID,
  USAGE_COLLECTOR_WORKFLOW_TYPE,
  type AnomalyEvidence,
  type AnomalySettings,
  type AnomalyThrottlingInput,
  type UsageCollectorInput,
} from './contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { detect, MINUTE_MS, minuteOf, resolveDetectorSettings, type BaselineState, type DetectorSettings, type Verdict } from './detector';
import type { Config } from '../../lib/config';
import { nhiIdSchema } from '../../lib/inventory';

type AnomalyConfig = Pick<
  Config,
  | 'ANOMALY_ACK_TIMEOUT_MINUTES'
  | 'ANOMALY_ESCALATION_TIMEOUT_MINUTES'
  | 'ANOMALY_CONNECTION_LIMIT'
  | 'ANOMALY_K'
  | 'ANOMALY_Z'
  | 'ANOMALY_MIN_RATE'
  | 'ANOMALY_HALF_LIFE_MINUTES'
  | 'ANOMALY_MIN_HISTORY_MINUTES'
>;

/** The throttle's settings from the environment (defaults in the contract where a value is missing). */
export function anomalySettingsFrom(config: Partial<AnomalyConfig>): Partial<AnomalySettings> {
  const out: Partial<AnomalySettings> = {};
  if (config.ANOMALY_ACK_TIMEOUT_MINUTES !== undefined) out.ackTimeoutMinutes = config.ANOMALY_ACK_TIMEOUT_MINUTES;
  if (config.ANOMALY_ESCALATION_TIMEOUT_MINUTES !== undefined) out.escalationTimeoutMinutes = config.ANOMALY_ESCALATION_TIMEOUT_MINUTES;
  if (config.ANOMALY_CONNECTION_LIMIT !== undefined) out.connectionLimit = config.ANOMALY_CONNECTION_LIMIT;
  return out;
}

/** The detector's parameters from the environment, checked. */
export function detectorSettingsFrom(config: Partial<AnomalyConfig>): DetectorSettings {
  return resolveDetectorSettings({
    ...(config.ANOMALY_K !== undefined ? { k: config.ANOMALY_K } : {}),
    ...(config.ANOMALY_Z !== undefined ? { z: config.ANOMALY_Z } : {}),
    ...(config.ANOMALY_MIN_RATE !== undefined ? { minRate: config.ANOMALY_MIN_RATE } : {}),
    ...(config.ANOMALY_HALF_LIFE_MINUTES !== undefined ? { halfLifeMinutes: config.ANOMALY_HALF_LIFE_MINUTES } : {}),
    ...(config.ANOMALY_MIN_HISTORY_MINUTES !== undefined ? { minHistoryMinutes: config.ANOMALY_MIN_HISTORY_MINUTES } : {}),
  });
}

export const MAX_USAGE_BATCH = 5000;
/** Per event: more than this in one item is a client bug, not usage. */
export const MAX_USAGE_COUNT = 1_000_000;
/** Clock skew tolerated for `at`. */
export const MAX_FUTURE_MS = 5 * 60_000;
/** Older events no longer say anything about the baseline. */
export const MAX_AGE_MS = 7 * 24 * 60 * 60_000;

export const usageItemSchema = z
  .strictObject({
    nhiId: nhiIdSchema,
    at: z.iso.datetime({ offset: true }).meta({ description: 'When the events happened (ISO 8601)', example: '2025-01-01T12:00:00Z' }),
    count: z.number().int().min(0).max(MAX_USAGE_COUNT).default(1).meta({ description: `Events in this item (0-${MAX_USAGE_COUNT})` }),
    operation: z
      .string()
      .regex(/^[A-Za-z0-9_.:/-]{1,64}$/, 'an operation name: 1-64 letters, digits, _ . : / -')
      .optional()
      .meta({ description: 'What was done (kept for the audit of an anomaly; not bucketed)' }),
  })
  .meta({ id: 'UsageEvent' });
export type UsageItem = z.output<typeof usageItemSchema>;

export interface ItemError {
  index: number;
  path: string;
  message: string;
}

export interface NhiUsageFacts {
  id: string;
  usageBaseline: number | null;
  status: string;
}

/**
 * Check each item on its own: shape, time window, known NHI. Returns the valid items (with their
 * index) and an index-addressed error per fault (an item with several faults has several).
 */
export async function validateUsageItems(
  pool: Pool,
  raw: unknown[],
  now = Date.now(),
): Promise<{ valid: { index: number; item: UsageItem; at: number }[]; errors: ItemError[]; nhis: Map<string, NhiUsageFacts> }> {
  const errors: ItemError[] = [];
  // Every fault of an item is reported, not only the first: shape, time window and NHI are all checked.
  const checked: { index: number; item?: UsageItem; at?: number; nhiId?: string; bad: boolean }[] = [];
  raw.forEach((value, index) => {
    const r = usageItemSchema.safeParse(value);
    const fields = (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
    const failed = new Set<string>();
    if (!r.success) {
      for (const i of r.error.issues) {
        if (i.code === 'unrecognized_keys') {
          for (const k of i.keys) errors.push({ index, path: `body.${index}.${k}`, message: 'unknown field' });
        } else {
          failed.add(String(i.path[0] ?? ''));
          errors.push({ index, path: ['body', index, ...i.path.map(String)].join('.'), message: i.message });
        }
      }
    }
    const at = failed.has('at') || typeof fields.at !== 'string' ? undefined : Date.parse(fields.at);
    const window = at === undefined ? undefined : at > now + MAX_FUTURE_MS ? 'more than 5 minutes in the future' : at < now - MAX_AGE_MS ? 'older than 7 days' : undefined;
    if (window) errors.push({ index, path: `body.${index}.at`, message: window });
    const bad = !r.success || window !== undefined;
    const nhiId = failed.has('nhiId') || typeof fields.nhiId !== 'string' ? undefined : fields.nhiId;
    checked.push({ index, item: r.success ? r.data : undefined, at, nhiId, bad });
  });
  const ids = [...new Set(checked.flatMap((c) => (c.nhiId ? [c.nhiId] : [])))];
  const nhis = new Map<string, NhiUsageFacts>();
  if (ids.length) {
    const { rows } = await pool.query<{ id: string; usage_baseline: number | null; status: string }>(
      'SELECT id, usage_baseline, status FROM nhis WHERE id = ANY($1::text[])',
      [ids],
    );
    for (const r of rows) nhis.set(r.id, { id: r.id, usageBaseline: r.usage_baseline, status: r.status });
  }
  const valid: { index: number; item: UsageItem; at: number }[] = [];
  for (const c of checked) {
    if (c.nhiId && !nhis.has(c.nhiId)) {
      errors.push({ index: c.index, path: `body.${c.index}.nhiId`, message: `unknown NHI ${c.nhiId}` });
      continue;
    }
    if (!c.bad && c.item && c.at !== undefined) valid.push({ index: c.index, item: c.item, at: c.at });
  }
  errors.sort((a, b) => a.index - b.index);
  return { valid, errors, nhis };
}

/**
 * Add counts to the per-minute buckets in one statement (summed per key first; keys sorted so two
 * concurrent batches lock rows in the same order). Returns the latest minute touched per NHI.
 */
export async function upsertBuckets(pool: Pool, items: { nhiId: string; at: number; count: number }[]): Promise<Map<string, number>> {
  const sums = new Map<string, number>();
  const latest = new Map<string, number>();
  for (const it of items) {
    const m = minuteOf(it.at);
    const key = `${it.nhiId}\n${m}`;
    sums.set(key, (sums.get(key) ?? 0) + it.count);
    latest.set(it.nhiId, Math.max(latest.get(it.nhiId) ?? -Infinity, m));
  }
  const keys = [...sums.keys()].sort();
  if (keys.length) {
    await pool.query(
      `INSERT INTO usage_buckets (nhi_id, minute, count)
       SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[])
       ON CONFLICT (nhi_id, minute) DO UPDATE SET count = usage_buckets.count + EXCLUDED.count`,
      [keys.map((k) => k.split('\n')[0]), keys.map((k) => new Date(Number(k.split('\n')[1]))), keys.map((k) => sums.get(k))],
    );
  }
  return latest;
}

export interface Detection {
  nhiId: string;
  minute: number;
  verdict: Verdict;
  /** First anomalous detection of this NHI in this minute: the one that is signalled. */
  alert: boolean;
}

/** Statuses for which no throttle starts (the offboarding's watch period covers usage after it). */
const NOT_THROTTLED = new Set(['offboarding', 'offboarded']);

/**
 * Run the detector for one NHI at `minute`: fold the closed minutes since the last run into its
 * baseline, judge the minute. Serialised per NHI by the baseline row's lock.
 */
export async function detectNhi(pool: Pool, nhi: NhiUsageFacts, minute: number, settings: DetectorSettings): Promise<Detection> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('INSERT INTO usage_baselines (nhi_id) VALUES ($1) ON CONFLICT DO NOTHING', [nhi.id]);
    const { rows } = await client.query<{ mean: number; variance: number; samples: number; through_minute: Date | null; last_alert_minute: Date | null }>(
      'SELECT mean, variance, samples, through_minute, last_alert_minute FROM usage_baselines WHERE nhi_id = $1 FOR UPDATE',
      [nhi.id],
    );
    const row = rows[0];
    const state: BaselineState | null = row.through_minute
      ? { mean: row.mean, variance: row.variance, samples: row.samples, throughMinute: row.through_minute.getTime() }
      : null;
    const from = state ? state.throughMinute : minute - settings.maxFoldMinutes * MINUTE_MS - MINUTE_MS;
    const { rows: b } = await client.query<{ minute: Date; count: string }>(
      'SELECT minute, count FROM usage_buckets WHERE nhi_id = $1 AND minute > $2 AND minute <= $3',
      [nhi.id, new Date(from), new Date(minute)],
    );
    const buckets = new Map(b.map((r) => [r.minute.getTime(), Number(r.count)]));
    const { state: next, verdict } = detect(state, buckets, minute, nhi.usageBaseline, settings);
    const alert = verdict.anomalous && !NOT_THROTTLED.has(nhi.status) && row.last_alert_minute?.getTime() !== minute;
    await client.query(
      `UPDATE usage_baselines SET mean = $2, variance = $3, samples = $4, through_minute = $5,
              last_alert_minute = CASE WHEN $6 THEN $7 ELSE last_alert_minute END, updated_at = now()
        WHERE nhi_id = $1`,
      [nhi.id, next.mean, next.variance, next.samples, new Date(next.throughMinute), alert, new Date(minute)],
    );
    await client.query('COMMIT');
    return { nhiId: nhi.id, minute, verdict, alert };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** A signal that did not reach its workflow: let the next run of the detector fire for this minute again. */
export async function forgetAlert(pool: Pool, nhiId: string, minute: number): Promise<void> {
  await pool.query('UPDATE usage_baselines SET last_alert_minute = NULL WHERE nhi_id = $1 AND last_alert_minute = $2', [nhiId, new Date(minute)]);
}

export function detectionEvidence(d: Detection, source: 'usage' | 'collector', reportedBy: string, now = new Date()): AnomalyEvidence {
  const minute = new Date(d.minute).toISOString();
  const b = d.verdict.baseline;
  return {
    key: `${source}:${minute}`,
    source,
    kind: 'detector',
    observedRate: d.verdict.rate,
    baselineRate: b.rate,
    sigma: b.sigma,
    ...(d.verdict.threshold !== null ? { threshold: d.verdict.threshold } : {}),
    ...(b.source !== 'none' ? { baselineSource: b.source } : {}),
    minute,
    detail: d.verdict.reason,
    reportedBy,
    detectedAt: now.toISOString(),
    receivedAt: now.toISOString(),
  };
}

export interface TemporalTarget {
  client: Client;
  taskQueue: string;
}

/**
 * Signal-with-start `anomaly-<nhiId>`: the first detection starts the throttle, later ones join it
 * as evidence. A finished throttle's id may be used again (a new episode).
 */
export async function raiseAnomaly(t: TemporalTarget, nhiId: string, evidence: AnomalyEvidence, settings?: Partial<AnomalySettings>): Promise<{ workflowId: string; runId: string }> {
  const workflowId = anomalyWorkflowId(nhiId);
  const input: AnomalyThrottlingInput = { version: 1, nhiId, ...(settings && Object.keys(settings).length ? { settings } : {}) };
  const handle = await t.client.workflow.signalWithStart(ANOMALY_WORKFLOW_TYPE, {
    taskQueue: t.taskQueue,
    workflowId,
    args: [input],
    signal: anomalySignal,
    signalArgs: [evidence],
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    staticSummary: anomalySummary(nhiId, evidence),
    staticDetails: `${evidence.detail ?? ''}\nReported by ${evidence.reportedBy} (${evidence.source})`.trim(),
    typedSearchAttributes: [
      { key: NhiIdKey, value: nhiId },
      { key: ScenarioKey, value: ANOMALY_SCENARIO },
      { key: NhiStateKey, value: 'evaluating' },
    ],
  });
  return { workflowId, runId: handle.signaledRunId };
}

export interface RaisedAnomaly {
  nhiId: string;
  minute: string;
  observedRate: number;
  threshold: number | null;
  workflowId: string | null;
  error?: string;
}

/** Detector results → throttles. A failed signal is reported and forgotten, so the next run fires again. */
export async function raiseDetections(
  pool: Pool,
  t: TemporalTarget | undefined,
  detections: Detection[],
  source: 'usage' | 'collector',
  reportedBy: string,
  settings?: Partial<AnomalySettings>,
): Promise<RaisedAnomaly[]> {
  const out: RaisedAnomaly[] = [];
  for (const d of detections.filter((x) => x.alert)) {
    const base = { nhiId: d.nhiId, minute: new Date(d.minute).toISOString(), observedRate: d.verdict.rate, threshold: d.verdict.threshold };
    if (!t) {
      await forgetAlert(pool, d.nhiId, d.minute);
      out.push({ ...base, workflowId: null, error: 'no Temporal client: the throttle was not started' });
      continue;
    }
    try {
      const { workflowId } = await raiseAnomaly(t, d.nhiId, detectionEvidence(d, source, reportedBy), settings);
      out.push({ ...base, workflowId });
    } catch (err) {
      await forgetAlert(pool, d.nhiId, d.minute);
      out.push({ ...base, workflowId: null, error: `starting the throttle failed: ${(err as Error).message}` });
    }
  }
  return out;
}

/** Ingest validated items: buckets, then the detector for each NHI at its latest minute. */
export async function ingestUsage(
  pool: Pool,
  valid: { item: UsageItem; at: number }[],
  nhis: Map<string, NhiUsageFacts>,
  settings: DetectorSettings,
): Promise<Detection[]> {
  const latest = await upsertBuckets(pool, valid.map((v) => ({ nhiId: v.item.nhiId, at: v.at, count: v.item.count })));
  const detections: Detection[] = [];
  for (const nhiId of [...latest.keys()].sort()) {
    detections.push(await detectNhi(pool, nhis.get(nhiId)!, latest.get(nhiId)!, settings));
  }
  return detections;
}

/**
 * The collector's write: idempotent per (NHI, minute) — a retried or overlapping run does not add
 * its sample twice. Returns false when this minute was already sampled.
 */
export async function recordCollectorSample(pool: Pool, nhiId: string, minute: number, count: number, detail: Record<string, unknown>): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rowCount } = await client.query(
      'INSERT INTO usage_collections (nhi_id, minute, count, detail) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
      [nhiId, new Date(minute), count, JSON.stringify(detail)],
    );
    if (rowCount) {
      await client.query(
        `INSERT INTO usage_buckets (nhi_id, minute, count) VALUES ($1, $2, $3)
         ON CONFLICT (nhi_id, minute) DO UPDATE SET count = usage_buckets.count + EXCLUDED.count`,
        [nhiId, new Date(minute), count],
      );
    }
    await client.query('COMMIT');
    return Boolean(rowCount);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export interface UsageHistory {
  nhiId: string;
  buckets: { minute: string; count: number }[];
  baseline: { mean: number; sigma: number; samples: number; throughMinute: string | null; lastAlertMinute: string | null } | null;
}

export async function usageHistory(pool: Pool, nhiId: string, minutes: number, now = Date.now()): Promise<UsageHistory> {
  const { rows } = await pool.query<{ minute: Date; count: string }>(
    'SELECT minute, count FROM usage_buckets WHERE nhi_id = $1 AND minute >= $2 ORDER BY minute',
    [nhiId, new Date(minuteOf(now) - (minutes - 1) * MINUTE_MS)],
  );
  const { rows: b } = await pool.query<{ mean: number; variance: number; samples: number; through_minute: Date | null; last_alert_minute: Date | null }>(
    'SELECT mean, variance, samples, through_minute, last_alert_minute FROM usage_baselines WHERE nhi_id = $1',
    [nhiId],
  );
  return {
    nhiId,
    buckets: rows.map((r) => ({ minute: r.minute.toISOString(), count: Number(r.count) })),
    baseline: b[0]
      ? {
          mean: b[0].mean,
          sigma: Math.sqrt(Math.max(b[0].variance, 0)),
          samples: b[0].samples,
          throughMinute: b[0].through_minute?.toISOString() ?? null,
          lastAlertMinute: b[0].last_alert_minute?.toISOString() ?? null,
        }
      : null,
  };
}

/**
 * Create (or bring up to date) the Temporal Schedule that runs the collector every interval.
 * Overlaps are skipped: a slow run never piles up behind itself.
 */
export async function ensureUsageCollectorSchedule(
  client: Client,
  opts: { taskQueue: string; input: UsageCollectorInput; scheduleId?: string; paused?: boolean },
): Promise<{ scheduleId: string; created: boolean }> {
  return ensureIntervalSchedule(client, {
    scheduleId: opts.scheduleId ?? USAGE_COLLECTOR_SCHEDULE_ID,
    every: `${opts.input.intervalSeconds} seconds`,
    workflowType: USAGE_COLLECTOR_WORKFLOW_TYPE,
    taskQueue: opts.taskQueue,
    args: [opts.input],
    workflowExecutionTimeout: `${Math.max(opts.input.intervalSeconds * 5, 300)} seconds`,
    note: 'samples pg_stat_activity per inventoried role into usage_buckets, then runs the anomaly detector',
    paused: opts.paused,
  });
}
