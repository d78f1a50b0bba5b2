// Worker processes (chaos/worker-process.ts) on a world's task queue, from one workflow bundle built
// once: the chaos run's supervised set (a worker that dies without being killed on purpose — e.g.
// one that gave up on a restarting Temporal server — is started again, as after a SIGKILL), and the
// plain set the JIT benchmark uses for its second worker.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../lib/paths';
import { prebuildWorkflowBundle } from '../workers/worker';
import type { ChaosWorkerConfig } from './worker-process';

const WORKER_SCRIPT = path.join(__dirname, 'worker-process.ts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a worker process needs from a world (the test world or the chaos stack). */
export interface WorkerHost {
  db: { url: string };
  estateUrl: string;
  prefix: string;
  secretKey: Buffer;
  deps: { authorityKey: Buffer };
  env: { address: string; namespace?: string };
  taskQueue: string;
}

export async function writeWorkflowBundle(dir: string): Promise<string> {
  const bundlePath = path.join(dir, 'workflows.js');
  writeFileSync(bundlePath, (await prebuildWorkflowBundle()).code);
  return bundlePath;
}

function workerConfig(w: WorkerHost, bundlePath: string): ChaosWorkerConfig {
  return {
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
}

/** Spawn one worker process: true once it polls, false if it exited first. */
function spawnWorker(config: ChaosWorkerConfig): { child: ChildProcess; ready: Promise<boolean> } {
  const child = spawn(process.execPath, ['-r', '@swc-node/register', WORKER_SCRIPT], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, CHAOS_WORKER: JSON.stringify(config) } });
  const ready = new Promise<boolean>((resolve) => {
    child.once('message', () => resolve(true));
    child.once('exit', () => resolve(false));
  });
  return { child, ready };
}

/** The chaos run's workers: killed on purpose by kill(), started again by start() or, after any other death, at once. */
export class SupervisedWorkers {
  /** Workers that died without being killed here (and were started again). */
  deaths = 0;
  private readonly polling = new Set<ChildProcess>();
  private stopping = false;
  private readonly config: ChaosWorkerConfig;

  constructor(w: WorkerHost, bundlePath: string, private readonly log: (line: string) => void) {
    this.config = workerConfig(w, bundlePath);
  }

  /** One more worker, polling when this resolves (tried again, a second apart, while it cannot start). */
  async start(): Promise<void> {
    while (!this.stopping) {
      const { child, ready } = spawnWorker(this.config);
      if (await ready) {
        this.polling.add(child);
        child.once('exit', () => this.exited(child));
        return;
      }
      this.deaths++;
      this.log('a worker exited before polling; starting it again');
      await sleep(1000);
    }
  }

  /** SIGKILL one polling worker; false when none polls. */
  kill(): boolean {
    const [victim] = this.polling;
    if (!victim) return false;
    this.polling.delete(victim);
    victim.kill('SIGKILL');
    return true;
  }

  stopAll(): void {
    this.stopping = true;
    for (const child of this.polling) child.kill('SIGKILL');
    this.polling.clear();
  }

  private exited(child: ChildProcess): void {
    if (!this.polling.delete(child) || this.stopping) return; // killed on purpose
    this.deaths++;
    this.log(`a worker died (${child.exitCode ?? child.signalCode}); starting another`);
    void this.start();
  }
}

/** Worker processes on the world's task queue (for benchmarks): polling when this resolves. */
export async function startWorkerProcesses(w: WorkerHost, n: number): Promise<{ stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-workers-'));
  const config = workerConfig(w, await writeWorkflowBundle(dir));
  const children = await Promise.all(
    Array.from({ length: n }, async () => {
      const { child, ready } = spawnWorker(config);
      if (!(await ready)) throw new Error(`worker exited before polling (${child.exitCode ?? child.signalCode})`);
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
