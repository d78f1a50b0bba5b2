// Many concurrently open JIT windows on one worker and the dev server (prints figures, asserts
// nothing): the worker process's RSS and heap while they all wait, then their mass expiry — the
// revocation lag from each window's end to the verified revoke, p50/p99/max.
//   npm run bench:windows                 (BENCH_WINDOWS=10000 by default; BENCH_NHIS, BENCH_CACHE, BENCH_HEAP_SNAPSHOT)
// Windows last whole minutes, so they end as fast as they were started (a burst at the start
// rate, thousands a minute), not at one instant. The worker runs in this process (with the client that starts the windows); the dev
// server and PostgreSQL are processes of their own and are not counted in RSS.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { signAuthority } from '../lib/authority';
import { jitWorkflowId, type JitStatus } from '../scenarios/jit/contract';
import { jitElevation } from '../scenarios/jit/workflow';
import { createTestWorld } from '../tests/helpers/world';
import { benchWorker, machine, pct, runBench, startBenchPostgres } from './support';

const windows = Number(process.env.BENCH_WINDOWS ?? 10_000);
// Windows per NHI: several elevations of one NHI share its reconcile lock, as they would in life.
const nhis = Number(process.env.BENCH_NHIS ?? Math.min(windows, 1000));

const mib = (b: number) => Math.round(b / 2 ** 20);

/** BENCH_HEAP_SNAPSHOT=file: the workflow thread's heap while the windows wait (its heap is not in process.memoryUsage()). */
async function snapshotWorkflowThread(worker: unknown, file: string): Promise<void> {
  // SDK internals (1.24): the threaded workflow creator's first (with reuseV8Context, only) thread.
  const thread = (worker as { workflowCreator?: { workerThreadClients?: { workerThread: import('node:worker_threads').Worker }[] } }).workflowCreator?.workerThreadClients?.[0]?.workerThread;
  if (!thread) throw new Error('BENCH_HEAP_SNAPSHOT: no workflow thread found (SDK internals changed?)');
  await pipeline(await thread.getHeapSnapshot(), createWriteStream(file));
  process.stdout.write(`workflow thread heap snapshot: ${file}\n`);
}

async function main() {
  const pg = await startBenchPostgres();
  const w = await createTestWorld({ temporal: 'local', runWorker: false });
  for (let i = 0; i < nhis; i++) await w.addNhi({ id: `win_${i}`, kind: 'service_account', criticality: 'medium' });
  // The production knobs, the sticky cache included (BENCH_CACHE to change it).
  const { worker, tuning } = await benchWorker(w);
  const running = worker.run();
  const baseline = process.memoryUsage();
  const startedAt = Date.now();
  try {
    const handles = [];
    // Start in batches; each window lasts long enough for the last one to be granted first (at the
    // 20–30 grants/s measured here, a minute per 1 000 windows leaves room).
    const minutes = Math.max(2, Math.ceil(windows / 1000) + 1);
    // The starts are queued at once and run at the grant rate (20–30/s here): sign them for as long as
    // the whole run may take, or the last would be refused as expired (the authority check working).
    const ttlSeconds = Math.max(300, windows / 5);
    for (let i = 0; i < windows; i += 200) {
      const batch = Array.from({ length: Math.min(200, windows - i) }, (_, j) => {
        const nhiId = `win_${(i + j) % nhis}`;
        const workflowId = jitWorkflowId(nhiId, randomBytes(5).toString('hex'));
        return w.env.client.workflow.start(jitElevation, {
          taskQueue: w.taskQueue,
          workflowId,
          args: [{ version: 1, nhiId, entitlements: ['estate_readonly'], justification: 'open windows benchmark', durationMinutes: minutes, requestedBy: 'alice', requestedAt: new Date().toISOString(), authority: signAuthority(w.deps.authorityKey, { workflowId, message: 'start', principal: 'alice' }, Date.now(), ttlSeconds), settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 60, revokeEscalationAttempts: 5 } }],
        });
      });
      handles.push(...(await Promise.all(batch)));
    }
    const startSeconds = (Date.now() - startedAt) / 1000;
    // All granted (the grant receipts are in the audit trail): now they only wait on timers.
    for (;;) {
      const { rows } = await w.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'entitlement.grant' AND outcome = 'granted'`);
      if (rows[0].n >= windows) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const grantedSeconds = (Date.now() - startedAt) / 1000;
    global.gc?.();
    if (process.env.BENCH_HEAP_SNAPSHOT) await snapshotWorkflowThread(worker, process.env.BENCH_HEAP_SNAPSHOT);
    const waiting = process.memoryUsage();
    process.stdout.write(`${windows} windows open (started in ${startSeconds.toFixed(0)} s, all granted at ${grantedSeconds.toFixed(0)} s; RSS ${mib(waiting.rss)} MiB, from ${mib(baseline.rss)}); waiting for expiry\n`);

    // Results in batches: a run that waited on 5 000 result long-polls at once failed (its cause
    // hidden behind the client channel's shutdown).
    // (The lag comes from each status's own timestamps, so the batching does not change it.)
    const results: JitStatus[] = [];
    for (let i = 0; i < handles.length; i += 200) results.push(...(await Promise.all(handles.slice(i, i + 200).map((h) => h.result()))));
    const lag = results.map((r) => Date.parse(r.timeline.find((t) => t.event === 'revoked')!.at) - Date.parse(r.expiresAt!));
    // Revoked, and nothing left that only this window wanted (another window of the same NHI may still hold it).
    const verified = results.filter((r) => r.state === 'revoked' && r.entitlements.every((e) => e.present === false || e.otherHolders.length > 0)).length;
    const figures = {
      machine: machine(),
      windows,
      nhis,
      tuning,
      rssMiB: { before: mib(baseline.rss), waiting: mib(waiting.rss) },
      heapUsedMiB: { before: mib(baseline.heapUsed), waiting: mib(waiting.heapUsed) },
      startSeconds: Math.round(startSeconds),
      revocationLagMs: { p50: pct(lag, 50), p99: pct(lag, 99), max: Math.max(...lag) },
      verified: `${verified}/${windows}`,
    };
    process.stdout.write(
      [
        '',
        `Open JIT windows on ${figures.machine}; worker ${JSON.stringify(tuning)}`,
        '| windows | NHIs | worker RSS waiting (MiB) | heap used (MiB) | expiry → verified revoke p50 (ms) | p99 (ms) | max (ms) | verified |',
        '|---|---|---|---|---|---|---|---|',
        `| ${windows} | ${nhis} | ${figures.rssMiB.waiting} (from ${figures.rssMiB.before}) | ${figures.heapUsedMiB.waiting} | ${figures.revocationLagMs.p50} | ${figures.revocationLagMs.p99} | ${figures.revocationLagMs.max} | ${figures.verified} |`,
        '',
        `JSON ${JSON.stringify(figures)}`,
        '',
      ].join('\n'),
    );
  } finally {
    worker.shutdown();
    await running;
    await w.teardown();
    await pg.stop();
  }
}

runBench(main);
