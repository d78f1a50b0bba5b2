// The AWS IAM connector. Identities are IAM users (`user/NAME` or a bare name; their access keys are
// the credentials) and IAM roles (`role/NAME`, assumed by workloads). Entitlements are IAM groups
// and managed policies under logical names from configuration. Login off, the throttle and session
// revocation are the connector's own inline deny policies (./aws-iam-names.ts), so every state is
// read back from the target. AWS has no connection limit: a throttle's limit is recorded in its
// policy, and writes are denied instead (capabilities.connectionLimit = false).
import * as iam from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { AwsIamBase, errName, sortNames, type AwsEntitlement, type AwsIamConnectorOptions } from './aws-iam-base';
import {
  formatAccessKey,
  LOGIN_DISABLED_POLICY,
  loginDisabledDocument,
  parseAccessKey,
  parseIdentity,
  REVOKE_SESSIONS_POLICY,
  revokeSessionsDocument,
  THROTTLE_POLICY,
  throttleDocument,
  type IamIdentity,
} from './aws-iam-names';
import {
  ConnectorErrorCode as Code,
  PermanentConnectorError,
  type AccessSnapshot,
  type AccessState,
  type Connector,
  type ConnectorCapabilities,
  type ConnectorSetup,
  type RegistrableVerdict,
  type DiscoveredIdentity,
  type EntitlementCatalogue,
  type IssuedCredential,
  type ProbeResult,
  type SessionInfo,
  type TargetAccess,
  type ThrottleLevel,
} from './types';
import { catalogueOf } from './catalogue';

export type { AwsEntitlement, AwsIamConnectorOptions } from './aws-iam-base';

const GONE: AccessState = { exists: false, canLogin: false, connectionLimit: 0, entitlements: [] };
const DENIED_KEY = new Set(['InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException']);

export class AwsIamConnector extends AwsIamBase implements Connector {
  readonly name: string;
  readonly capabilities: ConnectorCapabilities = {
    credentials: 'issued',
    secondCredentialSlot: true,
    sessions: 'revoke_issued_before',
    connectionLimit: false,
    throttle: true,
  };

  constructor(options: AwsIamConnectorOptions) {
    super(options);
    this.name = options.name ?? 'aws';
  }


  async checkSetup(): Promise<ConnectorSetup> {
    const sts = this.sts();
    let target = `AWS IAM${this.options.endpoint ? ` at ${this.options.endpoint}` : ''} (${this.options.region})`;
    try {
      const me = await sts.send(new GetCallerIdentityCommand({}));
      target += ` as ${me.Arn}`;
    } catch (err) {
      const problem = `the connector's AWS credentials are refused (${errName(err)}): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile`;
      return { target, roleProblems: [problem], problems: [problem] };
    } finally {
      sts.destroy();
    }
    const problems: string[] = [];
    for (const [logical, e] of this.entitlements) {
      const ok = e.group
        ? await this.send(new iam.GetGroupCommand({ GroupName: e.group }), 'reading a group').then(() => true, () => false)
        : await this.send(new iam.GetPolicyCommand({ PolicyArn: await this.policyArn(e.policy!) }), 'reading a policy').then(() => true, () => false);
      if (!ok) problems.push(`entitlement ${logical}: ${e.group ? `group ${e.group}` : `policy ${e.policy}`} does not exist in the account (create it, or fix AWS_ENTITLEMENTS)`);
    }
    return { target, roleProblems: [], problems };
  }

  async listGrantableEntitlements(): Promise<string[]> {
    return sortNames(this.entitlements.keys());
  }

  entitlementCatalogue(): EntitlementCatalogue {
    return catalogueOf(this.entitlements);
  }

  private async change(id: IamIdentity, logical: string, e: AwsEntitlement, add: boolean): Promise<void> {
    if (e.group) {
      if (id.kind === 'role') throw new PermanentConnectorError(`${logical} is an IAM group: roles cannot be group members`, Code.InvalidArgument);
      const input = { UserName: id.name, GroupName: e.group };
      await this.send(add ? new iam.AddUserToGroupCommand(input) : new iam.RemoveUserFromGroupCommand(input), `${add ? 'adding' : 'removing'} ${id.name} ${add ? 'to' : 'from'} ${e.group}`);
      return;
    }
    const PolicyArn = await this.policyArn(e.policy!);
    const cmd =
      id.kind === 'user'
        ? add
          ? new iam.AttachUserPolicyCommand({ UserName: id.name, PolicyArn })
          : new iam.DetachUserPolicyCommand({ UserName: id.name, PolicyArn })
        : add
          ? new iam.AttachRolePolicyCommand({ RoleName: id.name, PolicyArn })
          : new iam.DetachRolePolicyCommand({ RoleName: id.name, PolicyArn });
    await this.send(cmd, `${add ? 'attaching' : 'detaching'} ${e.policy} ${add ? 'to' : 'from'} ${id.name}`);
  }

  async grant(identity: string, entitlement: string): Promise<{ changed: boolean }> {
    const id = await this.existing(identity);
    const e = await this.entitlement(entitlement);
    if ((await this.held(id)).includes(entitlement)) return { changed: false };
    await this.change(id, entitlement, e, true);
    return { changed: true };
  }

  async revoke(identity: string, entitlement: string): Promise<{ changed: boolean }> {
    const id = await this.existing(identity);
    const e = await this.entitlement(entitlement);
    if (!(await this.held(id)).includes(entitlement)) return { changed: false };
    await this.change(id, entitlement, e, false);
    return { changed: true };
  }

  async hasEntitlement(identity: string, entitlement: string): Promise<boolean> {
    const id = await this.existing(identity);
    if (!this.entitlements.has(entitlement)) {
      await this.entitlement(entitlement).catch((err) => {
        if (err instanceof PermanentConnectorError && err.code === Code.EntitlementNotGrantable) return;
        throw err;
      });
      return false;
    }
    return (await this.held(id)).includes(entitlement);
  }

  async listEntitlements(identity: string): Promise<string[]> {
    return this.held(await this.existing(identity));
  }

  /** AWS makes access keys itself: there is no value to set (issueCredential). */
  async setCredential(identity: string, _secretValue: string): Promise<void> {
    await this.existing(identity);
    throw new PermanentConnectorError(`AWS issues access keys itself: ${identity}'s credential is rotated with issueCredential, not set`, Code.UnsupportedCredential);
  }

  /**
   * Roles: deny every action to sessions whose token was issued before `startedBefore` (default now);
   * AWS cannot count them, so `terminated` is 0. Users: nothing to end — deleting the key stops new
   * calls, and STS credentials already issued from it live until they expire.
   */
  async invalidateSessions(identity: string, startedBefore?: Date): Promise<{ terminated: number }> {
    const id = await this.existing(identity);
    if (id.kind === 'role') await this.putInline(id, REVOKE_SESSIONS_POLICY, revokeSessionsDocument(startedBefore ?? new Date()));
    return { terminated: 0 };
  }

  /** AWS lists no sessions. */
  async listSessions(identity: string): Promise<SessionInfo[]> {
    await this.existing(identity);
    return [];
  }


  /**
   * Off: the deny-all policy, and (users) every key deactivated. On: keys active again, the policy
   * removed. Login is on only when both say so, and each call brings both in line.
   */
  async setLogin(identity: string, enabled: boolean): Promise<{ changed: boolean }> {
    const id = await this.existing(identity);
    let changed = false;
    const denied = (await this.inlinePolicies(id)).includes(LOGIN_DISABLED_POLICY);
    if (!enabled && !denied) {
      await this.putInline(id, LOGIN_DISABLED_POLICY, loginDisabledDocument());
      changed = true;
    }
    const Status = enabled ? 'Active' : 'Inactive';
    for (const k of await this.keys(id)) {
      if (k.status === Status) continue;
      await this.send(new iam.UpdateAccessKeyCommand({ UserName: id.name, AccessKeyId: k.id, Status }), `setting a key of ${id.name} ${Status}`);
      changed = true;
    }
    if (enabled && denied) changed = (await this.deleteInline(id, LOGIN_DISABLED_POLICY)) || changed;
    return { changed };
  }

  /**
   * May an NHI be registered for this IAM identity? It must be `user/NAME` or `role/NAME`, exist in
   * the account, and not be the connector's own login (the one its credentials belong to).
   */
  async checkRegistrable(identity: string): Promise<RegistrableVerdict> {
    const id = parseIdentity(identity);
    if (!id) return { ok: false, reason: `${JSON.stringify(identity)} is not an IAM identity: write user/NAME or role/NAME` };
    if (!(await this.exists(id))) return { ok: false, reason: `no IAM ${id.kind} ${JSON.stringify(id.name)} exists in the account` };
    const sts = this.sts();
    try {
      const me = await sts.send(new GetCallerIdentityCommand({}));
      const own = me.Arn?.split(':').at(-1) ?? '';
      if (own === `${id.kind}/${id.name}` || (id.kind === 'role' && own.startsWith(`assumed-role/${id.name}/`))) {
        return { ok: false, reason: `${identity} is the connector's own login: it must never manage itself` };
      }
    } finally {
      sts.destroy();
    }
    return { ok: true };
  }

  async readAccess(identity: string): Promise<AccessState> {
    const id = parseIdentity(identity);
    if (!id || !(await this.exists(id))) return { ...GONE };
    const inline = await this.inlinePolicies(id);
    return {
      exists: true,
      canLogin: !inline.includes(LOGIN_DISABLED_POLICY) && (await this.keys(id)).every((k) => k.status === 'Active'),
      connectionLimit: inline.includes(THROTTLE_POLICY) ? await this.throttleLimit(id) : -1,
      entitlements: await this.held(id),
    };
  }

  async snapshot(identity: string): Promise<AccessSnapshot> {
    await this.existing(identity);
    return { identity, ...(await this.readAccess(identity)), takenAt: new Date().toISOString() };
  }

  async throttle(identity: string, level: ThrottleLevel): Promise<AccessSnapshot> {
    checkLimit(level.connectionLimit);
    const before = await this.snapshot(identity);
    const writeCapable = new Set(this.entitlementCatalogue().writeCapable);
    await this.apply(identity, {
      entitlements: level.removeWriteEntitlements ? before.entitlements.filter((e) => !writeCapable.has(e)) : before.entitlements,
      canLogin: level.disableLogin ? false : before.canLogin,
      connectionLimit: level.connectionLimit,
    });
    return before;
  }

  async restore(snapshot: AccessSnapshot): Promise<AccessState> {
    if (!snapshot.exists) throw new PermanentConnectorError('cannot restore a snapshot of an identity that did not exist', Code.InvalidArgument);
    return this.apply(snapshot.identity, { entitlements: snapshot.entitlements, canLogin: snapshot.canLogin, connectionLimit: snapshot.connectionLimit });
  }

  async apply(identity: string, access: TargetAccess): Promise<AccessState> {
    checkLimit(access.connectionLimit);
    const id = await this.existing(identity);
    const wanted = new Map<string, AwsEntitlement>();
    for (const e of access.entitlements) wanted.set(e, await this.entitlement(e));
    const before = await this.readAccess(identity);
    for (const [logical, e] of wanted) if (!before.entitlements.includes(logical)) await this.change(id, logical, e, true);
    for (const logical of before.entitlements) if (!wanted.has(logical)) await this.change(id, logical, this.entitlements.get(logical)!, false);
    if (before.canLogin !== access.canLogin) await this.setLogin(identity, access.canLogin);
    if (before.connectionLimit !== access.connectionLimit) {
      if (access.connectionLimit < 0) await this.deleteInline(id, THROTTLE_POLICY);
      else await this.putInline(id, THROTTLE_POLICY, throttleDocument(access.connectionLimit));
    }
    const after = await this.readAccess(identity);
    const same = after.canLogin === access.canLogin && after.connectionLimit === access.connectionLimit && sortNames(access.entitlements).join('\n') === after.entitlements.join('\n');
    if (!same) throw new Error(`${identity} did not reach the access applied (now ${JSON.stringify(after)})`);
    return after;
  }

  /** Who the key signs as, asked of STS with the key itself; denied when AWS does not know the key (deleted, wrong secret). */
  async probe(identity: string, secretValue: string): Promise<ProbeResult> {
    const id = parseIdentity(identity);
    const key = parseAccessKey(secretValue);
    if (!key) return { access: 'denied', code: 'malformed_access_key', detail: 'not an ACCESS_KEY_ID:SECRET_ACCESS_KEY pair' };
    const sts = this.sts(key);
    try {
      const me = await sts.send(new GetCallerIdentityCommand({}));
      if (!id || !me.Arn?.endsWith(`:${id.kind}/${id.name}`)) return { access: 'denied', code: 'other_identity', detail: `the key signs as another identity` };
      // STS answers whatever the identity's policies say: an explicit deny-all is the login being off.
      if (!(await this.inlinePolicies(id)).includes(LOGIN_DISABLED_POLICY)) return { access: 'granted' };
      return { access: 'inconclusive', code: 'login_disabled', credentialAccepted: true, refusedBy: 'login_disabled', detail: `AWS accepted the key; ${LOGIN_DISABLED_POLICY} denies every action` };
    } catch (err) {
      if (!DENIED_KEY.has(errName(err))) throw err;
      // AWS refuses an inactive key as it refuses an unknown one: ask IAM which it is.
      const own = id?.kind === 'user' && (await this.exists(id)) ? await this.keys(id) : [];
      if (own.some((k) => k.id === key.accessKeyId && k.status === 'Inactive')) {
        return { access: 'inconclusive', code: 'login_disabled', refusedBy: 'login_disabled', detail: 'the key exists at AWS but is inactive (login disabled); AWS does not say whether the secret matches' };
      }
      return { access: 'denied', code: errName(err), detail: 'AWS refused the key' };
    } finally {
      sts.destroy();
    }
  }

  async issueCredential(identity: string, opts: { replacing?: string }): Promise<IssuedCredential> {
    const id = await this.existing(identity);
    if (id.kind !== 'user') throw new PermanentConnectorError(`${identity} is a role: it has no long-lived keys to issue`, Code.UnsupportedCredential);
    const keys = (await this.send<{ AccessKeyMetadata?: { AccessKeyId?: string }[] }>(new iam.ListAccessKeysCommand({ UserName: id.name }), `listing the keys of ${id.name}`)).AccessKeyMetadata ?? [];
    const removedFirst: string[] = [];
    const replacing = opts.replacing ? parseAccessKey(opts.replacing)?.accessKeyId : undefined;
    if (keys.length >= 2) {
      // AWS allows two keys per user: the one being replaced goes first, the other is kept.
      if (!replacing || !keys.some((k) => k.AccessKeyId === replacing)) {
        throw new PermanentConnectorError(`${identity} already has two access keys and neither is the one being replaced: remove one by hand`, Code.InvalidArgument);
      }
      await this.send(new iam.DeleteAccessKeyCommand({ UserName: id.name, AccessKeyId: replacing }), `deleting a key of ${id.name}`);
      removedFirst.push(replacing);
    }
    const created = await this.send<{ AccessKey?: { AccessKeyId?: string; SecretAccessKey?: string } }>(new iam.CreateAccessKeyCommand({ UserName: id.name }), `creating a key for ${id.name}`);
    const k = { accessKeyId: created.AccessKey!.AccessKeyId!, secretAccessKey: created.AccessKey!.SecretAccessKey! };
    return { value: formatAccessKey(k), id: k.accessKeyId, removedFirst, secretPart: k.secretAccessKey };
  }

  async retireCredential(identity: string, secretValue: string): Promise<{ removed: boolean }> {
    const id = await this.existing(identity);
    const key = parseAccessKey(secretValue);
    if (!key || id.kind !== 'user') return { removed: false };
    // Only a key of this user: a value naming someone else's key removes nothing.
    const keys = (await this.send<{ AccessKeyMetadata?: { AccessKeyId?: string }[] }>(new iam.ListAccessKeysCommand({ UserName: id.name }), `listing the keys of ${id.name}`)).AccessKeyMetadata ?? [];
    if (!keys.some((k) => k.AccessKeyId === key.accessKeyId)) return { removed: false };
    try {
      await this.send(new iam.DeleteAccessKeyCommand({ UserName: id.name, AccessKeyId: key.accessKeyId }), `deleting a key of ${id.name}`);
      return { removed: true };
    } catch (err) {
      if (errName(err) === 'NoSuchEntity') return { removed: false };
      throw err;
    }
  }

  /** Offboarding: every key of the user deactivated, then deleted (also keys the orchestrator never issued). */
  async retireAllCredentials(identity: string): Promise<{ removed: string[] }> {
    const id = parseIdentity(identity);
    if (!id || !(await this.exists(id))) return { removed: [] };
    const removed: string[] = [];
    for (const k of await this.keys(id)) {
      if (k.status !== 'Inactive') await this.send(new iam.UpdateAccessKeyCommand({ UserName: id.name, AccessKeyId: k.id, Status: 'Inactive' }), `deactivating a key of ${id.name}`);
      await this.send(new iam.DeleteAccessKeyCommand({ UserName: id.name, AccessKeyId: k.id }), `deleting a key of ${id.name}`);
      removed.push(k.id);
    }
    if (id.kind === 'user') {
      // A console password is a credential too.
      await this.send(new iam.DeleteLoginProfileCommand({ UserName: id.name }), `removing the login profile of ${id.name}`).catch((err) => {
        if (errName(err) !== 'NoSuchEntity') throw err;
      });
    }
    return { removed };
  }

  /** Users and roles with their mapped entitlements, and each user's keys with their age and last use. */
  async listIdentities(): Promise<DiscoveredIdentity[]> {
    const out: DiscoveredIdentity[] = [];
    for await (const page of iam.paginateListUsers({ client: this.iam }, {})) {
      for (const u of page.Users ?? []) {
        const identity = `user/${u.UserName}`;
        const access = await this.readAccess(identity);
        const keys = (await this.send<{ AccessKeyMetadata?: iam.AccessKeyMetadata[] }>(new iam.ListAccessKeysCommand({ UserName: u.UserName }), 'listing keys')).AccessKeyMetadata ?? [];
        const credentials = [];
        for (const k of keys) {
          const used = await this.send<{ AccessKeyLastUsed?: { LastUsedDate?: Date } }>(new iam.GetAccessKeyLastUsedCommand({ AccessKeyId: k.AccessKeyId }), 'reading key use');
          credentials.push({ id: k.AccessKeyId!, status: k.Status ?? 'unknown', createdAt: k.CreateDate?.toISOString(), lastUsedAt: used.AccessKeyLastUsed?.LastUsedDate?.toISOString() ?? null });
        }
        out.push({ identity, canLogin: access.canLogin, entitlements: access.entitlements, credentials });
      }
    }
    for await (const page of iam.paginateListRoles({ client: this.iam }, {})) {
      for (const r of page.Roles ?? []) {
        if (r.Path?.startsWith('/aws-service-role/')) continue;
        const access = await this.readAccess(`role/${r.RoleName}`);
        out.push({ identity: `role/${r.RoleName}`, canLogin: access.canLogin, entitlements: access.entitlements });
      }
    }
    return out.sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
  }

  async close(): Promise<void> {
    this.iam.destroy();
  }
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < -1) throw new PermanentConnectorError(`connection limit must be an integer ≥ -1, got ${limit}`, Code.InvalidArgument);
}
