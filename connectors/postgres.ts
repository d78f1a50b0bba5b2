// The reference connector: PostgreSQL roles. Identities are LOGIN roles, entitlements are memberships
// in group roles. Entitlements are spoken of by their logical names (the ones Cedar policies and the
// API use), each mapped to the group role behind it; identities are physical role names. It runs as
// a dedicated non-superuser role with CREATEROLE and ADMIN OPTION on every role it manages (on 16+
// what lets it act on them, on 15 the scope it keeps to); pg_signal_backend ends sessions and
// pg_read_all_stats lets it see when they started. Version differences: ./postgres-roles.ts.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { Client, escapeIdentifier, escapeLiteral, type ClientConfig, type Pool, type PoolClient } from 'pg';
import { adminOptionGrantSql, detectRoleSystem, unsupportedVersionMessage, type RoleSystem } from './postgres-roles';
import {
  ConnectorErrorCode,
  PermanentConnectorError,
  type RegistrableVerdict,
  type AccessSnapshot,
  type AccessState,
  type Connector,
  type ConnectorCapabilities,
  type ConnectorSetup,
  type DiscoveredIdentity,
  type ProbeResult,
  type SessionInfo,
  type TargetAccess,
  type ThrottleLevel,
} from './types';

/** Where `probe` logs in as the identity: the estate's server and database (never a user or password). */
export type PostgresProbeTarget = Omit<ClientConfig, 'user' | 'password' | 'connectionString'> & {
  host: string;
  port: number;
  database: string;
};

export interface PostgresConnectorOptions {
  /** Entitlements (logical names) this connector may grant and revoke. */
  grantable: string[];
  /** The grantable entitlements that allow writes: throttle removes these. Must be a subset of `grantable`. */
  writeCapable?: string[];
  /** Write-capable entitlement → its read-only form (grantable, not write-capable): what a throttle leaves. */
  readOnlyForms?: Record<string, string>;
  /**
   * Logical entitlement name → the group role behind it. Every method takes and reports mapped
   * entitlements by their logical name; a membership in a role that is no mapped entitlement is
   * reported by its role name. Must be one-to-one.
   */
  entitlementRoles?: Record<string, string>;
  /**
   * Convenience on top of `entitlementRoles`: a grantable entitlement without an explicit mapping is
   * the group role `${entitlementPrefix}${name}` (default '': the role of the same name).
   */
  entitlementPrefix?: string;
  probe: PostgresProbeTarget;
  name?: string;
  /** How long invalidateSessions waits for terminated backends to exit (default 10 s). */
  terminateTimeoutMs?: number;
  /** close() ends the pool (default true). */
  ownsPool?: boolean;
}

// Postgres silently truncates longer identifiers: `GRANT` on a 70-byte name would hit another role.
const MAX_IDENTIFIER_BYTES = 63;
// Serialises mutations per identity (first key is this connector's namespace).
const LOCK_NAMESPACE = 872_341_002;
// What a refused login means. 28P01 alone says the password is wrong. The others refuse for another
// reason: 28000 login not allowed (or a pg_hba rule), 53300 too many connections, 42501 no CONNECT.
const WRONG_CREDENTIAL_SQLSTATE = '28P01';
const INCONCLUSIVE_SQLSTATE = /^(28...|53300|42501)$/;
// The server functions that refuse a login only after the password was checked and accepted:
// rolcanlogin and the role's connection limit (InitializeSessionUserId), CONNECT and the database's
// connection limit (CheckMyDatabase). Refusals before authentication (pg_hba, "too many clients
// already") come from elsewhere and prove nothing about the password.
const AFTER_AUTHENTICATION = new Set(['InitializeSessionUserId', 'CheckMyDatabase']);
const SCRAM_ITERATIONS = 4096;

interface RoleRow {
  oid: number;
  rolname: string;
  rolcanlogin: boolean;
  rolconnlimit: number;
  rolsuper: boolean;
  managed: boolean;
}

type Queryable = Pool | PoolClient;

function permanent(code: ConnectorErrorCode, message: string): PermanentConnectorError {
  return new PermanentConnectorError(message, code);
}

function checkName(kind: 'identity' | 'entitlement', name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.includes('\0')) {
    throw permanent(ConnectorErrorCode.InvalidName, `${kind} name must be a non-empty string without NUL`);
  }
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw permanent(ConnectorErrorCode.InvalidName, `${kind} name is longer than ${MAX_IDENTIFIER_BYTES} bytes (Postgres would truncate it)`);
  }
  return name;
}

const sortNames = (names: Iterable<string>) => [...new Set(names)].sort();

/**
 * A SCRAM-SHA-256 verifier for a password, in the format Postgres stores. Sending this instead of
 * the password keeps the value out of the server's statement logs and error messages.
 */
export function scramSha256Verifier(password: string, opts: { salt?: Buffer; iterations?: number } = {}): string {
  const salt = opts.salt ?? randomBytes(16);
  const iterations = opts.iterations ?? SCRAM_ITERATIONS;
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Whether a stored verifier (pg_authid.rolpassword) belongs to this password. */
export function scramVerifierMatches(verifier: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/.exec(verifier ?? '');
  if (!m || !verifier) return false;
  const expected = Buffer.from(scramSha256Verifier(password, { salt: Buffer.from(m[2], 'base64'), iterations: Number(m[1]) }));
  const actual = Buffer.from(verifier);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * Postgres applies SASLprep to passwords; for printable ASCII that is the identity, so a verifier
 * computed here matches what the server computes. Our generated credentials are base64url.
 */
function checkCredential(value: unknown): string {
  if (typeof value !== 'string' || !/^[\x20-\x7e]{1,1024}$/.test(value)) {
    throw permanent(ConnectorErrorCode.UnsupportedCredential, 'credential must be 1-1024 printable ASCII characters');
  }
  return value;
}

function sqlstate(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Permission problems cannot be fixed by retrying; everything else (network, restarts) can. */
function mapError(err: unknown): unknown {
  if (err instanceof PermanentConnectorError) return err;
  const code = sqlstate(err);
  const message = (err as Error)?.message ?? String(err);
  if (code === '42501') return permanent(ConnectorErrorCode.InsufficientPrivilege, `${message} (SQLSTATE 42501)`);
  if (code === '2BP01') return permanent(ConnectorErrorCode.RevokeBlocked, `${message} (SQLSTATE 2BP01)`);
  if (code === '0LP01') return permanent(ConnectorErrorCode.InvalidArgument, `${message} (SQLSTATE 0LP01)`);
  return err;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The one-to-one map between logical entitlement names and group roles that PostgresConnector
 * uses: explicit `entitlementRoles`, then every grantable name under `entitlementPrefix`.
 */
export function resolveEntitlementRoles(
  options: Pick<PostgresConnectorOptions, 'grantable' | 'writeCapable' | 'entitlementRoles' | 'entitlementPrefix'>,
): Map<string, string> {
  const prefix = options.entitlementPrefix ?? '';
  if (typeof prefix !== 'string' || prefix.includes('\0')) throw new Error('entitlementPrefix must be a string without NUL');
  const map = new Map<string, string>();
  for (const [logical, role] of Object.entries(options.entitlementRoles ?? {})) {
    map.set(checkName('entitlement', logical), checkName('entitlement', role));
  }
  for (const logical of [...options.grantable, ...(options.writeCapable ?? [])]) {
    checkName('entitlement', logical);
    if (!map.has(logical)) map.set(logical, checkName('entitlement', prefix + logical));
  }
  const owner = new Map<string, string>();
  for (const [logical, role] of map) {
    const other = owner.get(role);
    if (other !== undefined) {
      throw new Error(`entitlements ${JSON.stringify(other)} and ${JSON.stringify(logical)} both map to role ${JSON.stringify(role)}`);
    }
    owner.set(role, logical);
  }
  return map;
}

export class PostgresConnector implements Connector {
  readonly name: string;
  readonly capabilities: ConnectorCapabilities = {
    credentials: 'set',
    // One password per role: setting the new one ends the old at once.
    secondCredentialSlot: false,
    sessions: 'terminate',
    connectionLimit: true,
    throttle: true,
  };
  /** Logical names. */
  private readonly grantable: ReadonlySet<string>;
  private readonly writeCapable: ReadonlySet<string>;
  private readonly readOnlyForms: Readonly<Record<string, string>>;
  /** Logical entitlement → group role, and back. */
  private readonly roleOf: ReadonlyMap<string, string>;
  private readonly entitlementOf: ReadonlyMap<string, string>;
  private readonly probeTarget: PostgresProbeTarget;
  private readonly terminateTimeoutMs: number;
  private readonly ownsPool: boolean;
  private ready: Promise<RoleSystem> | undefined;
  /** The server's role rules, known once ensureReady has passed. */
  private roles: RoleSystem | undefined;
  private closed = false;

  constructor(private readonly pool: Pool, options: PostgresConnectorOptions) {
    this.name = options.name ?? 'postgres';
    this.grantable = new Set(options.grantable);
    this.writeCapable = new Set(options.writeCapable ?? []);
    const stray = [...this.writeCapable].filter((w) => !this.grantable.has(w));
    if (stray.length) throw new Error(`writeCapable entitlements must also be grantable: ${stray.join(', ')}`);
    this.readOnlyForms = { ...(options.readOnlyForms ?? {}) };
    for (const [w, r] of Object.entries(this.readOnlyForms)) {
      if (!this.writeCapable.has(w) || !this.grantable.has(r) || this.writeCapable.has(r)) {
        throw new Error(`readOnlyForms: ${w} must be write-capable and ${r} grantable and not write-capable`);
      }
    }
    this.roleOf = resolveEntitlementRoles(options);
    this.entitlementOf = new Map([...this.roleOf].map(([logical, role]) => [role, logical]));
    this.probeTarget = options.probe;
    this.terminateTimeoutMs = options.terminateTimeoutMs ?? 10_000;
    this.ownsPool = options.ownsPool ?? true;
  }

  /**
   * What the connector role lacks on this server, as sentences that say how to fix it: the role
   * itself (not a superuser, CREATEROLE, able to use pg_signal_backend and pg_read_all_stats) and
   * ADMIN OPTION on each grantable entitlement's role. Start-up prints these; the first use refuses
   * to act while the role itself is wrong.
   */
  async checkSetup(): Promise<ConnectorSetup> {
    return (await this.inspectSetup()).setup;
  }

  private async inspectSetup(): Promise<{ rs: RoleSystem; setup: ConnectorSetup }> {
    const rs = await detectRoleSystem(this.pool);
    const { rows } = await this.pool.query<{
      rolname: string;
      rolsuper: boolean;
      rolcreaterole: boolean;
      rolinherit: boolean;
      can_signal: boolean;
      can_read_stats: boolean;
    }>(
      `SELECT rolname, rolsuper, rolcreaterole, rolinherit,
              pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS can_signal,
              pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_stats
         FROM pg_roles WHERE rolname = current_user`,
    );
    const me = rows[0];
    const q = escapeIdentifier(me.rolname);
    const roleProblems: string[] = [];
    const unsupported = unsupportedVersionMessage(rs);
    if (unsupported) roleProblems.push(unsupported);
    if (me.rolsuper) {
      roleProblems.push(
        `the Postgres connector connects as superuser ${me.rolname}; give it a dedicated non-superuser role (CREATEROLE, pg_signal_backend, pg_read_all_stats)`,
      );
    } else {
      if (!me.rolcreaterole) roleProblems.push(`role ${me.rolname} lacks CREATEROLE: ALTER ROLE ${q} CREATEROLE`);
      for (const [builtin, can, what] of [
        ['pg_signal_backend', me.can_signal, 'end sessions'],
        ['pg_read_all_stats', me.can_read_stats, 'see when sessions started'],
      ] as const) {
        if (can) continue;
        const fix = rs.perGrantOptions
          ? `GRANT ${builtin} TO ${q} WITH INHERIT TRUE`
          : me.rolinherit
            ? `GRANT ${builtin} TO ${q}`
            : `ALTER ROLE ${q} INHERIT (PostgreSQL 15 has no per-grant INHERIT option) and GRANT ${builtin} TO ${q}`;
        roleProblems.push(`role ${me.rolname} cannot use ${builtin} to ${what}: ${fix}`);
      }
    }
    const entitlementProblems: string[] = [];
    for (const logical of sortNames(this.grantable)) {
      const role = this.roleOf.get(logical) ?? logical;
      const row = await this.roleRow(this.pool, role);
      if (!row) entitlementProblems.push(`entitlement ${JSON.stringify(logical)}: role ${JSON.stringify(role)} does not exist`);
      else if (!row.managed) {
        entitlementProblems.push(`entitlement ${JSON.stringify(logical)}: no ADMIN OPTION on role ${JSON.stringify(role)}: ${adminOptionGrantSql(rs, role, me.rolname)}`);
      }
    }
    return {
      rs,
      setup: { target: `PostgreSQL ${rs.version} as ${me.rolname}`, roleProblems, problems: [...roleProblems, ...entitlementProblems] },
    };
  }

  /** Refuses to act while the connector role is wrong (a superuser above all: its blast radius is the roles it administers). */
  private ensureReady(): Promise<RoleSystem> {
    this.ready ??= (async () => {
      const { rs, setup } = await this.inspectSetup();
      if (setup.roleProblems.length) throw permanent(ConnectorErrorCode.Misconfigured, setup.roleProblems.join('; '));
      this.roles = rs;
      return rs;
    })().catch((err) => {
      // A connection failure is worth retrying; a wrong role stays refused.
      if (!(err instanceof PermanentConnectorError)) this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private async roleRow(q: Queryable, name: string): Promise<RoleRow | undefined> {
    const { rows } = await q.query<RoleRow>(
      `SELECT oid::int AS oid, rolname, rolcanlogin, rolconnlimit, rolsuper,
              pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION') AS managed
         FROM pg_roles WHERE rolname = $1`,
      [name],
    );
    return rows[0];
  }

  private async identityRow(q: Queryable, identity: string): Promise<RoleRow> {
    checkName('identity', identity);
    const row = await this.roleRow(q, identity);
    if (!row) throw permanent(ConnectorErrorCode.UnknownIdentity, `unknown identity ${JSON.stringify(identity)}`);
    if (row.rolsuper || !row.managed) {
      throw permanent(ConnectorErrorCode.IdentityNotManaged, `identity ${JSON.stringify(identity)} is not administered by this connector`);
    }
    return row;
  }

  /**
   * The group role behind an entitlement name: a mapped entitlement's role, else the role of that
   * name. A mapped entitlement's role is only reachable by the entitlement's logical name.
   */
  private roleFor(entitlement: string, mustBeGrantable: boolean): string {
    checkName('entitlement', entitlement);
    const mapped = this.roleOf.get(entitlement);
    if (mapped !== undefined) return mapped;
    const logical = this.entitlementOf.get(entitlement);
    if (logical !== undefined) {
      throw permanent(
        mustBeGrantable ? ConnectorErrorCode.EntitlementNotGrantable : ConnectorErrorCode.UnknownEntitlement,
        `${JSON.stringify(entitlement)} is the role behind entitlement ${JSON.stringify(logical)}; this connector speaks of it only as ${JSON.stringify(logical)}`,
      );
    }
    return entitlement;
  }

  /** The name a membership in `role` is reported by: its entitlement's logical name, or the role name. */
  private entitlementFor(role: string): string {
    const logical = this.entitlementOf.get(role);
    if (logical !== undefined) return logical;
    const shadowed = this.roleOf.get(role);
    if (shadowed !== undefined) {
      // Reporting it by its role name would make it indistinguishable from the entitlement.
      throw permanent(
        ConnectorErrorCode.Misconfigured,
        `role ${JSON.stringify(role)} has the name of entitlement ${JSON.stringify(role)} (role ${JSON.stringify(shadowed)}); map or rename one of them`,
      );
    }
    return role;
  }

  /** For messages: `entitlement "x" (role "p_x")`, or `role "r"` for an unmapped role. */
  private describeRole(role: string): string {
    const logical = this.entitlementOf.get(role);
    if (logical === undefined || logical === role) return `role ${JSON.stringify(role)}`;
    return `entitlement ${JSON.stringify(logical)} (role ${JSON.stringify(role)})`;
  }

  /** For grant/revoke the entitlement must exist and be configured as grantable. */
  private async entitlementRow(q: Queryable, entitlement: string, mustBeGrantable: boolean): Promise<RoleRow> {
    const role = this.roleFor(entitlement, mustBeGrantable);
    const row = await this.roleRow(q, role);
    if (!row) {
      const behind = role === entitlement ? '' : ` (role ${JSON.stringify(role)} does not exist)`;
      throw permanent(ConnectorErrorCode.UnknownEntitlement, `unknown entitlement ${JSON.stringify(entitlement)}${behind}`);
    }
    if (mustBeGrantable && !this.grantable.has(entitlement)) {
      throw permanent(ConnectorErrorCode.EntitlementNotGrantable, `entitlement ${JSON.stringify(entitlement)} is not grantable by this connector`);
    }
    // 16+ would refuse the GRANT anyway; on 15 CREATEROLE reaches every role, so the scope is checked here.
    if (mustBeGrantable && (row.rolsuper || !row.managed)) {
      throw permanent(ConnectorErrorCode.InsufficientPrivilege, `the connector has no ADMIN OPTION on ${this.describeRole(role)}`);
    }
    return row;
  }

  /** Direct memberships, by entitlement name. */
  private async memberships(q: Queryable, memberOid: number): Promise<string[]> {
    const { rows } = await q.query<{ rolname: string }>(
      'SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = $1',
      [memberOid],
    );
    return sortNames(rows.map((r) => this.entitlementFor(r.rolname)));
  }

  private async isMember(q: Queryable, memberOid: number, roleOid: number): Promise<boolean> {
    const { rows } = await q.query('SELECT 1 FROM pg_auth_members WHERE member = $1 AND roleid = $2', [memberOid, roleOid]);
    return rows.length > 0;
  }

  /** One transaction holding the identity's lock: concurrent calls see each other's result. */
  private async mutate<T>(identity: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
    await this.ensureReady();
    checkName('identity', identity);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, identity]);
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw mapError(err);
    } finally {
      client.release();
    }
  }

  private async read<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    await this.ensureReady();
    try {
      return await fn(this.pool);
    } catch (err) {
      throw mapError(err);
    }
  }

  private async grantIn(c: PoolClient, id: RoleRow, ent: RoleRow): Promise<boolean> {
    if (await this.isMember(c, id.oid, ent.oid)) return false;
    await c.query(`GRANT ${escapeIdentifier(ent.rolname)} TO ${escapeIdentifier(id.rolname)}`);
    return true;
  }

  /**
   * Postgres 16+ keeps one membership row per grantor, and a role may only revoke grants made by
   * roles whose privileges it has: a membership someone else granted is reported, not hidden. On 15
   * a CREATEROLE role revokes any membership of a non-superuser role.
   */
  private async revokeIn(c: PoolClient, id: RoleRow, ent: RoleRow): Promise<boolean> {
    const { rows } = await c.query<{ grantor: string; revocable: boolean; own: boolean }>(
      `SELECT g.rolname AS grantor, g.rolname = current_user AS own, pg_has_role(current_user, g.oid, 'USAGE') AS revocable
         FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.grantor
        WHERE m.member = $1 AND m.roleid = $2`,
      [id.oid, ent.oid],
    );
    if (rows.length === 0) return false;
    if (!this.roles?.perGrantOptions) {
      await c.query(`REVOKE ${escapeIdentifier(ent.rolname)} FROM ${escapeIdentifier(id.rolname)}`);
    } else {
      const blocked = rows.filter((r) => !r.revocable);
      if (blocked.length) {
        throw permanent(
          ConnectorErrorCode.RevokeBlocked,
          `${JSON.stringify(id.rolname)} holds ${this.describeRole(ent.rolname)} through a grant by ${blocked
            .map((r) => r.grantor)
            .join(', ')}, which this connector cannot revoke`,
        );
      }
      for (const r of rows) {
        const by = r.own ? '' : ` GRANTED BY ${escapeIdentifier(r.grantor)}`;
        await c.query(`REVOKE ${escapeIdentifier(ent.rolname)} FROM ${escapeIdentifier(id.rolname)}${by}`);
      }
    }
    if (await this.isMember(c, id.oid, ent.oid)) {
      throw new Error(`revoke of ${this.describeRole(ent.rolname)} from ${id.rolname} did not take effect`);
    }
    return true;
  }

  private async stateIn(q: Queryable, id: RoleRow): Promise<AccessState> {
    return {
      exists: true,
      canLogin: id.rolcanlogin,
      connectionLimit: id.rolconnlimit,
      entitlements: await this.memberships(q, id.oid),
    };
  }

  async listGrantableEntitlements(): Promise<string[]> {
    return sortNames(this.grantable);
  }

  async grant(identity: string, entitlement: string): Promise<{ changed: boolean }> {
    return this.mutate(identity, async (c) => {
      const id = await this.identityRow(c, identity);
      const ent = await this.entitlementRow(c, entitlement, true);
      const changed = await this.grantIn(c, id, ent);
      if (!(await this.isMember(c, id.oid, ent.oid))) throw new Error(`grant of ${entitlement} to ${identity} did not take effect`);
      return { changed };
    });
  }

  async revoke(identity: string, entitlement: string): Promise<{ changed: boolean }> {
    return this.mutate(identity, async (c) => {
      const id = await this.identityRow(c, identity);
      const ent = await this.entitlementRow(c, entitlement, true);
      return { changed: await this.revokeIn(c, id, ent) };
    });
  }

  async hasEntitlement(identity: string, entitlement: string): Promise<boolean> {
    return this.read(async (q) => {
      const id = await this.identityRow(q, identity);
      const ent = await this.entitlementRow(q, entitlement, false);
      return this.isMember(q, id.oid, ent.oid);
    });
  }

  /**
   * Direct memberships, including ones this connector does not grant (so nothing is hidden): mapped
   * entitlements by their logical name, other roles by their role name.
   */
  async listEntitlements(identity: string): Promise<string[]> {
    return this.read(async (q) => this.memberships(q, (await this.identityRow(q, identity)).oid));
  }

  async setCredential(identity: string, secretValue: string): Promise<void> {
    const value = checkCredential(secretValue);
    const verifier = scramSha256Verifier(value);
    try {
      await this.mutate(identity, async (c) => {
        const id = await this.identityRow(c, identity);
        await c.query(`ALTER ROLE ${escapeIdentifier(id.rolname)} PASSWORD ${escapeLiteral(verifier)}`);
      });
    } catch (err) {
      // Never let the value (or its verifier) ride along in an error message or its fields.
      const redact = (s: string) => s.split(value).join('[redacted]').split(verifier).join('[redacted]');
      if (err instanceof PermanentConnectorError) throw new PermanentConnectorError(redact(err.message), err.code);
      const code = sqlstate(err);
      const safe = new Error(`setting the credential of ${JSON.stringify(identity)} failed: ${redact((err as Error)?.message ?? String(err))}`);
      if (code) Object.assign(safe, { code });
      throw safe;
    }
  }

  async listSessions(identity: string): Promise<SessionInfo[]> {
    return this.read(async (q) => {
      const id = await this.identityRow(q, identity);
      const { rows } = await q.query<{ pid: number; backend_start: Date | null; state: string | null }>(
        `SELECT pid, backend_start, state FROM pg_stat_activity
          WHERE usesysid = $1 AND pid <> pg_backend_pid() ORDER BY backend_start, pid`,
        [id.oid],
      );
      if (rows.some((r) => r.backend_start === null)) throw this.statsPrivilegeError();
      return rows.map((r) => ({ pid: r.pid, backendStart: (r.backend_start as Date).toISOString(), state: r.state }));
    });
  }

  private statsPrivilegeError() {
    return permanent(
      ConnectorErrorCode.InsufficientPrivilege,
      'the connector role cannot see when sessions started: grant it pg_read_all_stats',
    );
  }

  /** Ends the role's backends on every database of the server and waits until they are gone. */
  async invalidateSessions(identity: string, startedBefore?: Date): Promise<{ terminated: number }> {
    if (startedBefore !== undefined && (!(startedBefore instanceof Date) || Number.isNaN(startedBefore.getTime()))) {
      throw permanent(ConnectorErrorCode.InvalidArgument, 'startedBefore must be a valid Date');
    }
    return this.read(async (q) => {
      const id = await this.identityRow(q, identity);
      const { rows } = await q.query<{ pid: number; backend_start: Date | null }>(
        'SELECT pid, backend_start FROM pg_stat_activity WHERE usesysid = $1 AND pid <> pg_backend_pid()',
        [id.oid],
      );
      if (startedBefore && rows.some((r) => r.backend_start === null)) throw this.statsPrivilegeError();
      const targets = rows.filter((r) => !startedBefore || (r.backend_start as Date) < startedBefore).map((r) => r.pid);
      let terminated = 0;
      for (const pid of targets) {
        // With a timeout, pg_terminate_backend waits for the backend to exit; false = already gone or too slow.
        const { rows: t } = await q.query<{ ok: boolean }>('SELECT pg_terminate_backend($1, $2) AS ok', [pid, this.terminateTimeoutMs]);
        if (t[0]?.ok) terminated++;
      }
      const deadline = Date.now() + this.terminateTimeoutMs;
      for (;;) {
        const { rows: left } = await q.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [targets]);
        if (left.length === 0) break;
        if (Date.now() > deadline) throw new Error(`sessions of ${identity} still alive after termination: ${left.map((l) => l.pid).join(', ')}`);
        await sleep(50);
      }
      return { terminated };
    });
  }

  async setLogin(identity: string, enabled: boolean): Promise<{ changed: boolean }> {
    return this.mutate(identity, async (c) => {
      const id = await this.identityRow(c, identity);
      if (id.rolcanlogin === enabled) return { changed: false };
      await c.query(`ALTER ROLE ${escapeIdentifier(id.rolname)} ${enabled ? 'LOGIN' : 'NOLOGIN'}`);
      return { changed: true };
    });
  }

  async readAccess(identity: string): Promise<AccessState> {
    return this.read(async (q) => {
      checkName('identity', identity);
      const row = await this.roleRow(q, identity);
      if (!row) return { exists: false, canLogin: false, connectionLimit: 0, entitlements: [] };
      return this.stateIn(q, await this.identityRow(q, identity));
    });
  }

  async snapshot(identity: string): Promise<AccessSnapshot> {
    return this.read(async (q) => {
      const id = await this.identityRow(q, identity);
      return { identity: id.rolname, ...(await this.stateIn(q, id)), takenAt: new Date().toISOString() };
    });
  }

  async throttle(identity: string, level: ThrottleLevel): Promise<AccessSnapshot> {
    const limit = level?.connectionLimit;
    if (!Number.isInteger(limit) || limit < -1) {
      throw permanent(ConnectorErrorCode.InvalidArgument, 'connectionLimit must be an integer >= -1');
    }
    return this.mutate(identity, async (c) => {
      const id = await this.identityRow(c, identity);
      const before: AccessSnapshot = { identity: id.rolname, ...(await this.stateIn(c, id)), takenAt: new Date().toISOString() };
      if (id.rolconnlimit !== limit) {
        await c.query(`ALTER ROLE ${escapeIdentifier(id.rolname)} CONNECTION LIMIT ${limit}`);
      }
      if (level.removeWriteEntitlements) {
        for (const name of before.entitlements.filter((e) => this.writeCapable.has(e))) {
          await this.revokeIn(c, id, await this.entitlementRow(c, name, true));
        }
      }
      if (level.disableLogin && id.rolcanlogin) await c.query(`ALTER ROLE ${escapeIdentifier(id.rolname)} NOLOGIN`);
      return before;
    });
  }

  /** Exact: memberships added since the snapshot are revoked, removed ones granted back. */
  async restore(snapshot: AccessSnapshot): Promise<AccessState> {
    if (!snapshot || snapshot.exists !== true) {
      throw permanent(ConnectorErrorCode.InvalidArgument, 'restore needs a snapshot of an existing identity');
    }
    return this.apply(snapshot.identity, snapshot);
  }

  entitlementCatalogue() {
    return { grantable: sortNames(this.grantable), writeCapable: sortNames(this.writeCapable), readOnlyForm: { ...this.readOnlyForms } };
  }

  /**
   * Entitlements it cannot grant at all are refused before anything changes. Then best effort,
   * restrictive changes first: each change in its own savepoint, so one the target refuses (a
   * membership another administrator granted) does not keep the others from taking effect — access
   * that can be removed is removed. What was refused is then a permanent error naming it.
   */
  async apply(identity: string, access: TargetAccess): Promise<AccessState> {
    if (!access || !Array.isArray(access.entitlements) || typeof access.canLogin !== 'boolean') {
      throw permanent(ConnectorErrorCode.InvalidArgument, 'apply needs entitlements, canLogin and connectionLimit');
    }
    if (!Number.isInteger(access.connectionLimit) || access.connectionLimit < -1) {
      throw permanent(ConnectorErrorCode.InvalidArgument, 'connectionLimit must be an integer >= -1');
    }
    const wanted = new Set(access.entitlements.map((e) => checkName('entitlement', e)));
    const { after, refused } = await this.mutate(identity, async (c) => {
      const id = await this.identityRow(c, identity);
      const q = escapeIdentifier(id.rolname);
      const refused: PermanentConnectorError[] = [];
      const step = async (op: () => Promise<unknown>) => {
        await c.query('SAVEPOINT apply_step');
        try {
          await op();
          await c.query('RELEASE SAVEPOINT apply_step');
        } catch (err) {
          await c.query('ROLLBACK TO SAVEPOINT apply_step');
          const mapped = mapError(err);
          if (!(mapped instanceof PermanentConnectorError)) throw mapped;
          refused.push(mapped);
        }
      };
      const current = await this.memberships(c, id.oid);
      // What cannot be granted at all is refused before anything changes.
      const toGrant = [];
      for (const name of [...wanted].filter((e) => !current.includes(e))) toGrant.push(await this.entitlementRow(c, name, true));
      if (id.rolcanlogin && !access.canLogin) await step(() => c.query(`ALTER ROLE ${q} NOLOGIN`));
      if (id.rolconnlimit !== access.connectionLimit) await step(() => c.query(`ALTER ROLE ${q} CONNECTION LIMIT ${access.connectionLimit}`));
      for (const name of current.filter((e) => !wanted.has(e))) await step(async () => this.revokeIn(c, id, await this.entitlementRow(c, name, true)));
      for (const ent of toGrant) await step(() => this.grantIn(c, id, ent));
      if (!id.rolcanlogin && access.canLogin) await step(() => c.query(`ALTER ROLE ${q} LOGIN`));
      return { after: await this.stateIn(c, await this.identityRow(c, identity)), refused };
    });
    if (refused.length) throw permanent(refused[0].code as ConnectorErrorCode, refused.map((e) => e.message).join('; '));
    const same =
      after.canLogin === access.canLogin &&
      after.connectionLimit === access.connectionLimit &&
      after.entitlements.join('\n') === sortNames(wanted).join('\n');
    if (!same) throw new Error(`${identity} did not reach the access applied to it (now ${JSON.stringify(after)})`);
    return after;
  }

  /**
   * A real login as the identity. 28P01 is `denied`; 28000, 53300 and 42501 are `inconclusive`,
   * with `credentialAccepted` from the server function that refused (the error's routine field,
   * which does not depend on the server's message language). Anything else (unreachable, wrong
   * probe database) throws: it says nothing about the credential.
   */
  async probe(identity: string, secretValue: string): Promise<ProbeResult> {
    checkName('identity', identity);
    const client = new Client({
      connectionTimeoutMillis: 10_000,
      application_name: 'nhi-connector-probe',
      ...this.probeTarget,
      user: identity,
      password: secretValue,
    });
    // A server-side disconnect after connect must not become an unhandled 'error' event.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return { access: 'granted' };
    } catch (err) {
      const code = sqlstate(err);
      const message = (err as Error).message;
      if (code === WRONG_CREDENTIAL_SQLSTATE) return { access: 'denied', code, detail: message };
      if (code && INCONCLUSIVE_SQLSTATE.test(code)) {
        const routine = (err as { routine?: unknown }).routine;
        const accepted = typeof routine === 'string' ? AFTER_AUTHENTICATION.has(routine) : undefined;
        const why =
          accepted === true
            ? 'the password was accepted (PostgreSQL checks it before login permission, connection limit and CONNECT), then the login was refused'
            : accepted === false
              ? 'refused before the password was checked'
              : 'refused; the server did not say at which stage';
        const refusedBy = accepted !== true ? undefined : code === '28000' ? 'login_disabled' : code === '53300' ? 'connection_limit' : undefined;
        return {
          access: 'inconclusive',
          code,
          detail: `${message} — ${why}`,
          ...(accepted !== undefined ? { credentialAccepted: accepted } : {}),
          ...(refusedBy ? { refusedBy } : {}),
        };
      }
      throw err;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /**
   * Roles this connector administers that look like identities: not the role of a mapped
   * entitlement, not a built-in role, and not a group with members (NOLOGIN identities stay visible,
   * e.g. offboarded ones). Identities are role names; their entitlements are named as in listEntitlements.
   */
  async listIdentities(): Promise<DiscoveredIdentity[]> {
    return this.read(async (q) => {
      const { rows } = await q.query<{ rolname: string; rolcanlogin: boolean; entitlements: string[] }>(
        `SELECT r.rolname, r.rolcanlogin,
                COALESCE(ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                                WHERE m.member = r.oid), '{}') AS entitlements
           FROM pg_roles r
          WHERE pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION')
            AND NOT r.rolsuper AND r.rolname <> current_user AND r.rolname NOT LIKE 'pg\\_%'
            AND r.rolname <> ALL($1::text[])
            AND (r.rolcanlogin OR NOT EXISTS (
                  SELECT 1 FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
                   WHERE m.roleid = r.oid AND u.rolname <> current_user))`,
        [[...this.entitlementOf.keys()]],
      );
      return rows
        .map((r) => ({ identity: r.rolname, canLogin: r.rolcanlogin, entitlements: sortNames(r.entitlements.map((e) => this.entitlementFor(e))) }))
        .sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
    });
  }

  /** Registration guard: only a role this connector administers that is an identity, not a group or an administrator. */
  async checkRegistrable(identity: string): Promise<RegistrableVerdict> {
    try {
      checkName('identity', identity);
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
    if (this.roleOf.has(identity) || this.entitlementOf.has(identity)) return { ok: false, reason: `${JSON.stringify(identity)} is an entitlement (a group role), not an identity` };
    return this.read(async (q) => {
      const { rows } = await q.query<{ rolsuper: boolean; is_self: boolean; builtin: boolean; managed: boolean; members: number; createrole: boolean }>(
        `SELECT r.rolsuper, r.rolname = current_user AS is_self, r.rolname LIKE 'pg\\_%' AS builtin, r.rolcreaterole AS createrole,
                pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION') AS managed,
                (SELECT count(*)::int FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
                  WHERE m.roleid = r.oid AND u.rolname <> current_user) AS members
           FROM pg_roles r WHERE r.rolname = $1`,
        [identity],
      );
      const r = rows[0];
      if (!r) return { ok: false, reason: `no role ${JSON.stringify(identity)} exists at the target` };
      if (r.is_self) return { ok: false, reason: `${JSON.stringify(identity)} is the connector's own role` };
      if (r.rolsuper) return { ok: false, reason: `${JSON.stringify(identity)} is a superuser: the connector does not administer it` };
      if (r.builtin) return { ok: false, reason: `${JSON.stringify(identity)} is a built-in role` };
      if (r.createrole) return { ok: false, reason: `${JSON.stringify(identity)} has CREATEROLE: an administrator, not an identity the connector manages` };
      if (!r.managed) return { ok: false, reason: `the connector has no ADMIN OPTION on ${JSON.stringify(identity)}: it does not administer it` };
      if (r.members > 0) return { ok: false, reason: `${JSON.stringify(identity)} is a group role (it has members)` };
      return { ok: true };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsPool) await this.pool.end();
  }
}
