// Leak containment of an AWS access key, end to end through the API: the demo estate's ci-deployer
// IAM user on the local AWS endpoint (moto with IAM authentication), a real worker on the Temporal
// dev server. Done means: the leaked key is refused by the AWS endpoint, the new key is in the
// secret store and accepted, and the user holds exactly one key.
import * as iam from '@aws-sdk/client-iam';
import request from 'supertest';
import { createApiWorld, type ApiWorld } from '../../helpers/api-world';
import { attachLocalAws, type AwsWorld } from '../../helpers/aws-world';
import { waitFor } from '../../helpers/wait';

let api: ApiWorld;
let aws: AwsWorld;
const NHI = 'aws-ci-deployer';

beforeAll(async () => {
  api = await createApiWorld({
    setup: async (w) => {
      aws = await attachLocalAws(w);
    },
  });
}, 120_000);

afterAll(async () => {
  await api?.teardown();
  await aws?.stop();
});

const activeKey = async () => api.w.secrets.reveal((await api.w.secrets.active(NHI))!.ref);

async function untilContained(runNot?: string) {
  return waitFor(`leak ${NHI} contained`, async () => {
    const res = await request(api.app).get(`/v1/leaks/${NHI}`).set(api.as('alice'));
    return res.status === 200 && res.body.state === 'contained' && res.body.runId !== runNot ? res.body : null;
  }, 60_000);
}

test('a leaked ci-deployer key: a new key issued and verified with STS, the leaked one deleted and refused by AWS', async () => {
  const leaked = await activeKey();
  expect(await aws.callerIdentity(leaked)).toBe('ok');

  const res = await api.post('/v1/leaks', 'detector-bot', { nhiId: NHI, source: 'trufflehog', severity: 'critical' });
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ outcome: 'containment', containments: [{ nhiId: NHI }] });
  const status = await untilContained();
  expect(status.verification).toMatchObject({ oldCredential: 'denied', newCredential: 'granted' });

  const fresh = await activeKey();
  expect(fresh).not.toBe(leaked);
  expect(await aws.callerIdentity(leaked)).toBe('InvalidClientTokenId');
  expect(await aws.callerIdentity(fresh)).toBe('ok');
  expect(await aws.accessKeyIds('ci-deployer')).toEqual([fresh.split(':')[0]]);
  // Standing access is untouched by a containment without elevations.
  const groups = (await aws.admin.send(new iam.ListGroupsForUserCommand({ UserName: 'ci-deployer' }))).Groups!.map((g) => g.GroupName);
  expect(groups).toEqual(['nhi-demo-deployers']);

  const audit = await api.get(`/v1/audit?workflowId=leak-${NHI}`);
  const actions = audit.body.events.map((e: { action: string }) => e.action);
  expect(actions).toEqual(expect.arrayContaining(['credential.stage', 'credential.rotate', 'sessions.invalidate', 'leak.verify']));
  // No key material in the trail: neither the access key's secret half nor the leaked one.
  expect(JSON.stringify(audit.body)).not.toContain(fresh.split(':')[1]);
  expect(JSON.stringify(audit.body)).not.toContain(leaked.split(':')[1]);
});

test('a second leak while the user holds two keys: the leaked one goes first, the other stays, and the audit says so', async () => {
  const leaked = await activeKey();
  const other = (await aws.admin.send(new iam.CreateAccessKeyCommand({ UserName: 'ci-deployer' }))).AccessKey!;
  const before = (await request(api.app).get(`/v1/leaks/${NHI}`).set(api.as('alice'))).body.runId;
  const res = await api.post('/v1/leaks', 'detector-bot', { nhiId: NHI, source: 'gitleaks', severity: 'high' });
  expect(res.status).toBe(202);
  await untilContained(before);

  const fresh = await activeKey();
  expect(await aws.callerIdentity(leaked)).toBe('InvalidClientTokenId');
  expect(await aws.callerIdentity(fresh)).toBe('ok');
  expect(await aws.accessKeyIds('ci-deployer')).toEqual([other.AccessKeyId!, fresh.split(':')[0]].sort());
  const stage = (await api.get(`/v1/audit?workflowId=leak-${NHI}`)).body.events.filter((e: { action: string }) => e.action === 'credential.stage');
  expect(stage.at(-1).details.issuedByTarget.removedFirst).toEqual([leaked.split(':')[0]]);
});
