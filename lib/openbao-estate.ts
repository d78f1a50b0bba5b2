// The demo estate's OpenBao side, on the local `bao server -dev` that `npm start` and the tests run:
// the AppRole auth mount, the policies behind the OpenBao entitlements, the `partner-sync` AppRole
// (a third-party integration) with a secret-id kept only in the secret store, and its inventory row.
// Idempotent; a secret-id the (in-memory) server no longer knows is replaced.
import type { Pool } from 'pg';
import type { AppRoleEntitlement } from '../connectors/openbao-approle';
import type { SecretStore } from './secret-store';
import type { VaultClient } from './vault';

export const OPENBAO_DEMO_ENTITLEMENTS: Record<string, AppRoleEntitlement> = {
  bao_kv_read: { policy: 'nhi-demo-kv-read' },
  bao_kv_write: { policy: 'nhi-demo-kv-write', writeCapable: true, readOnlyForm: 'bao_kv_read' },
};

const POLICIES: Record<string, string> = {
  'nhi-demo-kv-read': 'path "secret/data/partners/*" { capabilities = ["read", "list"] }',
  'nhi-demo-kv-write': 'path "secret/data/partners/*" { capabilities = ["create", "update", "read", "list"] }',
};

export const OPENBAO_DEMO_NHIS = [
  { id: 'bao-partner-sync', kind: 'integration', owner: 'team-partnerships', criticality: 'medium', role: 'partner-sync', tags: ['third-party', 'openbao'], policies: ['nhi-demo-kv-write'] },
] as const;

export async function ensureOpenBaoDemoEstate(opts: { vault: VaultClient; mount?: string; secretStore: SecretStore; orchestratorPool: Pool }): Promise<{ credentialsIssued: string[] }> {
  const { vault } = opts;
  const mount = opts.mount ?? 'approle';
  if (!(await vault.request('GET', `sys/auth/${mount}`).catch(() => null))) await vault.request('POST', `sys/auth/${mount}`, { type: 'approle' });
  for (const [name, policy] of Object.entries(POLICIES)) await vault.request('PUT', `sys/policies/acl/${name}`, { policy });
  const credentialsIssued: string[] = [];
  for (const nhi of OPENBAO_DEMO_NHIS) {
    if (!(await vault.request('GET', `auth/${mount}/role/${nhi.role}`))) await vault.request('POST', `auth/${mount}/role/${nhi.role}`, { token_policies: [...nhi.policies], token_ttl: '1h' });
    await opts.orchestratorPool.query(
      `INSERT INTO nhis (id, kind, owner, connector, external_ref, criticality, tags) VALUES ($1, $2, $3, 'openbao', $4, $5, $6) ON CONFLICT DO NOTHING`,
      [nhi.id, nhi.kind, nhi.owner, nhi.role, nhi.criticality, nhi.tags],
    );
    const { rows } = await opts.orchestratorPool.query<{ status: string }>('SELECT status FROM nhis WHERE id = $1', [nhi.id]);
    if (rows[0]?.status === 'offboarding' || rows[0]?.status === 'offboarded') continue;
    const active = await opts.secretStore.active(nhi.id);
    const known = active ? await vault.request('POST', `auth/${mount}/role/${nhi.role}/secret-id/lookup`, { secret_id: await opts.secretStore.reveal(active.ref).catch(() => '') }) : null;
    if ((known as { data?: unknown } | null)?.data) continue;
    const issued = await vault.request<{ data: { secret_id: string; secret_id_accessor: string } }>('POST', `auth/${mount}/role/${nhi.role}/secret-id`, {});
    const pending = await opts.secretStore.putPending(nhi.id, issued!.data.secret_id, { credentialId: issued!.data.secret_id_accessor });
    await opts.secretStore.activate(pending.ref);
    credentialsIssued.push(nhi.id);
  }
  return { credentialsIssued };
}
