// The chaos run on its own stack (chaos/stack.ts: real dev server on a file, real PostgreSQL for the
// orchestrator, a second one for the estate): two worker processes on one task queue under a mixed
// load (chaos/load.ts) while, at random moments, it SIGKILLs workers (a replacement at once, and once
// a few seconds later), terminates the orchestrator database's connections, kills the Temporal dev
// server and starts it again on its database file, and stops the estate PostgreSQL for a while.
// Then the invariants (chaos/invariants.ts). Used by `npm run chaos` (chaos/main.ts) and, one round
// with a small load, by tests/chaos/short.test.ts.
import { randomBytes } from 'node:crypto';
import { Client as PgClient } from 'pg';
import { adminUrl } from '../tests/helpers/db';
import { checkInvariants, type InvariantResult } from './invariants';
import { outcomeBy, retryingActivities, revokeWithDuplicates, startElevation, startLeak } from './load';
import type { ChaosStack } from './stack';
import { SupervisedWorkers, writeWorkflowBundle } from './workers';

export { startWorkerProcesses } from './workers';

export interface ChaosOptions {
  rounds: number;
  /** Per round: elevations revoked early, elevations left to expire (1-minute windows), leak alerts. */
  revokedElevations: number;
  expiringElevations: number;
  leaks: number;
  /** Per round: Temporal dev server restarts (SIGKILL; the run's first one SIGTERM when `sigtermOnce`). */
  temporalRestarts: number;
  sigtermOnce: boolean;
  /** Per round, how long the estate PostgreSQL stays stopped (0: never stopped). */
  estateOutageMs: number;
  /**
   * Round r stops it at a random moment within windows[(r - 1) % length] (ms after its load starts),
   * so that a run covers each phase of the load; [0, 0]: just before the load, so its first target calls meet it.
   */
  estateOutageWindows: [number, number][];
  /** Keep the estate down past `estateOutageMs` until some activity is seen retrying against it (the short run's proof that the outage reached the work). */
  estateOutageUntilRetrying?: boolean;
  /** How long to wait for the round's workflows to close before the invariants say what is stuck. */
  settleMs: number;
  /** Seeds the fault moments. */
  seed: number;
  log?: (line: string) => void;
}

export interface ChaosReport {
  faults: Record<string, number>;
  /** Workers that died on their own (not killed by the run) and were started again. */
  workerDeaths: number;
  /** Activities seen retrying (attempt ≥ 2) just before each estate restart: the outage reached the work. */
  retryingAtEstateRestart: number;
  /** How the workflows ended: `jitElevation: revoked` → count. */
  outcomes: Record<string, number>;
  /** The failure each workflow recorded on its way (a rollback's cause, a containment step that kept failing before it succeeded) → count. */
  causes: Record<string, number>;
  workflows: number;
  invariants: InvariantResult[];
  ok: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: the fault moments of a run follow from its seed (printed, CHAOS_SEED to replay them). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FAULTS = {
  killNow: 'worker SIGKILL, replaced at once',
  killLater: 'worker SIGKILL, replaced later',
  connections: 'orchestrator connections terminated',
  temporalKill: 'Temporal dev server SIGKILL, restarted on its file',
  temporalTerm: 'Temporal dev server SIGTERM, restarted on its file',
  estateDown: 'estate PostgreSQL stopped, then started',
} as const;

export async function runChaos(w: ChaosStack, opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => undefined);
  // One stream per fault track, so each track's moments follow from the seed whatever the interleaving.
  const track = (k: number) => {
    const random = seeded(opts.seed + k * 0x9e3779b9);
    return (min: number, max: number) => min + Math.floor(random() * (max - min));
  };
  const [workerJitter, temporalJitter, estateJitter] = [track(1), track(2), track(3)];
  const faults: Record<string, number> = { [FAULTS.killNow]: 0, [FAULTS.killLater]: 0, [FAULTS.connections]: 0, [FAULTS.temporalKill]: 0, 'duplicated revoke': 0, 'revoke by someone else (unsigned)': 0, 'duplicated alert': 0, 'reordered alert': 0 };
  if (opts.sigtermOnce) faults[FAULTS.temporalTerm] = 0;
  if (opts.estateOutageMs > 0) faults[FAULTS.estateDown] = 0;
  const workers = new SupervisedWorkers(w, await writeWorkflowBundle(w.dir), log);
  const terminateConnections = async () => {
    const admin = new PgClient({ connectionString: adminUrl() });
    await admin.connect();
    try {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [w.db.name]);
      faults[FAULTS.connections]++;
    } finally {
      await admin.end();
    }
  };
  let sigtermDone = !opts.sigtermOnce;
  const restartTemporal = async () => {
    const signal = sigtermDone ? 'SIGKILL' : 'SIGTERM';
    sigtermDone = true;
    const t0 = Date.now();
    await w.restartTemporal(signal);
    faults[signal === 'SIGKILL' ? FAULTS.temporalKill : FAULTS.temporalTerm]++;
    log(`Temporal dev server ${signal}: serving again on its file after ${Date.now() - t0} ms`);
  };
  /** Called once the estate is stopped: keep it down, then start it again. */
  const estateOutage = async () => {
    log(`estate PostgreSQL stopped for ${opts.estateOutageMs / 1000} s`);
    await sleep(opts.estateOutageMs);
    const retryingNow = () => retryingActivities(w.env.client, w.taskQueue).catch(() => []);
    let retrying = await retryingNow();
    // With `estateOutageUntilRetrying`, longer if need be: until the load has met the outage (on a loaded machine, no time is enough).
    for (const until = Date.now() + opts.settleMs; opts.estateOutageUntilRetrying && !retrying.length && Date.now() < until; retrying = await retryingNow()) await sleep(250);
    retryingAtEstateRestart += retrying.length;
    log(`estate down: ${retrying.length} activities retrying (${[...new Set(retrying.map((r) => r.activity))].join(', ')}; e.g. ${retrying[0]?.failure ?? '-'})`);
    await w.estate.start();
    faults[FAULTS.estateDown]++;
    log('estate PostgreSQL started again');
  };

  let retryingAtEstateRestart = 0;
  const outcomes: Record<string, number> = {};
  const causes: Record<string, number> = {};
  const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
  const nhiIds: string[] = [];
  const oldCredentials: { nhiId: string; password: string }[] = [];
  let workflows = 0;
  try {
    await Promise.all([workers.start(), workers.start()]);
    for (let round = 1; round <= opts.rounds; round++) {
      const tag = randomBytes(2).toString('hex');
      const jitNhis = Array.from({ length: opts.revokedElevations + opts.expiringElevations }, (_, i) => `svc_chaos_${tag}_j${i}`);
      const leakNhis = Array.from({ length: opts.leaks }, (_, i) => `svc_chaos_${tag}_l${i}`);
      for (const id of [...jitNhis, ...leakNhis]) await w.addNhi({ id, kind: 'service_account', criticality: 'medium' });
      for (const id of leakNhis) oldCredentials.push({ nhiId: id, password: await w.issueCredential(id) });
      nhiIds.push(...jitNhis, ...leakNhis);

      let outageBeforeLoad: Promise<void> | undefined;
      const [from, to] = opts.estateOutageWindows[(round - 1) % opts.estateOutageWindows.length] ?? [0, 0];
      if (opts.estateOutageMs > 0 && to === 0) {
        await w.estate.stop();
        outageBeforeLoad = estateOutage();
      }
      const elevations = jitNhis.map((nhiId, i) => startElevation(w, nhiId, i < opts.revokedElevations ? 30 : 1));
      const leaks = leakNhis.map((nhiId) => startLeak(w, nhiId, faults));
      const started = await Promise.all([...elevations, ...leaks]);
      workflows += started.length;
      log(`round ${round}: ${jitNhis.length} elevations, ${leakNhis.length} leak containments started`);

      // Three tracks of faults at random moments, overlapping, while elevations grant and containments rotate.
      const processFaults = (async () => {
        await sleep(workerJitter(200, 1500));
        if (workers.kill()) faults[FAULTS.killNow]++;
        const replaced = workers.start(); // at once; the next faults do not wait for it to poll
        await sleep(workerJitter(200, 1500));
        await terminateConnections();
        await sleep(workerJitter(500, 2000));
        if (workers.kill()) faults[FAULTS.killLater]++;
        await sleep(3000);
        await Promise.all([replaced, workers.start()]);
        log('worker faults done');
      })();
      const temporalFaults = (async () => {
        for (let i = 0; i < opts.temporalRestarts; i++) {
          await sleep(temporalJitter(300, 4000));
          await restartTemporal();
        }
      })();
      const estateFaults = outageBeforeLoad ?? (opts.estateOutageMs > 0 ? sleep(estateJitter(from, to)).then(() => w.estate.stop()).then(estateOutage) : Promise.resolve());
      const waitMs = opts.settleMs;
      const revoked = (await Promise.all(elevations)).slice(0, opts.revokedElevations).map((h) => revokeWithDuplicates(w, h.workflowId, faults, waitMs));
      void Promise.allSettled(revoked).then(() => log('revokes sent'));
      await Promise.all([processFaults, temporalFaults, estateFaults, Promise.allSettled(revoked)]);

      const until = Date.now() + opts.settleMs;
      const ended = await Promise.all(started.map((h) => outcomeBy(w.env.client, h.workflowId, until)));
      for (const e of ended) {
        count(outcomes, e?.outcome ?? 'not closed in time');
        if (e?.cause) count(causes, `${e.outcome} — ${e.cause}`);
      }
      log(`round ${round}: ${ended.every(Boolean) ? 'every workflow closed' : `${ended.filter((c) => !c).length} workflows not closed in time`}`);
    }
    // Visibility is eventually consistent: give it a moment to see the last closes.
    await sleep(1000);
    const invariants = await checkInvariants({ ...w.deps, client: w.env.client, taskQueue: w.taskQueue, nhiIds, oldCredentials, login: (id, pw) => w.login(id, pw) });
    return { faults, workerDeaths: workers.deaths, retryingAtEstateRestart, outcomes, causes, workflows, invariants, ok: invariants.every((r) => r.ok) };
  } finally {
    workers.stopAll();
  }
}
