// The AWS side of a test world: a local AWS endpoint (moto, IAM authentication on) for this test
// file, the demo AWS estate on it (ci-deployer user with a key in the world's secret store,
// payments-app role), and the world's connector registry with the aws connector beside postgres.
import * as iam from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { AwsIamConnector } from '../../connectors/aws-iam';
import { parseAccessKey } from '../../connectors/aws-iam-names';
import { createConnectorRegistry } from '../../connectors/registry';
import { AWS_DEMO_ENTITLEMENTS, ensureAwsDemoEstate } from '../../lib/aws-estate';
import { startLocalAws, type LocalAws } from '../../local-servers/moto';
import type { TestWorld } from './world';

export interface AwsWorld {
  local: LocalAws;
  connector: AwsIamConnector;
  /** The account's administrator, for assertions independent of the connector. */
  admin: iam.IAMClient;
  /** What the AWS endpoint answers to a call signed with this key: 'ok' or its error name (InvalidClientTokenId…). */
  callerIdentity(value: string): Promise<string>;
  accessKeyIds(userName: string): Promise<string[]>;
  stop(): Promise<void>;
}

export async function attachLocalAws(w: TestWorld): Promise<AwsWorld> {
  const local = await startLocalAws();
  const target = { endpoint: local.endpoint, region: local.region, credentials: local.admin };
  const connector = new AwsIamConnector({ ...target, entitlements: AWS_DEMO_ENTITLEMENTS });
  await ensureAwsDemoEstate({ aws: target, secretStore: w.secrets, orchestratorPool: w.db.pool });
  // Activities and routers read deps.connectors at each call: the registry can be swapped in place.
  w.deps.connectors = createConnectorRegistry([w.connector, connector]);
  const admin = new iam.IAMClient(target);
  return {
    local,
    connector,
    admin,
    async callerIdentity(value) {
      const key = parseAccessKey(value);
      if (!key) return 'malformed';
      const sts = new STSClient({ endpoint: local.endpoint, region: local.region, credentials: key });
      try {
        await sts.send(new GetCallerIdentityCommand({}));
        return 'ok';
      } catch (err) {
        return (err as Error).name;
      } finally {
        sts.destroy();
      }
    },
    async accessKeyIds(userName) {
      return ((await admin.send(new iam.ListAccessKeysCommand({ UserName: userName }))).AccessKeyMetadata ?? []).map((k) => k.AccessKeyId!).sort();
    },
    async stop() {
      admin.destroy();
      await connector.close();
      await local.stop();
    },
  };
}
