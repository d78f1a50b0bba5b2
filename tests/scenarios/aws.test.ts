// The four scenarios through the API on the demo estate's AWS NHIs (the ci-deployer IAM user and the
// payments-app role on the local AWS endpoint, moto with IAM authentication), a real worker on the
// Temporal dev server, one world for the file. Every assertion reads IAM itself with the account
// administrator's key, not the connector. A leak ends with the leaked key refused by the AWS
// endpoint, the new key in the store and accepted, and the user holding no other key of ours.
import * as iam from '@aws-sdk/client-iam';
import request from 'supertest';
import { LOGIN_DISABLED_POLICY, THROTTLE_POLICY } from '../../connectors/aws-iam-names';
import { sha256Hex } from '../../lib/fingerprints';
import { createApiWorld, type ApiWorld } from '../helpers/api-world';
import { attachLocalAws, type AwsWorld } from '../helpers/aws-world';
import { waitFor } from '../helpers/wait';

let api: ApiWorld;
let aws: AwsWorld;

beforeAll(async () => {
  api = await createApiWorld({
    // A second detector: the first one's reports within the cool-down are merged, not rotated again.
    principals: { 'detector-2': ['detector'] },
    setup: async (w) => {
      aws = await attachLocalAws(w);
    },
  });
}, 120_000);

afterAll(async () => {
  await api?.teardown();
  await aws?.stop();
});

const USER = 'ci-deployer';
const ROLE = 'payments-app';
const send = <T>(c: unknown) => aws.admin.send(c as never) as Promise<T>;
const groupsOf = async (user: string) => ((await send<iam.ListGroupsForUserCommandOutput>(new iam.ListGroupsForUserCommand({ UserName: user }))).Groups ?? []).map((g) => g.GroupName!).sort();
const userPolicies = async (user: string) =>
  ((await send<iam.ListAttachedUserPoliciesCommandOutput>(new iam.ListAttachedUserPoliciesCommand({ UserName: user }))).AttachedPolicies ?? []).map((p) => p.PolicyName!).sort();
const userInline = async (user: string) => ((await send<iam.ListUserPoliciesCommandOutput>(new iam.ListUserPoliciesCommand({ UserName: user }))).PolicyNames ?? []).sort();
const rolePolicies = async (role: string) =>
  ((await send<iam.ListAttachedRolePoliciesCommandOutput>(new iam.ListAttachedRolePoliciesCommand({ RoleName: role }))).AttachedPolicies ?? []).map((p) => p.PolicyName!).sort();
const roleInline = async (role: string) => ((await send<iam.ListRolePoliciesCommandOutput>(new iam.ListRolePoliciesCommand({ RoleName: role }))).PolicyNames ?? []).sort();
const until = <T>(what: string, path: string, ok: (b: any) => boolean) =>
  waitFor(what, async () => {
    const r = await api.get(path);
    return r.status === 200 && ok(r.body) ? (r.body as T) : null;
  }, 60_000);

test('GET /v1/connectors names each configured connector with its capabilities; discovery is for admins and reads AWS', async () => {
  const list = await api.get('/v1/connectors');
  expect(list.status).toBe(200);
  const byName = Object.fromEntries(list.body.items.map((c: { name: string }) => [c.name, c]));
  expect(byName.aws).toMatchObject({ capabilities: { credentials: 'issued', secondCredentialSlot: true, sessions: 'revoke_issued_before', connectionLimit: false }, grantable: expect.arrayContaining(['aws_s3_write']) });
  expect(byName.postgres).toMatchObject({ capabilities: { credentials: 'set', sessions: 'terminate', connectionLimit: true } });
  expect((await api.get('/v1/connectors/aws/identities', 'alice')).status).toBe(403);
  expect((await api.get('/v1/connectors/nope/identities', 'admin')).status).toBe(404);
  const found = await api.get('/v1/connectors/aws/identities', 'admin');
  expect(found.status).toBe(200);
  const key = (await api.w.secrets.reveal((await api.w.secrets.active('aws-ci-deployer'))!.ref)).split(':');
  const user = found.body.items.find((d: { identity: string }) => d.identity === `user/${USER}`);
  expect(user).toMatchObject({ entitlements: ['aws_deployers'], credentials: [{ id: key[0], status: 'Active', createdAt: expect.any(String) }] });
  expect(found.body.items.map((d: { identity: string }) => d.identity)).toContain(`role/${ROLE}`);
  expect(found.text).not.toContain(key[1]);
});

test('JIT: an IAM managed policy attached for the window after one approval, detached on revoke, read back from IAM', async () => {
  const res = await api.post('/v1/elevations', 'alice', { nhiId: 'aws-ci-deployer', entitlements: ['aws_s3_write'], justification: 'upload the release artefacts', durationMinutes: 30 });
  expect(res.status).toBe(202);
  expect(await userPolicies(USER)).toEqual([]);
  expect((await api.post(`/v1/elevations/${res.body.id}/approve`, 'bob', {})).status).toBe(200);
  await until('active', `/v1/elevations/${res.body.id}`, (b) => b.state === 'active');
  expect(await userPolicies(USER)).toEqual(['nhi-demo-s3-write']);
  expect(await groupsOf(USER)).toEqual(['nhi-demo-deployers']);

  const done = await api.post(`/v1/elevations/${res.body.id}/revoke`, 'alice', { reason: 'uploaded' });
  expect(done.status).toBe(200);
  expect(done.body).toMatchObject({ state: 'revoked' });
  expect(await userPolicies(USER)).toEqual([]);
  expect(await groupsOf(USER)).toEqual(['nhi-demo-deployers']);
});

test('anomaly: the throttle is an inline deny of writes and the read-only group in place of the deployers; clear restores exactly', async () => {
  const key = await api.w.secrets.reveal((await api.w.secrets.active('aws-ci-deployer'))!.ref);
  const report = await api.post('/v1/anomalies', 'detector-bot', { nhiId: 'aws-ci-deployer', observedRate: 900, baselineRate: 20, source: 'siem:cloudtrail', detail: 'burst of PutObject' });
  expect(report.status).toBe(202);
  await until('throttled', '/v1/anomalies/aws-ci-deployer', (b) => b.state === 'throttled_l1');
  expect(await userInline(USER)).toEqual([THROTTLE_POLICY]);
  expect(await groupsOf(USER)).toEqual(['nhi-demo-readers']);
  // Reads still work with the NHI's own key; the throttle did not touch the key.
  expect(await aws.callerIdentity(key)).toBe('ok');

  const cleared = await api.post('/v1/anomalies/aws-ci-deployer/clear', 'bob', { reason: 'release day' });
  expect(cleared.status).toBe(200);
  expect(cleared.body).toMatchObject({ state: 'cleared', restored: { exact: true } });
  expect(await userInline(USER)).toEqual([]);
  expect(await groupsOf(USER)).toEqual(['nhi-demo-deployers']);
  // The case reads cleared a moment before its workflow closes: the next report must start a new one.
  await api.w.env.client.workflow.getHandle('anomaly-aws-ci-deployer').result();
});

test('JIT × throttle on one IAM user: the throttle swaps the elevated write policy for its read form; clearing gives the live elevation back', async () => {
  const jit = await api.post('/v1/elevations', 'alice', { nhiId: 'aws-ci-deployer', entitlements: ['aws_s3_write'], justification: 'publish the nightly build', durationMinutes: 60 });
  expect((await api.post(`/v1/elevations/${jit.body.id}/approve`, 'bob', {})).status).toBe(200);
  await until('active', `/v1/elevations/${jit.body.id}`, (b) => b.state === 'active');
  expect(await userPolicies(USER)).toEqual(['nhi-demo-s3-write']);

  const before = (await api.get('/v1/anomalies/aws-ci-deployer')).body.runId;
  expect((await api.post('/v1/anomalies', 'detector-bot', { nhiId: 'aws-ci-deployer', observedRate: 800, baselineRate: 20, source: 'siem:cloudtrail' })).status).toBe(202);
  await until('throttled', '/v1/anomalies/aws-ci-deployer', (b) => b.state === 'throttled_l1' && b.runId !== before);
  expect(await userPolicies(USER)).toEqual(['nhi-demo-s3-read']);
  expect(await groupsOf(USER)).toEqual(['nhi-demo-readers']);
  expect(await userInline(USER)).toEqual([THROTTLE_POLICY]);

  expect((await api.post('/v1/anomalies/aws-ci-deployer/clear', 'bob', { reason: 'nightly build' })).body).toMatchObject({ state: 'cleared' });
  expect(await userPolicies(USER)).toEqual(['nhi-demo-s3-write']);
  expect(await groupsOf(USER)).toEqual(['nhi-demo-deployers']);
  expect(await userInline(USER)).toEqual([]);

  expect((await api.post(`/v1/elevations/${jit.body.id}/revoke`, 'alice', { reason: 'published' })).body).toMatchObject({ state: 'revoked' });
  expect(await userPolicies(USER)).toEqual([]);
  expect(await groupsOf(USER)).toEqual(['nhi-demo-deployers']);
});

const NHI = 'aws-ci-deployer';
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
  // Another detector's report (the first detector's are in their cool-down: merged, not rotated again).
  const res = await api.post('/v1/leaks', 'detector-2', { nhiId: NHI, source: 'gitleaks', severity: 'high' });
  expect(res.status).toBe(202);
  await untilContained(before);

  const fresh = await activeKey();
  expect(await aws.callerIdentity(leaked)).toBe('InvalidClientTokenId');
  expect(await aws.callerIdentity(fresh)).toBe('ok');
  expect(await aws.accessKeyIds('ci-deployer')).toEqual([other.AccessKeyId!, fresh.split(':')[0]].sort());
  const stage = (await api.get(`/v1/audit?workflowId=leak-${NHI}`)).body.events.filter((e: { action: string }) => e.action === 'credential.stage');
  expect(stage.at(-1).details.issuedByTarget.removedFirst).toEqual([leaked.split(':')[0]]);
});

test('a scanner that has only the sha256 of the secret access key, or AWS naming only the key id: the ci-deployer NHI is found and contained', async () => {
  const leaked = await activeKey();
  const [keyId, secretHalf] = leaked.split(':');
  const before = (await request(api.app).get(`/v1/leaks/${NHI}`).set(api.as('alice'))).body.runId;
  const res = await api.post('/v1/leaks', 'detector-bot', { fingerprint: sha256Hex(secretHalf), source: 'trufflehog', severity: 'critical' });
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ outcome: 'containment', containments: [{ nhiId: NHI, matchedBy: 'fingerprint' }] });
  await untilContained(before);
  const fresh = await activeKey();
  expect(await aws.callerIdentity(leaked)).toBe('InvalidClientTokenId');
  expect(await aws.callerIdentity(fresh)).toBe('ok');
  expect(await aws.accessKeyIds(USER)).toContain(fresh.split(':')[0]);
  expect(await aws.accessKeyIds(USER)).not.toContain(keyId);

  // The retired key named by its id (what AWS's exposure alerts give): the same NHI, already contained.
  const late = await api.post('/v1/leaks', 'detector-2', { accessKeyId: keyId, source: 'aws-health', severity: 'critical' });
  expect(late.status).toBe(202);
  expect(late.body).toMatchObject({ outcome: 'already_contained', alreadyContained: [{ nhiId: NHI }] });
  // A key id no stored credential has matches nothing: an unmatched incident, no guess.
  const stranger = await api.post('/v1/leaks', 'detector-2', { accessKeyId: 'AKIA' + 'Z'.repeat(16), source: 'aws-health', severity: 'critical' });
  expect(stranger.body).toMatchObject({ outcome: 'unmatched', containments: [] });
});

test('offboarding a role: policies detached, every action denied, inventory offboarded', async () => {
  expect(await rolePolicies(ROLE)).toEqual(['nhi-demo-s3-write']);
  // A high/critical NHI: at least a day of grace and a second person — whose confirmation ends the grace now.
  const res = await api.post('/v1/offboardings', 'admin', { nhiId: 'aws-payments-app', reason: 'payments-app moved to another account', graceDays: 1, watchDays: 0 });
  expect(res.status).toBe(202);
  await until('grace', `/v1/offboardings/${res.body.id}`, (b) => b.state === 'grace');
  expect((await api.post(`/v1/offboardings/${res.body.id}/confirm`, 'admin-2', { comment: 'second pair of eyes' })).status).toBeLessThan(300);
  const done = await until<{ state: string }>('completed', `/v1/offboardings/${res.body.id}`, (b) => b.state === 'completed');
  expect(done.state).toBe('completed');
  expect(await rolePolicies(ROLE)).toEqual([]);
  expect(await roleInline(ROLE)).toContain(LOGIN_DISABLED_POLICY);
  expect(await api.w.inventoryStatus('aws-payments-app')).toBe('offboarded');
});

test('offboarding a user: group removed, keys deleted at AWS (the old key refused), store emptied', async () => {
  const key = await api.w.secrets.reveal((await api.w.secrets.active('aws-ci-deployer'))!.ref);
  // The key created outside the orchestrator in the two-key leak above goes too.
  expect(await aws.accessKeyIds(USER)).toHaveLength(2);
  // A high/critical NHI: at least a day of grace and a second person — whose confirmation ends the grace now.
  const res = await api.post('/v1/offboardings', 'admin', { nhiId: 'aws-ci-deployer', reason: 'CI moved to OIDC federation', graceDays: 1, watchDays: 0 });
  expect(res.status).toBe(202);
  await until('grace', `/v1/offboardings/${res.body.id}`, (b) => b.state === 'grace');
  expect((await api.post(`/v1/offboardings/${res.body.id}/confirm`, 'admin-2', { comment: 'second pair of eyes' })).status).toBeLessThan(300);
  await until('completed', `/v1/offboardings/${res.body.id}`, (b) => b.state === 'completed');
  expect(await groupsOf(USER)).toEqual([]);
  expect(await aws.accessKeyIds(USER)).toEqual([]);
  expect(await aws.callerIdentity(key)).toBe('InvalidClientTokenId');
  expect(await api.w.secrets.active('aws-ci-deployer')).toBeNull();
  expect(await api.w.inventoryStatus('aws-ci-deployer')).toBe('offboarded');
});
