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
