// The chaos run on a test world (real dev server, real PostgreSQL, the demo estate): two worker
// processes on one task queue under a mixed load — JIT elevations (revoked early with duplicated and
// foreign revokes, or left to expire), leak alerts (duplicated and reordered) — while it SIGKILLs
// workers (a replacement at once, and once a few seconds later) and terminates the orchestrator
// database's connections. Then the invariants (chaos/invariants.ts). Used by `npm run chaos`
// (chaos/main.ts) and, one round with a small load, by tests/chaos/short.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import type { TestWorld } from '../tests/helpers/world';
import { adminUrl } from '../tests/helpers/db';
import { projectRoot } from '../lib/paths';
import { JIT_FINAL_STATES, jitWorkflowId, revokeUpdate, statusQuery, type JitElevationInput } from '../scenarios/jit/contract';
import { jitElevation } from '../scenarios/jit/workflow';
import { alertSignal, LEAK_WORKFLOW_TYPE, leakWorkflowId, type LeakAlert } from '../scenarios/leak/contract';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../workflows/search-attributes';
import { WORKFLOWS_PATH } from '../workers/worker';
import type { ChaosWorkerConfig } from './worker-process';
import { checkInvariants, type InvariantResult } from './invariants';

export interface ChaosOptions {
  rounds: number;
  /** Per round: elevations revoked early, elevations left to expire (1-minute windows), leak alerts. */
  revokedElevations: number;
  expiringElevations: number;
  leaks: number;
  /** How long to wait for the round's workflows to close before the invariants say what is stuck. */
  settleMs: number;
  log?: (line: string) => void;
}

export interface ChaosReport {
  faults: Record<string, number>;
  workflows: number;
  invariants: InvariantResult[];
  ok: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jitter = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));

const WORKER_SCRIPT = path.join(__dirname, 'worker-process.ts');

export async function runChaos(w: TestWorld, opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => undefined);
  const faults: Record<string, number> = { 'worker SIGKILL, replaced at once': 0, 'worker SIGKILL, replaced later': 0, 'orchestrator connections terminated': 0, 'duplicated revoke': 0, 'revoke by someone else (unsigned)': 0, 'duplicated alert': 0, 'reordered alert': 0 };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-chaos-'));
  const bundlePath = path.join(dir, 'workflows.js');
  writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') })).code);
  const config: ChaosWorkerConfig = {
    dbUrl: w.db.url,
    estateUrl: w.estateUrl,
    rolePrefix: w.prefix,
    secretKey: w.secretKey.toString('base64'),
    authorityKey: w.deps.authorityKey.toString('base64'),
    address: w.env.address,
    namespace: w.env.namespace ?? 'default',
    taskQueue: w.taskQueue,
    bundlePath,
  };
  const workers = new Set<ChildProcess>();
  const startWorker = async () => {
    const child = spawn(process.execPath, ['-r', '@swc-node/register', WORKER_SCRIPT], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, CHAOS_WORKER: JSON.stringify(config) } });
    workers.add(child);
    child.once('exit', () => workers.delete(child));
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code, signal) => reject(new Error(`chaos worker exited before polling (${code ?? signal})`)));
    });
    return child;
  };
  const killOne = () => {
    const [victim] = workers;
    victim?.kill('SIGKILL');
  };
  const terminateConnections = async () => {
    const admin = new PgClient({ connectionString: adminUrl() });
    await admin.connect();
    try {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [new URL(w.db.url).pathname.slice(1)]);
      faults['orchestrator connections terminated']++;
    } finally {
      await admin.end();
    }
  };

  const nhiIds: string[] = [];
  const oldCredentials: { nhiId: string; password: string }[] = [];
  let workflows = 0;
  try {
    await Promise.all([startWorker(), startWorker()]);
    for (let round = 1; round <= opts.rounds; round++) {
      const tag = randomBytes(2).toString('hex');
      const jitNhis = Array.from({ length: opts.revokedElevations + opts.expiringElevations }, (_, i) => `svc_chaos_${tag}_j${i}`);
      const leakNhis = Array.from({ length: opts.leaks }, (_, i) => `svc_chaos_${tag}_l${i}`);
      for (const id of [...jitNhis, ...leakNhis]) await w.addNhi({ id, kind: 'service_account', criticality: 'medium' });
      for (const id of leakNhis) oldCredentials.push({ nhiId: id, password: await w.issueCredential(id) });
      nhiIds.push(...jitNhis, ...leakNhis);

      const elevations = jitNhis.map((nhiId, i) => startElevation(w, nhiId, i < opts.revokedElevations ? 30 : 1));
      const leaks = leakNhis.map((nhiId) => startLeak(w, nhiId, faults));
      const started = await Promise.all([...elevations, ...leaks]);
      workflows += started.length;
      log(`round ${round}: ${jitNhis.length} elevations, ${leakNhis.length} leak containments started`);

      // Faults at moments spread over the round, while elevations grant and containments rotate.
      const injected = (async () => {
        await sleep(jitter(200, 1500));
        killOne();
        faults['worker SIGKILL, replaced at once']++;
        await startWorker();
        await sleep(jitter(200, 1500));
        await terminateConnections();
        await sleep(jitter(500, 2000));
        killOne();
        faults['worker SIGKILL, replaced later']++;
        await sleep(3000);
        await startWorker();
      })();
      const revoked = (await Promise.all(elevations)).slice(0, opts.revokedElevations).map((h) => revokeWithDuplicates(w, h.workflowId, faults));
      await Promise.all([injected, Promise.allSettled(revoked)]);

      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), opts.settleMs);
      });
      const closed = await Promise.race([Promise.allSettled(started.map((h) => w.env.client.workflow.getHandle(h.workflowId).result())), deadline]);
      clearTimeout(timer);
      log(`round ${round}: ${closed === 'timeout' ? 'not every workflow closed in time' : 'every workflow closed'}`);
    }
    // Visibility is eventually consistent: give it a moment to see the last closes.
    await sleep(1000);
    const invariants = await checkInvariants({ ...w.deps, client: w.env.client, taskQueue: w.taskQueue, nhiIds, oldCredentials, login: (id, pw) => w.login(id, pw) });
    return { faults, workflows, invariants, ok: invariants.every((r) => r.ok) };
  } finally {
    for (const child of workers) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startElevation(w: TestWorld, nhiId: string, durationMinutes: number) {
  const input: JitElevationInput = {
    version: 1,
    nhiId,
    entitlements: ['estate_readonly'],
    justification: 'chaos run',
    durationMinutes,
    requestedBy: 'alice',
    requestedAt: new Date().toISOString(),
    settings: { approvalTimeoutMinutes: 60, expiryWarningMinutes: 10, revokeEscalationAttempts: 3 },
  };
  const workflowId = jitWorkflowId(nhiId, randomBytes(4).toString('hex'));
  return w.env.client.workflow.start(jitElevation, {
    taskQueue: w.taskQueue,
    workflowId,
    args: [{ authority: w.sign(workflowId, 'start', 'alice'), ...input }],
    // Short enough that a task held by a killed worker is handed on within the round.
    workflowTaskTimeout: '3s',
  });
}

/** Once granted: the requester's revoke twice at once, and an unsigned one (the Temporal UI) after. */
async function revokeWithDuplicates(w: TestWorld, workflowId: string, faults: Record<string, number>) {
  const handle = w.env.client.workflow.getHandle(workflowId);
  // Until granted (or over): a stuck elevation shows in the invariants, not as a hung run.
  for (const until = Date.now() + 60_000; Date.now() < until; await sleep(200)) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s && (s.state === 'active' || JIT_FINAL_STATES.includes(s.state))) break;
  }
  const signed = { by: 'alice', reason: 'chaos: done early', authority: w.sign(workflowId, 'revoke', 'alice') };
  await Promise.allSettled([handle.executeUpdate(revokeUpdate, { args: [signed] }), handle.executeUpdate(revokeUpdate, { args: [signed] })]);
  faults['duplicated revoke']++;
  await handle.executeUpdate(revokeUpdate, { args: [{ by: 'admin', reason: 'chaos: late revoke from the UI' }] }).catch(() => undefined);
  faults['revoke by someone else (unsigned)']++;
}

function alertFor(nhiId: string, detectedAt: Date): LeakAlert {
  const id = randomBytes(4).toString('hex');
  return {
    key: `generic:chaos:${id}|reported|`,
    source: 'generic',
    externalId: `generic:chaos:${id}`,
    label: 'chaos',
    action: 'reported',
    trigger: true,
    severity: 'high',
    fingerprints: [],
    detectedAt: detectedAt.toISOString(),
    receivedAt: new Date().toISOString(),
    summary: `chaos alert ${id} for ${nhiId}`,
    matchedBy: 'nhi_id',
  };
}

/** An alert, the same alert again, then an older one arriving last. */
async function startLeak(w: TestWorld, nhiId: string, faults: Record<string, number>) {
  const first = alertFor(nhiId, new Date());
  const handle = await w.env.client.workflow.signalWithStart(LEAK_WORKFLOW_TYPE, {
    taskQueue: w.taskQueue,
    workflowId: leakWorkflowId(nhiId),
    args: [{ version: 1, nhiId }],
    signal: alertSignal,
    signalArgs: [first],
    workflowTaskTimeout: '3s',
    typedSearchAttributes: [
      { key: NhiIdKey, value: nhiId },
      { key: ScenarioKey, value: 'leak' },
      { key: NhiStateKey, value: 'opening' },
    ],
  });
  await handle.signal(alertSignal, first);
  faults['duplicated alert']++;
  await handle.signal(alertSignal, alertFor(nhiId, new Date(Date.now() - 60_000)));
  faults['reordered alert']++;
  return handle;
}

/** Worker processes on the world's task queue (for benchmarks): polling when this resolves. */
export async function startWorkerProcesses(w: TestWorld, n: number): Promise<{ stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-workers-'));
  const bundlePath = path.join(dir, 'workflows.js');
  writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') })).code);
  const config: ChaosWorkerConfig = { dbUrl: w.db.url, estateUrl: w.estateUrl, rolePrefix: w.prefix, secretKey: w.secretKey.toString('base64'), authorityKey: w.deps.authorityKey.toString('base64'), address: w.env.address, namespace: w.env.namespace ?? 'default', taskQueue: w.taskQueue, bundlePath };
  const children = await Promise.all(
    Array.from({ length: n }, async () => {
      const child = spawn(process.execPath, ['-r', '@swc-node/register', WORKER_SCRIPT], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, CHAOS_WORKER: JSON.stringify(config) } });
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code, signal) => reject(new Error(`worker exited before polling (${code ?? signal})`)));
      });
      return child;
    }),
  );
  return {
    async stop() {
      await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once('exit', r), c.kill('SIGTERM'))))));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
