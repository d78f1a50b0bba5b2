// The HTTP contract every route shares: auth, the error shape, 404/405/413/415, probes, docs.
import { Router } from 'express';
import { Client, Connection } from '@temporalio/client';
import request from 'supertest';
import { z } from 'zod';
import { ApiError, createApp, defineRoute, documentRoute, parseBody, requireRole } from '../../api/app';
import { createPool } from '../../lib/db';
import { bearer, createHarness, type Harness } from './harness';

// A scenario-style router, plugged in the way later issues will.
function createTestRouter(client: Client): Router {
  const router = Router();
  defineRoute(router, {
    method: 'post',
    path: '/v1/things/:name',
    summary: 'Make a thing',
    tags: ['test'],
    roles: ['requester'],
    params: z.strictObject({ name: z.string().regex(/^[a-z]+$/) }),
    query: z.strictObject({ dryRun: z.enum(['true', 'false']).optional() }),
    body: z.strictObject({ size: z.number().int().min(1), note: z.string().optional() }),
    responses: { 201: { description: 'Made', schema: z.strictObject({ name: z.string(), size: z.number(), by: z.string() }) } },
    handler: ({ params, body, principal }) => ({ name: params.name, size: body.size, by: principal.id }),
  });
  defineRoute(router, {
    method: 'get',
    path: '/v1/boom',
    summary: 'Fails',
    responses: { 200: { description: 'never' } },
    handler: () => {
      throw new Error('password=hunter2 at db.internal:5432');
    },
  });
  defineRoute(router, {
    method: 'get',
    path: '/v1/workflows/:id',
    summary: 'Describe a workflow',
    params: z.strictObject({ id: z.string() }),
    responses: { 200: { description: 'ok' } },
    handler: async ({ params }) => {
      const d = await client.workflow.getHandle(params.id).describe();
      return { status: d.status.name };
    },
  });
  defineRoute(router, {
    method: 'post',
    path: '/v1/workflows/:id',
    summary: 'Start a workflow',
    params: z.strictObject({ id: z.string() }),
    responses: { 201: { description: 'started' } },
    handler: async ({ params }) => {
      await client.workflow.start('noSuchWorkflowType', { taskQueue: 'nobody-polls', workflowId: params.id, args: [] });
      return { workflowId: params.id };
    },
  });
  // A hand-written route with the lower-level helpers.
  router.put('/v1/raw', requireRole('deployer'), (req, res) => {
    const body = parseBody(req, z.object({ ok: z.boolean() }));
    if (!body.ok) throw ApiError.conflict('not ok');
    res.json(body);
  });
  documentRoute(router, { method: 'put', path: '/v1/raw', summary: 'Raw route', responses: { 200: { description: 'ok' } } });
  return router;
}

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ bodyLimit: '2kb', extraRouters: [] });
  // Rebuild with the router bound to this file's Temporal client.
  h.app = createApp({ ...h.deps, extraRouters: [createTestRouter(h.env.client)] });
});
afterAll(async () => {
  await h?.teardown();
});

const expectErrorShape = (body: unknown, code: string) => {
  expect(body).toEqual({ error: { code, message: expect.any(String), issues: expect.any(Array), requestId: expect.any(String) } });
};

describe('authentication and roles', () => {
  test('no token: 401 with a Bearer challenge', async () => {
    const res = await request(h.app).get('/v1/me');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="nhi-orchestrator"');
    expectErrorShape(res.body, 'unauthenticated');
  });

  test('bad, malformed or revoked token: 401 invalid_token', async () => {
    for (const auth of [`Bearer nhi_${'x'.repeat(43)}`, 'Bearer garbage', `Bearer ${h.tokens.admin}junk`]) {
      const res = await request(h.app).get('/v1/me').set('Authorization', auth);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    }
    const basic = await request(h.app).get('/v1/me').set('Authorization', 'Basic YWxhZGRpbjpvcGVuc2VzYW1l');
    expect(basic.status).toBe(401);
    expect(basic.headers['www-authenticate']).toContain('error="invalid_request"');
  });

  test('unknown /v1 routes are not revealed before authentication', async () => {
    expect((await request(h.app).get('/v1/nothing-here')).status).toBe(401);
  });

  test('valid token without the role: 403; admin has every role', async () => {
    const forbidden = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.approver)).send({ size: 1 });
    expect(forbidden.status).toBe(403);
    expectErrorShape(forbidden.body, 'forbidden');
    expect(forbidden.body.error.message).toContain('requester');

    const ok = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.requester)).send({ size: 3 });
    expect(ok.status).toBe(201);
    expect(ok.body).toEqual({ name: 'box', size: 3, by: 'requester-user' });
    expect((await request(h.app).post('/v1/things/box').set(bearer(h.tokens.admin)).send({ size: 1 })).status).toBe(201);
  });

  test('/v1/me says who you are', async () => {
    const res = await request(h.app).get('/v1/me').set(bearer(h.tokens.approver));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: 'approver-user', roles: ['approver'] });
  });
});

describe('the error shape', () => {
  test('zod validation: 400 validation_error with one issue per bad field, across body, params and query', async () => {
    const res = await request(h.app).post('/v1/things/BOX?dryRun=maybe').set(bearer(h.tokens.requester)).send({ size: 0, extra: true });
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'validation_error');
    expect(res.body.error.issues).toEqual([
      { path: 'params.name', message: expect.any(String) },
      { path: 'query.dryRun', message: expect.any(String) },
      { path: 'body.size', message: expect.any(String) },
      { path: 'body.extra', message: 'unknown field' },
    ]);

    const body = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.requester)).send({ size: 0, extra: true });
    expect(body.status).toBe(400);
    expect(body.body.error.issues).toEqual(
      expect.arrayContaining([
        { path: 'body.size', message: expect.any(String) },
        { path: 'body.extra', message: 'unknown field' },
      ]),
    );
    const query = await request(h.app).post('/v1/things/box?dryRun=maybe&x=1').set(bearer(h.tokens.requester)).send({ size: 1 });
    expect(query.body.error.issues).toEqual(
      expect.arrayContaining([
        { path: 'query.dryRun', message: expect.any(String) },
        { path: 'query.x', message: 'unknown field' },
      ]),
    );
  });

  test('a missing body gets field errors, not a crash', async () => {
    const res = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.requester));
    expect(res.status).toBe(400);
    expect(res.body.error.issues).toEqual([{ path: 'body.size', message: expect.any(String) }]);
  });

  test('hand-written routes: parseBody strips nothing silently and ApiError maps to its status', async () => {
    const extra = await request(h.app).put('/v1/raw').set(bearer(h.tokens.deployer)).send({ ok: true, more: 1 });
    expect(extra.status).toBe(400);
    expect(extra.body.error.issues).toEqual([{ path: 'body.more', message: 'unknown field' }]);
    expect((await request(h.app).put('/v1/raw').set(bearer(h.tokens.deployer)).send({ ok: false })).status).toBe(409);
    expect((await request(h.app).put('/v1/raw').set(bearer(h.tokens.deployer)).send({ ok: true })).body).toEqual({ ok: true });
  });

  test('malformed JSON: 400 invalid_json', async () => {
    const res = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.requester)).set('Content-Type', 'application/json').send('{"size": 1,');
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'invalid_json');
  });

  test('body over the limit: 413', async () => {
    const res = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.requester)).send({ size: 1, note: 'x'.repeat(4096) });
    expect(res.status).toBe(413);
    expectErrorShape(res.body, 'payload_too_large');
  });

  test('a body that is not JSON: 415', async () => {
    const form = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.requester)).type('form').send('size=1');
    expect(form.status).toBe(415);
    expectErrorShape(form.body, 'unsupported_media_type');
    const text = await request(h.app).post('/v1/things/box').set(bearer(h.tokens.requester)).set('Content-Type', 'text/plain').send('{"size":1}');
    expect(text.status).toBe(415);
  });

  test('unknown route: 404; wrong method on a known route: 405 with Allow', async () => {
    const missing = await request(h.app).get('/v1/nothing-here').set(bearer(h.tokens.admin));
    expect(missing.status).toBe(404);
    expectErrorShape(missing.body, 'not_found');
    expect((await request(h.app).get('/nothing')).status).toBe(404);

    const wrong = await request(h.app).delete('/v1/nhis').set(bearer(h.tokens.admin));
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('GET, HEAD, POST');
    expectErrorShape(wrong.body, 'method_not_allowed');
    const param = await request(h.app).patch('/v1/nhis/svc_x').set(bearer(h.tokens.admin)).send({});
    expect(param.status).toBe(405);
    expect(param.headers.allow).toBe('GET, HEAD');
    expect((await request(h.app).post('/healthz')).headers.allow).toBe('GET, HEAD');
  });

  test('OPTIONS lists the methods without a body', async () => {
    const res = await request(h.app).options('/v1/nhis');
    expect(res.status).toBe(204);
    expect(res.headers.allow).toBe('GET, HEAD, OPTIONS, POST');
    expect((await request(h.app).options('/healthz')).headers.allow).toBe('GET, HEAD, OPTIONS');
    expect((await request(h.app).options('/nowhere')).status).toBe(404);
  });

  test('an unexpected error: 500 internal with the request id and nothing else', async () => {
    const res = await request(h.app).get('/v1/boom').set(bearer(h.tokens.none)).set('X-Request-Id', 'trace-123');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: 'internal', message: 'Internal server error', issues: [], requestId: 'trace-123' } });
    expect(res.text).not.toMatch(/hunter2|db\.internal|at .*\.ts/);
  });

  test('Temporal: unknown workflow 404, already started 409', async () => {
    const missing = await request(h.app).get('/v1/workflows/never-started').set(bearer(h.tokens.none));
    expect(missing.status).toBe(404);
    expectErrorShape(missing.body, 'not_found');
    const id = `dup-${Date.now()}`;
    expect((await request(h.app).post(`/v1/workflows/${id}`).set(bearer(h.tokens.none))).status).toBe(201);
    const dup = await request(h.app).post(`/v1/workflows/${id}`).set(bearer(h.tokens.none));
    expect(dup.status).toBe(409);
    expectErrorShape(dup.body, 'conflict');
    await h.env.client.workflow.getHandle(id).terminate('test done');
  });

  test('an undecodable path is a 400, not a 500', async () => {
    const res = await request(h.app).get('/v1/nhis/%E0%A4%A').set(bearer(h.tokens.admin));
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 'bad_request');
  });
});

describe('request ids', () => {
  test('a sane X-Request-Id is echoed; otherwise one is generated', async () => {
    expect((await request(h.app).get('/healthz').set('X-Request-Id', 'abc-123')).headers['x-request-id']).toBe('abc-123');
    const generated = (await request(h.app).get('/healthz').set('X-Request-Id', 'bad id\twith junk')).headers['x-request-id'];
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('probes', () => {
  test('/healthz: the process is up', async () => {
    const res = await request(h.app).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  test('/readyz: 200 when Postgres and Temporal answer', async () => {
    const res = await request(h.app).get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ready', checks: { postgres: { ok: true }, temporal: { ok: true } } });
  });

  test('/readyz: 503 naming Postgres when it is unreachable', async () => {
    const deadPool = createPool('postgres://postgres:postgres@127.0.0.1:1/nhi', { connectionTimeoutMillis: 1000 });
    try {
      const app = createApp({ ...h.deps, pool: deadPool });
      const res = await request(app).get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('not_ready');
      expect(res.body.error.message).toBe('Not ready: postgres unavailable');
      expect(res.body.checks.postgres).toMatchObject({ ok: false, error: 'unreachable' });
      expect(res.body.checks.temporal.ok).toBe(true);
      expect(res.text).not.toContain('127.0.0.1');
    } finally {
      await deadPool.end();
    }
  });

  test('/readyz: 503 naming Temporal when it is unreachable', async () => {
    // No retry interceptor: its backoff timers would outlive connection.close() in this test.
    const connection = Connection.lazy({ address: '127.0.0.1:1', interceptors: [] });
    try {
      const app = createApp({ ...h.deps, temporal: { ...h.deps.temporal, client: new Client({ connection }) } });
      const res = await request(app).get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body.error.message).toBe('Not ready: temporal unavailable');
      expect(res.body.checks).toMatchObject({ postgres: { ok: true }, temporal: { ok: false, error: 'unreachable' } });
    } finally {
      await connection.close();
    }
  });

  test('a /v1 call while Postgres is down is a 503, not a 500', async () => {
    const deadPool = createPool('postgres://postgres:postgres@127.0.0.1:1/nhi', { connectionTimeoutMillis: 1000 });
    try {
      const res = await request(createApp({ ...h.deps, pool: deadPool })).get('/v1/me').set(bearer(h.tokens.admin));
      expect(res.status).toBe(503);
      expectErrorShape(res.body, 'unavailable');
    } finally {
      await deadPool.end();
    }
  });
});

describe('documentation', () => {
  test('/openapi.json is an OpenAPI 3 document with every route, including plugged-in routers', async () => {
    const res = await request(h.app).get('/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\.0\./);
    expect(doc.info.title).toBe('NHI orchestrator API');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/healthz', '/readyz', '/v1/me', '/v1/nhis', '/v1/nhis/{id}', '/v1/audit', '/v1/audit/verify', '/v1/things/{name}', '/v1/raw']),
    );
    expect(Object.keys(doc.paths['/v1/nhis']).sort()).toEqual(['get', 'post']);
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/v1/nhis'].post.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/v1/nhis'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/NewNhi' });
    expect(doc.components.schemas.NewNhi.properties.kind.enum).toEqual(['service_account', 'api_key', 'token', 'integration', 'ai_agent']);
    expect(doc.components.schemas.Error).toBeDefined();
    const things = doc.paths['/v1/things/{name}'].post;
    expect(things.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'path', name: 'name', required: true })]));
    expect(Object.keys(things.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '403', '500']));
  });

  test('/docs serves Swagger UI pointing at /openapi.json', async () => {
    const redirect = await request(h.app).get('/docs');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/docs/');
    const page = await request(h.app).get('/docs/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('swagger-ui');
    const init = await request(h.app).get('/docs/swagger-ui-init.js');
    expect(init.status).toBe(200);
    expect(init.text).toContain('../openapi.json');
  });
});
