// Worker entrypoint (production): `node -r @swc-node/register workers/main.ts`, or run by `npm start`.
import { ConfigError, loadConfig } from '../lib/config';
import { migrate } from '../lib/db';
import { createLogger } from '../lib/logger';
import { ensureSearchAttributes } from '../lib/search-attributes';
import { connectClient } from '../lib/temporal-connection';
import { anomalySettingsFrom, detectorSettingsFrom, ensureUsageCollectorSchedule } from '../scenarios/anomaly/usage';
import { ensureDriftSchedule } from '../enforcement/drift-schedule';
import { buildDependencies, checkConnectorsSetup } from './deps';
import { buildWorker, installRuntimeLogging, prebuildWorkflowBundle } from './worker';

async function main() {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, { name: 'worker', pretty: process.stdout.isTTY });
  installRuntimeLogging(logger, 'INFO', { metricsAddress: config.TEMPORAL_METRICS_ADDRESS });
  const built = buildDependencies(config, logger);
  await migrate(built.pool);
  logger.info({ targets: await checkConnectorsSetup(built.connectors, logger) }, 'connectors ready');
  const temporal = await connectClient(config);
  // The workflows cannot start on a namespace without their search attributes.
  const attributes = await ensureSearchAttributes(temporal.connection, { namespace: temporal.namespace, address: temporal.address });
  if (attributes.registered.length) logger.info({ namespace: temporal.namespace, registered: attributes.registered }, 'search attributes registered');
  built.deps.temporal = { client: temporal.client, taskQueue: config.TEMPORAL_TASK_QUEUE };
  if (config.USAGE_COLLECTOR) {
    await ensureUsageCollectorSchedule(temporal.client, {
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      input: { version: 1, intervalSeconds: config.USAGE_COLLECTOR_INTERVAL_SECONDS, detector: detectorSettingsFrom(config), anomaly: anomalySettingsFrom(config) },
    });
  }
  if (config.DRIFT_SCHEDULE) {
    await ensureDriftSchedule(temporal.client, { taskQueue: config.TEMPORAL_TASK_QUEUE, intervalMinutes: config.DRIFT_INTERVAL_MINUTES });
  }
  const { worker, connection } = await buildWorker(config, built.deps, { workflowBundle: await prebuildWorkflowBundle() });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => worker.shutdown());
  logger.info({ taskQueue: config.TEMPORAL_TASK_QUEUE }, 'worker running');
  try {
    await worker.run();
  } finally {
    await connection.close();
    await temporal.connection.close();
    await built.close();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof ConfigError ? err.message : err?.stack ?? err}\n`);
  process.exit(1);
});
