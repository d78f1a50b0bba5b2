// One worker process of a chaos run: the real activities against the run's databases and estate,
// on the shared task queue, with a workflow bundle the parent built once (so a replacement worker
// is polling within a second or two of a SIGKILL). Configured by CHAOS_WORKER (JSON); tells its
// parent 'ready' over IPC once it polls.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import { createActivities } from '../activities';
import { createConnectorRegistry } from '../connectors/registry';
import { createPool } from '../lib/db';
import { createEstateConnector } from '../lib/estate';
import { MemoryNotifier } from '../lib/notifier';
import { projectRoot } from '../lib/paths';
import { loadNhiPolicies } from '../lib/policy-decisions';
import { TableSecretStore } from '../lib/secret-store';
import { installRuntimeLogging } from '../workers/worker';

export interface ChaosWorkerConfig {
  dbUrl: string;
  estateUrl: string;
  rolePrefix: string;
  /** Secret-store and authority keys, base64: the same as the parent's. */
  secretKey: string;
  authorityKey: string;
  address: string;
  namespace: string;
  taskQueue: string;
  bundlePath: string;
}

async function main() {
  const c = JSON.parse(process.env.CHAOS_WORKER ?? '') as ChaosWorkerConfig;
  // Errors only: the injected faults make every retried activity a warning.
  installRuntimeLogging(pino({ level: 'error' }, pino.destination(2)), 'ERROR');
  const pool = createPool(c.dbUrl);
  const connector = createEstateConnector({ url: c.estateUrl, rolePrefix: c.rolePrefix });
  const clientConnection = await Connection.connect({ address: c.address });
  const client = new Client({ connection: clientConnection, namespace: c.namespace });
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: c.address }),
    namespace: c.namespace,
    taskQueue: c.taskQueue,
    workflowBundle: { code: readFileSync(c.bundlePath, 'utf8') },
    activities: createActivities({
      pool,
      connectors: createConnectorRegistry([connector]),
      secrets: new TableSecretStore(pool, Buffer.from(c.secretKey, 'base64')),
      policy: loadNhiPolicies(path.join(projectRoot, 'policies')),
      notifier: new MemoryNotifier(),
      authorityKey: Buffer.from(c.authorityKey, 'base64'),
      temporal: { client, taskQueue: c.taskQueue },
    }),
    shutdownGraceTime: '2 seconds',
  });
  process.once('SIGTERM', () => worker.shutdown());
  const running = worker.run();
  process.send?.('ready');
  await running;
  await Promise.allSettled([pool.end(), connector.close(), clientConnection.close()]);
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
