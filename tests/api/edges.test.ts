// Issue 13's edges: security headers (with a CSP that Swagger UI and a same-origin console live
// with) and rate limits that answer 429 with Retry-After. One app on a real database; Temporal is
// never reached (a lazy client), so the file needs no server.
import { Client } from '@temporalio/client';
import pino from 'pino';
import request from 'supertest';
import { createApp } from '../../api/app';
import { createToken, upsertPrincipal } from '../../lib/principals';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

let db: TestDatabase;
let tokens: Record<string, string>;
const client = new Client(); // lazy: these routes never call Temporal

beforeAll(async () => {
  db = await createTestDatabase();
  tokens = {};
  for (const [id, roles] of [['det-1', ['detector']], ['det-2', ['detector']]] as const) {
    await upsertPrincipal(db.pool, { id, roles: [...roles] });
    tokens[id] = await createToken(db.pool, id);
  }
});
afterAll(async () => db?.drop());

const app = (config: Record<string, number> = {}) =>
  createApp({ pool: db.pool, temporal: { client, taskQueue: 'edges', namespace: 'default' }, config: { API_BODY_LIMIT: '1mb', ...config }, logger: pino({ level: 'silent' }) });
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

test('security headers on the API; the CSP allows same-origin scripts, styles and fetches only', async () => {
  const res = await request(app()).get('/v1/me').set(bearer(tokens['det-1']));
  expect(res.status).toBe(200);
  const csp = res.headers['content-security-policy'];
  expect(csp).toContain("default-src 'self'");
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("style-src 'self'");
  expect(csp).toContain("connect-src 'self'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['strict-transport-security']).toMatch(/max-age=/);
  expect(res.headers['x-powered-by']).toBeUndefined();
  expect((await request(app()).get('/openapi.json')).headers['content-security-policy']).toBe(csp);
});

test('Swagger UI under its CSP: every script is a same-origin file (no inline script), styles may be inline', async () => {
  const a = app();
  const page = await request(a).get('/docs/');
  expect(page.status).toBe(200);
  const csp = page.headers['content-security-policy'];
  expect(csp).toContain("script-src 'self'");
  expect(csp).toMatch(/style-src 'self' 'unsafe-inline'/);
  const scripts = [...page.text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
  expect(scripts.length).toBeGreaterThan(0);
  for (const [, attrs, body] of scripts) {
    expect(attrs).toMatch(/src=["']\.\//);
    expect(body.trim()).toBe('');
    const src = /src=["']\.\/([^"']+)/.exec(attrs)![1];
    expect((await request(a).get(`/docs/${src}`)).status).toBe(200);
  }
  // The init script fetches the document from the same origin.
  expect((await request(a).get('/docs/swagger-ui-init.js')).text).toContain('../openapi.json');
});

test('by default, guessing tokens is cut off: 60 bad tokens from one address, then 429 with Retry-After, also for a good token', async () => {
  const a = app();
  for (let i = 0; i < 60; i++) expect((await request(a).get('/v1/me').set(bearer(`nhi_${'x'.repeat(43)}`))).status).toBe(401);
  const limited = await request(a).get('/v1/me').set(bearer(`nhi_${'x'.repeat(43)}`));
  expect(limited.status).toBe(429);
  expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  expect(limited.body.error).toMatchObject({ code: 'too_many_requests' });
  expect((await request(a).get('/v1/me').set(bearer(tokens['det-1']))).status).toBe(429);
  // Another app (another address in production) is not affected; successes never count.
  const b = app();
  for (let i = 0; i < 70; i++) expect((await request(b).get('/v1/me').set(bearer(tokens['det-1']))).status).toBe(200);
});

test('writes are limited per principal (configurable): the next write is 429 with Retry-After, reads and other principals go on', async () => {
  const a = app({ RATE_LIMIT_WRITES_PER_PRINCIPAL: 3 });
  const write = (who: string) => request(a).post('/v1/anomalies').set(bearer(tokens[who])).send({});
  for (let i = 0; i < 3; i++) expect((await write('det-1')).status).toBe(404); // no anomaly router here: counted all the same
  const limited = await write('det-1');
  expect(limited.status).toBe(429);
  expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  expect((await request(a).get('/v1/me').set(bearer(tokens['det-1']))).status).toBe(200);
  expect((await write('det-2')).status).toBe(404);
});

test('writes are limited per source address too, before authentication', async () => {
  const a = app({ RATE_LIMIT_WRITES_PER_IP: 2 });
  for (let i = 0; i < 2; i++) await request(a).post('/v1/anomalies').set(bearer(tokens[`det-${i + 1}`])).send({});
  const limited = await request(a).post('/v1/anomalies').set(bearer(tokens['det-2'])).send({});
  expect(limited.status).toBe(429);
  expect(limited.headers['retry-after']).toBeDefined();
});
