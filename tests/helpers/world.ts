// A test world on the real things: a migrated orchestrator database, a demo estate of real
// Postgres roles (prefixed: roles are cluster-wide), the shipped Cedar policies, a Temporal test
// server and a worker running the real activities (optionally overridden).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkerOptions } from '@temporalio/worker';
import { Client } from 'pg';
import { createActivities, type ActivityDeps } from '../../activities';
import { createConnectorRegistry } from '../../connectors/registry';
import { scramSha256Verifier, type PostgresConnector } from '../../connectors/postgres';
import { adminOptionGrantSql, detectRoleSystem, membershipOptionColumns, type RoleSystem } from '../../connectors/postgres-roles';
import { createEstateConnector, ensureConnectorRole, ensureDemoEstate, estateConnectorUrl, probeTargetFromUrl, type DemoEstateResult } from '../../lib/estate';
import { MemoryNotifier } from '../../lib/notifier';
import { signAuthority, type Authority, type SignedMessage } from '../../lib/authority';
import { loadNhiPolicies } from '../../lib/policy-decisions';
import { upsertPrincipal } from '../../lib/principals';
import { generateCredential, TableSecretStore, type SecretStore } from '../../lib/secret-store';
import { projectRoot } from '../../lib/paths';
import { prebuildWorkflowBundle } from '../../workers/worker';
import { adminUrl, createTestDatabase, urlFor, type TestDatabase } from './db';
import { createLocalEnv, createTimeSkippingEnv } from './temporal';

export const DEMO_PRINCIPALS = [
  { id: 'alice', roles: ['requester'] as const },
  { id: 'dave', roles: ['requester'] as const },
  { id: 'bob', roles: ['approver'] as const },
  { id: 'carol', roles: ['approver'] as const },
  { id: 'erin', roles: ['approver', 'requester'] as const },
  { id: 'deploy-bot', roles: ['deployer'] as const },
  { id: 'detector-bot', roles: ['detector'] as const },
  { id: 'admin', roles: ['admin'] as const },
  // The second person that policy asks for before a high or critical NHI is finalised.
  { id: 'admin-2', roles: ['admin'] as const },
];

export interface TestWorld {
  db: TestDatabase;
  prefix: string;
  estate: DemoEstateResult;
  estateUrl: string;
  /** Superuser connection to the estate database, for assertions and for breaking things on purpose. */
  estateAdmin: Client;
  /** The estate server's role rules (PostgreSQL 15 differs from 16+). */
  roles: RoleSystem;
  connector: PostgresConnector;
  connectorRole: string;
  secrets: SecretStore;
  /** The secret store's key, for a worker in another process (crash tests). */
  secretKey: Buffer;
  notifier: MemoryNotifier;
  deps: ActivityDeps;
  env: TestWorkflowEnvironment;
  taskQueue: string;
  /** The Postgres role name behind a demo NHI id. */
  role(nhiId: string): string;
  /** Entitlement (group role) name under this world's prefix. */
  ent(name: string): string;
  memberships(nhiId: string): Promise<string[]>;
  /** Everything Postgres says about a role's access: login, limit, and each membership with its grantor and options. */
  roleState(nhiId: string): Promise<{ rolcanlogin: boolean; rolconnlimit: number; memberships: { group: string; grantor: string; admin_option: boolean; inherit_option: boolean; set_option: boolean }[] }>;
  /** Register one more NHI: a real login role the connector administers, with no memberships. */
  addNhi(nhi: { id: string; kind?: string; criticality?: string; tags?: string[]; owner?: string }): Promise<string>;
  /** Give an NHI a fresh password through the secret store (active version) and return it, for login tests. */
  issueCredential(nhiId: string): Promise<string>;
  /** The NHI's current password, from the secret store. */
  activePassword(nhiId: string): Promise<string>;
  /** A real session to the estate as the NHI's role (the caller ends it). */
  connectAs(nhiId: string, password: string): Promise<Client>;
  /** Log in as the NHI's role: 'ok', or the SQLSTATE the server refused with (28P01 wrong password, 28000 login not allowed). */
  login(nhiId: string, password: string): Promise<string>;
  /** The inventory's status of the NHI. */
  inventoryStatus(nhiId: string): Promise<string>;
  /** What the API does for a message that widens access: sign the principal for this workflow and message. */
  sign(workflowId: string, message: SignedMessage, principal: string): Authority;
  createWorker(
    activityOverrides?: Record<string, (...args: any[]) => Promise<unknown>>,
    options?: { taskQueue?: string; maxCachedWorkflows?: number; workflowBundle?: { code: string } },
  ): Promise<Worker>;
  teardown(): Promise<void>;
}

/** The run's one bundle of the workflow code (tests/global-setup.mjs), or a bundle of its own outside jest's setup. */
async function sharedWorkflowBundle(): Promise<Pick<WorkerOptions, 'workflowBundle'>> {
  const codePath = process.env.TEST_WORKFLOW_BUNDLE;
  return { workflowBundle: codePath ? { codePath } : await prebuildWorkflowBundle() };
}

/** With `runWorker`, a worker on the real activities runs until teardown (which stops it first). */
export async function createTestWorld(opts: { temporal: 'time-skipping' | 'local'; runWorker?: boolean }): Promise<TestWorld> {
  const prefix = `w${randomBytes(3).toString('hex')}_`;
  const db = await createTestDatabase();
  const secretKey = randomBytes(32);
  const secrets = new TableSecretStore(db.pool, secretKey);
  const connectorRole = `${prefix}connector`;
  const password = randomBytes(18).toString('base64url');
  await ensureConnectorRole(adminUrl(), { role: connectorRole, password });
  const estateDatabase = `${prefix}estate`;
  const estate = await ensureDemoEstate({ adminUrl: adminUrl(), estateDatabase, connectorRole, secretStore: secrets, orchestratorPool: db.pool, rolePrefix: prefix });
  const estateUrl = estateConnectorUrl(adminUrl(), { role: connectorRole, password, database: estateDatabase });
  const connector = createEstateConnector({ url: estateUrl, rolePrefix: prefix });
  const estateAdmin = new Client({ connectionString: urlFor(estateDatabase) });
  await estateAdmin.connect();
  const roles = await detectRoleSystem(estateAdmin);
  const notifier = new MemoryNotifier();
  const policy = loadNhiPolicies(path.join(projectRoot, 'policies'));
  for (const p of DEMO_PRINCIPALS) await upsertPrincipal(db.pool, { id: p.id, roles: [...p.roles] });
  const deps: ActivityDeps = { pool: db.pool, connectors: createConnectorRegistry([connector]), secrets, policy, notifier, authorityKey: randomBytes(32) };
  const env = opts.temporal === 'local' ? await createLocalEnv() : await createTimeSkippingEnv();
  if (opts.temporal === 'local') deps.temporal = { client: env.client, taskQueue: '' };
  const taskQueue = `tq-${prefix}`;
  if (deps.temporal) deps.temporal.taskQueue = taskQueue;
  const roleOf = new Map(estate.nhis.map((n) => [n.id, n.role]));

  const world: TestWorld = {
    db,
    prefix,
    estate,
    estateUrl,
    estateAdmin,
    roles,
    connector,
    connectorRole,
    secrets,
    secretKey,
    notifier,
    deps,
    env,
    taskQueue,
    role: (id) => roleOf.get(id) ?? `${prefix}${id}`,
    ent: (name) => `${prefix}${name}`,
    async memberships(nhiId) {
      const { rows } = await estateAdmin.query<{ g: string }>(
        `SELECT g.rolname AS g FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
         WHERE r.rolname = $1 ORDER BY 1`,
        [world.role(nhiId)],
      );
      return rows.map((r) => r.g);
    },
    async roleState(nhiId) {
      const { rows: r } = await estateAdmin.query('SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = $1', [world.role(nhiId)]);
      const { rows: m } = await estateAdmin.query(
        `SELECT g.rolname AS "group", gr.rolname AS grantor, m.admin_option, ${membershipOptionColumns(roles, 'm', 'r')}
           FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles gr ON gr.oid = m.grantor JOIN pg_roles r ON r.oid = m.member
          WHERE r.rolname = $1 ORDER BY 1, 2`,
        [world.role(nhiId)],
      );
      return { ...r[0], memberships: m };
    },
    async addNhi(nhi) {
      const role = `${prefix}${nhi.id}`;
      await estateAdmin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${randomBytes(12).toString('hex')}'`);
      await estateAdmin.query(adminOptionGrantSql(roles, role, connectorRole));
      await db.pool.query(
        `INSERT INTO nhis (id, kind, owner, connector, external_ref, criticality, tags) VALUES ($1, $2, $3, 'postgres', $4, $5, $6)`,
        [nhi.id, nhi.kind ?? 'service_account', nhi.owner ?? 'team-test', role, nhi.criticality ?? 'medium', nhi.tags ?? []],
      );
      roleOf.set(nhi.id, role);
      return role;
    },
    async issueCredential(nhiId) {
      const value = generateCredential();
      const pending = await secrets.putPending(nhiId, value);
      await estateAdmin.query(`ALTER ROLE ${world.role(nhiId)} PASSWORD '${scramSha256Verifier(value)}'`);
      await secrets.activate(pending.ref);
      return value;
    },
    async activePassword(nhiId) {
      return secrets.reveal((await secrets.active(nhiId))!.ref);
    },
    async connectAs(nhiId, password) {
      const c = new Client({ ...probeTargetFromUrl(estateUrl), user: world.role(nhiId), password, connectionTimeoutMillis: 5000 });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
    async login(nhiId, password) {
      try {
        await (await world.connectAs(nhiId, password)).end();
        return 'ok';
      } catch (err) {
        return (err as { code?: string }).code ?? String(err);
      }
    },
    async inventoryStatus(nhiId) {
      const { rows } = await db.pool.query<{ status: string }>('SELECT status FROM nhis WHERE id = $1', [nhiId]);
      return rows[0].status;
    },
    sign: (workflowId, message, principal) => signAuthority(deps.authorityKey, { workflowId, message, principal }),
    async createWorker(activityOverrides = {}, options = {}) {
      return Worker.create({
        connection: env.nativeConnection,
        namespace: env.namespace ?? 'default',
        taskQueue: options.taskQueue ?? taskQueue,
        ...(options.maxCachedWorkflows !== undefined ? { maxCachedWorkflows: options.maxCachedWorkflows } : {}),
        ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : await sharedWorkflowBundle()),
        activities: { ...createActivities(deps), ...activityOverrides },
      });
    },
    async teardown() {
      if (worker) {
        worker.shutdown();
        await running;
      }
      await env.teardown().catch(() => undefined);
      await connector.close().catch(() => undefined);
      await estateAdmin.end().catch(() => undefined);
      const admin = new Client({ connectionString: adminUrl() });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${estateDatabase} WITH (FORCE)`);
      await admin.end();
      await db.drop();
    },
  };
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  if (opts.runWorker) {
    worker = await world.createWorker();
    running = worker.run();
  }
  return world;
}
