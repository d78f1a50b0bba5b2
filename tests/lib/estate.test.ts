// The demo estate and the connector role on the run's real PostgreSQL. Role names are prefixed
// randomly (roles are cluster-wide); the estate and orchestrator databases are per file.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, escapeIdentifier } from 'pg';
import type { PostgresConnector } from '../../connectors/postgres';
import { detectRoleSystem, membershipOptionColumns, type RoleSystem } from '../../connectors/postgres-roles';
import { ConnectorErrorCode, PermanentConnectorError } from '../../connectors/types';
import {
  createEstateConnector,
  DEMO_GROUP_ROLES,
  DEMO_NHIS,
  DEMO_WRITE_CAPABLE,
  demoEstateRoles,
  ensureConnectorRole,
  ensureDemoEstate,
  estateConnectorUrl,
  loadOrCreateConnectorPassword,
  probeTargetFromUrl,
  type DemoEstateOptions,
} from '../../lib/estate';
import { generateCredential, TableSecretStore, type SecretStore } from '../../lib/secret-store';
import { adminUrl, createTestDatabase, urlFor, type TestDatabase } from '../helpers/db';

const prefix = `de${randomBytes(3).toString('hex')}_`;
const connectorRole = `${prefix}connector`;
const connectorPassword = generateCredential();
const estateDatabase = `estate_${randomBytes(4).toString('hex')}`;
const roles = demoEstateRoles(prefix);
const [RO, RW] = roles.groups;
const roleOf = (id: string) => prefix + id;

let orch: TestDatabase;
let store: SecretStore;
let estateAdmin: Client;
let connector: PostgresConnector;
let rs: RoleSystem;

const options = (over: Partial<DemoEstateOptions> = {}): DemoEstateOptions => ({
  adminUrl: adminUrl(),
  estateDatabase,
  connectorRole,
  secretStore: store,
  orchestratorPool: orch.pool,
  rolePrefix: prefix,
  ...over,
});

async function q(sql: string, params: unknown[] = []) {
  return (await estateAdmin.query(sql, params)).rows;
}

async function memberships(role: string) {
  return q(
    `SELECT r.rolname AS role, g.rolname AS grantor FROM pg_auth_members m
       JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles g ON g.oid = m.grantor
      WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1`,
    [role],
  );
}

async function allMemberships() {
  const out = [];
  for (const n of roles.nhis) out.push(await memberships(n.role)); // one client: one query at a time
  return out;
}

async function verifiers() {
  const rows = await q('SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1) ORDER BY 1', [roles.nhis.map((n) => n.role)]);
  return Object.fromEntries(rows.map((r) => [r.rolname, r.rolpassword]));
}

async function loginAs(role: string, password: string) {
  const c = new Client({ ...probeTargetFromUrl(urlFor(estateDatabase)), user: role, password });
  await c.connect();
  return c;
}

beforeAll(async () => {
  orch = await createTestDatabase({ prefix: 'orch' });
  store = new TableSecretStore(orch.pool, randomBytes(32));
  await ensureConnectorRole(adminUrl(), { role: connectorRole, password: connectorPassword });
  rs = await detectRoleSystem(orch.pool);
});

afterAll(async () => {
  await connector?.close();
  await estateAdmin?.end();
  const admin = new Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(estateDatabase)} WITH (FORCE)`);
  const mine = (await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)', [prefix])).rows.map(
    (r) => r.rolname,
  );
  const order = (r: string) => (r === connectorRole ? 2 : roles.groups.includes(r) ? 1 : 0);
  for (const r of mine.sort((a, b) => order(a) - order(b))) await admin.query(`DROP ROLE IF EXISTS ${escapeIdentifier(r)}`);
  await admin.end();
  await orch?.drop();
});

describe('ensureConnectorRole', () => {
  const role = `${prefix}conn_only`;

  test('creates a LOGIN CREATEROLE non-superuser with pg_signal_backend and pg_read_all_stats', async () => {
    const password = generateCredential();
    expect(await ensureConnectorRole(adminUrl(), { role, password })).toEqual({ role, created: true, changed: true });
    const admin = new Client({ connectionString: adminUrl() });
    await admin.connect();
    try {
      const { rows } = await admin.query(
        `SELECT rolsuper, rolcreaterole, rolcanlogin, rolinherit,
                pg_has_role($1, 'pg_signal_backend', 'USAGE') AS signal, pg_has_role($1, 'pg_read_all_stats', 'USAGE') AS stats
           FROM pg_roles WHERE rolname = $1`,
        [role],
      );
      // NOINHERIT on 16+ (only what is granted WITH INHERIT TRUE is used); 15 has no per-grant option.
      const rolinherit = !rs.perGrantOptions;
      expect(rows[0]).toEqual({ rolsuper: false, rolcreaterole: true, rolcanlogin: true, rolinherit, signal: true, stats: true });
      const before = (await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role])).rows[0].rolpassword;

      expect(await ensureConnectorRole(adminUrl(), { role, password })).toEqual({ role, created: false, changed: false });
      expect((await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role])).rows[0].rolpassword).toBe(before);

      // A new password (e.g. a new data folder) is applied.
      const next = generateCredential();
      expect(await ensureConnectorRole(adminUrl(), { role, password: next })).toEqual({ role, created: false, changed: true });
      const c = new Client({ connectionString: estateConnectorUrl(adminUrl(), { role, password: next, database: 'postgres' }) });
      await c.connect();
      await c.end();
    } finally {
      await admin.end();
    }
  });

  test('refuses a superuser and names that are not plain identifiers', async () => {
    await expect(ensureConnectorRole(adminUrl(), { role: 'postgres', password: generateCredential() })).rejects.toThrow(/superuser/);
    await expect(ensureConnectorRole(adminUrl(), { role: 'x"; DROP ROLE y; --', password: generateCredential() })).rejects.toThrow(/role name/);
    await expect(ensureConnectorRole(adminUrl(), { role, password: 'short' })).rejects.toThrow(/password/);
  });
});

describe('ensureDemoEstate', () => {
  test('refuses to run before the connector role exists', async () => {
    await expect(ensureDemoEstate(options({ connectorRole: `${prefix}missing` }))).rejects.toThrow(/ensureConnectorRole/);
    const admin = new Client({ connectionString: adminUrl() });
    await admin.connect();
    // Nothing was created.
    expect((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [estateDatabase])).rows).toEqual([]);
    await admin.end();
  });

  test('from empty: database, roles, memberships, tables, inventory and working credentials', async () => {
    const result = await ensureDemoEstate(options());
    expect(result).toMatchObject({
      database: estateDatabase,
      createdDatabase: true,
      inventoryAdded: DEMO_NHIS.map((n) => n.id),
      credentialsIssued: DEMO_NHIS.map((n) => n.id),
      // Entitlements by logical name; the roles behind them carry the prefix.
      grantable: ['estate_readonly', 'estate_writer', 'estate_admin'],
      writeCapable: ['estate_writer', 'estate_admin'],
      entitlementRoles: { estate_readonly: RO, estate_writer: RW, estate_admin: `${prefix}estate_admin` },
    });
    expect([...result.createdRoles].sort()).toEqual([...roles.groups, ...roles.nhis.map((n) => n.role)].sort());

    estateAdmin = new Client({ connectionString: urlFor(estateDatabase) });
    await estateAdmin.connect();

    const roleRows = await q('SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1', [prefix]);
    const byName = Object.fromEntries(roleRows.map((r) => [r.rolname, r]));
    for (const g of roles.groups) expect(byName[g]).toMatchObject({ rolcanlogin: false, rolsuper: false });
    for (const n of roles.nhis) expect(byName[n.role]).toMatchObject({ rolcanlogin: true, rolsuper: false });
    expect(byName[connectorRole]).toMatchObject({ rolsuper: false });

    // Memberships as specified, granted by the connector so that it can revoke them.
    for (const nhi of DEMO_NHIS) {
      expect(await memberships(roleOf(nhi.id))).toEqual(nhi.memberOf.map((g) => ({ role: prefix + g, grantor: connectorRole })));
    }

    // The connector administers every role without gaining its privileges.
    const adminRows = await q(
      `SELECT r.rolname, m.admin_option, ${membershipOptionColumns(rs, 'm', 'c')} FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
         JOIN pg_roles c ON c.oid = m.member
        WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1) AND starts_with(r.rolname, $2) ORDER BY 1`,
      [connectorRole, prefix],
    );
    expect(adminRows).toEqual(
      [...roles.groups, ...roles.nhis.map((n) => n.role)]
        .sort()
        // On 15 ADMIN OPTION is a plain membership: the (INHERIT) connector uses the role's privileges.
        .map((rolname) => ({ rolname, admin_option: true, inherit_option: !rs.perGrantOptions, set_option: !rs.perGrantOptions })),
    );

    const privs = await q(
      `SELECT has_table_privilege($1, 'payments', 'SELECT') AS ro_select, has_table_privilege($1, 'payments', 'INSERT') AS ro_insert,
              has_table_privilege($2, 'payments', 'INSERT') AS rw_insert, has_table_privilege($2, 'reports', 'INSERT') AS rw_reports,
              (SELECT count(*)::int FROM payments) AS payments, (SELECT count(*)::int FROM deployments) AS deployments`,
      [RO, RW],
    );
    expect(privs[0]).toEqual({ ro_select: true, ro_insert: false, rw_insert: true, rw_reports: false, payments: 3, deployments: 2 });

    const inventory = (await orch.pool.query('SELECT * FROM nhis ORDER BY id')).rows;
    expect(inventory.map((r) => r.id)).toEqual(DEMO_NHIS.map((n) => n.id).sort());
    for (const nhi of DEMO_NHIS) {
      const row = inventory.find((r) => r.id === nhi.id);
      expect(row).toMatchObject({
        kind: nhi.kind,
        owner: nhi.owner,
        connector: 'postgres',
        external_ref: roleOf(nhi.id),
        criticality: nhi.criticality,
        tags: nhi.tags,
        usage_baseline: nhi.usageBaseline,
        dependents: nhi.dependents,
        exposure_hints: nhi.exposureHints,
        status: 'active',
      });
    }
    const byId = Object.fromEntries(inventory.map((r) => [r.id, r]));
    expect(byId.svc_payments).toMatchObject({ kind: 'service_account', owner: 'team-payments', criticality: 'critical' });
    // Every vendor type a Postgres credential is reported as, for the repository the sample payloads name.
    expect(byId.svc_payments.exposure_hints).toEqual(
      ['postgres_connection_uri', 'postgres_assignment', 'postgres_credentials'].map((secretType) => ({ repository: 'acme-corp/payments-service', secretType })),
    );
    expect(byId.partner_acme.dependents).toHaveLength(1);
    expect(byId.agent_reports.usage_baseline).toBeGreaterThan(0);

    connector = createEstateConnector({
      url: estateConnectorUrl(adminUrl(), { role: connectorRole, password: connectorPassword, database: estateDatabase }),
      rolePrefix: prefix,
    });
    for (const nhi of DEMO_NHIS) {
      const active = await store.active(nhi.id);
      expect(active).toMatchObject({ version: 1, status: 'active' });
      const value = await store.reveal(active!.ref);
      expect(await connector.probe(roleOf(nhi.id), value)).toEqual({ access: 'granted' });
    }
    expect(await connector.listIdentities()).toEqual(
      DEMO_NHIS.map((n) => ({ identity: roleOf(n.id), canLogin: true, entitlements: [...n.memberOf].sort() })).sort((a, b) =>
        a.identity < b.identity ? -1 : 1,
      ),
    );

    // The grants are real: the writer can write, the read-only CI token cannot.
    const pay = await loginAs(roleOf('svc_payments'), await store.reveal((await store.active('svc_payments'))!.ref));
    await pay.query(`INSERT INTO payments (reference, amount_cents, currency, status) VALUES ('pay_test', 100, 'EUR', 'pending')`);
    await pay.end();
    const ci = await loginAs(roleOf('ci_deployer'), await store.reveal((await store.active('ci_deployer'))!.ref));
    await expect(ci.query(`INSERT INTO deployments (service, version, environment, deployed_by) VALUES ('x', '1', 'prod', 'ci')`)).rejects.toMatchObject({
      code: '42501',
    });
    expect((await ci.query('SELECT count(*)::int AS n FROM deployments')).rows[0].n).toBe(2);
    await ci.end();
  });

  test('its connector speaks of entitlements as policies do; the prefixed roles are what changes', async () => {
    const ci = roleOf('ci_deployer');
    expect(await connector.listGrantableEntitlements()).toEqual(['estate_admin', 'estate_readonly', 'estate_writer']);
    expect(await connector.listEntitlements(roleOf('svc_payments'))).toEqual(['estate_writer']);
    expect(await connector.listEntitlements(ci)).toEqual(['estate_readonly']);

    expect(await connector.grant(ci, 'estate_admin')).toEqual({ changed: true });
    expect(await memberships(ci)).toEqual([
      { role: `${prefix}estate_admin`, grantor: connectorRole },
      { role: RO, grantor: connectorRole },
    ]);
    expect(await connector.hasEntitlement(ci, 'estate_admin')).toBe(true);
    expect((await connector.readAccess(ci)).entitlements).toEqual(['estate_admin', 'estate_readonly']);

    // The physical name is no entitlement of this connector: refused, nothing changes.
    const err = await connector.grant(ci, `${prefix}estate_writer`).catch((e) => e);
    expect(err).toBeInstanceOf(PermanentConnectorError);
    expect(err.code).toBe(ConnectorErrorCode.EntitlementNotGrantable);

    expect(await connector.revoke(ci, 'estate_admin')).toEqual({ changed: true });
    expect(await memberships(ci)).toEqual([{ role: RO, grantor: connectorRole }]);
  });

  test('a second run changes nothing', async () => {
    const secretsBefore = await Promise.all(DEMO_NHIS.map((n) => store.list(n.id)));
    const verifiersBefore = await verifiers();
    const membershipsBefore = await allMemberships();
    const inventoryBefore = (await orch.pool.query('SELECT * FROM nhis ORDER BY id')).rows;

    const result = await ensureDemoEstate(options());
    expect(result).toMatchObject({ createdDatabase: false, createdRoles: [], inventoryAdded: [], credentialsIssued: [] });

    expect(await Promise.all(DEMO_NHIS.map((n) => store.list(n.id)))).toEqual(secretsBefore);
    expect(await verifiers()).toEqual(verifiersBefore);
    expect(await allMemberships()).toEqual(membershipsBefore);
    expect((await orch.pool.query('SELECT * FROM nhis ORDER BY id')).rows).toEqual(inventoryBefore);
    expect((await q('SELECT count(*)::int AS n FROM payments'))[0].n).toBe(4); // 3 seeded + the test's insert, nothing re-seeded
  });

  test('a restart upgrades the earlier default exposure hints, and leaves edited ones alone', async () => {
    const hints = async (id: string) => (await orch.pool.query('SELECT exposure_hints FROM nhis WHERE id = $1', [id])).rows[0].exposure_hints;
    const current = await hints('svc_payments');
    await orch.pool.query(`UPDATE nhis SET exposure_hints = $2 WHERE id = $1`, ['svc_payments', JSON.stringify([{ repository: 'acme/payments-api', secretType: 'postgres_credentials' }])]);
    const edited = [{ repository: 'acme/deploy-pipelines', secretType: 'postgres_credentials' }, { repository: 'acme/other', secretType: 'custom' }];
    await orch.pool.query(`UPDATE nhis SET exposure_hints = $2 WHERE id = $1`, ['ci_deployer', JSON.stringify(edited)]);
    await ensureDemoEstate(options());
    expect(await hints('svc_payments')).toEqual(current);
    expect(await hints('ci_deployer')).toEqual(edited);
  });

  test('a restart never undoes a workflow: an offboarded partner stays offboarded', async () => {
    const partner = roleOf('partner_acme');
    await connector.revoke(partner, 'estate_readonly');
    await connector.setLogin(partner, false);
    await orch.pool.query(`UPDATE nhis SET status = 'offboarded' WHERE id = 'partner_acme'`);
    await store.deleteAll('partner_acme');

    const result = await ensureDemoEstate(options());
    expect(result.credentialsIssued).toEqual([]);
    expect(await memberships(partner)).toEqual([]);
    expect((await q('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [partner]))[0].rolcanlogin).toBe(false);
    expect(await store.active('partner_acme')).toBeNull();
  });

  test('an NHI without a usable active secret gets a fresh password; the old one stops working', async () => {
    const oldAgent = await store.reveal((await store.active('agent_reports'))!.ref);
    await orch.pool.query(`UPDATE secrets SET status = 'retired', retired_at = now() WHERE nhi_id = 'agent_reports' AND status = 'active'`);
    expect((await ensureDemoEstate(options())).credentialsIssued).toEqual(['agent_reports']);
    const fresh = await store.active('agent_reports');
    expect(fresh).toMatchObject({ version: 2, status: 'active' });
    expect(await connector.probe(roleOf('agent_reports'), await store.reveal(fresh!.ref))).toEqual({ access: 'granted' });
    expect(await connector.probe(roleOf('agent_reports'), oldAgent)).toMatchObject({ access: 'denied', code: '28P01' });

    // A new secret-store key makes every stored value unreadable: all active NHIs are re-issued.
    const rekeyed = new TableSecretStore(orch.pool, randomBytes(32));
    const result = await ensureDemoEstate(options({ secretStore: rekeyed }));
    expect(result.credentialsIssued).toEqual(['svc_payments', 'ci_deployer', 'agent_reports']);
    for (const id of result.credentialsIssued) {
      expect(await connector.probe(roleOf(id), await rekeyed.reveal((await rekeyed.active(id))!.ref))).toEqual({ access: 'granted' });
    }
    expect((await ensureDemoEstate(options({ secretStore: rekeyed }))).credentialsIssued).toEqual([]);
  });
});

describe('helpers', () => {
  test('demoEstateRoles: logical entitlements, prefixed roles', () => {
    expect(demoEstateRoles('p1_')).toEqual({
      groups: ['p1_estate_readonly', 'p1_estate_writer', 'p1_estate_admin'],
      grantable: [...DEMO_GROUP_ROLES],
      writeCapable: [...DEMO_WRITE_CAPABLE],
      entitlementRoles: { estate_readonly: 'p1_estate_readonly', estate_writer: 'p1_estate_writer', estate_admin: 'p1_estate_admin' },
      nhis: DEMO_NHIS.map((n) => ({ id: n.id, role: `p1_${n.id}` })),
    });
    expect(demoEstateRoles().entitlementRoles).toEqual({ estate_readonly: 'estate_readonly', estate_writer: 'estate_writer', estate_admin: 'estate_admin' });
    expect(() => demoEstateRoles('X"; --')).toThrow(/prefix/);
  });

  test('estateConnectorUrl and probeTargetFromUrl keep the server, swap the login', () => {
    const url = estateConnectorUrl('postgres://postgres:pw@db.example:6543/postgres?sslmode=require', {
      role: 'nhi_connector',
      password: 'p@ss/w:rd',
      database: 'estate',
    });
    const u = new URL(url);
    expect([u.hostname, u.port, u.pathname, decodeURIComponent(u.username), decodeURIComponent(u.password)]).toEqual([
      'db.example',
      '6543',
      '/estate',
      'nhi_connector',
      'p@ss/w:rd',
    ]);
    expect(probeTargetFromUrl(url)).toEqual({ host: 'db.example', port: 6543, database: 'estate', ssl: true });
    expect(probeTargetFromUrl('postgres://u@127.0.0.1/x')).toEqual({ host: '127.0.0.1', port: 5432, database: 'x' });
  });

  test('loadOrCreateConnectorPassword generates once, private to the owner', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nhi-estate-'));
    try {
      const first = loadOrCreateConnectorPassword(dir);
      expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(loadOrCreateConnectorPassword(dir)).toBe(first);
      expect(statSync(path.join(dir, 'estate-connector.password')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
