// JIT elevation benchmark (prints figures, asserts nothing): request → verified grant, and
// expiry → verified revocation, p50/p99, with 1, 100 and 1 000 concurrent elevations, on a real
// Temporal dev server, a real worker and real PostgreSQL roles (all on this machine).
//   npm run bench:jit            (BENCH_LEVELS=1,100 to pick levels)
import { randomBytes } from 'node:crypto';
import { createTestWorld } from '../tests/helpers/world';
import { jitElevation } from '../scenarios/jit/workflow';
import { jitWorkflowId, type JitStatus } from '../scenarios/jit/contract';
import { machine, pct, runBench, startBenchPostgres } from './support';

const levels = (process.env.BENCH_LEVELS ?? '1,100,1000').split(',').map(Number);

async function main() {
  const pg = await startBenchPostgres();
  const w = await createTestWorld({ temporal: 'local', runWorker: true });
  const max = Math.max(...levels);
  for (let i = 0; i < max; i++) await w.addNhi({ id: `bench_${i}`, kind: 'service_account', criticality: 'medium' });
  const rows: string[] = [];
  try {
    for (const n of levels) {
      const started = new Map<string, number>();
      const handles = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const workflowId = jitWorkflowId(`bench_${i}`, randomBytes(4).toString('hex'));
          started.set(workflowId, Date.now());
          return w.env.client.workflow.start(jitElevation, {
            taskQueue: w.taskQueue,
            workflowId,
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
      const grant = results.map((r) => Date.parse(r.grantedAt!) - started.get(r.workflowId)!);
      const revoke = results.map((r) => {
        const revoked = r.timeline.find((t) => t.event === 'revoked')!;
        return Date.parse(revoked.at) - Date.parse(r.expiresAt!);
      });
      const ok = results.filter((r) => r.state === 'revoked' && r.entitlements.every((e) => e.present === false)).length;
      rows.push(
        `| ${n} | ${pct(grant, 50)} | ${pct(grant, 99)} | ${pct(revoke, 50)} | ${pct(revoke, 99)} | ${ok}/${n} |`,
      );
      process.stdout.write(`${n} elevations done\n`);
    }
  } finally {
    await w.teardown();
    await pg.stop();
  }
  process.stdout.write(
    [
      '',
      `JIT elevation on ${machine()}`,
      '| concurrent | request → verified grant p50 (ms) | p99 (ms) | expiry → verified revocation p50 (ms) | p99 (ms) | verified |',
      '|---|---|---|---|---|---|',
      ...rows,
      '',
    ].join('\n'),
  );
}

runBench(main);
