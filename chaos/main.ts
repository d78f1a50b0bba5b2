// `npm run chaos`: the chaos run on a throwaway stack on this machine (embedded PostgreSQL in a temp
// folder, an in-memory Temporal dev server, two worker processes; everything on loopback), for
// CHAOS_ROUNDS rounds (default 3) of a mixed load with every fault of chaos/run.ts, bounded by
// CHAOS_MAX_MINUTES (default 10: it stops itself and fails). Prints the faults injected and each
// invariant; exits 1 when one fails.
//   npm run chaos             CHAOS_ROUNDS=5 CHAOS_ELEVATIONS=20 CHAOS_LEAKS=5 npm run chaos
import { machine, startBenchPostgres } from '../bench/support';
import { createTestWorld } from '../tests/helpers/world';
import { formatInvariants } from './invariants';
import { runChaos } from './run';

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a whole number`);
  return v;
};

// Not injected yet (see docs/chaos.md): a restart of the Temporal dev server on its database file,
// and the estate PostgreSQL stopped for 30 s — the test world keeps Temporal in memory and the
// estate in the orchestrator's server.
async function main() {
  const rounds = num('CHAOS_ROUNDS', 3);
  const maxMinutes = num('CHAOS_MAX_MINUTES', 10);
  const elevations = num('CHAOS_ELEVATIONS', 10);
  const watchdog = setTimeout(() => {
    process.stderr.write(`[chaos] FAIL: not finished within ${maxMinutes} minutes\n`);
    process.exit(2);
  }, maxMinutes * 60_000);
  watchdog.unref();
  process.stdout.write(`[chaos] ${machine()}; ${rounds} rounds\n`);
  const pg = await startBenchPostgres();
  const w = await createTestWorld({ temporal: 'local', runWorker: false });
  const started = Date.now();
  try {
    const report = await runChaos(w, {
      rounds,
      revokedElevations: elevations,
      expiringElevations: num('CHAOS_EXPIRING', 3),
      leaks: num('CHAOS_LEAKS', 3),
      settleMs: 150_000,
      log: (line) => process.stdout.write(`[chaos] ${line}\n`),
    });
    process.stdout.write(`[chaos] ${report.workflows} workflows in ${Math.round((Date.now() - started) / 1000)} s; faults injected:\n`);
    for (const [fault, n] of Object.entries(report.faults)) process.stdout.write(`  ${String(n).padStart(4)}  ${fault}\n`);
    process.stdout.write(`${formatInvariants(report.invariants)}\n`);
    process.exitCode = report.ok ? 0 : 1;
  } finally {
    await w.teardown();
    await pg.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
