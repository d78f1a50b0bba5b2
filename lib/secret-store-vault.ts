// The secret store with its values in a KV v2 mount of OpenBao / HashiCorp Vault: the ledger of
// versions, statuses and fingerprints stays in the `secrets` table (rotations and leak matching
// refer to it), each value lives in Vault, and the active one is published where workloads fetch it:
//   <mount>/<prefix>/<nhiId>                      the active credential: { value, version, fingerprint }
//   <mount>/<prefix>/<nhiId>/versions/<version>   every version the orchestrator keeps (pending, retired)
// Discarding or deleting erases the Vault copies for good (KV v2 metadata delete).
import type { Pool } from 'pg';
import { TableSecretStore, type SealedValue, type SecretRef } from './secret-store';
import type { VaultClient } from './vault';

export interface VaultSecretStoreOptions {
  /** KV v2 mount (VAULT_KV_MOUNT). */
  mount: string;
  /** Folder under the mount (VAULT_KV_PREFIX). */
  prefix: string;
}

const seg = (s: string) => encodeURIComponent(s);

export class VaultSecretStore extends TableSecretStore {
  constructor(
    pool: Pool,
    private readonly vault: VaultClient,
    private readonly kv: VaultSecretStoreOptions,
  ) {
    // The table's key is never used for values here: only the ledger lives in the table.
    super(pool, Buffer.alloc(32));
  }

  /** Where workloads read the NHI's active credential (relative to the mount). */
  activePath(nhiId: string): string {
    return `${this.kv.prefix}/${seg(nhiId)}`;
  }

  private versionPath(nhiId: string, version: number): string {
    return `${this.activePath(nhiId)}/versions/${version}`;
  }

  private data = (path: string) => `${seg(this.kv.mount)}/data/${path}`;
  private metadata = (path: string) => `${seg(this.kv.mount)}/metadata/${path}`;

  protected override async seal(nhiId: string, version: number, value: string): Promise<SealedValue | null> {
    await this.vault.request('POST', this.data(this.versionPath(nhiId, version)), { data: { value } });
    return null;
  }

  protected override async unsealExternal(ref: string, nhiId: string, version: number): Promise<string> {
    const out = await this.vault.request<{ data?: { data?: { value?: string } } }>('GET', this.data(this.versionPath(nhiId, version)));
    const value = out?.data?.data?.value;
    if (typeof value !== 'string') throw new Error(`secret ${ref} has no value in Vault at ${this.kv.mount}/${this.versionPath(nhiId, version)}`);
    return value;
  }

  protected override async published(ref: SecretRef): Promise<void> {
    const value = await this.reveal(ref.ref);
    await this.vault.request('POST', this.data(this.activePath(ref.nhiId)), { data: { value, version: ref.version, fingerprint: ref.fingerprint } });
  }

  protected override async erased(nhiId: string, versions: number[], all: boolean): Promise<void> {
    for (const v of versions) await this.vault.request('DELETE', this.metadata(this.versionPath(nhiId, v)));
    if (all) await this.vault.request('DELETE', this.metadata(this.activePath(nhiId)));
  }
}
