// The console's static files: TypeScript modules served as JavaScript, a strict CSP on every
// response (no inline script or style anywhere), and the dev picker's tokens only when enabled and
// only to loopback callers.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import { CONSOLE_DIR, createConsoleRouter } from '../../api/console';

const appWith = (opts: Parameters<typeof createConsoleRouter>[0] = {}, remoteAddress?: string) => {
  const app = express();
  if (remoteAddress) app.use((req, _res, next) => (Object.defineProperty(req.socket, 'remoteAddress', { value: remoteAddress, configurable: true }), next()));
  app.use(createConsoleRouter(opts));
  app.use((_req, res) => res.status(404).json({ error: { code: 'not_found' } }));
  return app;
};

test('the page, its CSS and its modules (TypeScript served as JavaScript), each with a strict CSP', async () => {
  const app = appWith();
  expect((await request(app).get('/console')).headers.location).toBe('/console/');
  const page = await request(app).get('/console/');
  expect(page.status).toBe(200);
  expect(page.headers['content-type']).toMatch(/^text\/html/);
  expect(page.headers['content-security-policy']).toMatch(/script-src 'self';/);
  expect(page.headers['content-security-policy']).toMatch(/style-src 'self';/);
  expect(page.text).toContain('<script type="module" src="./app.js"></script>');

  const js = await request(app).get('/console/views/needs-me.js');
  expect(js.status).toBe(200);
  expect(js.headers['content-type']).toMatch(/^text\/javascript/);
  expect(js.text).not.toMatch(/import type|: Ctx\b/); // types stripped
  expect(js.text).toContain("from '../dom.js'");
  expect((await request(app).get('/console/console.css')).headers['content-type']).toMatch(/^text\/css/);

  // Only files of console/ are served, and sources never as themselves.
  for (const p of ['/console/views/needs-me.ts', '/console/tsconfig.json', '/console/../package.json', '/console/%2e%2e/package.json', '/console/nope.js']) {
    expect((await request(app).get(p)).status).toBe(404);
  }
});

test('no inline script, style or event handler in the HTML (a strict CSP would refuse them)', () => {
  const html = readFileSync(path.join(CONSOLE_DIR, 'index.html'), 'utf8');
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  for (const f of readdirSync(CONSOLE_DIR, { recursive: true }) as string[]) {
    if (!f.endsWith('.ts')) continue;
    const src = readFileSync(path.join(CONSOLE_DIR, f), 'utf8');
    expect({ f, innerHTML: /\.innerHTML\s*=|insertAdjacentHTML|\beval\(|new Function\(/.test(src) }).toEqual({ f, innerHTML: false });
  }
});

test('demo principals: only when the server offers them, and only to loopback callers', async () => {
  const demoPrincipals = () => [{ id: 'alice', roles: ['requester'], token: 'tok-alice' }];
  const local = await request(appWith({ demoPrincipals }, '127.0.0.1')).get('/console/demo-principals.json');
  expect(local.status).toBe(200);
  expect(local.body).toEqual({ principals: [{ id: 'alice', roles: ['requester'], token: 'tok-alice' }] });
  expect((await request(appWith({ demoPrincipals }, '127.0.0.1')).get('/console/settings.json')).body).toMatchObject({ demo: true });

  const remote = await request(appWith({ demoPrincipals }, '10.1.2.3')).get('/console/demo-principals.json');
  expect(remote.status).toBe(404);
  expect(remote.text).not.toContain('tok-alice');
  expect((await request(appWith({ demoPrincipals }, '10.1.2.3')).get('/console/settings.json')).body).toMatchObject({ demo: false });
  expect((await request(appWith({}, '127.0.0.1')).get('/console/demo-principals.json')).status).toBe(404);
  expect((await request(appWith({ temporalUiUrl: 'http://127.0.0.1:8233', namespace: 'ns' }, '127.0.0.1')).get('/console/settings.json')).body).toEqual({ temporalUiUrl: 'http://127.0.0.1:8233', namespace: 'ns', demo: false });
});
