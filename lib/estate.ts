// The demo estate (dev mode): a database of real Postgres roles for the scenarios to act on, the
// connector's own non-superuser role, and the helper that builds a connector for an estate.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, escapeIdentifier, escapeLiteral } from 'pg';
import { PostgresConnector, scramSha256Verifier, scramVerifierMatches, type PostgresProbeTarget } from '../connectors/postgres';
import {
  adminOptionGrantSql,
  detectRoleSystem,
  inheritedGrantSql,
  unsupportedVersionMessage,
  type RoleSystem,
} from '../connectors/postgres-roles';
import { createPool, type Pool } from './db';
import { generateCredential, type SecretStore } from './secret-store';

export const DEFAULT_CONNECTOR_ROLE = 'nhi_connector';
export const DEFAULT_ESTATE_DATABASE = 'estate';

const LOCK_CONNECTOR_ROLE = 872_341_003;
const LOCK_DEMO_ESTATE = 872_341_004;

type NhiKind = 'service_account' | 'api_key' | 'token' | 'integration' | 'ai_agent';
type Criticality = 'low' | 'medium' | 'high' | 'critical';

export interface DemoNhi {
  /** Inventory id; the Postgres role is `${rolePrefix}${id}`. */
  id: string;
  kind: NhiKind;
  owner: string;
  criticality: Criticality;
  tags: string[];
  usageBaseline: number | null;
  dependents: Array<Record<string, string>>;
  exposureHints: Array<{ repository: string; secretType: string }>;
  /** Entitlements (logical names = unprefixed group roles) it holds when first created. */
  memberOf: string[];
  description: string;
}

/** The demo estate's entitlements, as policies name them; the group role behind each is `${rolePrefix}${name}`. */
export const DEMO_GROUP_ROLES = ['estate_readonly', 'estate_writer', 'estate_admin'] as const;
export const DEMO_WRITE_CAPABLE = ['estate_writer', 'estate_admin'] as const;
/** What a throttle leaves of each write-capable entitlement: both also give estate_readonly's SELECTs. */
export const DEMO_READ_ONLY_FORMS: Record<string, string> = { estate_writer: 'estate_readonly', estate_admin: 'estate_readonly' };

/**
 * Where a demo credential could leak, once per vendor secret type a Postgres credential is reported
 * as: GitHub's `postgres_connection_uri`, GitGuardian's `postgres_assignment` and `postgres_credentials`
 * (docs/webhooks.md; the sample payloads in tests/scenarios/leak/fixtures/ name these repositories).
 */
export const POSTGRES_SECRET_TYPES = ['postgres_connection_uri', 'postgres_assignment', 'postgres_credentials'] as const;
const postgresHints = (repository: string) => POSTGRES_SECRET_TYPES.map((secretType) => ({ repository, secretType }));
/** The hints data folders made before got; a restart upgrades exactly these (never hints someone edited). */
const EARLIER_DEMO_HINTS: Record<string, { repository: string; secretType: string }[]> = {
  svc_payments: [{ repository: 'acme/payments-api', secretType: 'postgres_credentials' }],
  ci_deployer: [{ repository: 'acme/deploy-pipelines', secretType: 'postgres_credentials' }],
};

export const DEMO_NHIS: readonly DemoNhi[] = [
  {
    id: 'svc_payments',
    kind: 'service_account',
    owner: 'team-payments',
    criticality: 'critical',
    tags: ['payments', 'pci', 'production'],
    usageBaseline: null,
    dependents: [],
    exposureHints: postgresHints('acme-corp/payments-service'),
    memberOf: ['estate_writer'],
    description: 'payments-api service account',
  },
  {
    id: 'ci_deployer',
    kind: 'token',
    owner: 'team-platform',
    criticality: 'high',
    tags: ['ci', 'deploy', 'production'],
    usageBaseline: null,
    dependents: [],
    exposureHints: postgresHints('acme-corp/deploy-pipelines'),
    memberOf: ['estate_readonly'],
    description: 'CI pipeline deploy token',
  },
  {
    id: 'partner_acme',
    kind: 'integration',
    owner: 'team-partnerships',
    criticality: 'medium',
    tags: ['third-party', 'partner:acme'],
    usageBaseline: null,
    dependents: [{ id: 'acme-invoice-sync', kind: 'integration', owner: 'team-finance', description: 'Acme pulls paid invoices nightly' }],
    exposureHints: [],
    memberOf: ['estate_readonly'],
    description: 'Acme Corp third-party integration',
  },
  {
    id: 'agent_reports',
    kind: 'ai_agent',
    owner: 'team-data',
    criticality: 'medium',
    tags: ['ai-agent', 'reporting'],
    usageBaseline: 20,
    dependents: [],
    exposureHints: [],
    memberOf: ['estate_readonly'],
    description: 'reporting AI agent key',
  },
];

export interface DemoEstateRoles {
  /** The group roles (physical names, prefixed). */
  groups: string[];
  /** Entitlements by logical name (never prefixed: policies speak of these). */
  grantable: string[];
  writeCapable: string[];
  /** Logical entitlement name → its group role (PostgresConnectorOptions.entitlementRoles). */
  entitlementRoles: Record<string, string>;
  /** NHI id → its login role. */
  nhis: Array<{ id: string; role: string }>;
}

/** Names of the demo estate under a role prefix (tests and side-by-side copies share one cluster). */
export function demoEstateRoles(rolePrefix = ''): DemoEstateRoles {
  checkPrefix(rolePrefix);
  return {
    groups: DEMO_GROUP_ROLES.map((g) => rolePrefix + g),
    grantable: [...DEMO_GROUP_ROLES],
    writeCapable: [...DEMO_WRITE_CAPABLE],
    entitlementRoles: Object.fromEntries(DEMO_GROUP_ROLES.map((g) => [g, rolePrefix + g])),
    nhis: DEMO_NHIS.map((n) => ({ id: n.id, role: rolePrefix + n.id })),
  };
}

function checkPrefix(prefix: string) {
  if (prefix !== '' && !/^[a-z][a-z0-9_]{0,30}$/.test(prefix)) {
    throw new Error(`role prefix ${JSON.stringify(prefix)} must be lowercase letters, digits and _ (at most 31)`);
  }
}

function checkRoleName(role: string) {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(role)) throw new Error(`role name ${JSON.stringify(role)} must match [a-z_][a-z0-9_]{0,62}`);
}

function checkDatabaseName(db: string) {
  if (!db || db.includes('\0') || Buffer.byteLength(db) > 63) throw new Error(`database name ${JSON.stringify(db)} is not a valid Postgres name`);
}

function checkPassword(password: string) {
  // scramSha256Verifier matches the server's SASLprep only for printable ASCII.
  if (!/^[\x20-\x7e]{8,1024}$/.test(password)) throw new Error('the connector password must be 8-1024 printable ASCII characters');
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, application_name: 'nhi-estate-setup' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function inTransaction<T>(c: Client, lockKey: number, fn: () => Promise<T>): Promise<T> {
  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1)', [lockKey]);
    const result = await fn();
    await c.query('COMMIT');
    return result;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The connector's URL for an estate database: the base URL's server, with the connector's login. */
export function estateConnectorUrl(baseUrl: string, opts: { role: string; password: string; database?: string }): string {
  const u = new URL(baseUrl);
  u.username = encodeURIComponent(opts.role);
  u.password = encodeURIComponent(opts.password);
  if (opts.database !== undefined) u.pathname = `/${encodeURIComponent(opts.database)}`;
  return u.toString();
}

/** Where probe() logs in: the server and database of a connection URL, without its credentials. */
export function probeTargetFromUrl(url: string): PostgresProbeTarget {
  const u = new URL(url);
  const sslmode = u.searchParams.get('sslmode');
  const ssl =
    sslmode === 'disable' ? false : sslmode === 'no-verify' ? { rejectUnauthorized: false } : sslmode || u.searchParams.get('ssl') === 'true' ? true : undefined;
  return {
    host: decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: Number(u.port || 5432),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username),
    ...(ssl === undefined ? {} : { ssl }),
  };
}

export interface EstateConnectorOptions {
  /** The connector role's URL to the estate database (see estateConnectorUrl). */
  url: string;
  /** Entitlements by logical name; defaults to the demo estate's. */
  grantable?: string[];
  /** Defaults to the demo estate's when `grantable` is not given, else none. */
  writeCapable?: string[];
  /** Likewise: write-capable entitlement → its read-only form. */
  readOnlyForms?: Record<string, string>;
  /**
   * The estate's roles are `${rolePrefix}${name}`: a grantable entitlement without an explicit
   * `entitlementRoles` entry is the group role `${rolePrefix}${entitlement}`.
   */
  rolePrefix?: string;
  /** Logical entitlement name → group role, for roles not named `${rolePrefix}${entitlement}`. */
  entitlementRoles?: Record<string, string>;
  poolMax?: number;
}

/**
 * A PostgresConnector for an estate; it owns its pool (close() ends it). Its entitlements are the
 * logical names (`estate_admin`), whatever the prefix of the roles behind them.
 */
export function createEstateConnector(opts: EstateConnectorOptions): PostgresConnector {
  const rolePrefix = opts.rolePrefix ?? '';
  const demo = demoEstateRoles(rolePrefix);
  // 20, not 5: every reconcile waits here holding an orchestrator connection, and with 5 the estate
  // pool was the queue of every concurrent grant (docs/performance.md, bench:jit's pool column).
  const pool = createPool(opts.url, { max: opts.poolMax ?? 20, application_name: 'nhi-connector' });
  try {
    return new PostgresConnector(pool, {
      grantable: opts.grantable ?? demo.grantable,
      writeCapable: opts.writeCapable ?? (opts.grantable ? [] : demo.writeCapable),
      readOnlyForms: opts.readOnlyForms ?? (opts.grantable ? {} : DEMO_READ_ONLY_FORMS),
      entitlementRoles: opts.entitlementRoles,
      entitlementPrefix: rolePrefix,
      probe: probeTargetFromUrl(opts.url),
    });
  } catch (err) {
    void pool.end().catch(() => undefined);
    throw err;
  }
}

/** Dev mode: the connector role's password, generated once into the data folder (0600). */
export function loadOrCreateConnectorPassword(dataDir: string): string {
  const file = path.join(dataDir, 'estate-connector.password');
  if (existsSync(file)) {
    const value = readFileSync(file, 'utf8').trim();
    checkPassword(value);
    return value;
  }
  mkdirSync(dataDir, { recursive: true });
  const value = generateCredential();
  writeFileSync(file, value + '\n', { mode: 0o600 });
  return value;
}

/**
 * Create or repair the connector's role: LOGIN CREATEROLE, never superuser; pg_signal_backend (end
 * sessions) and pg_read_all_stats (see when sessions started). On 16+ it is NOINHERIT, so nothing is
 * inherited unless granted WITH INHERIT TRUE; 15 has no per-grant option, so there it is INHERIT.
 * Idempotent: a second call with the same password changes nothing.
 */
export async function ensureConnectorRole(
  adminUrl: string,
  opts: { role?: string; password: string },
): Promise<{ role: string; created: boolean; changed: boolean }> {
  const role = opts.role ?? DEFAULT_CONNECTOR_ROLE;
  checkRoleName(role);
  checkPassword(opts.password);
  const q = escapeIdentifier(role);
  return withClient(adminUrl, (c) =>
    inTransaction(c, LOCK_CONNECTOR_ROLE, async () => {
      const rs = await supportedRoleSystem(c);
      const inherit = rs.perGrantOptions ? 'NOINHERIT' : 'INHERIT';
      let created = false;
      let changed = false;
      const { rows } = await c.query<{ rolsuper: boolean; rolcanlogin: boolean; rolcreaterole: boolean; rolinherit: boolean }>(
        'SELECT rolsuper, rolcanlogin, rolcreaterole, rolinherit FROM pg_roles WHERE rolname = $1',
        [role],
      );
      if (!rows[0]) {
        await c.query(`CREATE ROLE ${q} LOGIN CREATEROLE NOSUPERUSER ${inherit} PASSWORD ${escapeLiteral(scramSha256Verifier(opts.password))}`);
        created = changed = true;
      } else {
        if (rows[0].rolsuper) throw new Error(`refusing to use ${role} as the connector role: it is a superuser`);
        if (!rows[0].rolcanlogin || !rows[0].rolcreaterole || (!rs.perGrantOptions && !rows[0].rolinherit)) {
          await c.query(`ALTER ROLE ${q} LOGIN CREATEROLE${rs.perGrantOptions ? '' : ' INHERIT'}`);
          changed = true;
        }
        if (!scramVerifierMatches(await storedVerifier(c, role), opts.password)) {
          await c.query(`ALTER ROLE ${q} PASSWORD ${escapeLiteral(scramSha256Verifier(opts.password))}`);
          changed = true;
        }
      }
      for (const builtin of ['pg_signal_backend', 'pg_read_all_stats']) {
        const { rows: m } = await c.query<{ usable: boolean }>(`SELECT pg_has_role($2::name, $1::name, 'USAGE') AS usable`, [builtin, role]);
        if (!m[0].usable) {
          await c.query(inheritedGrantSql(rs, builtin, role));
          changed = true;
        }
      }
      return { role, created, changed };
    }),
  );
}

async function supportedRoleSystem(c: Client): Promise<RoleSystem> {
  const rs = await detectRoleSystem(c);
  const unsupported = unsupportedVersionMessage(rs);
  if (unsupported) throw new Error(unsupported);
  return rs;
}

/** The stored verifier, or undefined when the admin may not read pg_authid (then the password is reset). */
async function storedVerifier(c: Client, role: string): Promise<string | undefined> {
  await c.query('SAVEPOINT read_authid');
  try {
    const { rows } = await c.query<{ rolpassword: string | null }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role]);
    await c.query('RELEASE SAVEPOINT read_authid');
    return rows[0]?.rolpassword ?? undefined;
  } catch {
    await c.query('ROLLBACK TO SAVEPOINT read_authid');
    return undefined;
  }
}

export interface DemoEstateOptions {
  /** A superuser URL on the estate's server (any database). */
  adminUrl: string;
  estateDatabase?: string;
  connectorRole?: string;
  secretStore: SecretStore;
  /** The orchestrator database, holding the `nhis` inventory. */
  orchestratorPool: Pool;
  rolePrefix?: string;
}

export interface DemoEstateResult {
  database: string;
  createdDatabase: boolean;
  createdRoles: string[];
  inventoryAdded: string[];
  /** NHI ids that got a fresh password (none active, or the active one unreadable with this key). */
  credentialsIssued: string[];
  nhis: Array<{ id: string; role: string }>;
  /** Entitlements by logical name (`estate_admin`), as policies and the connector speak of them. */
  grantable: string[];
  writeCapable: string[];
  /** Logical entitlement name → its (prefixed) group role. */
  entitlementRoles: Record<string, string>;
}

const TABLES_SQL = `
CREATE TABLE IF NOT EXISTS payments (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  reference     text NOT NULL UNIQUE,
  amount_cents  bigint NOT NULL CHECK (amount_cents > 0),
  currency      char(3) NOT NULL,
  status        text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS invoices (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  number        text NOT NULL UNIQUE,
  customer      text NOT NULL,
  amount_cents  bigint NOT NULL,
  due_on        date NOT NULL,
  paid_at       timestamptz
);
CREATE TABLE IF NOT EXISTS reports (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name          text NOT NULL,
  period        text NOT NULL,
  body          jsonb NOT NULL DEFAULT '{}',
  generated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (name, period)
);
CREATE TABLE IF NOT EXISTS deployments (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  service       text NOT NULL,
  version       text NOT NULL,
  environment   text NOT NULL,
  deployed_by   text NOT NULL,
  deployed_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (service, version, environment)
);`;

const SEED_SQL: Record<string, string> = {
  payments: `INSERT INTO payments (reference, amount_cents, currency, status) VALUES
    ('pay_0001', 12900, 'EUR', 'settled'), ('pay_0002', 4500, 'USD', 'settled'), ('pay_0003', 99000, 'EUR', 'pending')
    ON CONFLICT DO NOTHING`,
  invoices: `INSERT INTO invoices (number, customer, amount_cents, due_on, paid_at) VALUES
    ('INV-2024-001', 'Acme Corp', 250000, current_date - 20, now() - interval '10 days'),
    ('INV-2024-002', 'Globex', 120000, current_date + 10, NULL)
    ON CONFLICT DO NOTHING`,
  reports: `INSERT INTO reports (name, period, body) VALUES
    ('revenue', '2024-Q4', '{"total_cents": 1245000}'), ('churn', '2024-Q4', '{"rate": 0.021}')
    ON CONFLICT DO NOTHING`,
  deployments: `INSERT INTO deployments (service, version, environment, deployed_by) VALUES
    ('payments-api', '1.42.0', 'production', 'ci_deployer'), ('reports-agent', '0.9.3', 'staging', 'ci_deployer')
    ON CONFLICT DO NOTHING`,
};

function grantsSql(g: { readonly: string; writer: string; admin: string }): string {
  const [ro, rw, ad] = [g.readonly, g.writer, g.admin].map(escapeIdentifier);
  // Re-granting an existing privilege is a no-op, so these run every time.
  return `
GRANT SELECT ON payments, invoices, reports, deployments TO ${ro};
GRANT SELECT, INSERT, UPDATE ON payments, invoices, deployments TO ${rw};
GRANT SELECT ON reports TO ${rw};
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON payments, invoices, reports, deployments TO ${ad};`;
}

/** Give the connector ADMIN OPTION on a role (see adminOptionGrantSql); false when it already has it. */
async function ensureAdminOption(c: Client, rs: RoleSystem, role: string, connector: string): Promise<boolean> {
  const options = rs.perGrantOptions ? 'inherit_option OR set_option' : 'false';
  const { rows } = await c.query<{ admin_option: boolean; uses: boolean }>(
    `SELECT admin_option, ${options} AS uses FROM pg_auth_members
      WHERE roleid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND member = (SELECT oid FROM pg_roles WHERE rolname = $2)`,
    [role, connector],
  );
  if (rows.some((r) => r.admin_option) && !rows.some((r) => r.uses)) return false;
  await c.query(adminOptionGrantSql(rs, role, connector));
  return true;
}

/** For tests and operators: give `connector` ADMIN OPTION on `role`, as this server's version wants it. */
export async function grantAdminOption(adminUrl: string, role: string, connector: string): Promise<void> {
  await withClient(adminUrl, async (c) => {
    await ensureAdminOption(c, await supportedRoleSystem(c), role, connector);
  });
}

/**
 * Create the demo estate when missing. Roles get their memberships only when first created, and
 * inventory rows are only inserted, so a restart never undoes what a workflow did (an offboarded
 * partner stays offboarded). NHIs without a usable active secret get a fresh password.
 */
export async function ensureDemoEstate(opts: DemoEstateOptions): Promise<DemoEstateResult> {
  const database = opts.estateDatabase ?? DEFAULT_ESTATE_DATABASE;
  const connector = opts.connectorRole ?? DEFAULT_CONNECTOR_ROLE;
  const prefix = opts.rolePrefix ?? '';
  checkDatabaseName(database);
  checkRoleName(connector);
  const names = demoEstateRoles(prefix);
  for (const r of [...names.groups, ...names.nhis.map((n) => n.role)]) checkRoleName(r);
  const groupOf = (g: string) => names.entitlementRoles[g];
  const [readonly, writer, admin] = DEMO_GROUP_ROLES.map(groupOf);

  const createdDatabase = await withClient(opts.adminUrl, async (c) => {
    const { rows: conn } = await c.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = $1', [connector]);
    if (!conn[0]) throw new Error(`connector role ${connector} does not exist: call ensureConnectorRole first`);
    if (conn[0].rolsuper) throw new Error(`connector role ${connector} is a superuser; it must not be`);
    const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rows.length) return false;
    try {
      await c.query(`CREATE DATABASE ${escapeIdentifier(database)}`);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === '42P04') return false; // created concurrently
      throw err;
    }
  });

  const createdRoles = await withClient(withDatabase(opts.adminUrl, database), (c) =>
    inTransaction(c, LOCK_DEMO_ESTATE, async () => {
      const rs = await supportedRoleSystem(c);
      const created: string[] = [];

      for (const g of names.groups) {
        const { rows } = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [g]);
        if (!rows.length) {
          await c.query(`CREATE ROLE ${escapeIdentifier(g)} NOLOGIN`);
          created.push(g);
        }
        await ensureAdminOption(c, rs, g, connector);
      }

      const { rows: existing } = await c.query<{ t: string }>(
        `SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(format('public.%I', t)) IS NOT NULL`,
        [Object.keys(SEED_SQL)],
      );
      await c.query(TABLES_SQL);
      for (const [table, sql] of Object.entries(SEED_SQL)) {
        if (!existing.some((e) => e.t === table)) await c.query(sql);
      }
      await c.query(grantsSql({ readonly, writer, admin }));

      for (const nhi of DEMO_NHIS) {
        const role = prefix + nhi.id;
        const q = escapeIdentifier(role);
        const { rows } = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
        const isNew = rows.length === 0;
        if (isNew) {
          // No password yet: nobody can log in until the secret store holds one.
          await c.query(`CREATE ROLE ${q} LOGIN`);
          await c.query(`COMMENT ON ROLE ${q} IS ${escapeLiteral(`demo NHI: ${nhi.description} (managed by the NHI orchestrator)`)}`);
          created.push(role);
        }
        await ensureAdminOption(c, rs, role, connector);
        if (isNew) {
          // Granted by the connector, so the connector can revoke them later.
          for (const g of nhi.memberOf) {
            await c.query(inheritedGrantSql(rs, groupOf(g), role, connector));
          }
        }
      }
      return created;
    }),
  );

  const inventoryAdded: string[] = [];
  for (const nhi of DEMO_NHIS) {
    const role = prefix + nhi.id;
    const { rows } = await opts.orchestratorPool.query<{ id: string }>(
      `INSERT INTO nhis (id, kind, owner, connector, external_ref, criticality, tags, usage_baseline, dependents, exposure_hints)
       VALUES ($1, $2, $3, 'postgres', $4, $5, $6, $7, $8, $9)
       ON CONFLICT DO NOTHING RETURNING id`,
      [nhi.id, nhi.kind, nhi.owner, role, nhi.criticality, nhi.tags, nhi.usageBaseline, JSON.stringify(nhi.dependents), JSON.stringify(nhi.exposureHints)],
    );
    if (rows.length) inventoryAdded.push(nhi.id);
    else if (EARLIER_DEMO_HINTS[nhi.id]) {
      await opts.orchestratorPool.query(`UPDATE nhis SET exposure_hints = $2::jsonb, updated_at = now() WHERE id = $1 AND exposure_hints = $3::jsonb`, [
        nhi.id,
        JSON.stringify(nhi.exposureHints),
        JSON.stringify(EARLIER_DEMO_HINTS[nhi.id]),
      ]);
    }
  }

  const credentialsIssued: string[] = [];
  await withClient(opts.adminUrl, async (c) => {
    for (const nhi of DEMO_NHIS) {
      const role = prefix + nhi.id;
      const { rows } = await opts.orchestratorPool.query<{ external_ref: string; connector: string; status: string }>(
        'SELECT external_ref, connector, status FROM nhis WHERE id = $1',
        [nhi.id],
      );
      const row = rows[0];
      if (!row || row.connector !== 'postgres' || row.external_ref !== role) {
        throw new Error(`inventory row ${nhi.id} points at ${row ? `${row.connector}:${row.external_ref}` : 'nothing'}, not postgres:${role}`);
      }
      // An identity being (or already) offboarded must not get a credential back.
      if (row.status === 'offboarding' || row.status === 'offboarded') continue;
      if (await hasUsableSecret(opts.secretStore, nhi.id)) continue;
      const value = generateCredential();
      const pending = await opts.secretStore.putPending(nhi.id, value);
      try {
        await c.query(`ALTER ROLE ${escapeIdentifier(role)} PASSWORD ${escapeLiteral(scramSha256Verifier(value))}`);
      } catch (err) {
        await opts.secretStore.discard(pending.ref);
        throw new Error(`setting the password of ${role} failed: ${(err as Error).message}`);
      }
      await opts.secretStore.activate(pending.ref);
      credentialsIssued.push(nhi.id);
    }
  });

  return {
    database,
    createdDatabase,
    createdRoles,
    inventoryAdded,
    credentialsIssued,
    nhis: names.nhis,
    grantable: names.grantable,
    writeCapable: names.writeCapable,
    entitlementRoles: names.entitlementRoles,
  };
}

/** An active secret this store's key can decrypt (a new key makes the old ones unreadable). */
async function hasUsableSecret(store: SecretStore, nhiId: string): Promise<boolean> {
  const active = await store.active(nhiId);
  if (!active) return false;
  try {
    await store.reveal(active.ref);
    return true;
  } catch {
    return false;
  }
}
