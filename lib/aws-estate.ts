// The demo estate's AWS side, created on the local AWS endpoint (moto) by `npm start` and the tests:
// the groups and managed policies behind the AWS entitlements, the `ci-deployer` IAM user with an
// access key (kept only in the secret store) and the `payments-app` role, and their inventory rows.
// Idempotent: an existing user, role, group or policy is left as it is.
import * as iam from '@aws-sdk/client-iam';
import type { Pool } from 'pg';
import type { AwsEntitlement } from '../connectors/aws-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { formatAccessKey, parseAccessKey } from '../connectors/aws-iam-names';
import type { SecretStore } from './secret-store';

/** Logical name → IAM group or managed policy, as AWS_ENTITLEMENTS would say it. */
export const AWS_DEMO_ENTITLEMENTS: Record<string, AwsEntitlement> = {
  aws_readers: { group: 'nhi-demo-readers' },
  aws_deployers: { group: 'nhi-demo-deployers', writeCapable: true, readOnlyForm: 'aws_readers' },
  aws_s3_read: { policy: 'nhi-demo-s3-read' },
  aws_s3_write: { policy: 'nhi-demo-s3-write', writeCapable: true, readOnlyForm: 'aws_s3_read' },
};

const POLICY_DOCUMENTS: Record<string, string> = {
  'nhi-demo-s3-read': JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: '*' }] }),
  'nhi-demo-s3-write': JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket', 's3:PutObject'], Resource: '*' }] }),
};

const TRUST_ECS = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' }, Action: 'sts:AssumeRole' }] });

export interface AwsDemoNhi {
  id: string;
  kind: 'token' | 'service_account';
  owner: string;
  criticality: 'high' | 'critical';
  externalRef: string;
  tags: string[];
  exposureHints: Array<{ repository: string; secretType: string }>;
  entitlements: string[];
}

export const AWS_DEMO_NHIS: readonly AwsDemoNhi[] = [
  {
    id: 'aws-ci-deployer',
    kind: 'token',
    owner: 'team-platform',
    criticality: 'high',
    externalRef: 'user/ci-deployer',
    tags: ['ci', 'deploy', 'aws'],
    exposureHints: [{ repository: 'acme/deploy-pipelines', secretType: 'aws_access_key' }],
    entitlements: ['aws_deployers'],
  },
  {
    id: 'aws-payments-app',
    kind: 'service_account',
    owner: 'team-payments',
    criticality: 'critical',
    externalRef: 'role/payments-app',
    tags: ['payments', 'aws'],
    exposureHints: [],
    entitlements: ['aws_s3_write'],
  },
];

export interface AwsTarget {
  endpoint?: string;
  region: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

const ignoreExists = (err: unknown) => {
  if (/^EntityAlreadyExists/.test((err as Error)?.name ?? '')) return false;
  throw err;
};

export async function ensureAwsDemoEstate(opts: { aws: AwsTarget; secretStore: SecretStore; orchestratorPool: Pool }): Promise<{ created: string[]; credentialsIssued: string[] }> {
  const client = new iam.IAMClient({ endpoint: opts.aws.endpoint, region: opts.aws.region, credentials: opts.aws.credentials });
  const created: string[] = [];
  try {
    const account = (await client.send(new iam.GetUserCommand({}))).User!.Arn!.split(':')[4];
    const arnOf = (policy: string) => `arn:aws:iam::${account}:policy/${policy}`;
    for (const e of Object.values(AWS_DEMO_ENTITLEMENTS)) {
      if (e.group && (await client.send(new iam.CreateGroupCommand({ GroupName: e.group })).then(() => true, ignoreExists))) created.push(`group/${e.group}`);
      if (e.policy && (await client.send(new iam.CreatePolicyCommand({ PolicyName: e.policy, PolicyDocument: POLICY_DOCUMENTS[e.policy] })).then(() => true, ignoreExists))) created.push(`policy/${e.policy}`);
    }
    for (const nhi of AWS_DEMO_NHIS) {
      const [kind, name] = nhi.externalRef.split('/');
      const isNew =
        kind === 'user'
          ? await client.send(new iam.CreateUserCommand({ UserName: name })).then(() => true, ignoreExists)
          : await client.send(new iam.CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: TRUST_ECS })).then(() => true, ignoreExists);
      if (!isNew) continue;
      created.push(nhi.externalRef);
      for (const logical of nhi.entitlements) {
        const e = AWS_DEMO_ENTITLEMENTS[logical];
        if (e.group) await client.send(new iam.AddUserToGroupCommand({ UserName: name, GroupName: e.group }));
        else if (kind === 'user') await client.send(new iam.AttachUserPolicyCommand({ UserName: name, PolicyArn: arnOf(e.policy!) }));
        else await client.send(new iam.AttachRolePolicyCommand({ RoleName: name, PolicyArn: arnOf(e.policy!) }));
      }
    }
    for (const nhi of AWS_DEMO_NHIS) {
      await opts.orchestratorPool.query(
        `INSERT INTO nhis (id, kind, owner, connector, external_ref, criticality, tags, usage_baseline, dependents, exposure_hints)
         VALUES ($1, $2, $3, 'aws', $4, $5, $6, NULL, '[]', $7) ON CONFLICT DO NOTHING`,
        [nhi.id, nhi.kind, nhi.owner, nhi.externalRef, nhi.criticality, nhi.tags, JSON.stringify(nhi.exposureHints)],
      );
    }
    // The user's key: issued by AWS, kept only in the secret store. Skipped while the store holds one
    // AWS accepts (a local endpoint starts empty: the stored key of a previous run is unknown to it)
    // or the NHI is being (or was) offboarded.
    const credentialsIssued: string[] = [];
    for (const nhi of AWS_DEMO_NHIS.filter((n) => n.externalRef.startsWith('user/'))) {
      const { rows } = await opts.orchestratorPool.query<{ status: string }>('SELECT status FROM nhis WHERE id = $1', [nhi.id]);
      if (rows[0]?.status === 'offboarding' || rows[0]?.status === 'offboarded') continue;
      const active = await opts.secretStore.active(nhi.id);
      if (active && (await keyAccepted(opts.aws, await opts.secretStore.reveal(active.ref).catch(() => '')))) continue;
      const userName = nhi.externalRef.slice('user/'.length);
      const key = (await client.send(new iam.CreateAccessKeyCommand({ UserName: userName }))).AccessKey!;
      // The key id and the secret half are fingerprinted too: scanners and AWS's exposure alerts name either alone.
      const pending = await opts.secretStore.putPending(nhi.id, formatAccessKey({ accessKeyId: key.AccessKeyId!, secretAccessKey: key.SecretAccessKey! }), {
        credentialId: key.AccessKeyId!,
        secret: key.SecretAccessKey!,
      });
      await opts.secretStore.activate(pending.ref);
      credentialsIssued.push(nhi.id);
    }
    return { created, credentialsIssued };
  } finally {
    client.destroy();
  }
}

async function keyAccepted(aws: AwsTarget, value: string): Promise<boolean> {
  const key = parseAccessKey(value);
  if (!key) return false;
  const sts = new STSClient({ endpoint: aws.endpoint, region: aws.region, credentials: key });
  try {
    await sts.send(new GetCallerIdentityCommand({}));
    return true;
  } catch (err) {
    if (/^(InvalidClientTokenId|SignatureDoesNotMatch)/.test((err as Error).name)) return false;
    throw err;
  } finally {
    sts.destroy();
  }
}
