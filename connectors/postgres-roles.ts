// What PostgreSQL's role system does differently across the versions the connector supports
// (15–18), in one place. PostgreSQL 16 gave each membership its own INHERIT and SET options,
// recorded one membership row per grantor, and let a CREATEROLE role act only on roles it holds
// ADMIN OPTION on (and revoke only grants made by roles it acts as). On 15 a CREATEROLE role may
// grant, revoke and alter every non-superuser role, and inheritance is a property of the member.
import { escapeIdentifier } from 'pg';

/** The oldest server the connector and the orchestrator's database support. */
export const MIN_SERVER_VERSION_NUM = 150000;
export const SUPPORTED_VERSIONS = '15, 16, 17 and 18';

export interface RoleSystem {
  /** server_version_num, e.g. 150018. */
  versionNum: number;
  /** server_version, e.g. "15.18 (Debian 15.18-0+deb12u1)". */
  version: string;
  major: number;
  /** 16+: per-membership INHERIT/SET options, one row per grantor, grantor-scoped REVOKE. */
  perGrantOptions: boolean;
}

interface Queryable {
  query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

export function roleSystemOf(versionNum: number, version = String(versionNum)): RoleSystem {
  return { versionNum, version, major: Math.floor(versionNum / 10000), perGrantOptions: versionNum >= 160000 };
}

export async function detectRoleSystem(q: Queryable): Promise<RoleSystem> {
  const { rows } = await q.query<{ num: string; version: string }>(
    "SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version",
  );
  return roleSystemOf(Number(rows[0].num), rows[0].version);
}

export function unsupportedVersionMessage(rs: RoleSystem): string | undefined {
  if (rs.versionNum >= MIN_SERVER_VERSION_NUM) return undefined;
  return `PostgreSQL ${rs.version} is not supported: the orchestrator runs on PostgreSQL ${SUPPORTED_VERSIONS}`;
}

/**
 * ADMIN OPTION on `role` for the connector: what marks a role as administered by it. On 16+ the
 * connector gains none of the role's privileges (INHERIT FALSE, SET FALSE); 15 has no such options,
 * so there the membership also passes the role's privileges on to an INHERIT connector.
 */
export function adminOptionGrantSql(rs: RoleSystem, role: string, connector: string): string {
  const options = rs.perGrantOptions ? 'WITH ADMIN TRUE, INHERIT FALSE, SET FALSE' : 'WITH ADMIN OPTION';
  return `GRANT ${escapeIdentifier(role)} TO ${escapeIdentifier(connector)} ${options}`;
}

/** A membership whose privileges the member uses (16+ says so per grant; on 15 the member's INHERIT decides). */
export function inheritedGrantSql(rs: RoleSystem, role: string, member: string, grantedBy?: string): string {
  const inherit = rs.perGrantOptions ? ' WITH INHERIT TRUE' : '';
  const by = grantedBy ? ` GRANTED BY ${escapeIdentifier(grantedBy)}` : '';
  return `GRANT ${escapeIdentifier(role)} TO ${escapeIdentifier(member)}${inherit}${by}`;
}

/**
 * Select-list columns `inherit_option` and `set_option` of a membership `m` (pg_auth_members) whose
 * member is the pg_roles row `memberAlias`: the per-grant options on 16+, what they amount to on 15.
 */
export function membershipOptionColumns(rs: RoleSystem, m: string, memberAlias: string): string {
  return rs.perGrantOptions
    ? `${m}.inherit_option, ${m}.set_option`
    : `${memberAlias}.rolinherit AS inherit_option, true AS set_option`;
}
