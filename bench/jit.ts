// JIT elevation benchmark (prints figures, asserts nothing): request → verified grant, and
// expiry → verified revocation, p50/p99, with 1, 100 and 1 000 concurrent elevations, on a real
// Temporal dev server, a real worker and real PostgreSQL roles (all on this machine).
//   npm run bench:jit            (BENCH_LEVELS=1,100 to pick levels; BENCH_WORKERS=2 for a second worker;
//                                 BENCH_EAGER=1 for eager workflow start; BENCH_PG_POOL, BENCH_ESTATE_POOL; the worker knobs: BENCH_CACHE,
//                                 BENCH_WFT_SLOTS, … in bench/support.ts)
// Throughput is elevations completed per second, from the first request to the last verified revoke.
import { randomBytes } from 'node:crypto';
import { Client } from '@temporalio/client';
import { createTestWorld } from '../tests/helpers/world';
import { jitElevation } from '../scenarios/jit/workflow';
import { jitWorkflowId, type JitStatus } from '../scenarios/jit/contract';
import { startWorkerProcesses } from '../chaos/run';
import { benchWorker, historyShape, loadAverage, machine, pct, runBench, startBenchPostgres } from './support';

const levels = (process.env.BENCH_LEVELS ?? '1,100,1000').split(',').map(Number);
const workers = Number(process.env.BENCH_WORKERS ?? 1);
// Eager workflow start: the start request hands the first workflow task to this process's worker
// (a client on the worker's own connection), saving its trip through matching.
const eager = process.env.BENCH_EAGER === '1';

async function main() {
  const pg = await startBenchPostgres();
  const w = await createTestWorld({ temporal: 'local', runWorker: false });
  // The production worker's knobs, each overridable (bench/support.ts benchWorker).
  const { worker, tuning } = await benchWorker(w);
  const running = worker.run();
  // The estate connector's pool (lib/estate.ts: 5), the same way: BENCH_ESTATE_POOL.
  if (process.env.BENCH_ESTATE_POOL) (w.connector as unknown as { pool: { options: { max: number } } }).pool.options.max = Number(process.env.BENCH_ESTATE_POOL);
  const client = eager ? new Client({ connection: w.env.nativeConnection, namespace: w.env.namespace ?? 'default' }) : w.env.client;
  const max = Math.max(...levels);
  for (let i = 0; i < max; i++) await w.addNhi({ id: `bench_${i}`, kind: 'service_account', criticality: 'medium' });
  const rows: string[] = [];
  const figures: Record<string, unknown>[] = [];
  // Further workers on the same task queue, each a process of its own (the chaos run's worker).
  const extra = workers > 1 ? await startWorkerProcesses(w, workers - 1) : undefined;
  try {
    for (const n of levels) {
      const started = new Map<string, number>();
      // How many queries waited for a free connection of the orchestrator pool (sampled).
      let poolWaitingMax = 0;
      const sampler = setInterval(() => (poolWaitingMax = Math.max(poolWaitingMax, w.db.pool.waitingCount)), 50);
      const handles = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const workflowId = jitWorkflowId(`bench_${i}`, randomBytes(4).toString('hex'));
          started.set(workflowId, Date.now());
          return client.workflow.start(jitElevation, {
            taskQueue: w.taskQueue,
            workflowId,
            ...(eager ? { requestEagerStart: true } : {}),
            args: [
              {
                version: 1,
                nhiId: `bench_${i}`,
                entitlements: ['estate_readonly'],
                justification: 'benchmark elevation',
                durationMinutes: 1,
                requestedBy: 'alice',
                requestedAt: new Date().toISOString(),
                authority: w.sign(workflowId, 'start', 'alice'),
                settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 5 },
              },
            ],
          });
        }),
      );
      const results: JitStatus[] = await Promise.all(handles.map((h) => h.result()));
      clearInterval(sampler);
      const grant = results.map((r) => Date.parse(r.grantedAt!) - started.get(r.workflowId)!);
      const revoke = results.map((r) => {
        const revoked = r.timeline.find((t) => t.event === 'revoked')!;
        return Date.parse(revoked.at) - Date.parse(r.expiresAt!);
      });
      const ok = results.filter((r) => r.state === 'revoked' && r.entitlements.every((e) => e.present === false)).length;
      const first = Math.min(...started.values());
      const last = Math.max(...results.map((r) => Date.parse(r.timeline.find((t) => t.event === 'revoked')!.at)));
      const lastGrant = Math.max(...results.map((r) => Date.parse(r.grantedAt!)));
      // Grants/s: how fast the stack turns requests into verified grants; completed/s includes the 1-minute window.
      const grantsPerSecond = Math.round((n / Math.max(0.001, (lastGrant - first) / 1000)) * 10) / 10;
      const completedPerSecond = Math.round((n / ((last - first) / 1000)) * 10) / 10;
      // One elevation's history: what each costs the server (all of them take the same path here).
      const shape = await historyShape(handles[0]);
      const load = loadAverage();
      figures.push({ concurrent: n, workers, grantMs: { p50: pct(grant, 50), p99: pct(grant, 99) }, revokeMs: { p50: pct(revoke, 50), p99: pct(revoke, 99) }, grantsPerSecond, completedPerSecond, verified: `${ok}/${n}`, perElevation: shape, load, poolWaitingMax });
      rows.push(
        `| ${n} | ${workers} | ${pct(grant, 50)} | ${pct(grant, 99)} | ${grantsPerSecond} | ${pct(revoke, 50)} | ${pct(revoke, 99)} | ${ok}/${n} | ${shape.events} / ${shape.workflowTasks} | ${poolWaitingMax} | ${load} |`,
      );
      process.stdout.write(`${n} elevations done\n`);
    }
  } finally {
    await extra?.stop();
    worker.shutdown();
    await running;
    await w.teardown();
    await pg.stop();
  }
  process.stdout.write(
    [
      '',
      `JIT elevation on ${machine()}; worker ${JSON.stringify(tuning)}${eager ? '; eager workflow start' : ''}; orchestrator pool ${(w.db.pool as unknown as { options: { max: number } }).options.max}; estate pool ${(w.connector as unknown as { pool: { options: { max: number } } }).pool.options.max}`,
      '| concurrent | workers | request → verified grant p50 (ms) | p99 (ms) | verified grants/s | expiry → verified revocation p50 (ms) | p99 (ms) | verified | events / workflow tasks per elevation | pool waits (max) | load after |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      `JSON ${JSON.stringify({ machine: machine(), tuning, eager, figures })}`,
      '',
    ].join('\n'),
  );
}

runBench(main);
