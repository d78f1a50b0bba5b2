import { migrate } from '../../lib/db';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});
afterAll(async () => db?.drop());

test('migrations apply from empty, in order, once — also when two processes race', async () => {
  const [a, b] = await Promise.all([migrate(db.pool), migrate(db.pool)]);
  const applied = [...a, ...b].sort();
  expect(applied[0]).toBe('001_init.sql');
  expect(new Set(applied).size).toBe(applied.length);
  expect(await migrate(db.pool)).toEqual([]);
  const { rows } = await db.pool.query("SELECT to_regclass('public.audit_events') AS t, to_regclass('public.grants') AS g");
  expect(rows[0]).toEqual({ t: 'audit_events', g: 'grants' });
});
