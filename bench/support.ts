// What every benchmark shares: percentiles, a throwaway PostgreSQL for the test world, the machine
// line printed with the figures, and a main() that exits non-zero on failure.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { TestWorld } from '../tests/helpers/world';
import { ORCHESTRATOR_POOL_MAX } from '../workers/deps';
import { prebuildWorkflowBundle, WORKER_TUNING } from '../workers/worker';

/** The p-th percentile (nearest rank); NaN for no samples. */
export function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Start an embedded PostgreSQL in a temp folder and point the test helpers (createTestWorld) at it. */
export async function startBenchPostgres(): Promise<{ stop(): Promise<void> }> {
  const { startEmbeddedPostgres } = await import('../lib/embedded-postgres.mjs');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-bench-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port, persistent: false });
  process.env.TEST_DATABASE_URL = pg.url;
  return pg;
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${loadAverage()}`;
}

/** The 1/5/15-minute load average: on a shared machine, the context every figure needs. */
export function loadAverage(): string {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ');
}

/** What one run cost Temporal: history events, workflow tasks, regular activities, local activities. */
export async function historyShape(handle: { fetchHistory(): Promise<{ events?: { eventType?: unknown; markerRecordedEventAttributes?: { markerName?: string | null } | null }[] | null }> }) {
  const events = (await handle.fetchHistory()).events ?? [];
  // eventType is the proto enum (a number): 7 = WorkflowTaskCompleted, 10 = ActivityTaskScheduled.
  const count = (t: number) => events.filter((e) => Number(e.eventType) === t).length;
  const localActivities = events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length;
  return { events: events.length, workflowTasks: count(7), activities: count(10), localActivities };
}

export function runBench(main: () => Promise<void>): void {
  main().catch((err) => {
    process.stderr.write(`${err?.stack ?? err}\n`);
    process.exit(1);
  });
}

const knob = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

/**
 * The worker a benchmark measures: the production knobs (workers/worker.ts WORKER_TUNING), each
 * overridable for a tuning run — BENCH_CACHE (maxCachedWorkflows), BENCH_WFT_SLOTS, BENCH_ACT_SLOTS,
 * BENCH_LA_SLOTS (concurrent executions), BENCH_WFT_POLLS, BENCH_ACT_POLLS (concurrent polls); and the
 * orchestrator pool as workers/deps.ts sizes it, BENCH_PG_POOL.
 */
export async function benchWorker(w: TestWorld, extra: Partial<WorkerOptions> = {}): Promise<{ worker: Worker; tuning: Partial<WorkerOptions> }> {
  // The orchestrator database pool as a worker process sizes it (workers/deps.ts), or BENCH_PG_POOL.
  (w.db.pool as unknown as { options: { max: number } }).options.max = knob('BENCH_PG_POOL') ?? ORCHESTRATOR_POOL_MAX;
  const tuning: Partial<WorkerOptions> = { ...WORKER_TUNING, ...extra };
  const set = (key: keyof WorkerOptions, env: string) => {
    const v = knob(env);
    if (v !== undefined) (tuning as Record<string, unknown>)[key] = v;
  };
  set('maxCachedWorkflows', 'BENCH_CACHE');
  set('maxConcurrentWorkflowTaskExecutions', 'BENCH_WFT_SLOTS');
  set('maxConcurrentActivityTaskExecutions', 'BENCH_ACT_SLOTS');
  set('maxConcurrentLocalActivityExecutions', 'BENCH_LA_SLOTS');
  set('maxConcurrentWorkflowTaskPolls', 'BENCH_WFT_POLLS');
  set('maxConcurrentActivityTaskPolls', 'BENCH_ACT_POLLS');
  const worker = await Worker.create({
    connection: w.env.nativeConnection,
    namespace: w.env.namespace ?? 'default',
    taskQueue: w.taskQueue,
    workflowBundle: await prebuildWorkflowBundle(),
    activities: createActivities(w.deps),
    ...tuning,
  });
  return { worker, tuning };
}
