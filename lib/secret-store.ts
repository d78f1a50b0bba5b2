// The secret store: issued credentials. Only activities call it; everything that leaves it is a
// reference (the row id) or a fingerprint (sha256 hex), never a value. One interface, two
// implementations: the `secrets` table encrypted with AES-256-GCM (TableSecretStore, the default),
// and the same ledger with the values in a KV v2 mount of OpenBao / Vault (lib/secret-store-vault.ts).
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Pool } from 'pg';
import { decodeKey } from './config';
import { hmslHash, partFingerprints, sha256Hex, type CredentialParts } from './fingerprints';

export type { CredentialParts } from './fingerprints';

export type SecretStatus = 'pending' | 'active' | 'retired' | 'discarded' | 'deleted';

export interface SecretRef {
  ref: string; // uuid
  nhiId: string;
  version: number;
  fingerprint: string; // sha256 hex
  status: SecretStatus;
}

export function fingerprint(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** A new random credential: 32 bytes, URL-safe base64 (no quoting issues in any target). */
export function generateCredential(): string {
  return randomBytes(32).toString('base64url');
}

/** Dev mode: a generated key file in the data folder, created once with 0600. */
export function loadOrCreateKeyFile(dataDir: string): Buffer {
  const file = path.join(dataDir, 'secret-store.key');
  if (existsSync(file)) {
    const key = decodeKey(readFileSync(file, 'utf8').trim());
    if (!key) throw new Error(`${file} does not hold a 32-byte key (base64 or hex)`);
    return key;
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600 });
  return key;
}

type Row = { id: string; nhi_id: string; version: number; fingerprint: string; status: SecretStatus };
const toRef = (r: Row): SecretRef => ({ ref: r.id, nhiId: r.nhi_id, version: r.version, fingerprint: r.fingerprint, status: r.status });

export interface SecretStore {
  /**
   * Store a value as a new pending version. The caller keeps only the returned reference. `parts`:
   * what the value is also found or named by alone (an AWS key's id and secret half): only their
   * fingerprints are kept.
   */
  putPending(nhiId: string, value: string, parts?: CredentialParts): Promise<SecretRef>;
  /** Make a pending version the active one; the previous active version is retired. Idempotent. */
  activate(ref: string): Promise<SecretRef>;
  /** Drop a pending version that never made it to the target. Idempotent; never touches an active one. */
  discard(ref: string): Promise<void>;
  /** The value of a version. For activities only (set on target, probe); never return it from one. */
  reveal(ref: string): Promise<string>;
  active(nhiId: string): Promise<SecretRef | null>;
  get(ref: string): Promise<SecretRef | null>;
  list(nhiId: string): Promise<SecretRef[]>;
  /** Which NHI issued a credential with this fingerprint (of the value or of a part), any status, newest first. */
  findByFingerprint(fp: string): Promise<SecretRef[]>;
  /** The NHI's versions stored with this credential id (an access key id, a secret-id accessor), newest first. */
  findByCredentialId(nhiId: string, credentialId: string): Promise<SecretRef[]>;
  /** Which NHI issued a credential with this HasMySecretLeaked hash (GitGuardian `hmsl_hash`), newest first. */
  findByHmsl(hash: string): Promise<SecretRef[]>;
  /** Offboarding: erase every stored value for the NHI, keeping fingerprints for the record. */
  deleteAll(nhiId: string): Promise<number>;
}

/** Where a version's value lives; the table's own encrypted columns unless a subclass says otherwise. */
export interface SealedValue {
  iv: Buffer;
  authTag: Buffer;
  ciphertext: Buffer;
}

export class TableSecretStore implements SecretStore {
  constructor(
    protected readonly pool: Pool,
    private readonly key: Buffer,
  ) {
    if (key.length !== 32) throw new Error('secret store key must be 32 bytes');
  }

  /** Keep the value of a new version; null when it is kept outside the table. */
  protected async seal(nhiId: string, version: number, value: string): Promise<SealedValue | null> {
    return this.encrypt(value, `${nhiId}:${version}`);
  }

  /** Read a version's value kept outside the table (the table's own are decrypted in reveal). */
  protected async unsealExternal(ref: string, _nhiId: string, _version: number): Promise<string> {
    throw new Error(`secret ${ref} has no stored value (deleted or discarded)`);
  }

  /** After a version became active (also on a repeated activate): e.g. publish it where workloads read. */
  protected async published(_ref: SecretRef): Promise<void> {}

  /** After versions' values were erased from the table (discard, deleteAll): erase copies kept elsewhere. */
  protected async erased(_nhiId: string, _versions: number[], _all: boolean): Promise<void> {}

  private encrypt(value: string, aad: string) {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return { iv, ciphertext, authTag: cipher.getAuthTag() };
  }

  /** Store a value as a new pending version. The caller keeps only the returned reference. */
  async putPending(nhiId: string, value: string, parts: CredentialParts = {}): Promise<SecretRef> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Serialise version numbers per NHI.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`secret:${nhiId}`]);
      const { rows: v } = await client.query<{ next: number }>(
        'SELECT COALESCE(MAX(version), 0) + 1 AS next FROM secrets WHERE nhi_id = $1',
        [nhiId],
      );
      const version = v[0].next;
      // Kept before the row commits: a crash leaves at most a value under a version number the next attempt reuses.
      const sealed = await this.seal(nhiId, version, value);
      const { rows } = await client.query<Row>(
        `INSERT INTO secrets (nhi_id, version, status, fingerprint, hmsl, iv, auth_tag, ciphertext)
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7) RETURNING id, nhi_id, version, fingerprint, status`,
        // The HMSL hash too, so a GitGuardian incident's hmsl_hash can name the credential.
        [nhiId, version, fingerprint(value), hmslHash(value), sealed?.iv ?? null, sealed?.authTag ?? null, sealed?.ciphertext ?? null],
      );
      for (const f of partFingerprints(parts)) {
        await client.query('INSERT INTO secret_fingerprints (secret_id, part, kind, fingerprint) VALUES ($1, $2, $3, $4)', [rows[0].id, f.part, f.kind, f.fingerprint]);
      }
      await client.query('COMMIT');
      return toRef(rows[0]);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Make a pending version the active one; the previous active version is retired. Idempotent. */
  async activate(ref: string): Promise<SecretRef> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<Row>('SELECT id, nhi_id, version, fingerprint, status FROM secrets WHERE id = $1 FOR UPDATE', [ref]);
      if (!rows[0]) throw new Error(`secret ${ref} not found`);
      if (rows[0].status === 'active') {
        await client.query('COMMIT');
        await this.published(toRef(rows[0]));
        return toRef(rows[0]);
      }
      if (rows[0].status !== 'pending') throw new Error(`secret ${ref} is ${rows[0].status}, not pending`);
      await client.query(
        `UPDATE secrets SET status = 'retired', retired_at = now() WHERE nhi_id = $1 AND status = 'active'`,
        [rows[0].nhi_id],
      );
      const { rows: updated } = await client.query<Row>(
        `UPDATE secrets SET status = 'active', activated_at = now() WHERE id = $1 RETURNING id, nhi_id, version, fingerprint, status`,
        [ref],
      );
      await client.query('COMMIT');
      await this.published(toRef(updated[0]));
      return toRef(updated[0]);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Drop a pending version that never made it to the target. Idempotent; never touches an active one. */
  async discard(ref: string): Promise<void> {
    const { rows } = await this.pool.query<{ nhi_id: string; version: number; status: SecretStatus }>(
      `UPDATE secrets SET status = 'discarded', ciphertext = NULL, iv = NULL, auth_tag = NULL WHERE id = $1 AND status IN ('pending', 'discarded')
       RETURNING nhi_id, version, status`,
      [ref],
    );
    if (rows[0]) await this.erased(rows[0].nhi_id, [rows[0].version], false);
  }

  /** Decrypt a version. For activities only (set on target, probe); never return it from one. */
  async reveal(ref: string): Promise<string> {
    const { rows } = await this.pool.query<{ nhi_id: string; version: number; status: SecretStatus; iv: Buffer | null; auth_tag: Buffer | null; ciphertext: Buffer | null }>(
      'SELECT nhi_id, version, status, iv, auth_tag, ciphertext FROM secrets WHERE id = $1',
      [ref],
    );
    const r = rows[0];
    if (!r) throw new Error(`secret ${ref} not found`);
    if (r.status === 'deleted' || r.status === 'discarded') throw new Error(`secret ${ref} has no stored value (deleted or discarded)`);
    if (!r.ciphertext || !r.iv || !r.auth_tag) return this.unsealExternal(ref, r.nhi_id, r.version);
    const decipher = createDecipheriv('aes-256-gcm', this.key, r.iv);
    decipher.setAAD(Buffer.from(`${r.nhi_id}:${r.version}`));
    decipher.setAuthTag(r.auth_tag);
    return Buffer.concat([decipher.update(r.ciphertext), decipher.final()]).toString('utf8');
  }

  async active(nhiId: string): Promise<SecretRef | null> {
    const { rows } = await this.pool.query<Row>(
      `SELECT id, nhi_id, version, fingerprint, status FROM secrets WHERE nhi_id = $1 AND status = 'active'`,
      [nhiId],
    );
    return rows[0] ? toRef(rows[0]) : null;
  }

  async get(ref: string): Promise<SecretRef | null> {
    const { rows } = await this.pool.query<Row>('SELECT id, nhi_id, version, fingerprint, status FROM secrets WHERE id = $1', [ref]);
    return rows[0] ? toRef(rows[0]) : null;
  }

  async list(nhiId: string): Promise<SecretRef[]> {
    const { rows } = await this.pool.query<Row>(
      'SELECT id, nhi_id, version, fingerprint, status FROM secrets WHERE nhi_id = $1 ORDER BY version',
      [nhiId],
    );
    return rows.map(toRef);
  }

  /** Which NHI issued a credential with this fingerprint (of the value or of a part), any status, newest first. */
  async findByFingerprint(fp: string): Promise<SecretRef[]> {
    return (await secretsByFingerprints(this.pool, { sha256: [fp], hmsl: [] })).map(toRef);
  }

  /** Which NHI issued a credential with this HasMySecretLeaked hash (GitGuardian `hmsl_hash`), newest first. */
  async findByHmsl(hash: string): Promise<SecretRef[]> {
    return (await secretsByFingerprints(this.pool, { sha256: [], hmsl: [hash] })).map(toRef);
  }

  async findByCredentialId(nhiId: string, credentialId: string): Promise<SecretRef[]> {
    const { rows } = await this.pool.query<Row>(
      `SELECT s.id, s.nhi_id, s.version, s.fingerprint, s.status FROM secrets s JOIN secret_fingerprints f ON f.secret_id = s.id
       WHERE s.nhi_id = $1 AND f.part = 'credential_id' AND f.kind = 'sha256' AND f.fingerprint = $2 ORDER BY s.created_at DESC`,
      [nhiId, sha256Hex(credentialId)],
    );
    return rows.map(toRef);
  }

  /** Offboarding: erase every stored value for the NHI, keeping fingerprints for the record. */
  async deleteAll(nhiId: string): Promise<number> {
    const { rowCount } = await this.pool.query(
      `UPDATE secrets SET status = 'deleted', ciphertext = NULL, iv = NULL, auth_tag = NULL, retired_at = COALESCE(retired_at, now())
       WHERE nhi_id = $1 AND status <> 'deleted'`,
      [nhiId],
    );
    // Every version, also on a retry: copies kept elsewhere are erased until none is left.
    const { rows } = await this.pool.query<{ version: number }>('SELECT version FROM secrets WHERE nhi_id = $1', [nhiId]);
    await this.erased(nhiId, rows.map((r) => r.version), true);
    return rowCount ?? 0;
  }
}

/**
 * The one lookup of stored credentials by fingerprint (the store's and leak matching's): sha256 or
 * HasMySecretLeaked hashes of a whole value, or of a part kept in secret_fingerprints. Newest first.
 */
export async function secretsByFingerprints(
  pool: Pick<Pool, 'query'>,
  fps: { sha256: string[]; hmsl: string[] },
): Promise<{ id: string; nhi_id: string; version: number; fingerprint: string; status: SecretStatus; created_at: Date }[]> {
  const sha = fps.sha256.map((f) => f.toLowerCase());
  const hmsl = fps.hmsl.map((f) => f.toLowerCase());
  const { rows } = await pool.query<Row & { created_at: Date }>(
    `SELECT id, nhi_id, version, fingerprint, status, created_at FROM secrets
     WHERE fingerprint = ANY($1::text[]) OR hmsl = ANY($2::text[])
        OR id IN (SELECT secret_id FROM secret_fingerprints
                  WHERE (kind = 'sha256' AND fingerprint = ANY($1::text[])) OR (kind = 'hmsl' AND fingerprint = ANY($2::text[])))
     ORDER BY created_at DESC`,
    [sha, hmsl],
  );
  return rows;
}
