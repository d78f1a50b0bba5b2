// Starts the local Temporal dev server (`temporal server start-dev`) for `npm start`: state in the
// data folder so workflows survive a restart, our search attributes registered, the Web UI on.
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import path from 'node:path';
import { ALL_SEARCH_ATTRIBUTES, temporalCliPath } from './paths';

/** Dynamic config the workflows rely on. */
export const DEV_SERVER_DYNAMIC_CONFIG = [
  'frontend.enableUpdateWorkflowExecution=true', // approve/deny/extend/revoke are Updates
  'frontend.enableExecuteMultiOperation=true', // update-with-start
  'system.enableEagerWorkflowStart=true', // eager start for leak containment latency
  'frontend.workerVersioningWorkflowAPIs=true',
];

export function devServerArgs(opts: { dataDir: string; port: number; uiPort: number; ip?: string; namespace?: string; codecEndpoint?: string; headless?: boolean }): string[] {
  const args = [
    'server',
    'start-dev',
    '--ip', opts.ip ?? '127.0.0.1',
    '--port', String(opts.port),
    // Headless (no Web UI) for throwaway servers such as the chaos run's.
    ...(opts.headless ? ['--headless'] : ['--ui-port', String(opts.uiPort)]),
    '--db-filename', path.join(opts.dataDir, 'temporal.db'),
    '--log-level', 'warn',
    '--ui-disable-news-fetch',
  ];
  // `default` always exists; another TEMPORAL_NAMESPACE is created with it (start.ts registers our attributes there).
  if (opts.namespace && opts.namespace !== 'default') args.push('--namespace', opts.namespace);
  for (const key of ALL_SEARCH_ATTRIBUTES) args.push('--search-attribute', `${key.name}=Keyword`);
  for (const kv of DEV_SERVER_DYNAMIC_CONFIG) args.push('--dynamic-config-value', kv);
  // The UI decodes encrypted payloads through the API's codec server (api/codec.ts).
  if (opts.codecEndpoint) args.push('--ui-codec-endpoint', opts.codecEndpoint);
  return args;
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export interface DevServer {
  process: ChildProcess;
  /** The frontend (gRPC), `127.0.0.1:<port>`. */
  address: string;
  /** The Web UI. */
  uiUrl: string;
  stop(): Promise<void>;
}

export async function startDevServer(opts: {
  codecEndpoint?: string;
  dataDir: string;
  port: number;
  uiPort: number;
  namespace?: string;
  headless?: boolean;
  onOutput?: (line: string) => void;
  timeoutMs?: number;
}): Promise<DevServer> {
  if (await portOpen('127.0.0.1', opts.port)) {
    throw new Error(`port ${opts.port} is already in use: another Temporal server? Set TEMPORAL_PORT (and TEMPORAL_UI_PORT) to run a second copy, or TEMPORAL_ADDRESS to use that server`);
  }
  const child = spawn(temporalCliPath(), devServerArgs(opts), { stdio: ['ignore', 'pipe', 'pipe'] });
  const forward = (buf: Buffer) => buf.toString().split('\n').filter(Boolean).forEach((l) => opts.onOutput?.(l));
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (!(await portOpen('127.0.0.1', opts.port))) {
    if (exited !== null) throw new Error(`temporal server start-dev exited with code ${exited}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('temporal server start-dev did not open its port in time');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    process: child,
    address: `127.0.0.1:${opts.port}`,
    uiUrl: `http://127.0.0.1:${opts.uiPort}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  };
}
