// The console in a real browser (Debian's Chromium driven by playwright-core; skipped when it is not
// installed — .ci/run installs it): one shared API + worker on the Temporal dev server and real
// Postgres roles. Alice requests, Bob approves in a second browser context, Alice sees it active
// and ends it; every step is checked at the target. Screenshots go to test-artifacts/console/.
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createApp } from '../../api/app';
import { createScenarioRouters } from '../../api/scenarios';
import { loadConfig } from '../../lib/config';
import { projectRoot } from '../../lib/paths';
import { createApiWorld, type ApiWorld } from '../helpers/api-world';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => Boolean(p && existsSync(p)));
const SHOTS = path.join(projectRoot, 'test-artifacts', 'console');
const describeWithBrowser = CHROMIUM ? describe : describe.skip;

describeWithBrowser('the console in Chromium', () => {
  let api: ApiWorld;
  let server: Server;
  let base: string;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  /** Everything the pages logged as errors (a CSP violation from an inline script would land here). */
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    api = await createApiWorld();
    const { w } = api;
    const config = { ...loadConfig({ NODE_ENV: 'test' }), TEMPORAL_TASK_QUEUE: w.taskQueue };
    const temporal = { client: w.env.client, taskQueue: w.taskQueue, namespace: 'default' };
    const app = createApp({
      pool: w.db.pool,
      temporal,
      config,
      logger: pino({ level: 'silent' }),
      console: { temporalUiUrl: 'http://127.0.0.1:8233', namespace: 'default', demoPrincipals: () => [{ id: 'alice', roles: ['requester'], token: api.tokens.alice }] },
      extraRouters: createScenarioRouters({ pool: w.db.pool, temporal, config, policy: w.deps.policy, connectors: w.deps.connectors, authorityKey: w.deps.authorityKey }),
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  }, 180_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await new Promise((r) => (server ? server.close(() => r(undefined)) : r(undefined)));
    await api?.teardown();
  });

  async function open(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('response', (r) => r.status() === 404 && pageErrors.push(`404 ${r.url()}`));
    await page.goto(`${base}/console/`);
    return page;
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const notice = async (page: Page, re: RegExp) => {
    try {
      await page.locator('#notice', { hasText: re }).waitFor({ timeout: 30_000 });
    } catch (err) {
      await shot(page, 'failure');
      throw new Error(`the notice never matched ${re}; it says: ${await page.textContent('#notice')}`);
    }
    return (await page.textContent('#notice')) ?? '';
  };

  test('request → approve as another principal → active with a countdown → "I\'m done" → revoked, at the target', async () => {
    const { w } = api;
    // Alice signs in with the dev picker.
    const alice = await open();
    await alice.click('#demo-picker button[data-principal="alice"]');
    await alice.waitForSelector('#signed-in-as[data-principal="alice"]');

    // A request policy refuses: the console shows the API's own message.
    await alice.selectOption('#req-nhi', 'partner_acme');
    await alice.fill('#req-entitlements', 'estate_admin');
    await alice.fill('#req-justification', 'load the Q3 partner catalogue');
    await alice.click('#req-submit');
    expect(await notice(alice, /failed/)).toMatch(/403 denied_by_policy: Denied by policy: estate_admin is granted only to service accounts/);

    await alice.fill('#req-entitlements', 'estate_writer');
    await alice.fill('#req-change', 'CHG-77');
    await alice.click('#req-submit');
    const requested = await notice(alice, /Request: jit-partner_acme-\w+ awaiting_approval/);
    const id = /jit-partner_acme-\w+/.exec(requested)![0];
    await alice.waitForSelector(`#my-requests tr[data-workflow-id="${id}"] .badge[data-state="awaiting_approval"]`);
    await shot(alice, '1-alice-requested');

    // Bob signs in with a pasted token, sees why policy wants him, and approves with a comment.
    const bob = await open();
    await bob.fill('#token', api.tokens.bob);
    await bob.click('#signin-form button[type="submit"]');
    const row = `#pending-approvals tr[data-workflow-id="${id}"]`;
    await bob.waitForSelector(row);
    expect(await bob.textContent(row)).toMatch(/estate_writer needs one approver/);
    expect(await bob.textContent(`${row} .needed`)).toBe('1 of 1 still needed');
    expect(await bob.textContent(`${row} .countdown`)).toMatch(/left$/);
    await shot(bob, '2-bob-pending');
    await bob.fill(`${row} input[name="comment"]`, 'ok for the catalogue load');
    await bob.click(`${row} button[data-action="approve"]`);
    expect(await notice(bob, /Approve/)).toMatch(new RegExp(`Approve ${id}: active`));
    expect(await w.memberships('partner_acme')).toContain(w.ent('estate_writer'));

    // Alice sees it active, read back from the target, with its countdown and change window.
    await alice.click('nav a[data-tab="active"]');
    const active = `#active-elevations tr[data-workflow-id="${id}"]`;
    await alice.waitForSelector(`${active} .badge[data-state="active"]`);
    expect(await alice.textContent(active)).toMatch(/estate_writer ✓ at target/);
    expect(await alice.textContent(`${active} .countdown`)).toMatch(/^(29|30)m \d\ds left$/);
    await alice.waitForSelector('#change-windows tr[data-change-id="CHG-77"]');
    await shot(alice, '3-alice-active');

    // The inventory shows the same, read back from the target itself.
    await alice.click('nav a[data-tab="inventory"]');
    await alice.waitForSelector('#nhis tr[data-nhi-id="partner_acme"] .access[data-entitlements*="estate_writer"]');
    await shot(alice, '4-inventory-elevated');

    // "I'm done": revoked and verified, gone at the target and shown as revoked.
    await alice.click('nav a[data-tab="active"]');
    await alice.click(`${active} button[data-action="done"]`);
    expect(await notice(alice, /End /)).toMatch(new RegExp(`End ${id}: revoked`));
    expect(await w.memberships('partner_acme')).not.toContain(w.ent('estate_writer'));
    await alice.waitForSelector(`${active}`, { state: 'detached' });
    await alice.click('nav a[data-tab="needs-me"]');
    await alice.waitForSelector(`#my-requests tr[data-workflow-id="${id}"] .badge[data-state="revoked"]`, { timeout: 30_000 });
    await alice.click('nav a[data-tab="inventory"]');
    await alice.waitForSelector('#nhis tr[data-nhi-id="partner_acme"] .access:not([data-entitlements*="estate_writer"])');
    await shot(alice, '5-alice-revoked');

    // Nothing was refused by the page's Content-Security-Policy, and nothing else broke.
    expect(pageErrors.filter((e) => !/Failed to load resource: the server responded with a status of 403/.test(e))).toEqual([]);
  }, 150_000);

  test('incidents: an anomaly cleared and an offboarding aborted from the console, each read back at the target; the audit chain verified', async () => {
    const { w } = api;
    const connlimit = async (nhiId: string) => (await w.roleState(nhiId)).rolconnlimit;
    // Two cases started through the API, as a detector and an admin would.
    expect((await api.post('/v1/anomalies', 'detector-bot', { nhiId: 'agent_reports', observedRate: 500, baselineRate: 20, source: 'siem:test' })).status).toBe(202);
    expect((await api.post('/v1/offboardings', 'admin', { nhiId: 'partner_acme', reason: 'Acme contract ended', graceDays: 7 })).status).toBe(202);

    const admin = await open();
    await admin.fill('#token', api.tokens.admin);
    await admin.click('#signin-form button[type="submit"]');
    await admin.waitForSelector('#signed-in-as[data-principal="admin"]');
    await admin.click('nav a[data-tab="incidents"]');
    const anomaly = '#anomalies tr[data-workflow-id="anomaly-agent_reports"]';
    await admin.waitForSelector(`${anomaly} .badge[data-state="throttled_l1"]`, { timeout: 30_000 });
    expect(await connlimit('agent_reports')).not.toBe(-1);
    const offboarding = '#offboardings tr[data-workflow-id="offboard-partner_acme"]';
    await admin.waitForSelector(`${offboarding} .badge[data-state="grace"]`, { timeout: 30_000 });
    expect(await admin.textContent(offboarding)).toMatch(/no_standing_access/);
    expect(await admin.textContent(`${offboarding} .countdown`)).toMatch(/^6d 23h \d+m left$/); // 7 days
    expect((await w.roleState('partner_acme')).rolcanlogin).toBe(false);
    await shot(admin, '6-incidents-open');

    // Clearing without a reason: the API's own message is shown, nothing changes.
    await admin.click(`${anomaly} button[data-action="clear"]`);
    expect(await notice(admin, /failed/)).toMatch(/400 validation_error.*body\.reason/);
    await admin.fill(`${anomaly} input`, 'the quarterly export, expected');
    await admin.click(`${anomaly} button[data-action="clear"]`);
    expect(await notice(admin, /Clear agent_reports: /)).toBe("Clear agent_reports: cleared");
    expect(await connlimit('agent_reports')).toBe(-1);

    await admin.fill(`${offboarding} input`, 'the contract was renewed');
    await admin.click(`${offboarding} button[data-action="abort"]`);
    expect(await notice(admin, /Abort offboard-partner_acme: /)).toMatch(/aborted/);
    expect((await w.roleState('partner_acme')).rolcanlogin).toBe(true);
    expect(await w.memberships('partner_acme')).toEqual([w.ent('estate_readonly')]);
    await admin.waitForSelector(offboarding, { state: 'detached', timeout: 30_000 });

    await admin.click('nav a[data-tab="inventory"]');
    await admin.click('#nhis tr[data-nhi-id="partner_acme"] button[data-action="trail"]');
    await admin.waitForSelector('#audit-trail #chain-ok');
    expect(await admin.textContent('#audit-trail')).toMatch(/offboarding\.abort/);
    await shot(admin, '7-inventory-trail');
    expect(pageErrors.filter((e) => !/status of (400|403)/.test(e))).toEqual([]);
  }, 120_000);
});
