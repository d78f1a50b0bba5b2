// Child process of runtime-metrics.test.ts: a Temporal runtime installed as the worker installs it
// (TEMPORAL_METRICS_ADDRESS given), an activity-only worker polling briefly, then the runtime's
// Prometheus endpoint read and printed. A process of its own: the runtime is installed once per process.
import { NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import { installRuntimeLogging } from '../../workers/worker';

async function main() {
  const [address, metricsAddress, taskQueue] = process.argv.slice(2);
  installRuntimeLogging(pino({ level: 'silent' }), 'WARN', { metricsAddress });
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({ connection, taskQueue, activities: { async ping() { return 'pong'; } } });
  const running = worker.run();
  let text = '';
  // Poll until the worker's series appear: the exporter serves what the runtime has recorded so far.
  for (let i = 0; i < 50 && !/temporal_worker_start/.test(text); i++) {
    await new Promise((r) => setTimeout(r, 200));
    text = await fetch(`http://${metricsAddress}/metrics`).then((r) => r.text(), () => '');
  }
  worker.shutdown();
  await running;
  await connection.close();
  process.stdout.write(text);
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
