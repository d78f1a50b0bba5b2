// The Postgres connector on the run's real PostgreSQL, as a non-superuser role. Roles are
// cluster-wide, so every fixture prefixes its role names randomly. The contract runs twice: with
// entitlements named by their group roles, and with logical names mapped onto prefixed roles.
import { randomBytes } from 'node:crypto';
import { Client, escapeIdentifier, escapeLiteral } from 'pg';
import { PostgresConnector, resolveEntitlementRoles, scramSha256Verifier, scramVerifierMatches } from '../../connectors/postgres';
import { adminOptionGrantSql, detectRoleSystem, membershipOptionColumns, type RoleSystem } from '../../connectors/postgres-roles';
import { ConnectorErrorCode, PermanentConnectorError } from '../../connectors/types';
import { createPool } from '../../lib/db';
import { createEstateConnector, ensureConnectorRole, estateConnectorUrl, probeTargetFromUrl } from '../../lib/estate';
import { generateCredential } from '../../lib/secret-store';
import { createTestDatabase, urlFor, type TestDatabase } from '../helpers/db';
import { runConnectorContract, type ContractTarget } from './contract';

interface Fixture extends ContractTarget {
  connector: PostgresConnector;
  prefix: string;
  estate: TestDatabase;
  connectorRole: string;
  connectorUrl: string;
  /** The server's role rules (PostgreSQL 15 differs from 16+). */
  roles: RoleSystem;
  /** The group roles (physical names). */
  groups: Groups;
  /** The same, as the connector names them (logical names where mapped; `other` is never mapped). */
  ents: Groups;
  /** A role name → how the connector should report a membership in it (the fixture's own mapping). */
  reportedAs(role: string): string;
  openSessionOn(identity: string, secret: string, database: string): ReturnType<ContractTarget['openSession']>;
  sql(text: string, params?: unknown[]): Promise<Record<string, any>[]>;
}

type Groups = { ro: string; rw: string; admin: string; other: string; hostile: string };

/**
 * `logical`: the connector speaks of entitlements as `readonly`, `writer`, `admin` and a hostile
 * name; the roles behind them are `${prefix}_` + that name (entitlementPrefix), except `admin`,
 * mapped explicitly onto `${prefix}_administrators`.
 */
async function createFixture(opts: { logical?: boolean } = {}): Promise<Fixture> {
  const prefix = `ct${randomBytes(3).toString('hex')}`;
  const estate = await createTestDatabase({ migrate: false, prefix: 'estate' });
  const connectorRole = `${prefix}_connector`;
  const connectorPassword = generateCredential();
  await ensureConnectorRole(estate.url, { role: connectorRole, password: connectorPassword });
  const canary = `${prefix}_canary`;
  const hostileName = `g"'; DROP ROLE ${canary}; --`;
  const groups: Groups = opts.logical
    ? {
        ro: `${prefix}_readonly`,
        rw: `${prefix}_writer`,
        admin: `${prefix}_administrators`,
        other: `${prefix}_other`,
        hostile: `${prefix}_${hostileName}`,
      }
    : {
        ro: `${prefix}_ro`,
        rw: `${prefix}_rw`,
        admin: `${prefix}_admin`,
        other: `${prefix}_other`,
        hostile: `${prefix}_${hostileName}`,
      };
  const ents: Groups = opts.logical ? { ro: 'readonly', rw: 'writer', admin: 'admin', other: groups.other, hostile: hostileName } : groups;
  const logicalOf = new Map((Object.keys(groups) as Array<keyof Groups>).map((k) => [groups[k], ents[k]]));
  const reportedAs = (role: string) => logicalOf.get(role) ?? role;
  const sql = async (text: string, params: unknown[] = []) => (await estate.pool.query(text, params)).rows;
  const roles = await detectRoleSystem(estate.pool);
  const adminOn = (role: string) => sql(adminOptionGrantSql(roles, role, connectorRole));
  await sql(`CREATE ROLE ${escapeIdentifier(canary)} NOLOGIN`);
  for (const g of Object.values(groups)) {
    await sql(`CREATE ROLE ${escapeIdentifier(g)} NOLOGIN`);
    // Even `other` is administered: only the grantable list keeps the connector from granting it.
    await adminOn(g);
  }
  const connectorUrl = estateConnectorUrl(estate.url, { role: connectorRole, password: connectorPassword });
  const connector = createEstateConnector({
    url: connectorUrl,
    grantable: [ents.ro, ents.rw, ents.admin, ents.hostile],
    writeCapable: [ents.rw, ents.admin],
    ...(opts.logical ? { rolePrefix: `${prefix}_`, entitlementRoles: { [ents.admin]: groups.admin } } : {}),
  });
  const probe = probeTargetFromUrl(estate.url);
  let n = 0;
  async function openSessionOn(identity: string, secret: string, database: string) {
    const client = new Client({ ...probe, database, user: identity, password: secret });
    client.on('error', () => undefined); // terminated on purpose
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return { id: rows[0].pid, close: () => client.end().catch(() => undefined) };
  }

  return {
    connector,
    prefix,
    estate,
    connectorRole,
    connectorUrl,
    roles,
    groups,
    ents,
    reportedAs,
    sql,
    entitlements: { readOnly: ents.ro, writeCapable: ents.rw, notGrantable: ents.other, hostile: ents.hostile },
    hostileIdentityName: `${prefix}_i"'); DROP ROLE ${canary}; --`,
    newSecret: generateCredential,
    async newIdentity(name = `${prefix}_id${++n}`) {
      const secret = generateCredential();
      // The fixture sets the password in plain text so the server hashes it, independent of the connector.
      await sql(`CREATE ROLE ${escapeIdentifier(name)} LOGIN PASSWORD ${escapeLiteral(secret)}`);
      await adminOn(name);
      return { identity: name, secret };
    },
    inspect: {
      // Read from pg_auth_members, named by the fixture's own mapping (not the connector's).
      async memberships(identity) {
        const rows = await sql(
          `SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
            WHERE u.rolname = $1`,
          [identity],
        );
        return [...new Set(rows.map((r) => reportedAs(r.rolname as string)))].sort();
      },
      async account(identity) {
        const rows = await sql('SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = $1', [identity]);
        return rows[0] ? { canLogin: rows[0].rolcanlogin, connectionLimit: rows[0].rolconnlimit } : null;
      },
      async sessionAlive(pid) {
        return (await sql('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).length > 0;
      },
      async canaryIntact() {
        return (await sql('SELECT 1 FROM pg_roles WHERE rolname = $1', [canary])).length === 1;
      },
    },
    openSession(identity, secret) {
      return openSessionOn(identity, secret, estate.name);
    },
    openSessionOn,
    codes: { wrongCredential: '28P01', loginDisabled: '28000', connectionLimit: '53300' },
    async teardown() {
      await connector.close();
      const mine = (await sql(`SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)`, [`${prefix}_`])).map((r) => r.rolname as string);
      await sql(`SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = ANY($1)`, [mine]);
      await estate.drop();
      // Identities first (they hold memberships the connector granted), then groups, then the connector.
      const order = (r: string) => (r === connectorRole ? 2 : Object.values(groups).includes(r) || r === canary ? 1 : 0);
      const admin = new Client({ connectionString: urlFor('postgres') });
      await admin.connect();
      for (const r of mine.sort((a, b) => order(a) - order(b))) await admin.query(`DROP ROLE IF EXISTS ${escapeIdentifier(r)}`);
      await admin.end();
    },
  };
}

const PG_CAPABILITIES = { connectionLimit: true, sessions: 'terminate' } as const;
runConnectorContract('postgres', () => createFixture(), PG_CAPABILITIES);
runConnectorContract('postgres (logical entitlement names)', () => createFixture({ logical: true }), PG_CAPABILITIES);

describe('postgres connector specifics', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await createFixture();
  });
  afterAll(async () => {
    await f?.teardown();
  });

  test('its role is not a superuser; on 16+ it cannot use the privileges of the roles it manages', async () => {
    const { identity } = await f.newIdentity();
    const client = new Client({ connectionString: f.connectorUrl });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT current_user AS me, r.rolsuper, r.rolcreaterole,
                pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS can_signal,
                pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_stats,
                pg_has_role(current_user, $1, 'MEMBER WITH ADMIN OPTION') AS admin_identity,
                pg_has_role(current_user, $1, 'USAGE') AS uses_identity,
                pg_has_role(current_user, $1, '${f.roles.perGrantOptions ? 'SET' : 'MEMBER'}') AS sets_identity,
                pg_has_role(current_user, $2, 'USAGE') AS uses_group
           FROM pg_roles r WHERE r.rolname = current_user`,
        [identity, f.groups.rw],
      );
      // PostgreSQL 15 has no per-grant INHERIT/SET: ADMIN OPTION makes the connector a member that
      // uses the role's privileges (a CREATEROLE role on 15 can take them anyway).
      const usesManaged = !f.roles.perGrantOptions;
      expect(rows[0]).toEqual({
        me: f.connectorRole,
        rolsuper: false,
        rolcreaterole: true,
        can_signal: true,
        can_read_stats: true,
        admin_identity: true,
        uses_identity: usesManaged,
        sets_identity: usesManaged,
        uses_group: usesManaged,
      });
    } finally {
      await client.end();
    }
  });

  test('checkSetup names the server and finds nothing wrong with a role made by ensureConnectorRole', async () => {
    expect(await f.connector.checkSetup()).toEqual({
      target: `PostgreSQL ${f.roles.version} as ${f.connectorRole}`,
      roleProblems: [],
      problems: [],
    });
  });

  test('checkSetup says what the connector role lacks on this version, and the connector refuses to act until fixed', async () => {
    const role = `${f.prefix}_weak`;
    const password = generateCredential();
    await f.sql(`CREATE ROLE ${role} LOGIN PASSWORD ${escapeLiteral(password)}`);
    const missing = `${f.prefix}_missing`;
    const weak = new PostgresConnector(createPool(estateConnectorUrl(f.estate.url, { role, password })), {
      grantable: [f.groups.ro, missing],
      probe: probeTargetFromUrl(f.estate.url),
    });
    try {
      const setup = await weak.checkSetup();
      expect(setup.roleProblems).toEqual([
        `role ${role} lacks CREATEROLE: ALTER ROLE "${role}" CREATEROLE`,
        expect.stringContaining(`role ${role} cannot use pg_signal_backend to end sessions: GRANT pg_signal_backend TO "${role}"`),
        expect.stringContaining(`role ${role} cannot use pg_read_all_stats to see when sessions started: GRANT pg_read_all_stats TO "${role}"`),
      ]);
      // Entitlements in name order.
      expect(setup.problems.slice(3)).toEqual([
        `entitlement ${JSON.stringify(missing)}: role ${JSON.stringify(missing)} does not exist`,
        `entitlement ${JSON.stringify(f.groups.ro)}: no ADMIN OPTION on role ${JSON.stringify(f.groups.ro)}: ${adminOptionGrantSql(f.roles, f.groups.ro, role)}`,
      ]);
      const { identity } = await f.newIdentity();
      const err = await weak.grant(identity, f.groups.ro).catch((e) => e);
      expect(err).toBeInstanceOf(PermanentConnectorError);
      expect(err.code).toBe(ConnectorErrorCode.Misconfigured);
      expect(err.message).toContain('lacks CREATEROLE');
      expect(await f.inspect.memberships(identity)).toEqual([]);
    } finally {
      await weak.close();
    }
  });

  test('an entitlement role it has no ADMIN OPTION on is refused, on every version', async () => {
    const { identity } = await f.newIdentity();
    const outside = `${f.prefix}_outside`;
    await f.sql(`CREATE ROLE ${escapeIdentifier(outside)} NOLOGIN`);
    const wide = createEstateConnector({ url: f.connectorUrl, grantable: [outside] });
    try {
      const err = await wide.grant(identity, outside).catch((e) => e);
      expect(err).toBeInstanceOf(PermanentConnectorError);
      expect(err.code).toBe(ConnectorErrorCode.InsufficientPrivilege);
      expect(err.message).toContain('no ADMIN OPTION');
      expect(await f.inspect.memberships(identity)).toEqual([]);
    } finally {
      await wide.close();
    }
  });

  test('refuses to run as a superuser', async () => {
    const { identity } = await f.newIdentity();
    const asSuperuser = new PostgresConnector(createPool(f.estate.url), { grantable: [f.groups.ro], probe: probeTargetFromUrl(f.estate.url) });
    try {
      const err = await asSuperuser.grant(identity, f.groups.ro).catch((e) => e);
      expect(err).toBeInstanceOf(PermanentConnectorError);
      expect(err.code).toBe(ConnectorErrorCode.Misconfigured);
      expect(await f.inspect.memberships(identity)).toEqual([]);
    } finally {
      await asSuperuser.close();
    }
  });

  test('writeCapable must be a subset of grantable', () => {
    const pool = createPool(f.connectorUrl);
    expect(() => new PostgresConnector(pool, { grantable: ['a'], writeCapable: ['b'], probe: probeTargetFromUrl(f.connectorUrl) })).toThrow(/subset|grantable/);
    return pool.end();
  });

  test('roles it does not administer are out of reach: not managed, nothing changes', async () => {
    const stranger = `${f.prefix}_stranger`;
    await f.sql(`CREATE ROLE ${stranger} LOGIN`);
    for (const who of [stranger, f.connectorRole, 'postgres']) {
      const before = await f.inspect.memberships(who);
      const err = await f.connector.grant(who, f.groups.rw).catch((e) => e);
      expect(err).toBeInstanceOf(PermanentConnectorError);
      expect(err.code).toBe(ConnectorErrorCode.IdentityNotManaged);
      expect(await f.inspect.memberships(who)).toEqual(before);
    }
    const [row] = await f.sql(
      'SELECT count(*)::int AS n FROM pg_auth_members WHERE member = $1::regrole AND roleid = $2::regrole',
      [f.connectorRole, f.groups.rw],
    );
    expect(row.n).toBe(1); // only its ADMIN OPTION grant
    expect((await f.connector.listIdentities()).map((d) => d.identity)).not.toContain(stranger);
  });

  test('a name longer than 63 bytes is rejected, never truncated onto another role', async () => {
    const base = `${f.prefix}_${'l'.repeat(63 - f.prefix.length - 1)}`;
    expect(Buffer.byteLength(base)).toBe(63);
    const { identity } = await f.newIdentity(base);
    for (const name of [`${base}zzz`, `${f.prefix}_${'é'.repeat(30)}`]) {
      const err = await f.connector.grant(name, f.groups.ro).catch((e) => e);
      expect(err).toBeInstanceOf(PermanentConnectorError);
      expect(err.code).toBe(ConnectorErrorCode.InvalidName);
    }
    expect(await f.inspect.memberships(identity)).toEqual([]);
    expect(await f.connector.grant(identity, f.groups.ro)).toEqual({ changed: true });
  });

  test('a membership granted by another administrator: revoke_blocked on 16+, revoked on 15', async () => {
    const { identity } = await f.newIdentity();
    // Granted by the superuser: on 16+ a CREATEROLE role may only revoke grants it (or a role it acts as) made.
    await f.sql(`GRANT ${escapeIdentifier(f.groups.ro)} TO ${escapeIdentifier(identity)}`);
    if (!f.roles.perGrantOptions) {
      expect(await f.connector.revoke(identity, f.groups.ro)).toEqual({ changed: true });
      expect(await f.inspect.memberships(identity)).toEqual([]);
      return;
    }
    const err = await f.connector.revoke(identity, f.groups.ro).catch((e) => e);
    expect(err).toBeInstanceOf(PermanentConnectorError);
    expect(err.code).toBe(ConnectorErrorCode.RevokeBlocked);
    expect(err.message).toContain('postgres');
    expect(await f.inspect.memberships(identity)).toEqual([f.groups.ro]);
    expect(await f.connector.hasEntitlement(identity, f.groups.ro)).toBe(true);
  });

  test('the connector is recorded as grantor of what it grants', async () => {
    const { identity } = await f.newIdentity();
    await f.connector.grant(identity, f.groups.rw);
    const rows = await f.sql(
      `SELECT g.rolname AS grantor, ${membershipOptionColumns(f.roles, 'm', 'u')}
         FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.grantor JOIN pg_roles u ON u.oid = m.member
        WHERE m.member = $1::regrole AND m.roleid = $2::regrole`,
      [escapeIdentifier(identity), escapeIdentifier(f.groups.rw)],
    );
    expect(rows).toEqual([{ grantor: f.connectorRole, inherit_option: true, set_option: true }]);
  });

  test('concurrent grants of the same entitlement: one change, one membership', async () => {
    const { identity } = await f.newIdentity();
    const results = await Promise.all(Array.from({ length: 6 }, () => f.connector.grant(identity, f.groups.ro)));
    expect(results.filter((r) => r.changed)).toHaveLength(1);
    const rows = await f.sql('SELECT count(*)::int AS n FROM pg_auth_members WHERE member = $1::regrole', [identity]);
    expect(rows[0].n).toBe(1);
  });

  test('setCredential stores a SCRAM verifier; the value never reaches the server', async () => {
    const { identity } = await f.newIdentity();
    const secret = generateCredential();
    await f.connector.setCredential(identity, secret);
    const [row] = await f.sql('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [identity]);
    expect(row.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(row.rolpassword).not.toContain(secret);
    expect(scramVerifierMatches(row.rolpassword, secret)).toBe(true);
    expect(scramVerifierMatches(row.rolpassword, generateCredential())).toBe(false);
    expect(await f.connector.probe(identity, secret)).toEqual({ access: 'granted' });
  });

  test('the verifier matches what Postgres computes from a plain password', async () => {
    const { identity, secret } = await f.newIdentity();
    const [row] = await f.sql('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [identity]);
    expect(scramVerifierMatches(row.rolpassword, secret)).toBe(true);
    expect(scramSha256Verifier(secret)).not.toEqual(row.rolpassword); // fresh salt each time
  });

  test('a credential it cannot hash exactly is refused without echoing it', async () => {
    const { identity, secret } = await f.newIdentity();
    for (const bad of ['päss-wörd-geheim', 'tab\there', '']) {
      const err = await f.connector.setCredential(identity, bad).catch((e) => e);
      expect(err).toBeInstanceOf(PermanentConnectorError);
      expect(err.code).toBe(ConnectorErrorCode.UnsupportedCredential);
      if (bad) expect(err.message).not.toContain(bad);
    }
    expect(await f.connector.probe(identity, secret)).toEqual({ access: 'granted' });
  });

  test('throttle: the connection limit is enforced by the server', async () => {
    const { identity, secret } = await f.newIdentity();
    await f.connector.throttle(identity, { connectionLimit: 1, removeWriteEntitlements: true });
    const s = await f.openSession(identity, secret);
    try {
      expect(await f.connector.probe(identity, secret)).toMatchObject({ access: 'inconclusive', code: '53300', credentialAccepted: true });
    } finally {
      await s.close();
    }
    // The backend may take a moment to leave the role's connection count.
    for (let i = 0; i < 50 && (await f.inspect.sessionAlive(s.id)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await f.connector.probe(identity, secret)).toEqual({ access: 'granted' });
  });

  test('throttle removes only write-capable memberships', async () => {
    const { identity } = await f.newIdentity();
    for (const g of [f.groups.ro, f.groups.rw, f.groups.admin]) await f.connector.grant(identity, g);
    await f.connector.throttle(identity, { connectionLimit: 2, removeWriteEntitlements: true });
    expect(await f.inspect.memberships(identity)).toEqual([f.groups.ro]);
  });

  test('invalidateSessions reaches sessions on other databases of the server', async () => {
    const { identity, secret } = await f.newIdentity();
    const elsewhere = await f.openSessionOn(identity, secret, 'postgres');
    try {
      expect(await f.connector.invalidateSessions(identity)).toEqual({ terminated: 1 });
      expect(await f.inspect.sessionAlive(elsewhere.id)).toBe(false);
    } finally {
      await elsewhere.close();
    }
  });

  test('probe: a refusal after the password was checked is inconclusive and says the password was accepted', async () => {
    const { identity, secret } = await f.newIdentity();
    await f.sql(`ALTER ROLE ${escapeIdentifier(identity)} NOLOGIN`);
    const nologin = await f.connector.probe(identity, secret);
    expect(nologin).toMatchObject({ access: 'inconclusive', code: '28000', credentialAccepted: true });
    expect(nologin.detail).toMatch(/not permitted to log in.*password was accepted/);
    // The password is checked first: a wrong one is still 28P01.
    expect(await f.connector.probe(identity, generateCredential())).toMatchObject({ access: 'denied', code: '28P01' });
    expect((await f.connector.probe(identity, generateCredential())).credentialAccepted).toBeUndefined();
    await f.sql(`ALTER ROLE ${escapeIdentifier(identity)} LOGIN`);

    // No CONNECT on the probe's database (checked after authentication too).
    const database = `${f.prefix}_noconnect`;
    await f.sql(`CREATE DATABASE ${escapeIdentifier(database)}`);
    const elsewhere = new PostgresConnector(createPool(f.connectorUrl), { grantable: [], probe: { ...probeTargetFromUrl(f.connectorUrl), database } });
    try {
      await f.sql(`REVOKE CONNECT ON DATABASE ${escapeIdentifier(database)} FROM PUBLIC`);
      expect(await elsewhere.probe(identity, secret)).toMatchObject({ access: 'inconclusive', code: '42501', credentialAccepted: true });
      expect(await elsewhere.probe(identity, generateCredential())).toMatchObject({ access: 'denied', code: '28P01' });
    } finally {
      await elsewhere.close();
      await f.sql(`DROP DATABASE ${escapeIdentifier(database)} WITH (FORCE)`);
    }
  });

  test('probe treats a wrong database as an error, not as denied access', async () => {
    const { identity, secret } = await f.newIdentity();
    const wrong = new PostgresConnector(createPool(f.connectorUrl), {
      grantable: [],
      probe: { ...probeTargetFromUrl(f.connectorUrl), database: `${f.prefix}_nodb` },
    });
    try {
      await expect(wrong.probe(identity, secret)).rejects.toMatchObject({ code: '3D000' });
    } finally {
      await wrong.close();
    }
  });

  test('readAccess of a dropped identity proves absence', async () => {
    const { identity } = await f.newIdentity();
    await f.connector.grant(identity, f.groups.ro);
    await f.sql(`DROP ROLE ${escapeIdentifier(identity)}`);
    expect(await f.connector.readAccess(identity)).toEqual({ exists: false, canLogin: false, connectionLimit: 0, entitlements: [] });
  });
});

describe('postgres connector: logical entitlement names', () => {
  let f: Fixture;
  let c: PostgresConnector;
  beforeAll(async () => {
    f = await createFixture({ logical: true });
    c = f.connector;
  });
  afterAll(async () => {
    await f?.teardown();
  });

  /** Straight from pg_auth_members: physical role names and grantors. */
  async function rawMemberships(identity: string) {
    return f.sql(
      `SELECT r.rolname AS role, g.rolname AS grantor FROM pg_auth_members m
         JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles g ON g.oid = m.grantor
        WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1`,
      [identity],
    );
  }

  async function expectCode(p: Promise<unknown>, code: string) {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PermanentConnectorError);
    expect((err as PermanentConnectorError).code).toBe(code);
    return err as PermanentConnectorError;
  }

  test('every method speaks logical names; the roles behind them are what changes', async () => {
    const { identity } = await f.newIdentity();
    expect(await c.listGrantableEntitlements()).toEqual([f.ents.hostile, 'admin', 'readonly', 'writer'].sort());

    expect(await c.grant(identity, 'admin')).toEqual({ changed: true });
    expect(await rawMemberships(identity)).toEqual([{ role: f.groups.admin, grantor: f.connectorRole }]);
    expect(await c.grant(identity, 'readonly')).toEqual({ changed: true });
    expect(await rawMemberships(identity)).toEqual(
      [f.groups.admin, f.groups.ro].sort().map((role) => ({ role, grantor: f.connectorRole })),
    );

    expect(await c.hasEntitlement(identity, 'admin')).toBe(true);
    expect(await c.hasEntitlement(identity, 'writer')).toBe(false);
    expect(await c.listEntitlements(identity)).toEqual(['admin', 'readonly']);
    expect(await c.readAccess(identity)).toEqual({ exists: true, canLogin: true, connectionLimit: -1, entitlements: ['admin', 'readonly'] });
    const snap = await c.snapshot(identity);
    expect(snap).toMatchObject({ identity, entitlements: ['admin', 'readonly'] });
    expect((await c.listIdentities()).find((d) => d.identity === identity)).toEqual({ identity, canLogin: true, entitlements: ['admin', 'readonly'] });
    // The roles behind entitlements are not identities, whatever their name.
    const discovered = (await c.listIdentities()).map((d) => d.identity);
    for (const g of [f.groups.ro, f.groups.rw, f.groups.admin, f.groups.hostile]) expect(discovered).not.toContain(g);

    // throttle removes write-capable entitlements (logical names) through their roles.
    expect((await c.throttle(identity, { connectionLimit: 1, removeWriteEntitlements: true })).entitlements).toEqual(['admin', 'readonly']);
    expect(await rawMemberships(identity)).toEqual([{ role: f.groups.ro, grantor: f.connectorRole }]);

    // restore takes the logical snapshot back onto the roles.
    await c.grant(identity, 'writer');
    expect(await c.restore(snap)).toEqual({ exists: true, canLogin: true, connectionLimit: -1, entitlements: ['admin', 'readonly'] });
    expect((await rawMemberships(identity)).map((r) => r.role)).toEqual([f.groups.admin, f.groups.ro].sort());

    expect(await c.revoke(identity, 'admin')).toEqual({ changed: true });
    expect(await c.revoke(identity, 'admin')).toEqual({ changed: false });
    expect((await rawMemberships(identity)).map((r) => r.role)).toEqual([f.groups.ro]);
  });

  test('names that are not mapped entitlements are not grantable, even the role behind one', async () => {
    const { identity } = await f.newIdentity();
    await c.grant(identity, 'readonly');
    const before = await rawMemberships(identity);
    const NG = ConnectorErrorCode.EntitlementNotGrantable;
    for (const physical of [f.groups.admin, f.groups.ro, f.groups.rw]) {
      const err = await expectCode(c.grant(identity, physical), NG);
      expect(err.message).toMatch(/speaks of it only as/);
      await expectCode(c.revoke(identity, physical), NG);
      await expectCode(c.hasEntitlement(identity, physical), ConnectorErrorCode.UnknownEntitlement);
      await expectCode(c.restore({ ...(await c.snapshot(identity)), entitlements: [physical] }), NG);
    }
    await expectCode(c.grant(identity, f.groups.other), NG);
    await expectCode(c.grant(identity, 'nonexistent_entitlement'), ConnectorErrorCode.UnknownEntitlement);
    expect(await rawMemberships(identity)).toEqual(before);
    expect(await c.listEntitlements(identity)).toEqual(['readonly']);
  });

  test('a membership in a role that is no mapped entitlement is reported by its role name', async () => {
    const { identity } = await f.newIdentity();
    await c.grant(identity, 'writer');
    await f.sql(`GRANT ${escapeIdentifier(f.groups.other)} TO ${escapeIdentifier(identity)}`);
    const expected = [f.groups.other, 'writer'].sort();
    expect(await c.listEntitlements(identity)).toEqual(expected);
    expect(await c.hasEntitlement(identity, f.groups.other)).toBe(true);
    const snap = await c.snapshot(identity);
    expect(snap.entitlements).toEqual(expected);
    await c.throttle(identity, { connectionLimit: 0, removeWriteEntitlements: true });
    expect(await c.listEntitlements(identity)).toEqual([f.groups.other]);
    expect((await c.restore(snap)).entitlements).toEqual(expected);
    expect((await rawMemberships(identity)).map((r) => r.role)).toEqual([f.groups.other, f.groups.rw].sort());
  });

  test('an entitlement whose role is missing is unknown, naming the role', async () => {
    const { identity } = await f.newIdentity();
    const missing = new PostgresConnector(createPool(f.connectorUrl), {
      grantable: ['gone'],
      entitlementRoles: { gone: `${f.prefix}_gone` },
      probe: probeTargetFromUrl(f.connectorUrl),
    });
    try {
      const err = await expectCode(missing.grant(identity, 'gone'), ConnectorErrorCode.UnknownEntitlement);
      expect(err.message).toContain(`${f.prefix}_gone`);
    } finally {
      await missing.close();
    }
  });

  test('a role named like a logical entitlement is refused, not confused with it', async () => {
    const { identity } = await f.newIdentity();
    const shadow = `${f.prefix}_shadow`;
    await f.sql(`CREATE ROLE ${escapeIdentifier(shadow)} NOLOGIN`);
    await f.sql(`GRANT ${escapeIdentifier(shadow)} TO ${escapeIdentifier(identity)}`);
    // The logical name `shadow` means the readonly role, yet a role of that name exists.
    const confusing = new PostgresConnector(createPool(f.connectorUrl), {
      grantable: [shadow],
      entitlementRoles: { [shadow]: f.groups.ro },
      probe: probeTargetFromUrl(f.connectorUrl),
    });
    try {
      expect(await confusing.hasEntitlement(identity, shadow)).toBe(false); // asks about the readonly role
      await expectCode(confusing.listEntitlements(identity), ConnectorErrorCode.Misconfigured);
      await expectCode(confusing.snapshot(identity), ConnectorErrorCode.Misconfigured);
      expect(await confusing.grant(identity, shadow)).toEqual({ changed: true });
      expect((await rawMemberships(identity)).map((r) => r.role)).toEqual([f.groups.ro, shadow].sort());
    } finally {
      await confusing.close();
    }
  });

  test('the mapping: explicit entries, the prefix for the rest, one-to-one, names checked', () => {
    expect(
      Object.fromEntries(
        resolveEntitlementRoles({ grantable: ['a', 'b'], writeCapable: ['b'], entitlementPrefix: 'p_', entitlementRoles: { b: 'bee', c: 'sea' } }),
      ),
    ).toEqual({ a: 'p_a', b: 'bee', c: 'sea' });
    expect(Object.fromEntries(resolveEntitlementRoles({ grantable: ['a'] }))).toEqual({ a: 'a' });
    expect(() => resolveEntitlementRoles({ grantable: ['a', 'b'], entitlementRoles: { a: 'r', b: 'r' } })).toThrow(/both map to role/);
    expect(() => resolveEntitlementRoles({ grantable: ['a'], entitlementPrefix: 'p_', entitlementRoles: { b: 'p_a' } })).toThrow(/both map to role/);
    expect(() => resolveEntitlementRoles({ grantable: ['x'.repeat(60)], entitlementPrefix: 'pfx_' })).toThrow(/63 bytes/);
    expect(() => resolveEntitlementRoles({ grantable: [], entitlementRoles: { a: '' } })).toThrow(/non-empty/);

    const pool = createPool(f.connectorUrl);
    const probe = probeTargetFromUrl(f.connectorUrl);
    expect(() => new PostgresConnector(pool, { grantable: ['a'], writeCapable: ['p_a'], entitlementPrefix: 'p_', probe })).toThrow(/subset|grantable/);
    expect(() => new PostgresConnector(pool, { grantable: ['a', 'b'], entitlementRoles: { a: 'r', b: 'r' }, probe })).toThrow(/both map/);
    return pool.end();
  });
});
