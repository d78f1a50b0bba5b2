// `npm run chaos`: the chaos run on a throwaway stack on this machine (chaos/stack.ts: embedded
// PostgreSQL in a temp folder for the orchestrator, a second PostgreSQL for the estate, a Temporal
// dev server on a database file, two worker processes; everything on loopback), for CHAOS_ROUNDS
// rounds (default 3) of a mixed load with every fault of chaos/run.ts, bounded by CHAOS_MAX_MINUTES
// (default 10: it stops itself and fails). Prints the seed, the faults injected and each invariant;
// exits 1 when one fails.
//   npm run chaos             CHAOS_ROUNDS=5 CHAOS_ELEVATIONS=20 CHAOS_LEAKS=5 CHAOS_SEED=42 npm run chaos
import { randomInt } from 'node:crypto';
import { machine, startBenchPostgres } from '../bench/support';
import { formatInvariants } from './invariants';
import { runChaos } from './run';
import { createChaosStack } from './stack';

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a whole number`);
  return v;
};

async function main() {
  const rounds = num('CHAOS_ROUNDS', 3);
  const maxMinutes = num('CHAOS_MAX_MINUTES', 10);
  const seed = num('CHAOS_SEED', randomInt(2 ** 31));
  const watchdog = setTimeout(() => {
    process.stderr.write(`[chaos] FAIL: not finished within ${maxMinutes} minutes (seed ${seed})\n`);
    process.exit(2);
  }, maxMinutes * 60_000);
  watchdog.unref();
  process.stdout.write(`[chaos] ${machine()}; ${rounds} rounds; seed ${seed}\n`);
  const pg = await startBenchPostgres();
  const stack = await createChaosStack();
  const started = Date.now();
  try {
    const report = await runChaos(stack, {
      rounds,
      revokedElevations: num('CHAOS_ELEVATIONS', 10),
      expiringElevations: num('CHAOS_EXPIRING', 3),
      leaks: num('CHAOS_LEAKS', 3),
      temporalRestarts: num('CHAOS_TEMPORAL_RESTARTS', 2),
      sigtermOnce: true,
      estateOutageMs: num('CHAOS_ESTATE_OUTAGE_S', 30) * 1000,
      // Round 1 during grants and rotations, round 2 during early revocations, round 3 over the
      // 1-minute windows' expiry (~60 s in); random within each window.
      estateOutageWindows: [[0, 5_000], [5_000, 20_000], [35_000, 45_000]],
      settleMs: 150_000,
      seed,
      log: (line) => process.stdout.write(`[chaos] ${line}\n`),
    });
    process.stdout.write(`[chaos] seed ${seed}: ${report.workflows} workflows in ${Math.round((Date.now() - started) / 1000)} s; faults injected:\n`);
    for (const [fault, n] of Object.entries(report.faults)) process.stdout.write(`  ${String(n).padStart(4)}  ${fault}\n`);
    process.stdout.write(`  (workers that died on their own and were started again: ${report.workerDeaths}; activities retrying when the estate came back: ${report.retryingAtEstateRestart})\n`);
    process.stdout.write(`[chaos] outcomes: ${Object.entries(report.outcomes).map(([o, n]) => `${n} × ${o}`).join(', ')}\n`);
    for (const [cause, n] of Object.entries(report.causes)) process.stdout.write(`  ${String(n).padStart(4)}  ${cause}\n`);
    process.stdout.write(`${formatInvariants(report.invariants)}\n`);
    process.exitCode = report.ok ? 0 : 1;
  } finally {
    await stack.teardown();
    await pg.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
