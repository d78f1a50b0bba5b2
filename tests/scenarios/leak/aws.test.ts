// Crash windows of a rotation at a target that issues its own credentials (AWS access keys on moto
// with IAM authentication), activity by activity on the real secret store and the real endpoint:
// a retried staging issues no second key, a worker dying between AWS issuing a key and the store
// keeping it leaves no key behind, an apply retried after the old key was already deleted
// converges, and the compensation never forgets a key AWS accepts. Through the API: tests/scenarios/aws.test.ts.
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { fingerprint } from '../../../lib/secret-store';
import { createRotationActivities } from '../../../scenarios/leak/rotation';
import { attachLocalAws, type AwsWorld } from '../../helpers/aws-world';
import { createTestWorld, type TestWorld } from '../../helpers/world';

let w: TestWorld;
let aws: AwsWorld;
const NHI = 'aws-ci-deployer';
const USER = 'ci-deployer';

beforeAll(async () => {
  w = await createTestWorld({ temporal: 'time-skipping' });
  aws = await attachLocalAws(w);
}, 120_000);
afterAll(async () => {
  await w?.teardown();
  await aws?.stop();
});

const env = () => new MockActivityEnvironment({ workflowExecution: { workflowId: `leak-${NHI}`, runId: randomUUID() } } as never);
const acts = () => createRotationActivities(w.deps);
const run = <A, R>(fn: (a: A) => Promise<R>, a: A): Promise<R> => env().run(fn, a) as Promise<R>;
const activeKey = async () => w.secrets.reveal((await w.secrets.active(NHI))!.ref);
const args = () => ({ incidentId: randomUUID(), nhiId: NHI, rotationId: `rot-${randomUUID()}` });

test('a retried staging issues no second key; an apply retried after the old key is already gone converges', async () => {
  const leaked = await activeKey();
  const a = args();
  const staged = await run(acts().stageLeakCredential, a);
  const again = await run(acts().stageLeakCredential, a);
  expect(again.newRef).toBe(staged.newRef);
  expect(await aws.accessKeyIds(USER)).toHaveLength(2);

  // The worker died after AWS deleted the old key and before the ledger said so: the retry finds it gone.
  await aws.connector.retireCredential(`user/${USER}`, leaked);
  const applied = await run(acts().applyLeakCredential, a);
  expect(applied.activated).toBe(true);
  expect(await run(acts().applyLeakCredential, a)).toMatchObject({ activated: true, newRef: staged.newRef });
  await run(acts().invalidateLeakedSessions, a);
  const v = await run(acts().verifyLeakContainment, a);
  expect(v).toMatchObject({ oldCredential: 'denied', newCredential: 'granted' });
  const fresh = await activeKey();
  expect(await aws.callerIdentity(leaked)).toBe('InvalidClientTokenId');
  expect(await aws.accessKeyIds(USER)).toEqual([fresh.split(':')[0]]);
});

// The worker dies right after the target call: the store's write (or the rotation row) never happens.
const dying = (what: 'store' | 'rotation row', seen?: (value: string) => void) =>
  what === 'store'
    ? {
        ...w.deps,
        secrets: Object.assign(Object.create(w.secrets), {
          putPending: async (_nhiId: string, value: string) => {
            seen?.(value);
            throw new Error('worker died before the secret store kept the key');
          },
        }),
      }
    : {
        ...w.deps,
        pool: Object.assign(Object.create(w.db.pool), {
          query: (text: unknown, ...rest: unknown[]) =>
            typeof text === 'string' && text.includes('INSERT INTO rotations') ? Promise.reject(new Error('worker died before the rotation row')) : w.db.pool.query(text as string, ...(rest as [])),
        }),
      };

test('a worker dying between AWS issuing the key and the store keeping it: the retry deletes that key and ends with one new key, stored, accepted', async () => {
  const leaked = await activeKey();
  const a = args();
  let stray = '';
  await expect(run(createRotationActivities(dying('store', (v) => (stray = v))).stageLeakCredential, a)).rejects.toThrow('worker died');
  // The crash left a live key nobody holds, beside the leaked one: the user is at AWS's two-key limit.
  expect(await aws.accessKeyIds(USER)).toEqual([leaked.split(':')[0], stray.split(':')[0]].sort());
  expect(await aws.callerIdentity(stray)).toBe('ok');

  const staged = await run(acts().stageLeakCredential, a);
  const fresh = await w.secrets.reveal(staged.newRef);
  expect(await aws.callerIdentity(stray)).toBe('InvalidClientTokenId');
  expect(await aws.accessKeyIds(USER)).toEqual([leaked.split(':')[0], fresh.split(':')[0]].sort());
  const { rows } = await w.db.pool.query(`SELECT readback FROM audit_events WHERE nhi_id = $1 AND action = 'credential.stray_remove' AND details->>'rotationId' = $2`, [NHI, a.rotationId]);
  expect(rows).toEqual([{ readback: expect.objectContaining({ removed: [stray.split(':')[0]] }) }]);

  await run(acts().applyLeakCredential, a);
  await run(acts().invalidateLeakedSessions, a);
  expect(await run(acts().verifyLeakContainment, a)).toMatchObject({ oldCredential: 'denied', newCredential: 'granted' });
  expect(await activeKey()).toBe(fresh);
  expect(await aws.accessKeyIds(USER)).toEqual([fresh.split(':')[0]]);
  expect([await aws.callerIdentity(fresh), await aws.callerIdentity(leaked), await aws.callerIdentity(stray)]).toEqual(['ok', 'InvalidClientTokenId', 'InvalidClientTokenId']);
  // Only fingerprints of the key's parts were kept: the id names the stored version, no stray is known.
  expect((await w.secrets.findByCredentialId(NHI, fresh.split(':')[0])).map((r) => r.ref)).toEqual([staged.newRef]);
});

test('a worker dying after the store kept the key and before the rotation row: the retry uses that key, AWS issues no other', async () => {
  const leaked = await activeKey();
  const a = args();
  await expect(run(createRotationActivities(dying('rotation row')).stageLeakCredential, a)).rejects.toThrow('worker died');
  const [orphan] = (await w.secrets.list(NHI)).filter((r) => r.status === 'pending').slice(-1);
  const keysAfterCrash = await aws.accessKeyIds(USER);
  expect(keysAfterCrash).toHaveLength(2);

  const staged = await run(acts().stageLeakCredential, a);
  expect(staged.newRef).toBe(orphan.ref);
  expect(await aws.accessKeyIds(USER)).toEqual(keysAfterCrash);
  await run(acts().applyLeakCredential, a);
  await run(acts().invalidateLeakedSessions, a);
  await run(acts().verifyLeakContainment, a);
  const fresh = await activeKey();
  expect(await aws.accessKeyIds(USER)).toEqual([fresh.split(':')[0]]);
  expect(await aws.callerIdentity(leaked)).toBe('InvalidClientTokenId');
});

test('a staging that never got its rotation row is undone: what its attempts had AWS issue is deleted, the store\'s orphan discarded', async () => {
  const active = await activeKey();
  const a = args();
  let stray = '';
  await expect(run(createRotationActivities(dying('store', (v) => (stray = v))).stageLeakCredential, a)).rejects.toThrow('worker died');
  await expect(run(createRotationActivities(dying('rotation row')).stageLeakCredential, a)).rejects.toThrow('worker died');
  const [orphan] = (await w.secrets.list(NHI)).filter((r) => r.status === 'pending').slice(-1);
  const orphanKey = await w.secrets.reveal(orphan.ref);
  expect(await aws.accessKeyIds(USER)).toEqual([active.split(':')[0], orphanKey.split(':')[0]].sort());
  expect(await run(acts().undoStagedCredential, a)).toEqual({ outcome: 'nothing_staged' });
  expect(await aws.accessKeyIds(USER)).toEqual([active.split(':')[0]]);
  expect([await aws.callerIdentity(active), await aws.callerIdentity(stray), await aws.callerIdentity(orphanKey)]).toEqual(['ok', 'InvalidClientTokenId', 'InvalidClientTokenId']);
  expect((await w.secrets.get(orphan.ref))!.status).toBe('discarded');
  expect((await w.secrets.active(NHI))!.fingerprint).toBe(fingerprint(active));
});

test('two attempts of one staging at once (a timed-out one still running): one key issued, neither deletes the other\'s', async () => {
  const a = args();
  const [x, y] = await Promise.all([run(acts().stageLeakCredential, a), run(acts().stageLeakCredential, a)]);
  expect(y.newRef).toBe(x.newRef);
  const fresh = await w.secrets.reveal(x.newRef);
  expect(await aws.accessKeyIds(USER)).toHaveLength(2);
  expect(await aws.callerIdentity(fresh)).toBe('ok');
  await run(acts().applyLeakCredential, a);
  expect(await aws.accessKeyIds(USER)).toEqual([fresh.split(':')[0]]);
});

test('compensation: a staged key AWS accepts is activated instead of forgotten; one AWS refuses is removed and discarded', async () => {
  const before = await activeKey();
  const kept = args();
  const s1 = await run(acts().stageLeakCredential, kept);
  expect(await run(acts().undoStagedCredential, kept)).toEqual({ outcome: 'activated_instead' });
  expect((await w.secrets.active(NHI))!.ref).toBe(s1.newRef);
  // Both keys still work: nothing was deleted, and the store names the newer one.
  expect(await aws.callerIdentity(before)).toBe('ok');
  expect(await aws.callerIdentity(await activeKey())).toBe('ok');
  await aws.connector.retireCredential(`user/${USER}`, before);

  const lost = args();
  const s2 = await run(acts().stageLeakCredential, lost);
  const stagedKey = await w.secrets.reveal(s2.newRef);
  // AWS lost the staged key (deleted outside): the undo proves it refused, discards it, keeps the active one.
  await aws.connector.retireCredential(`user/${USER}`, stagedKey);
  expect(await run(acts().undoStagedCredential, lost)).toEqual({ outcome: 'discarded' });
  expect((await w.secrets.get(s2.newRef))!.status).toBe('discarded');
  expect((await w.secrets.active(NHI))!.ref).toBe(s1.newRef);
  expect(await aws.callerIdentity(await activeKey())).toBe('ok');
});

test('compensation at the two-key limit: the old key went first and the staged one is lost — the undo stops for a person, never "discarded"', async () => {
  const active = await activeKey();
  await aws.admin.send(new (await import('@aws-sdk/client-iam')).CreateAccessKeyCommand({ UserName: USER }));
  const a = args();
  const staged = await run(acts().stageLeakCredential, a);
  expect(await aws.callerIdentity(active)).toBe('InvalidClientTokenId');
  await aws.connector.retireCredential(`user/${USER}`, await w.secrets.reveal(staged.newRef));
  await expect(run(acts().undoStagedCredential, a)).rejects.toMatchObject({ type: 'VerificationFailed', nonRetryable: true });
  // Nothing was dropped from the record: the staged version stays pending for whoever issues the next key.
  expect((await w.secrets.get(staged.newRef))!.status).toBe('pending');
});
