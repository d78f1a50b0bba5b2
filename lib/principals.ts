// Principals (callers of the API: people and tools) and their API tokens. A token is shown once,
// when created; only its sha256 is stored, so a database dump does not hand out access.
import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { z } from 'zod';

export const ROLES = ['requester', 'approver', 'deployer', 'detector', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const roleSchema = z.enum(ROLES);

/** Same rule as the principals.id CHECK constraint, so bad ids fail validation, not the insert. */
export const principalIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/, 'must be 1-128 characters: letters, digits, _ . @ -, starting with a letter or digit');

export const principalSchema = z
  .strictObject({
    id: principalIdSchema,
    roles: z.array(roleSchema),
  })
  .meta({ id: 'Principal', description: 'An API caller and its roles (admin implies every role).' });

export interface Principal {
  id: string;
  roles: Role[];
}

export interface PrincipalSummary extends Principal {
  createdAt: string;
  activeTokens: number;
  lastUsedAt: string | null;
}

export interface TokenInfo {
  id: string;
  principalId: string;
  label: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  expiresAt: string;
}

export const TOKEN_PREFIX = 'nhi_';
const TOKEN_PATTERN = /^nhi_[A-Za-z0-9_-]{43}$/;
/** last_used_at is refreshed at most this often, so authenticating is a read almost always. */
const LAST_USED_RESOLUTION_SECONDS = 60;

export class PrincipalExistsError extends Error {
  constructor(readonly principalId: string) {
    super(`principal ${principalId} already exists`);
    this.name = 'PrincipalExistsError';
  }
}

export class UnknownPrincipalError extends Error {
  constructor(readonly principalId: string) {
    super(`principal ${principalId} does not exist`);
    this.name = 'UnknownPrincipalError';
  }
}

/** Admin implies every role. */
export function hasRole(principal: Pick<Principal, 'roles'>, ...anyOf: Role[]): boolean {
  if (principal.roles.includes('admin')) return true;
  return anyOf.some((r) => principal.roles.includes(r));
}

/** Parse "requester, approver" into roles; throws with the offending names listed. */
export function parseRoles(list: string): Role[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !(ROLES as readonly string[]).includes(n));
  if (bad.length) throw new Error(`unknown role${bad.length > 1 ? 's' : ''} ${bad.map((b) => JSON.stringify(b)).join(', ')}; valid roles: ${ROLES.join(', ')}`);
  if (names.length === 0) throw new Error(`no roles given; valid roles: ${ROLES.join(', ')}`);
  return normaliseRoles(names as Role[]);
}

const normaliseRoles = (roles: readonly Role[]): Role[] => ROLES.filter((r) => roles.includes(r));

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

const validate = (p: Principal): Principal => {
  const parsed = principalSchema.parse(p);
  return { id: parsed.id, roles: normaliseRoles(parsed.roles) };
};

/** Create a principal; throws PrincipalExistsError when the id is taken. */
export async function createPrincipal(pool: Pool, input: Principal): Promise<Principal> {
  const p = validate(input);
  const { rowCount } = await pool.query('INSERT INTO principals (id, roles) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [p.id, p.roles]);
  if (rowCount === 0) throw new PrincipalExistsError(p.id);
  return p;
}

/** Create the principal or replace its roles with exactly these. */
export async function upsertPrincipal(pool: Pool, input: Principal): Promise<Principal> {
  const p = validate(input);
  await pool.query('INSERT INTO principals (id, roles) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET roles = EXCLUDED.roles', [p.id, p.roles]);
  return p;
}

export async function getPrincipal(pool: Pool, id: string): Promise<Principal | null> {
  if (!principalIdSchema.safeParse(id).success) return null;
  const { rows } = await pool.query<{ id: string; roles: Role[] }>('SELECT id, roles FROM principals WHERE id = $1', [id]);
  return rows[0] ? { id: rows[0].id, roles: rows[0].roles } : null;
}

export async function listPrincipals(pool: Pool): Promise<PrincipalSummary[]> {
  const { rows } = await pool.query<{ id: string; roles: Role[]; created_at: Date; active_tokens: string; last_used_at: Date | null }>(
    `SELECT p.id, p.roles, p.created_at,
            count(t.id) FILTER (WHERE t.revoked_at IS NULL AND t.expires_at > now()) AS active_tokens,
            max(t.last_used_at) AS last_used_at
       FROM principals p LEFT JOIN api_tokens t ON t.principal_id = p.id
      GROUP BY p.id ORDER BY p.id`,
  );
  return rows.map((r) => ({
    id: r.id,
    roles: r.roles,
    createdAt: r.created_at.toISOString(),
    activeTokens: Number(r.active_tokens),
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
  }));
}

/** How long a token lives unless its creator says otherwise. */
export const DEFAULT_TOKEN_TTL_SECONDS = 90 * 24 * 3600;
export const MAX_TOKEN_TTL_SECONDS = 730 * 24 * 3600;

/** "90d", "12h", "30m" or "45s" → seconds; throws with the rule when it is not one of those or out of range. */
export function parseTtl(text: string): number {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'] : NaN;
  if (!(seconds >= 60 && seconds <= MAX_TOKEN_TTL_SECONDS)) throw new Error('must be a duration like 90d, 12h or 30m, from 1 minute to 730 days');
  return seconds;
}

/** Issue a new token for an existing principal. The returned string is the only copy. It expires (default 90 days). */
export async function createToken(pool: Pool, principalId: string, label?: string, opts: { ttlSeconds?: number } = {}): Promise<string> {
  if (label !== undefined && (label.length > 200 || label.includes('\u0000'))) throw new Error('token label must be at most 200 characters without NUL');
  const ttl = opts.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!(Number.isInteger(ttl) && ttl > 0 && ttl <= MAX_TOKEN_TTL_SECONDS)) throw new Error(`token ttl must be a whole number of seconds from 1 to ${MAX_TOKEN_TTL_SECONDS}`);
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  try {
    await pool.query('INSERT INTO api_tokens (principal_id, token_sha256, label, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))', [
      principalId,
      hashToken(token),
      label ?? null,
      ttl,
    ]);
  } catch (err) {
    if ((err as { code?: string }).code === '23503') throw new UnknownPrincipalError(principalId);
    throw err;
  }
  return token;
}

/**
 * The principal a token belongs to, or null (unknown, malformed or revoked). The lookup is by
 * sha256 of the token, so response time does not depend on how much of a guess matches.
 */
export async function authenticate(pool: Pool, token: string): Promise<Principal | null> {
  if (!TOKEN_PATTERN.test(token)) return null;
  const { rows } = await pool.query<{ id: string; roles: Role[] }>(
    `WITH hit AS (
       SELECT t.id AS token_id, t.last_used_at, p.id, p.roles
         FROM api_tokens t JOIN principals p ON p.id = t.principal_id
        WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND t.expires_at > now()
     ), touched AS (
       UPDATE api_tokens SET last_used_at = now()
        WHERE id IN (SELECT token_id FROM hit
                      WHERE last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))
     )
     SELECT id, roles FROM hit`,
    [hashToken(token), LAST_USED_RESOLUTION_SECONDS],
  );
  return rows[0] ? { id: rows[0].id, roles: rows[0].roles } : null;
}

export async function listTokens(pool: Pool, principalId?: string): Promise<TokenInfo[]> {
  const { rows } = await pool.query<{
    id: string;
    principal_id: string;
    label: string | null;
    created_at: Date;
    last_used_at: Date | null;
    revoked_at: Date | null;
    expires_at: Date;
  }>(
    `SELECT id, principal_id, label, created_at, last_used_at, revoked_at, expires_at FROM api_tokens
      WHERE $1::text IS NULL OR principal_id = $1 ORDER BY created_at, id`,
    [principalId ?? null],
  );
  return rows.map((r) => ({
    id: r.id,
    principalId: r.principal_id,
    label: r.label,
    createdAt: r.created_at.toISOString(),
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
    revokedAt: r.revoked_at?.toISOString() ?? null,
    expiresAt: r.expires_at.toISOString(),
  }));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Revoke a token, named by its id (from listTokens) or by the token itself. Returns false when
 * nothing matched or it was already revoked; revoking twice is harmless.
 */
export async function revokeToken(pool: Pool, idOrToken: string): Promise<boolean> {
  let sql: string;
  let arg: string;
  if (idOrToken.startsWith(TOKEN_PREFIX)) {
    sql = 'UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL';
    arg = hashToken(idOrToken);
  } else if (UUID.test(idOrToken)) {
    sql = 'UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL';
    arg = idOrToken;
  } else {
    return false;
  }
  const { rowCount } = await pool.query(sql, [arg]);
  return (rowCount ?? 0) > 0;
}
