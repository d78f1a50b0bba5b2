// The chaos run's own stack, built so that each fault can be injected: the orchestrator database on
// the run's PostgreSQL (TEST_DATABASE_URL: jest's, or chaos/main.ts's embedded one), the demo estate
// on a second PostgreSQL server that the run stops and starts (chaos/estate-server.ts), and a
// Temporal dev server persisting to a file in the run's temp folder, killed and started again on
// that file and port. The test world (tests/helpers/world.ts) keeps Temporal in memory and the
// estate on the orchestrator's server, so neither fault could be injected there.
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import type { ActivityDeps } from '../activities';
import { createConnectorRegistry } from '../connectors/registry';
import { scramSha256Verifier, type PostgresConnector } from '../connectors/postgres';
import { adminOptionGrantSql, detectRoleSystem } from '../connectors/postgres-roles';
import { signAuthority, type Authority, type SignedMessage } from '../lib/authority';
import { createPool, type Pool } from '../lib/db';
import { createEstateConnector, ensureConnectorRole, ensureDemoEstate, estateConnectorUrl, probeTargetFromUrl } from '../lib/estate';
import { MemoryNotifier } from '../lib/notifier';
import { projectRoot } from '../lib/paths';
import { loadNhiPolicies } from '../lib/policy-decisions';
import { upsertPrincipal } from '../lib/principals';
import { generateCredential, TableSecretStore, type SecretStore } from '../lib/secret-store';
import { startDevServer, type DevServer } from '../temporal-dev/dev-server';
import { createTestDatabase, type TestDatabase } from '../tests/helpers/db';
import { DEMO_PRINCIPALS } from '../tests/helpers/world';
import { startEstateServer, type EstateServer } from './estate-server';

export interface ChaosStack {
  /** The run's temp folder: the Temporal database file, the estate's data folder, the workflow bundle. */
  dir: string;
  db: TestDatabase;
  prefix: string;
  estate: EstateServer;
  estateUrl: string;
  /** Superuser pool on the estate database (a pool: it reconnects after the estate's restart). */
  estateAdmin: Pool;
  connectorRole: string;
  secrets: SecretStore;
  secretKey: Buffer;
  deps: ActivityDeps;
  env: { client: Client; address: string; namespace: string };
  taskQueue: string;
  role(nhiId: string): string;
  ent(name: string): string;
  addNhi(nhi: { id: string; kind?: string; criticality?: string }): Promise<string>;
  issueCredential(nhiId: string): Promise<string>;
  /** Log in as the NHI's role: 'ok', or the SQLSTATE (or error) the server refused with. */
  login(nhiId: string, password: string): Promise<string>;
  sign(workflowId: string, message: SignedMessage, principal: string): Authority;
  /** Kill the dev server with `signal` and start it again on the same file and port. */
  restartTemporal(signal: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  teardown(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));

export async function createChaosStack(): Promise<ChaosStack> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-chaos-'));
  const prefix = `c${randomBytes(3).toString('hex')}_`;
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const secretKey = randomBytes(32);
    const secrets = new TableSecretStore(db.pool, secretKey);

    const estate = await startEstateServer(dir, await freePort());
    cleanups.push(() => estate.close());
    const connectorRole = `${prefix}connector`;
    const password = randomBytes(18).toString('base64url');
    await ensureConnectorRole(estate.url, { role: connectorRole, password });
    const estateDatabase = `${prefix}estate`;
    await ensureDemoEstate({ adminUrl: estate.url, estateDatabase, connectorRole, secretStore: secrets, orchestratorPool: db.pool, rolePrefix: prefix });
    const estateUrl = estateConnectorUrl(estate.url, { role: connectorRole, password, database: estateDatabase });
    const adminOnEstate = new URL(estate.url);
    adminOnEstate.pathname = `/${estateDatabase}`;
    const estateAdmin = createPool(adminOnEstate.toString(), { max: 2 });
    cleanups.push(() => estateAdmin.end());
    const roles = await detectRoleSystem(estateAdmin);
    const connector: PostgresConnector = createEstateConnector({ url: estateUrl, rolePrefix: prefix });
    cleanups.push(() => connector.close());
    for (const p of DEMO_PRINCIPALS) await upsertPrincipal(db.pool, { id: p.id, roles: [...p.roles] });

    const port = await freePort();
    const startTemporal = () => startDevServer({ dataDir: dir, port, uiPort: 0, headless: true, timeoutMs: 60_000 });
    let dev: DevServer = await startTemporal();
    cleanups.push(async () => {
      dev.process.kill('SIGKILL');
      await exited(dev.process);
    });
    const address = dev.address;
    const connection = await Connection.connect({ address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: 'default' });
    const taskQueue = `tq-${prefix}`;
    const deps: ActivityDeps = {
      pool: db.pool,
      connectors: createConnectorRegistry([connector]),
      secrets,
      policy: loadNhiPolicies(path.join(projectRoot, 'policies')),
      notifier: new MemoryNotifier(),
      authorityKey: randomBytes(32),
      temporal: { client, taskQueue },
    };
    const role = (id: string) => `${prefix}${id}`;

    const stack: ChaosStack = {
      dir,
      db,
      prefix,
      estate,
      estateUrl,
      estateAdmin,
      connectorRole,
      secrets,
      secretKey,
      deps,
      env: { client, address, namespace: 'default' },
      taskQueue,
      role,
      ent: (name) => `${prefix}${name}`,
      async addNhi(nhi) {
        await estateAdmin.query(`CREATE ROLE ${role(nhi.id)} LOGIN PASSWORD '${randomBytes(12).toString('hex')}'`);
        await estateAdmin.query(adminOptionGrantSql(roles, role(nhi.id), connectorRole));
        await db.pool.query(`INSERT INTO nhis (id, kind, owner, connector, external_ref, criticality, tags) VALUES ($1, $2, 'team-chaos', 'postgres', $3, $4, '{}')`, [
          nhi.id,
          nhi.kind ?? 'service_account',
          role(nhi.id),
          nhi.criticality ?? 'medium',
        ]);
        return role(nhi.id);
      },
      async issueCredential(nhiId) {
        const value = generateCredential();
        const pending = await secrets.putPending(nhiId, value);
        await estateAdmin.query(`ALTER ROLE ${role(nhiId)} PASSWORD '${scramSha256Verifier(value)}'`);
        await secrets.activate(pending.ref);
        return value;
      },
      async login(nhiId, pw) {
        const c = new PgClient({ ...probeTargetFromUrl(estateUrl), user: role(nhiId), password: pw, connectionTimeoutMillis: 5000 });
        c.on('error', () => undefined);
        try {
          await c.connect();
          await c.end();
          return 'ok';
        } catch (err) {
          return (err as { code?: string }).code ?? String(err);
        }
      },
      sign: (workflowId, message, principal) => signAuthority(deps.authorityKey, { workflowId, message, principal }),
      async restartTemporal(signal) {
        dev.process.kill(signal);
        await exited(dev.process);
        dev = await startTemporal();
      },
      async teardown() {
        for (const undo of cleanups.reverse()) await undo().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return stack;
  } catch (err) {
    for (const undo of cleanups.reverse()) await undo().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
