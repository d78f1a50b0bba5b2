// Signed authority (lib/authority.ts): what the check refuses, and the nonce used once.
import { randomBytes } from 'node:crypto';
import { checkSignature, signAuthority, useNonce } from '../../lib/authority';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const key = randomBytes(32);
const expected = { workflowId: 'jit-svc_etl-01234567', message: 'approve' as const };

test('a signature made with the key, for this workflow and message, in time, verifies', () => {
  const a = signAuthority(key, { ...expected, principal: 'bob' });
  expect(checkSignature(key, a, expected)).toEqual({ ok: true, principal: 'bob' });
});

test.each([
  ['no authority at all (the Temporal UI)', () => undefined, /needs a signed principal/],
  ['a principal changed after signing', () => ({ ...signAuthority(key, { ...expected, principal: 'bob' }), principal: 'admin' }), /does not verify/],
  ['signed with another key', () => signAuthority(randomBytes(32), { ...expected, principal: 'bob' }), /does not verify/],
  ['signed for another workflow', () => signAuthority(key, { ...expected, workflowId: 'jit-svc_etl-89abcdef', principal: 'bob' }), /signed for jit-svc_etl-89abcdef/],
  ['signed for another message', () => signAuthority(key, { ...expected, message: 'deny', principal: 'bob' }), /signed for deny/],
  ['expired', () => signAuthority(key, { ...expected, principal: 'bob' }, Date.now() - 600_000), /expired/],
  ['malformed', () => ({ principal: 'bob' }), /malformed/],
])('refused: %s', (_name, make, reason) => {
  const check = checkSignature(key, make(), expected);
  expect(check.ok).toBe(false);
  expect(!check.ok && check.reason).toMatch(reason);
});

test('a nonce is used once: the same use again is fine (an activity retry), another use is a replay', async () => {
  const a = signAuthority(key, { ...expected, principal: 'bob' });
  expect(await useNonce(db.pool, a, 'run-1:activity-3')).toEqual({ ok: true, principal: 'bob' });
  expect(await useNonce(db.pool, a, 'run-1:activity-3')).toEqual({ ok: true, principal: 'bob' });
  expect(await useNonce(db.pool, a, 'run-1:activity-9')).toEqual({ ok: false, reason: expect.stringMatching(/already used/) });
});
