// The OpenBao side of a test world: a `bao server -dev` for this test file, the demo estate's
// AppRole (partner-sync, its secret-id in the world's secret store), and the world's connector
// registry with the openbao connector beside the others already there.
import { AppRoleConnector } from '../../connectors/openbao-approle';
import { createConnectorRegistry } from '../../connectors/registry';
import { ensureOpenBaoDemoEstate, OPENBAO_DEMO_ENTITLEMENTS } from '../../lib/openbao-estate';
import { VaultClient } from '../../lib/vault';
import { startLocalOpenBao, type LocalOpenBao } from '../../local-servers/openbao';
import type { TestWorld } from './world';

export interface OpenBaoWorld {
  local: LocalOpenBao;
  root: VaultClient;
  connector: AppRoleConnector;
  /** A real AppRole login: 'ok' or Vault's error text. */
  login(role: string, secretId: string): Promise<string>;
  stop(): Promise<void>;
}

export async function attachLocalOpenBao(w: TestWorld): Promise<OpenBaoWorld> {
  const local = await startLocalOpenBao();
  const root = new VaultClient({ addr: local.addr, auth: { token: local.token } });
  await ensureOpenBaoDemoEstate({ vault: root, secretStore: w.secrets, orchestratorPool: w.db.pool });
  const connector = new AppRoleConnector({ vault: root, entitlements: OPENBAO_DEMO_ENTITLEMENTS });
  const others = w.deps.connectors.configuredConnectors().map((n) => w.deps.connectors.get(n));
  w.deps.connectors = createConnectorRegistry([...others, connector]);
  return {
    local,
    root,
    connector,
    async login(role, secretId) {
      const roleId = (await root.request<{ data: { role_id: string } }>('GET', `auth/approle/role/${role}/role-id`))!.data.role_id;
      const r = await root.tryAppRoleLogin(roleId, secretId);
      return r.status === 200 ? 'ok' : r.errors.join('; ');
    },
    stop: () => local.stop(),
  };
}
