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

test('a checked-out client whose connection the server ends between two queries fails its next query; the process goes on and the pool recovers', async () => {
  const client = await db.pool.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const ended = new Promise((r) => client.once('end', r));
  // As pg_terminate_backend or a fast shutdown does while a worker holds a lock across a target call.
  await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
  await ended; // without a listener on the client, its 'error' would have been thrown as uncaught
  await expect(client.query('SELECT 1')).rejects.toThrow();
  client.release();
  expect((await db.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  expect(db.pool.totalCount).toBeLessThanOrEqual(1);
});
