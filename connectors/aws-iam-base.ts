// What the AWS IAM connector (./aws-iam.ts) stands on: the IAM client, one mapping of IAM's
// refusals to the contract's errors, and the reads every operation shares (does the identity exist,
// its inline policies, keys, and which configured entitlements it holds).
import * as iam from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { isIamName, parseIdentity, THROTTLE_POLICY, throttleLimitOf, type IamIdentity } from './aws-iam-names';
import { ConnectorErrorCode as Code, PermanentConnectorError } from './types';

/** One entitlement: an IAM group (users only) or a managed policy (name in this account, or an ARN). */
export interface AwsEntitlement {
  group?: string;
  policy?: string;
  writeCapable?: boolean;
  /** The logical name of the entitlement with the same reads and no writes. */
  readOnlyForm?: string;
}

export interface AwsIamConnectorOptions {
  name?: string;
  region: string;
  /** A local endpoint (moto); unset in production, where the SDK's default endpoint is used. */
  endpoint?: string;
  /** Unset in production: the SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  entitlements: Record<string, AwsEntitlement>;
}

export { sortNames } from './catalogue';
import { sortNames } from './catalogue';
// The SDK names some errors with an `Exception` suffix (NoSuchEntityException): compare without it.
export const errName = (err: unknown) => ((err as { name?: string })?.name ?? '').replace(/Exception$/, '');

export class AwsIamBase {
  protected readonly iam: iam.IAMClient;
  protected readonly entitlements: Map<string, AwsEntitlement>;
  private account?: Promise<string>;

  constructor(protected readonly options: AwsIamConnectorOptions) {
    this.iam = new iam.IAMClient({ region: options.region, endpoint: options.endpoint, credentials: options.credentials });
    this.entitlements = new Map(Object.entries(options.entitlements));
    for (const [logical, e] of this.entitlements) {
      if (Boolean(e.group) === Boolean(e.policy)) throw new Error(`AWS entitlement ${logical}: give exactly one of group or policy`);
    }
  }

  protected sts(credentials?: { accessKeyId: string; secretAccessKey: string }): STSClient {
    return new STSClient({ region: this.options.region, endpoint: this.options.endpoint, credentials: credentials ?? this.options.credentials });
  }

  protected accountId(): Promise<string> {
    this.account ??= (async () => {
      const sts = this.sts();
      try {
        return (await sts.send(new GetCallerIdentityCommand({}))).Account!;
      } finally {
        sts.destroy();
      }
    })().catch((err) => {
      this.account = undefined;
      throw err;
    });
    return this.account;
  }

  protected async policyArn(policy: string): Promise<string> {
    return policy.startsWith('arn:') ? policy : `arn:aws:iam::${await this.accountId()}:policy/${policy}`;
  }

  // One place maps IAM's refusals to the contract's errors; commands are typed loosely here because
  // the SDK's union of command types does not fit one parameter.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  protected async send<T = any>(command: unknown, what: string): Promise<T> {
    try {
      return (await this.iam.send(command as never)) as T;
    } catch (err) {
      const n = errName(err);
      if (n === 'AccessDenied' || n === 'AccessDeniedException') throw new PermanentConnectorError(`${what}: the connector's AWS identity may not do this (${(err as Error).message})`, Code.InsufficientPrivilege);
      if (n === 'ValidationError') throw new PermanentConnectorError(`${what}: ${(err as Error).message}`, Code.InvalidArgument);
      throw err;
    }
  }

  /** The identity, known to exist; an unknown or impossible name is a permanent error. */
  protected async existing(identity: string): Promise<IamIdentity> {
    const id = parseIdentity(identity);
    if (id && (await this.exists(id))) return id;
    throw new PermanentConnectorError(`AWS IAM ${id?.kind ?? 'identity'} ${JSON.stringify(identity)} does not exist`, Code.UnknownIdentity);
  }

  protected async exists(id: IamIdentity): Promise<boolean> {
    try {
      await this.send(id.kind === 'user' ? new iam.GetUserCommand({ UserName: id.name }) : new iam.GetRoleCommand({ RoleName: id.name }), `reading ${id.kind} ${id.name}`);
      return true;
    } catch (err) {
      if (errName(err) === 'NoSuchEntity') return false;
      throw err;
    }
  }

  /** A logical name this connector grants; one that names a real but unmapped group or policy is not grantable. */
  protected async entitlement(logical: string): Promise<AwsEntitlement> {
    const e = this.entitlements.get(logical);
    if (e) return e;
    if (typeof logical === 'string' && isIamName(logical)) {
      const found = await Promise.all([
        this.send(new iam.GetGroupCommand({ GroupName: logical }), 'reading a group').then(() => true, () => false),
        this.policyArn(logical).then((PolicyArn) => this.send(new iam.GetPolicyCommand({ PolicyArn }), 'reading a policy')).then(() => true, () => false),
      ]);
      if (found.some(Boolean)) throw new PermanentConnectorError(`${logical} exists in AWS IAM but is not an entitlement this connector is configured to grant`, Code.EntitlementNotGrantable);
    }
    throw new PermanentConnectorError(`unknown AWS entitlement ${JSON.stringify(logical)}`, Code.UnknownEntitlement);
  }

  protected async inlinePolicies(id: IamIdentity): Promise<string[]> {
    const out = await this.send<{ PolicyNames?: string[] }>(
      id.kind === 'user' ? new iam.ListUserPoliciesCommand({ UserName: id.name }) : new iam.ListRolePoliciesCommand({ RoleName: id.name }),
      `listing the inline policies of ${id.name}`,
    );
    return out.PolicyNames ?? [];
  }

  protected async putInline(id: IamIdentity, PolicyName: string, PolicyDocument: string): Promise<void> {
    await this.send(
      id.kind === 'user' ? new iam.PutUserPolicyCommand({ UserName: id.name, PolicyName, PolicyDocument }) : new iam.PutRolePolicyCommand({ RoleName: id.name, PolicyName, PolicyDocument }),
      `writing ${PolicyName} on ${id.name}`,
    );
  }

  protected async deleteInline(id: IamIdentity, PolicyName: string): Promise<boolean> {
    try {
      await this.send(
        id.kind === 'user' ? new iam.DeleteUserPolicyCommand({ UserName: id.name, PolicyName }) : new iam.DeleteRolePolicyCommand({ RoleName: id.name, PolicyName }),
        `removing ${PolicyName} from ${id.name}`,
      );
      return true;
    } catch (err) {
      if (errName(err) === 'NoSuchEntity') return false;
      throw err;
    }
  }

  protected async throttleLimit(id: IamIdentity): Promise<number> {
    const out = await this.send<{ PolicyDocument?: string }>(
      id.kind === 'user' ? new iam.GetUserPolicyCommand({ UserName: id.name, PolicyName: THROTTLE_POLICY }) : new iam.GetRolePolicyCommand({ RoleName: id.name, PolicyName: THROTTLE_POLICY }),
      `reading the throttle of ${id.name}`,
    );
    return throttleLimitOf(out.PolicyDocument);
  }

  /** Mapped entitlements the identity holds, read from the target (unmapped groups and policies are not reported). */
  protected async held(id: IamIdentity): Promise<string[]> {
    const groups =
      id.kind === 'user' ? ((await this.send<{ Groups?: { GroupName?: string }[] }>(new iam.ListGroupsForUserCommand({ UserName: id.name }), `listing the groups of ${id.name}`)).Groups ?? []).map((g) => g.GroupName!) : [];
    const attached = await this.send<{ AttachedPolicies?: { PolicyArn?: string }[] }>(
      id.kind === 'user' ? new iam.ListAttachedUserPoliciesCommand({ UserName: id.name }) : new iam.ListAttachedRolePoliciesCommand({ RoleName: id.name }),
      `listing the policies of ${id.name}`,
    );
    const arns = new Set((attached.AttachedPolicies ?? []).map((p) => p.PolicyArn!));
    const out: string[] = [];
    for (const [logical, e] of this.entitlements) {
      if (e.group ? groups.includes(e.group) : arns.has(await this.policyArn(e.policy!))) out.push(logical);
    }
    return sortNames(out);
  }

  /** Every access key id of a user (a role has none). */
  async listCredentialIds(identity: string): Promise<string[]> {
    return (await this.keys(await this.existing(identity))).map((k) => k.id).sort();
  }

  /** Delete one of the user's keys by id; a key it does not hold (gone, someone else's) removes nothing. */
  async retireCredentialById(identity: string, credentialId: string): Promise<{ removed: boolean }> {
    const id = await this.existing(identity);
    if (!(await this.keys(id)).some((k) => k.id === credentialId)) return { removed: false };
    try {
      await this.send(new iam.DeleteAccessKeyCommand({ UserName: id.name, AccessKeyId: credentialId }), `deleting a key of ${id.name}`);
      return { removed: true };
    } catch (err) {
      if (errName(err) === 'NoSuchEntity') return { removed: false };
      throw err;
    }
  }

  protected async keys(id: IamIdentity): Promise<{ id: string; status: string }[]> {
    if (id.kind !== 'user') return [];
    const out = await this.send<{ AccessKeyMetadata?: iam.AccessKeyMetadata[] }>(new iam.ListAccessKeysCommand({ UserName: id.name }), `listing the keys of ${id.name}`);
    return (out.AccessKeyMetadata ?? []).map((k) => ({ id: k.AccessKeyId!, status: k.Status ?? 'Active' }));
  }
}
