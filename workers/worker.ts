// buildWorker only wires: connection, workflow bundle, activities, tuning knobs.
import { bundleWorkflowCode, NativeConnection, Runtime, DefaultLogger, Worker, type LogLevel, type WorkerOptions } from '@temporalio/worker';
import type { Logger } from '../lib/logger';
import type { Config } from '../lib/config';
import { dataConverterFor } from '../lib/payload-codec';
import { temporalTarget } from '../lib/temporal-connection';
import { createActivities, type ActivityDeps } from '../activities';

export const WORKFLOWS_PATH = require.resolve('../workflows');

/** The worker's concurrency knobs (docs/performance.md has what was measured); the benchmarks run with these too. */
export const WORKER_TUNING = {
  // Short connector calls dominate: many concurrent slots are cheap.
  maxConcurrentActivityTaskExecutions: 200,
  maxConcurrentLocalActivityExecutions: 200,
  maxConcurrentWorkflowTaskExecutions: 100,
  // A bounded sticky cache: an evicted window replays its short history (21–30 events) when its
  // timer fires. 10 000 open windows took 921 MiB with 1 000 cached, 2.0 GiB with all cached, and
  // expired no slower (docs/performance.md).
  maxCachedWorkflows: 1000,
} satisfies Partial<WorkerOptions>;

let runtimeInstalled = false;
/**
 * Forward the Temporal runtime's (and workflows') logs into pino, and serve the runtime's own
 * Prometheus metrics on `metricsAddress` (TEMPORAL_METRICS_ADDRESS) when given. Call once, before any connection.
 */
export function installRuntimeLogging(logger: Logger, level: LogLevel = 'INFO', opts: { metricsAddress?: string } = {}): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const temporalLog = logger.child({ component: 'temporal' });
  Runtime.install({
    ...(opts.metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: opts.metricsAddress } } } } : {}),
    logger: new DefaultLogger(level, (entry) => {
      const meta = { ...entry.meta };
      const msg = entry.message;
      switch (entry.level) {
        case 'ERROR': return temporalLog.error(meta, msg);
        case 'WARN': return temporalLog.warn(meta, msg);
        case 'DEBUG':
        case 'TRACE': return temporalLog.debug(meta, msg);
        default: return temporalLog.info(meta, msg);
      }
    }),
  });
}

/**
 * Bundle the workflows once at start-up: no webpack on the task-processing path. Every worker of
 * this product runs this bundle (the tests' too, tests/global-setup.mjs via scripts/bundle-workflows.ts).
 * Our workflow modules are preloaded: evaluated once and shared by every workflow of the worker's
 * reused V8 context, instead of once per workflow — half of what a cached workflow costs the
 * workflow thread's heap (docs/performance.md). They may hold no per-workflow state at module scope
 * (today: activity proxies, message definitions, constants); the SDK freezes them, so a write fails loudly.
 */
export async function prebuildWorkflowBundle() {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, preloadModules: [WORKFLOWS_PATH], logger: new DefaultLogger('WARN') });
}

export async function buildWorker(
  config: Config,
  deps: ActivityDeps,
  opts: { connection?: NativeConnection; workflowBundle?: { code: string }; tuning?: Partial<WorkerOptions> } = {},
): Promise<{ worker: Worker; connection: NativeConnection }> {
  const target = temporalTarget(config);
  const connection = opts.connection ?? (await NativeConnection.connect(target.connectionOptions));
  const worker = await Worker.create({
    connection,
    namespace: target.namespace,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowBundle: opts.workflowBundle ?? (await prebuildWorkflowBundle()),
    activities: createActivities(deps),
    // The same converter as the process's clients: encrypted payloads in, encrypted payloads out.
    dataConverter: dataConverterFor(config),
    ...WORKER_TUNING,
    shutdownGraceTime: '10 seconds',
    ...opts.tuning,
  });
  return { worker, connection };
}
