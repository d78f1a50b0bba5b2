// The AWS IAM connector on moto in server mode with IAM authentication on (a deleted key is really
// refused): the shared contract, then what only AWS has — keys issued by the target and the
// two-key limit, roles and their session revocation, discovery with key age and last use.
import { randomBytes } from 'node:crypto';
import * as iam from '@aws-sdk/client-iam';
import { AwsIamConnector } from '../../connectors/aws-iam';
import { LOGIN_DISABLED_POLICY, REVOKE_SESSIONS_POLICY, THROTTLE_POLICY, throttleLimitOf } from '../../connectors/aws-iam-names';
import { ConnectorErrorCode, PermanentConnectorError } from '../../connectors/types';
import { startLocalAws, type LocalAws } from '../../local-servers/moto';
import { rotateCredential, runConnectorContract, type ContractTarget } from './contract';

interface Fixture extends ContractTarget {
  connector: AwsIamConnector;
  aws: LocalAws;
  admin: iam.IAMClient;
  prefix: string;
  groups: { ro: string; rw: string; other: string; hostile: string };
}

const HOSTILE_ENTITLEMENT = `g"'; DROP ROLE canary; --`;

async function createFixture(): Promise<Fixture> {
  const aws = await startLocalAws();
  const admin = new iam.IAMClient({ endpoint: aws.endpoint, region: aws.region, credentials: aws.admin });
  const prefix = `ct${randomBytes(3).toString('hex')}`;
  const groups = { ro: `${prefix}-readers`, rw: `${prefix}-deployers`, other: `${prefix}-other`, hostile: `${prefix}+=,.@_-weird` };
  for (const g of Object.values(groups)) await admin.send(new iam.CreateGroupCommand({ GroupName: g }));
  const writeDoc = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: '*' }] });
  await admin.send(new iam.CreatePolicyCommand({ PolicyName: `${prefix}-s3-write`, PolicyDocument: writeDoc }));
  await admin.send(new iam.CreateUserCommand({ UserName: `${prefix}-canary` }));
  const connector = new AwsIamConnector({
    endpoint: aws.endpoint,
    region: aws.region,
    credentials: aws.admin,
    entitlements: {
      readers: { group: groups.ro },
      deployers: { group: groups.rw, writeCapable: true, readOnlyForm: 'readers' },
      s3_write: { policy: `${prefix}-s3-write`, writeCapable: true },
      [HOSTILE_ENTITLEMENT]: { group: groups.hostile },
    },
  });
  const byGroup = new Map<string, string>([
    [groups.ro, 'readers'],
    [groups.rw, 'deployers'],
    [groups.hostile, HOSTILE_ENTITLEMENT],
  ]);
  const nameOf = (identity: string) => identity.replace(/^user\//, '');
  let n = 0;
  return {
    connector,
    aws,
    admin,
    prefix,
    groups,
    entitlements: { readOnly: 'readers', writeCapable: 'deployers', notGrantable: groups.other, hostile: HOSTILE_ENTITLEMENT },
    hostileIdentityName: `user/${prefix}+=,.@_-${n}`,
    async newIdentity(name) {
      const identity = name ?? `user/${prefix}-u${++n}`;
      await admin.send(new iam.CreateUserCommand({ UserName: nameOf(identity) }));
      const key = (await admin.send(new iam.CreateAccessKeyCommand({ UserName: nameOf(identity) }))).AccessKey!;
      return { identity, secret: `${key.AccessKeyId}:${key.SecretAccessKey}` };
    },
    newSecret: () => `AKIA${randomBytes(8).toString('hex').toUpperCase()}:${randomBytes(20).toString('base64url')}`,
    inspect: {
      async memberships(identity) {
        const user = nameOf(identity);
        const gs = (await admin.send(new iam.ListGroupsForUserCommand({ UserName: user }))).Groups ?? [];
        return gs.flatMap((g) => (byGroup.has(g.GroupName!) ? [byGroup.get(g.GroupName!)!] : [])).sort();
      },
      async account(identity) {
        const user = nameOf(identity);
        const inline = await admin.send(new iam.ListUserPoliciesCommand({ UserName: user })).catch((e) => (/^NoSuchEntity/.test(e.name) ? null : Promise.reject(e)));
        if (!inline) return null;
        const names = inline.PolicyNames ?? [];
        const limit = names.includes(THROTTLE_POLICY)
          ? throttleLimitOf((await admin.send(new iam.GetUserPolicyCommand({ UserName: user, PolicyName: THROTTLE_POLICY }))).PolicyDocument)
          : -1;
        return { canLogin: !names.includes(LOGIN_DISABLED_POLICY), connectionLimit: limit };
      },
      sessionAlive: async () => false,
      async canaryIntact() {
        return admin.send(new iam.GetUserCommand({ UserName: `${prefix}-canary` })).then(
          () => true,
          () => false,
        );
      },
    },
    openSession: async () => {
      throw new Error('AWS lists no sessions');
    },
    codes: { wrongCredential: 'InvalidClientTokenId', loginDisabled: 'login_disabled', connectionLimit: 'none' },
    async teardown() {
      await connector.close();
      admin.destroy();
      await aws.stop();
    },
  };
}

runConnectorContract('aws-iam', createFixture, { connectionLimit: false, sessions: 'revoke_issued_before' });

describe('aws-iam connector, what only AWS has', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await createFixture();
  });
  afterAll(() => f?.teardown());

  const keysOf = async (identity: string) =>
    ((await f.admin.send(new iam.ListAccessKeysCommand({ UserName: identity.replace(/^user\//, '') }))).AccessKeyMetadata ?? []).map((k) => k.AccessKeyId!).sort();
  const idOf = (value: string) => value.split(':')[0];

  test('a user already holding two keys: the one being replaced goes first, the other is kept, and the result says so', async () => {
    const { identity, secret: leaked } = await f.newIdentity();
    const other = (await f.admin.send(new iam.CreateAccessKeyCommand({ UserName: identity.replace(/^user\//, '') }))).AccessKey!;
    const issued = await f.connector.issueCredential(identity, { replacing: leaked });
    expect(issued.removedFirst).toEqual([idOf(leaked)]);
    expect(await keysOf(identity)).toEqual([other.AccessKeyId!, issued.id].sort());
    expect(await f.connector.probe(identity, leaked)).toMatchObject({ access: 'denied', code: 'InvalidClientTokenId' });
    expect(await f.connector.probe(identity, issued.value)).toEqual({ access: 'granted' });
    expect(await f.connector.probe(identity, `${other.AccessKeyId}:${other.SecretAccessKey}`)).toEqual({ access: 'granted' });
  });

  test('two keys, neither the one being replaced: refused, nothing deleted', async () => {
    const { identity, secret } = await f.newIdentity();
    await f.admin.send(new iam.CreateAccessKeyCommand({ UserName: identity.replace(/^user\//, '') }));
    const before = await keysOf(identity);
    const err = await f.connector.issueCredential(identity, { replacing: f.newSecret() }).catch((e) => e);
    expect(err).toBeInstanceOf(PermanentConnectorError);
    expect(await keysOf(identity)).toEqual(before);
    expect((await f.connector.probe(identity, secret)).access).toBe('granted');
  });

  test('login off deactivates the keys (probe: inconclusive, not denied); retireAllCredentials deletes every key and the login profile', async () => {
    const { identity, secret } = await f.newIdentity();
    const user = identity.replace(/^user\//, '');
    await f.admin.send(new iam.CreateLoginProfileCommand({ UserName: user, Password: 'Console-Password-1!' }));
    await f.connector.setLogin(identity, false);
    const statuses = (await f.admin.send(new iam.ListAccessKeysCommand({ UserName: user }))).AccessKeyMetadata!.map((k) => k.Status);
    expect(statuses).toEqual(['Inactive']);
    expect(await f.connector.probe(identity, secret)).toMatchObject({ access: 'inconclusive', refusedBy: 'login_disabled' });
    // The deny-all removed by hand is not login on: the keys are still inactive.
    await f.admin.send(new iam.DeleteUserPolicyCommand({ UserName: user, PolicyName: LOGIN_DISABLED_POLICY }));
    expect((await f.connector.readAccess(identity)).canLogin).toBe(false);

    expect(await f.connector.retireAllCredentials(identity)).toEqual({ removed: [idOf(secret)] });
    expect(await keysOf(identity)).toEqual([]);
    await expect(f.admin.send(new iam.GetLoginProfileCommand({ UserName: user }))).rejects.toMatchObject({ name: expect.stringMatching(/^NoSuchEntity/) });
    expect(await f.connector.probe(identity, secret)).toMatchObject({ access: 'denied', code: 'InvalidClientTokenId' });
    expect(await f.connector.retireAllCredentials(identity)).toEqual({ removed: [] });
    expect(await f.connector.retireAllCredentials('user/ghost-nobody')).toEqual({ removed: [] });
  });

  test("a key that signs as another identity is not this identity's credential", async () => {
    const a = await f.newIdentity();
    const b = await f.newIdentity();
    expect(await f.connector.probe(a.identity, b.secret)).toMatchObject({ access: 'denied', code: 'other_identity' });
    expect(await f.connector.probe(a.identity, 'not-a-key')).toMatchObject({ access: 'denied' });
  });

  test('roles: policies as entitlements, throttle and login as inline denies, sessions revoked by token issue time', async () => {
    const role = `${f.prefix}-payments-app`;
    const trust = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' }, Action: 'sts:AssumeRole' }] });
    await f.admin.send(new iam.CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: trust }));
    const identity = `role/${role}`;
    const c = f.connector;
    expect(await c.grant(identity, 's3_write')).toEqual({ changed: true });
    const attached = (await f.admin.send(new iam.ListAttachedRolePoliciesCommand({ RoleName: role }))).AttachedPolicies ?? [];
    expect(attached.map((p) => p.PolicyName)).toEqual([`${f.prefix}-s3-write`]);
    await expect(c.grant(identity, 'readers')).rejects.toMatchObject({ code: ConnectorErrorCode.InvalidArgument });

    expect(await c.apply(identity, { entitlements: [], canLogin: false, connectionLimit: 2 })).toEqual({ exists: true, entitlements: [], canLogin: false, connectionLimit: 2 });
    const inline = (await f.admin.send(new iam.ListRolePoliciesCommand({ RoleName: role }))).PolicyNames ?? [];
    expect(inline.sort()).toEqual([LOGIN_DISABLED_POLICY, THROTTLE_POLICY].sort());

    const cutoff = new Date();
    await c.invalidateSessions(identity, cutoff);
    const doc = (await f.admin.send(new iam.GetRolePolicyCommand({ RoleName: role, PolicyName: REVOKE_SESSIONS_POLICY }))).PolicyDocument!;
    expect(decodeURIComponent(doc)).toContain(cutoff.toISOString());
    expect(await c.listSessions(identity)).toEqual([]);
    await expect(c.issueCredential(identity, {})).rejects.toMatchObject({ code: ConnectorErrorCode.UnsupportedCredential });

    expect(await c.apply(identity, { entitlements: ['s3_write'], canLogin: true, connectionLimit: -1 })).toEqual({ exists: true, entitlements: ['s3_write'], canLogin: true, connectionLimit: -1 });
    expect(((await f.admin.send(new iam.ListRolePoliciesCommand({ RoleName: role }))).PolicyNames ?? []).sort()).toEqual([REVOKE_SESSIONS_POLICY]);
  });

  test('discovery lists users with their keys (age, last use) and roles', async () => {
    const { identity, secret } = await f.newIdentity();
    await f.connector.probe(identity, secret);
    const found = (await f.connector.listIdentities()).find((d) => d.identity === identity)!;
    expect(found.credentials).toEqual([{ id: idOf(secret), status: 'Active', createdAt: expect.any(String), lastUsedAt: expect.anything() }]);
    expect((await f.connector.listIdentities()).some((d) => d.identity.startsWith('role/'))).toBe(true);
  });

  test("setCredential is refused (AWS issues its keys); retiring another identity's key removes nothing", async () => {
    const a = await f.newIdentity();
    const b = await f.newIdentity();
    await expect(f.connector.setCredential(a.identity, f.newSecret())).rejects.toMatchObject({ code: ConnectorErrorCode.UnsupportedCredential });
    expect(await f.connector.retireCredential(a.identity, b.secret)).toEqual({ removed: false });
    expect(await f.connector.probe(b.identity, b.secret)).toEqual({ access: 'granted' });
    const fresh = await rotateCredential(f, a.identity, a.secret);
    expect(await keysOf(a.identity)).toEqual([idOf(fresh)]);
  });
});
