import { ConfigError, loadConfig } from '../../lib/config';

test('defaults for a newcomer', () => {
  const c = loadConfig({});
  expect(c).toMatchObject({ PORT: 3000, TEMPORAL_PORT: 7233, TEMPORAL_UI_PORT: 8233, TEMPORAL_TASK_QUEUE: 'nhi-orchestrator', demo: true });
  expect(c.dataDir).toMatch(/\.data$/);
});

test('ports, paths and URLs are configurable, and empty strings mean unset', () => {
  const c = loadConfig({ PORT: '4000', TEMPORAL_PORT: '17233', DATA_DIR: '/tmp/x', DATABASE_URL: 'postgres://u:p@db:5432/nhi', EMBEDDED_PG_PORT: '' });
  expect(c).toMatchObject({ PORT: 4000, TEMPORAL_PORT: 17233, dataDir: '/tmp/x', DATABASE_URL: 'postgres://u:p@db:5432/nhi', EMBEDDED_PG_PORT: 5433 });
});

test('every wrong variable is named with what is wrong, secrets are not echoed', () => {
  let err: unknown;
  try {
    loadConfig({ PORT: 'eighty', TEMPORAL_UI_PORT: '70000', DATABASE_URL: 'mysql://x', SECRET_STORE_KEY: 'hunter2', NOTIFY_WEBHOOK_URLS: 'not a url' });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const msg = (err as ConfigError).message;
  expect(msg).toMatch(/PORT: .*\(got "eighty"\)/);
  expect(msg).toMatch(/TEMPORAL_UI_PORT/);
  expect(msg).toMatch(/DATABASE_URL: .*postgres/);
  expect(msg).toMatch(/SECRET_STORE_KEY: must be 32 bytes/);
  expect(msg).not.toContain('hunter2');
  expect(msg).toMatch(/NOTIFY_WEBHOOK_URLS/);
  expect((err as ConfigError).problems).toHaveLength(5);
});

test('production is not a demo and accepts a hex or base64 key', () => {
  const c = loadConfig({ NODE_ENV: 'production', SECRET_STORE_KEY: 'ab'.repeat(32) });
  expect(c.demo).toBe(false);
  expect(() => loadConfig({ SECRET_STORE_KEY: Buffer.alloc(32, 7).toString('base64') })).not.toThrow();
});
