// Inventory and audit routes against real Postgres and a real Temporal dev server.
import request from 'supertest';
import { appendAudit } from '../../lib/audit';
import { NhiIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { bearer, createHarness, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await h?.teardown();
});

const svc = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  kind: 'service_account',
  owner: 'team-payments',
  connector: 'postgres',
  externalRef: id,
  ...extra,
});

describe('NHIs', () => {
  test('admin registers an NHI: 201 with Location; others get 403', async () => {
    const res = await request(h.app).post('/v1/nhis').set(bearer(h.tokens.admin)).send(svc('svc_payments', { criticality: 'high', tags: ['pci'] }));
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe('/v1/nhis/svc_payments');
    expect(res.body).toMatchObject({ id: 'svc_payments', kind: 'service_account', criticality: 'high', tags: ['pci'], status: 'active', usageBaseline: null });

    const denied = await request(h.app).post('/v1/nhis').set(bearer(h.tokens.requester)).send(svc('svc_other'));
    expect(denied.status).toBe(403);
  });

  test('a duplicate is a 409 conflict', async () => {
    await request(h.app).post('/v1/nhis').set(bearer(h.tokens.admin)).send(svc('ci_deployer')).expect(201);
    const dup = await request(h.app).post('/v1/nhis').set(bearer(h.tokens.admin)).send(svc('ci_deployer'));
    expect(dup.status).toBe(409);
    expect(dup.body.error).toMatchObject({ code: 'conflict', message: 'NHI ci_deployer already exists' });
    const sameRole = await request(h.app).post('/v1/nhis').set(bearer(h.tokens.admin)).send(svc('ci_deployer_2', { externalRef: 'ci_deployer' }));
    expect(sameRole.status).toBe(409);
  });

  test('bad input is a 400 naming each field, never a 500', async () => {
    const res = await request(h.app)
      .post('/v1/nhis')
      .set(bearer(h.tokens.admin))
      .send({ id: 'Not A Slug', kind: 'robot', owner: 'a\u0000b', connector: 'postgres', externalRef: 'x', usageBaseline: -3, colour: 'red' });
    expect(res.status).toBe(400);
    const paths = res.body.error.issues.map((i: { path: string }) => i.path).sort();
    expect(paths).toEqual(['body.colour', 'body.id', 'body.kind', 'body.owner', 'body.usageBaseline']);
    expect((await request(h.app).post('/v1/nhis').set(bearer(h.tokens.admin)).send([1, 2])).status).toBe(400);
    expect((await request(h.app).get('/v1/nhis?owner=%00').set(bearer(h.tokens.none))).status).toBe(400);
    expect((await request(h.app).get('/v1/nhis?limit=0').set(bearer(h.tokens.none))).status).toBe(400);
    expect((await request(h.app).get('/v1/nhis?limit=1&limit=2').set(bearer(h.tokens.none))).status).toBe(400);
  });

  test('list filters and pages with nextCursor', async () => {
    for (const id of ['agent_a', 'agent_b', 'agent_c']) {
      await request(h.app).post('/v1/nhis').set(bearer(h.tokens.admin)).send(svc(id, { kind: 'ai_agent', owner: 'team-ai' })).expect(201);
    }
    const page1 = await request(h.app).get('/v1/nhis?kind=ai_agent&limit=2').set(bearer(h.tokens.none));
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((n: { id: string }) => n.id)).toEqual(['agent_a', 'agent_b']);
    const page2 = await request(h.app).get(`/v1/nhis?kind=ai_agent&limit=2&cursor=${page1.body.nextCursor}`).set(bearer(h.tokens.none));
    expect(page2.body).toMatchObject({ items: [{ id: 'agent_c' }], nextCursor: null });
    const byOwner = await request(h.app).get('/v1/nhis?owner=team-payments&status=active').set(bearer(h.tokens.none));
    expect(byOwner.body.items.map((n: { id: string }) => n.id)).toEqual(['ci_deployer', 'svc_payments']);
    expect((await request(h.app).get('/v1/nhis?kind=robot').set(bearer(h.tokens.none))).status).toBe(400);
  });

  test('get: 404 for an unknown NHI, 400 for an impossible id', async () => {
    const missing = await request(h.app).get('/v1/nhis/nobody_here').set(bearer(h.tokens.none));
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
    const bad = await request(h.app).get('/v1/nhis/NOT-A-SLUG').set(bearer(h.tokens.none));
    expect(bad.status).toBe(400);
    expect(bad.body.error.issues).toEqual([{ path: 'params.id', message: expect.any(String) }]);
  });

  test('get: credential fingerprints and open workflows (found by NhiId search attribute)', async () => {
    await request(h.app).post('/v1/nhis').set(bearer(h.tokens.admin)).send(svc('svc_orders')).expect(201);
    const empty = await request(h.app).get('/v1/nhis/svc_orders').set(bearer(h.tokens.none));
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ id: 'svc_orders', credentials: [], openWorkflows: [] });

    await h.db.pool.query(
      `INSERT INTO secrets (nhi_id, version, status, fingerprint, iv, auth_tag, ciphertext) VALUES ('svc_orders', 1, 'active', $1, '\\x00', '\\x00', '\\x00')`,
      ['a'.repeat(64)],
    );
    // No worker polls this queue, so the workflow stays Running: enough for visibility.
    const workflowId = `test-open-${Date.now()}`;
    const handle = await h.env.client.workflow.start('someScenario', {
      taskQueue: 'nobody-polls',
      workflowId,
      args: [],
      typedSearchAttributes: [
        { key: NhiIdKey, value: 'svc_orders' },
        { key: ScenarioKey, value: 'jit' },
        { key: NhiStateKey, value: 'awaiting_approval' },
      ],
    });
    try {
      let body: { credentials: unknown[]; openWorkflows: unknown[] } = { credentials: [], openWorkflows: [] };
      for (let i = 0; i < 50 && body.openWorkflows.length === 0; i++) {
        if (i) await new Promise((r) => setTimeout(r, 200)); // visibility is eventually consistent
        body = (await request(h.app).get('/v1/nhis/svc_orders').set(bearer(h.tokens.none)).expect(200)).body;
      }
      expect(body.openWorkflows).toEqual([
        {
          workflowId,
          runId: handle.firstExecutionRunId,
          type: 'someScenario',
          scenario: 'jit',
          nhiState: 'awaiting_approval',
          changeId: null,
          startTime: expect.any(String),
        },
      ]);
      expect(body.credentials).toEqual([expect.objectContaining({ version: 1, status: 'active', fingerprint: 'a'.repeat(64) })]);
      // Another NHI does not see it.
      expect((await request(h.app).get('/v1/nhis/svc_payments').set(bearer(h.tokens.none))).body.openWorkflows).toEqual([]);
    } finally {
      await handle.terminate('test done');
    }
  });
});

describe('audit', () => {
  beforeAll(async () => {
    for (let i = 1; i <= 5; i++) {
      await appendAudit(h.db.pool, { workflowId: i <= 3 ? 'wf-1' : 'wf-2', stepId: `s${i}`, nhiId: 'svc_payments', actor: 'system', action: `step${i}`, outcome: 'ok' });
    }
  });

  test('any authenticated principal pages through events with nextCursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: request.Response = await request(h.app)
        .get(`/v1/audit?nhiId=svc_payments&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
        .set(bearer(h.tokens.none));
      expect(res.status).toBe(200);
      seen.push(...res.body.events.map((e: { action: string }) => e.action));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual(['step1', 'step2', 'step3', 'step4', 'step5']);
    expect(pages).toBe(3);

    const byWorkflow = await request(h.app).get('/v1/audit?workflowId=wf-2').set(bearer(h.tokens.detector));
    expect(byWorkflow.body.events.map((e: { stepId: string }) => e.stepId)).toEqual(['s4', 's5']);
    const future = await request(h.app).get('/v1/audit?since=2999-01-01T00:00:00Z').set(bearer(h.tokens.none));
    expect(future.body).toEqual({ events: [], nextCursor: null });
  });

  test('bad filters are a 400', async () => {
    for (const q of ['since=yesterday', 'limit=5000', 'cursor=abc', 'nhiId=NOPE', 'workflowId=%00', 'unknown=1']) {
      const res = await request(h.app).get(`/v1/audit?${q}`).set(bearer(h.tokens.none));
      expect({ q, status: res.status, code: res.body.error?.code }).toEqual({ q, status: 400, code: 'validation_error' });
    }
  });

  test('verify: admin only; reports an intact chain, then the tampered row', async () => {
    expect((await request(h.app).get('/v1/audit/verify').set(bearer(h.tokens.approver))).status).toBe(403);
    const ok = await request(h.app).get('/v1/audit/verify').set(bearer(h.tokens.admin));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ ok: true, checked: 5 });

    await h.db.pool.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
    await h.db.pool.query("UPDATE audit_events SET outcome = 'forged' WHERE step_id = 's3'");
    await h.db.pool.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
    const bad = await request(h.app).get('/v1/audit/verify').set(bearer(h.tokens.admin));
    expect(bad.body).toMatchObject({ ok: false, checked: 2, brokenAt: { reason: expect.stringContaining('hash') } });
  });
});
