// Signed authority: how a workflow knows a message that widens or restores access really comes from
// the principal it names. The API (which authenticated the caller) signs the principal together with
// the workflow id, the message name, a nonce and an expiry, with a key only it and the workers hold;
// the workflow's first check activity verifies the signature, uses the nonce once, and looks the
// principal's roles up server-side. Anyone with Temporal access can still send the message, but
// without the key they cannot make it count as anyone (docs/security.md).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Pool, PoolClient } from 'pg';
import { decodeKey } from './config';

/** Messages and starts that need a signed principal. */
export type SignedMessage =
  | 'start'
  | 'approve'
  | 'deny'
  | 'extend'
  | 'revoke'
  | 'abort'
  | 'confirm'
  | 'clear'
  | 'approveThrottle'
  | 'bind'
  | 'retry';

/** What a signed message carries (plain JSON: it travels in signal/update/start payloads). */
export interface Authority {
  principal: string;
  workflowId: string;
  message: SignedMessage;
  nonce: string;
  /** ISO time after which it is refused. */
  expiresAt: string;
  /** base64url HMAC-SHA256 over the fields above. */
  signature: string;
}

/** How long a signature is good for: enough for the API's own call and Temporal's retries of it. */
export const AUTHORITY_TTL_SECONDS = 300;

const canonical = (a: Omit<Authority, 'signature'>) => JSON.stringify([a.principal, a.workflowId, a.message, a.nonce, a.expiresAt]);
const mac = (key: Buffer, a: Omit<Authority, 'signature'>) => createHmac('sha256', key).update(canonical(a)).digest('base64url');

export function signAuthority(key: Buffer, claim: { principal: string; workflowId: string; message: SignedMessage }, now = Date.now(), ttlSeconds = AUTHORITY_TTL_SECONDS): Authority {
  const unsigned = { ...claim, nonce: randomBytes(12).toString('base64url'), expiresAt: new Date(now + ttlSeconds * 1000).toISOString() };
  return { ...unsigned, signature: mac(key, unsigned) };
}

export type AuthorityCheck = { ok: true; principal: string } | { ok: false; reason: string };

/** Signature, workflow, message, expiry — no database. */
export function checkSignature(key: Buffer, a: unknown, expected: { workflowId: string; message: SignedMessage }, now = Date.now()): AuthorityCheck {
  if (!a || typeof a !== 'object') return { ok: false, reason: `${expected.message} needs a signed principal: send it through the API (a message from the Temporal UI or CLI is not signed)` };
  const x = a as Partial<Authority>;
  if (![x.principal, x.workflowId, x.message, x.nonce, x.expiresAt, x.signature].every((v) => typeof v === 'string' && v.length > 0)) {
    return { ok: false, reason: 'the authority is malformed' };
  }
  const given = Buffer.from(x.signature!, 'utf8');
  const wanted = Buffer.from(mac(key, x as Authority), 'utf8');
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) return { ok: false, reason: 'the authority signature does not verify' };
  if (x.workflowId !== expected.workflowId) return { ok: false, reason: `the authority was signed for ${x.workflowId}, not ${expected.workflowId}` };
  if (x.message !== expected.message) return { ok: false, reason: `the authority was signed for ${x.message}, not ${expected.message}` };
  if (!(Date.parse(x.expiresAt!) > now)) return { ok: false, reason: `the authority expired at ${x.expiresAt}` };
  return { ok: true, principal: x.principal! };
}

/**
 * Use a verified authority's nonce once. `use` names the one activity execution that consumes it
 * (workflow run + activity id), so Temporal's retry of that activity is accepted and any other use
 * — the same signed message sent again — is refused.
 */
export async function useNonce(q: Pool | PoolClient, a: Authority, use: string): Promise<AuthorityCheck> {
  const { rows } = await q.query<{ used_by: string }>(
    `INSERT INTO authority_nonces (nonce, workflow_id, message, principal, used_by, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (nonce) DO UPDATE SET nonce = EXCLUDED.nonce
     RETURNING used_by`,
    [a.nonce, a.workflowId, a.message, a.principal, use, a.expiresAt],
  );
  return rows[0].used_by === use ? { ok: true, principal: a.principal } : { ok: false, reason: 'this signed message was already used (a replay)' };
}

/** Dev mode: the authority key file in the data folder, created once with 0600. */
export function loadOrCreateAuthorityKey(dataDir: string): Buffer {
  const file = path.join(dataDir, 'authority.key');
  if (existsSync(file)) {
    const key = decodeKey(readFileSync(file, 'utf8').trim());
    if (!key) throw new Error(`${file} does not hold a 32-byte key (base64 or hex)`);
    return key;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600 });
  return key;
}
