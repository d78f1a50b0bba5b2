// Usage intake benchmark (prints figures, asserts nothing): events/s through `POST /v1/usage` at
// batch sizes 1, 100 and 1 000 (keep-alive HTTP, a few concurrent clients), and the latency from a
// spike's ingestion to a verified level-1 throttle — on a real Temporal dev server, a real worker
// and real PostgreSQL roles, all on this machine.
//   npm run bench:usage      (BENCH_BATCHES=1,100 BENCH_SECONDS=5 BENCH_CLIENTS=4)
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createApp } from '../api/app';
import { createScenarioRouters } from '../api/scenarios';
import { loadConfig } from '../lib/config';
import { createToken } from '../lib/principals';
import { createTestWorld } from '../tests/helpers/world';
import type { AnomalyStatus } from '../scenarios/anomaly/contract';
import { machine, pct, runBench, startBenchPostgres } from './support';

const batches = (process.env.BENCH_BATCHES ?? '1,100,1000').split(',').map(Number);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const clients = Number(process.env.BENCH_CLIENTS ?? 4);
const spikes = Number(process.env.BENCH_SPIKES ?? 5);
const NHIS = 10;

async function main() {
  const pg = await startBenchPostgres();
  const w = await createTestWorld({ temporal: 'local', runWorker: true });
  for (let i = 0; i < NHIS; i++) await w.addNhi({ id: `load_${i}` });
  for (let i = 0; i < spikes; i++) await w.addNhi({ id: `spike_${i}` });
  const config = { ...loadConfig({ NODE_ENV: 'test' }), TEMPORAL_TASK_QUEUE: w.taskQueue, API_BODY_LIMIT: '2mb' };
  const temporal = { client: w.env.client, taskQueue: w.taskQueue, namespace: 'default' };
  const app = createApp({
    pool: w.db.pool,
    temporal,
    config,
    logger: pino({ level: 'silent' }),
    extraRouters: createScenarioRouters({ pool: w.db.pool, temporal, config, policy: w.deps.policy, connectors: w.deps.connectors, authorityKey: w.deps.authorityKey }),
  });
  const server = await new Promise<http.Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port: apiPort } = server.address() as AddressInfo;
  const token = await createToken(w.db.pool, 'detector-bot');
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });

  function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: apiPort, method, path: p, agent, headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null }));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  const rows: string[] = [];
  const latencyRows: string[] = [];
  try {
    // 1. Throughput: each client posts batches back to back for `seconds`.
    for (const size of batches) {
      let events = 0;
      let requests = 0;
      const lat: number[] = [];
      const until = Date.now() + seconds * 1000;
      const started = Date.now();
      await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          while (Date.now() < until) {
            const at = new Date().toISOString();
            const batch = Array.from({ length: size }, (_, i) => ({ nhiId: `load_${(c + i) % NHIS}`, at, count: 1, operation: 'SELECT' }));
            const t = Date.now();
            const r = await call('POST', '/v1/usage', batch);
            lat.push(Date.now() - t);
            if (r.status !== 202) throw new Error(`POST /v1/usage answered ${r.status}: ${JSON.stringify(r.body)}`);
            events += r.body.accepted;
            requests++;
          }
        }),
      );
      const elapsed = (Date.now() - started) / 1000;
      rows.push(`| ${size} | ${Math.round(events / elapsed)} | ${Math.round(requests / elapsed)} | ${pct(lat, 50)} | ${pct(lat, 99)} |`);
      process.stdout.write(`batch ${size}: done\n`);
    }

    // 2. Spike → verified throttle: an hour of history, then a spike; time to the read-back.
    const ingestToVerified: number[] = [];
    const ingestToVisible: number[] = [];
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    for (let i = 0; i < spikes; i++) {
      const nhiId = `spike_${i}`;
      await call('POST', '/v1/usage', Array.from({ length: 60 }, (_, k) => ({ nhiId, at: new Date(minute - (60 - k) * 60_000 + 1000).toISOString(), count: 5 })));
      const t0 = Date.now();
      const r = await call('POST', '/v1/usage', [{ nhiId, at: new Date().toISOString(), count: 500 }]);
      if (!r.body.anomalies?.[0]?.workflowId) throw new Error(`no anomaly raised: ${JSON.stringify(r.body)}`);
      for (;;) {
        const s = await call('GET', `/v1/anomalies/${nhiId}`);
        const status = s.body as AnomalyStatus;
        if (s.status === 200 && status.state === 'throttled_l1') {
          ingestToVisible.push(Date.now() - t0);
          ingestToVerified.push(Date.parse(status.levels[0].at) - t0);
          break;
        }
        await new Promise((res) => setTimeout(res, 10));
      }
    }
    latencyRows.push(`| ${spikes} | ${pct(ingestToVerified, 50)} | ${Math.max(...ingestToVerified)} | ${pct(ingestToVisible, 50)} | ${Math.max(...ingestToVisible)} |`);
  } finally {
    agent.destroy();
    await new Promise((r) => server.close(() => r(undefined)));
    await w.teardown();
    await pg.stop();
  }
  process.stdout.write(
    [
      '',
      `Usage intake on ${machine()}; ${clients} keep-alive clients, ${seconds} s per batch size, ${NHIS} NHIs`,
      '| batch size | events/s | requests/s | request p50 (ms) | p99 (ms) |',
      '|---|---|---|---|---|',
      ...rows,
      '',
      'Spike ingested → level 1 verified at the target (CONNECTION LIMIT and memberships read back)',
      '| spikes | → verified p50 (ms) | max (ms) | → visible in GET p50 (ms) | max (ms) |',
      '|---|---|---|---|---|',
      ...latencyRows,
      '',
    ].join('\n'),
  );
}

runBench(main);
