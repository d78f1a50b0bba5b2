// The start banner's first-hour block: the console, a psql line into the estate (a password only
// for the fixed embedded dev one), whether each webhook can be used, a Temporal UI list per scenario.
import { estatePsqlLine, firstHourLines, temporalUiListUrl } from '../../scripts/banner';

const base = { DATABASE_URL: undefined, ESTATE_DATABASE_URL: undefined, EMBEDDED_PG_PORT: 5433, GITHUB_WEBHOOK_SECRET: undefined, GITGUARDIAN_WEBHOOK_SECRET: undefined };

test('embedded dev server: the console, psql with the dev login, webhooks off, one Temporal UI list per scenario', () => {
  const text = firstHourLines({ api: 'http://127.0.0.1:3000', config: base, temporalUiUrl: 'http://127.0.0.1:8233', namespace: 'default' }).join('\n');
  expect(text).toContain('Console        http://127.0.0.1:3000/console/');
  expect(text).toContain("psql 'postgres://postgres:postgres@127.0.0.1:5433/estate'");
  expect(text).toMatch(/POST \/webhooks\/github\s+off: set GITHUB_WEBHOOK_SECRET/);
  expect(text).toMatch(/POST \/webhooks\/gitguardian\s+off: set GITGUARDIAN_WEBHOOK_SECRET/);
  for (const s of ['jit', 'leak', 'offboarding', 'anomaly']) {
    expect(text).toContain(`http://127.0.0.1:8233/namespaces/default/workflows?query=${encodeURIComponent(`Scenario = "${s}"`)}`);
  }
});

test('configured secrets say so without printing them; external databases never print a password', () => {
  const text = firstHourLines({ api: 'http://h:1', config: { ...base, GITHUB_WEBHOOK_SECRET: 'gh-s3cret', GITGUARDIAN_WEBHOOK_SECRET: 'gg-s3cret' }, namespace: 'default' }).join('\n');
  expect(text).toContain('ready (GITHUB_WEBHOOK_SECRET is set)');
  expect(text).not.toMatch(/s3cret/);
  expect(text).not.toContain('Temporal UI');
  expect(estatePsqlLine({ ...base, DATABASE_URL: 'postgres://admin:hunter2@db:5432/nhi' })).toBe("psql 'postgres://admin:***@db:5432/estate'   (the DATABASE_URL server; its password is yours)");
  expect(estatePsqlLine({ ...base, ESTATE_DATABASE_URL: 'postgres://nhi_connector:pw@estate:5432/prod' })).not.toContain(':pw@');
  expect(temporalUiListUrl('http://ui', 'my ns', 'NhiId = "a"')).toBe('http://ui/namespaces/my%20ns/workflows?query=NhiId%20%3D%20%22a%22');
});
