// The Temporal SDK runtime's own metrics: with TEMPORAL_METRICS_ADDRESS the worker's runtime serves
// Prometheus text there (workflow/activity task latency, slots, pollers, sticky cache); without it,
// nothing listens. Each case runs in a child process, since a process installs its runtime once.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../lib/config';
import { createTimeSkippingEnv } from '../helpers/temporal';

const run = promisify(execFile);
const CHILD = path.join(__dirname, 'runtime-metrics-child.ts');

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await createTimeSkippingEnv();
}, 60_000);
afterAll(async () => env?.teardown());

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

test('the worker runtime serves its Prometheus metrics on TEMPORAL_METRICS_ADDRESS', async () => {
  const metricsAddress = `127.0.0.1:${await freePort()}`;
  const { stdout } = await run(process.execPath, ['-r', '@swc-node/register', CHILD, env.address, metricsAddress, `runtime-metrics-${process.pid}`], { timeout: 60_000 });
  expect(stdout).toMatch(/^# (HELP|TYPE) temporal_/m);
  expect(stdout).toMatch(/^temporal_worker_start\{[^}]*task_queue="runtime-metrics-/m);
}, 90_000);

test('TEMPORAL_METRICS_ADDRESS must be host:port', () => {
  expect(loadConfig({ NODE_ENV: 'test', TEMPORAL_METRICS_ADDRESS: '127.0.0.1:9464' }).TEMPORAL_METRICS_ADDRESS).toBe('127.0.0.1:9464');
  expect(loadConfig({ NODE_ENV: 'test', TEMPORAL_METRICS_ADDRESS: '[::1]:9464' }).TEMPORAL_METRICS_ADDRESS).toBe('[::1]:9464');
  expect(() => loadConfig({ NODE_ENV: 'test', TEMPORAL_METRICS_ADDRESS: 'http://127.0.0.1:9464/metrics' })).toThrow(/TEMPORAL_METRICS_ADDRESS.*host:port/);
  expect(loadConfig({ NODE_ENV: 'test' }).TEMPORAL_METRICS_ADDRESS).toBeUndefined();
});
