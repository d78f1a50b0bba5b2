// Fingerprints of credentials: what the secret store records beside each issued value and what leak
// alerts are matched against. Values go in, only hashes come out.
import { createHash, scryptSync } from 'node:crypto';

export function sha256Hex(value: string | Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

// HasMySecretLeaked hashing, as in GitGuardian's ggshield (ggshield/verticals/hmsl/crypto.py,
// `hash_string`): scrypt(secret utf-8, salt = sha256("GitGuardian"), N=2048, r=8, p=1, 32 bytes),
// hex. GitGuardian calls the salt a "publicly available pepper". Their test vector:
// "test" → bdbfe17c6018147f07ce79f8ec415a075d761ccacc14803e7d645155bf21a75f.
const HMSL_PEPPER = createHash('sha256').update('GitGuardian').digest();

export function hmslHash(secretValue: string): string {
  return scryptSync(Buffer.from(secretValue, 'utf8'), HMSL_PEPPER, 32, { N: 2048, r: 8, p: 1 }).toString('hex');
}

/**
 * What a stored credential is also found or named by alone: its id at the target (an AWS access key
 * id, an OpenBao secret-id accessor; not a secret) and, for a composite value, the secret half a
 * scanner finds and hashes by itself (an AWS secret access key).
 */
export interface CredentialParts {
  credentialId?: string;
  secret?: string;
}

/** The fingerprints the secret store keeps of a credential's parts: sha256 of each, HMSL of the secret half. */
export function partFingerprints(parts: CredentialParts): { part: 'secret' | 'credential_id'; kind: 'sha256' | 'hmsl'; fingerprint: string }[] {
  const out: { part: 'secret' | 'credential_id'; kind: 'sha256' | 'hmsl'; fingerprint: string }[] = [];
  if (parts.secret) out.push({ part: 'secret', kind: 'sha256', fingerprint: sha256Hex(parts.secret) }, { part: 'secret', kind: 'hmsl', fingerprint: hmslHash(parts.secret) });
  if (parts.credentialId) out.push({ part: 'credential_id', kind: 'sha256', fingerprint: sha256Hex(parts.credentialId) });
  return out;
}
