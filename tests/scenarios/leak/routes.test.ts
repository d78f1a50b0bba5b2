// Leak intake end to end through the HTTP API: signed vendor webhooks (tests/scenarios/leak/fixtures), the
// generic detector route, triage of unmatched alerts; real worker, real Temporal dev server, real
// Postgres roles. Assertions log in to the estate with the old and new passwords.
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import request from 'supertest';
import { commitIntent, releaseIntents, type IntentSpec } from '../../../enforcement/intents';
import { reconcile } from '../../../enforcement/reconciler';
import { createApp } from '../../../api/app';
import { createScenarioRouters } from '../../../api/scenarios';
import { loadConfig } from '../../../lib/config';
import { fetchSecretScanningAlertFingerprint } from '../../../scenarios/leak/github-alerts';
import { hmslHash } from '../../../scenarios/leak/intake';
import { waitFor } from '../../helpers/wait';
import { createApiWorld, type ApiWorld } from '../../helpers/api-world';
import type { TestWorld } from '../../helpers/world';

const FIXTURES = path.resolve(__dirname, 'fixtures');
const GH_SECRET = 'gh-webhook-secret-for-tests';
const GG_SECRET = 'gg-webhook-secret-for-tests';
const ghFixture = readFileSync(path.join(FIXTURES, 'github-secret-scanning-alert-created.json'));
const ggFixture = readFileSync(path.join(FIXTURES, 'gitguardian-incident-triggered.json'));

let api: ApiWorld;
let w: TestWorld;
let app: ApiWorld['app'];
const logs: string[] = [];
/** Every response body the tests saw, for the secrets-hygiene check at the end. */
const seen: string[] = [];

beforeAll(async () => {
  api = await createApiWorld({
    env: { GITHUB_WEBHOOK_SECRET: GH_SECRET, GITGUARDIAN_WEBHOOK_SECRET: GG_SECRET },
    logger: pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) }),
  });
  ({ w, app } = api);
  // The fixtures' repository, registered as where svc_payments' credential could leak (one hint per vendor type).
  await w.db.pool.query(`UPDATE nhis SET exposure_hints = $2 WHERE id = $1`, [
    'svc_payments',
    JSON.stringify([
      { repository: 'acme-corp/payments-service', secretType: 'postgres_connection_uri' },
      { repository: 'acme-corp/payments-service', secretType: 'postgres_assignment' },
    ]),
  ]);
  // The demo credentials were issued a moment ago; the fixtures' leaks were detected days ago.
  // Make the credentials older than the leaks, as they would be in a real estate.
  await w.db.pool.query(`UPDATE secrets SET created_at = now() - interval '30 days', activated_at = now() - interval '30 days' WHERE status = 'active'`);
}, 120_000);

afterAll(async () => api?.teardown());

const as = (who: string) => api.as(who);
const keep = <T extends { text: string }>(res: T): T => {
  seen.push(res.text);
  return res;
};

const ghSign = (body: Buffer | string, secret = GH_SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
const ggSign = (body: Buffer | string, ts: string, secret = GG_SECRET) => `sha256=${createHmac('sha256', ts + secret).update(body).digest('hex')}`;
const nowTs = () => String(Math.floor(Date.now() / 1000));

function github(body: Buffer | string, headers: Record<string, string> = {}) {
  return request(app)
    .post('/webhooks/github')
    .set({ 'Content-Type': 'application/json', 'X-GitHub-Event': 'secret_scanning_alert', 'X-GitHub-Delivery': randomUUID(), 'X-Hub-Signature-256': ghSign(body), ...headers })
    .send(body.toString())
    .then(keep);
}

function gitguardian(body: Buffer | string, headers: Record<string, string> = {}) {
  const ts = headers.Timestamp ?? nowTs();
  return request(app)
    .post('/webhooks/gitguardian')
    .set({ 'Content-Type': 'application/json', Timestamp: ts, 'Gitguardian-Signature': ggSign(body, ts), ...headers })
    .send(body.toString())
    .then(keep);
}

const leak = (body: unknown, who = 'detector-bot', headers: Record<string, string> = {}) =>
  request(app).post('/v1/leaks').set(as(who)).set(headers).send(body as object).then(keep);

async function untilContained(nhiId: string, runNot?: string) {
  return waitFor(`leak ${nhiId} contained`, async () => {
    const res = await request(app).get(`/v1/leaks/${nhiId}`).set(as('alice'));
    seen.push(res.text);
    return res.status === 200 && res.body.state === 'contained' && res.body.runId !== runNot ? res.body : null;
  }, 30_000);
}

const activatedRotations = async (nhiId: string) =>
  (await w.db.pool.query(`SELECT count(*)::int AS n FROM rotations WHERE nhi_id = $1 AND status = 'activated'`, [nhiId])).rows[0].n as number;

async function counts() {
  const { rows } = await w.db.pool.query(
    `SELECT (SELECT count(*) FROM webhook_deliveries)::int AS deliveries, (SELECT count(*) FROM incidents)::int AS incidents,
            (SELECT count(*) FROM audit_events)::int AS audit`,
  );
  return rows[0];
}

describe('bad requests: 401/400 and nothing recorded', () => {
  test('GitHub: wrong or missing signature → 401, a security log line, no delivery/incident/audit row', async () => {
    const before = await counts();
    const wrong = await github(ghFixture, { 'X-Hub-Signature-256': ghSign(ghFixture, 'not-the-secret'), 'X-GitHub-Delivery': 'bad-sig-1' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('unauthenticated');
    const tampered = await github(Buffer.from(ghFixture.toString().replace('"number": 42', '"number": 43')), { 'X-Hub-Signature-256': ghSign(ghFixture) });
    expect(tampered.status).toBe(401);
    const missing = await request(app).post('/webhooks/github').set({ 'Content-Type': 'application/json', 'X-GitHub-Event': 'secret_scanning_alert' }).send(ghFixture.toString());
    expect(missing.status).toBe(401);
    expect(await counts()).toEqual(before);
    expect(logs.some((l) => l.includes('webhook_signature_rejected') && l.includes('bad-sig-1'))).toBe(true);
  });

  test('GitGuardian: wrong, stale or missing signature → 401 and nothing recorded', async () => {
    const before = await counts();
    expect((await gitguardian(ggFixture, { 'Gitguardian-Signature': ggSign(ggFixture, nowTs(), 'not-the-token') })).status).toBe(401);
    // Genuinely signed, but an hour old: a replay.
    const old = String(Math.floor(Date.now() / 1000) - 3600);
    const stale = await gitguardian(ggFixture, { Timestamp: old, 'Gitguardian-Signature': ggSign(ggFixture, old) });
    expect(stale.status).toBe(401);
    expect(stale.body.error.message).toMatch(/stale/);
    const none = await request(app).post('/webhooks/gitguardian').set('Content-Type', 'application/json').send(ggFixture.toString());
    expect(none.status).toBe(401);
    expect(await counts()).toEqual(before);
    expect(logs.some((l) => l.includes('webhook_signature_rejected') && l.includes('stale'))).toBe(true);
  });

  test('no webhook secret configured: 503 webhook_not_configured that says so, and nothing recorded', async () => {
    // The same world, an API built without either secret.
    const config = { ...loadConfig({ NODE_ENV: 'test' }), TEMPORAL_TASK_QUEUE: w.taskQueue };
    const temporal = { client: w.env.client, taskQueue: w.taskQueue, namespace: 'default' };
    const bare = createApp({ pool: w.db.pool, temporal, config, logger: pino({ level: 'silent' }), extraRouters: createScenarioRouters({ pool: w.db.pool, temporal, config, policy: w.deps.policy, connectors: w.deps.connectors, authorityKey: w.deps.authorityKey }) });
    const before = await counts();
    const gh = await request(bare).post('/webhooks/github').set({ 'Content-Type': 'application/json', 'X-GitHub-Event': 'secret_scanning_alert', 'X-Hub-Signature-256': ghSign(ghFixture) }).send(ghFixture.toString());
    expect(gh.status).toBe(503);
    expect(gh.body.error).toMatchObject({ code: 'webhook_not_configured', message: expect.stringContaining('no GITHUB_WEBHOOK_SECRET set') });
    const gg = await request(bare).post('/webhooks/gitguardian').set({ 'Content-Type': 'application/json', Timestamp: nowTs(), 'Gitguardian-Signature': ggSign(ggFixture, nowTs()) }).send(ggFixture.toString());
    expect(gg.status).toBe(503);
    expect(gg.body.error.message).toContain('no GITGUARDIAN_WEBHOOK_SECRET set');
    // It reveals nothing else: neither the other vendor's state nor any value.
    expect(gh.body.error.message).not.toMatch(/GITGUARDIAN|gh-webhook/);
    expect(await counts()).toEqual(before);
  });

  test('malformed JSON → 400; a signed payload that is not the vendor schema → 400 with issues', async () => {
    const before = await counts();
    const broken = '{"action": "created", "alert": ';
    const res = await github(broken);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_json');
    const wrongShape = JSON.stringify({ action: 'created', alert: { number: 'forty-two' }, repository: {} });
    const bad = await github(wrongShape);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('validation_error');
    expect(bad.body.error.issues.map((i: { path: string }) => i.path)).toContain('body.alert.number');
    expect((await gitguardian('{"action": 7}')).status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  test('POST /v1/leaks: auth, roles, and never the secret itself', async () => {
    expect((await request(app).post('/v1/leaks').send({ nhiId: 'ci_deployer', source: 'x', severity: 'high' })).status).toBe(401);
    expect((await leak({ nhiId: 'ci_deployer', source: 'x', severity: 'high' }, 'alice')).status).toBe(403);
    const before = await counts();
    const secretField = await leak({ nhiId: 'ci_deployer', source: 'scanner', severity: 'high', password: 'hunter2-hunter2' });
    expect(secretField.status).toBe(400);
    expect(secretField.body.error.issues[0].message).toMatch(/never the secret/);
    const asFingerprint = await leak({ fingerprint: 'Xk9vQ2mP7rT4wZ1nB8cD3fG6hJ0kL5qS9uV2yA4eR7t', source: 'scanner', severity: 'high' });
    expect(asFingerprint.status).toBe(400);
    expect(asFingerprint.body.error.issues[0]).toMatchObject({ path: 'body.fingerprint' });
    const neither = await leak({ source: 'scanner', severity: 'high' });
    expect(neither.status).toBe(400);
    expect((await leak({ nhiId: 'ci_deployer', source: 'scanner', severity: 'apocalyptic' })).status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  test('other events and actions are acknowledged with a reason', async () => {
    const ping = await github('{"zen": "Design for failure."}', { 'X-GitHub-Event': 'ping' });
    expect(ping.status).toBe(202);
    expect(ping.body).toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/not secret_scanning_alert/) });
    const sev = await gitguardian(JSON.stringify({ action: 'incident_severity_changed', incident: {} }));
    expect(sev.status).toBe(202);
    expect(sev.body.outcome).toBe('ignored');
  });

  test('documented: the webhooks outside /v1 with no bearer requirement, the rest with it', async () => {
    const doc = (await request(app).get('/openapi.json')).body;
    for (const p of ['/webhooks/github', '/webhooks/gitguardian']) expect(doc.paths[p].post.security).toEqual([]);
    for (const p of ['/v1/leaks', '/v1/incidents/{id}/bind']) expect(doc.paths[p].post.security).toEqual([{ bearerAuth: [] }]);
    for (const p of ['/v1/leaks/{nhiId}', '/v1/incidents', '/v1/incidents/{id}']) expect(doc.paths[p].get).toBeDefined();
  });

  test('unknown containment → 404', async () => {
    expect((await request(app).get('/v1/leaks/nobody_here').set(as('alice'))).status).toBe(404);
    expect((await request(app).get(`/v1/incidents/${randomUUID()}`).set(as('alice'))).status).toBe(404);
  });
});

test('GitHub and GitGuardian fixtures for the same NHI: one rotation; a replayed delivery and a late alert rotate nothing', async () => {
  const nhiId = 'svc_payments';
  const oldPassword = await w.activePassword(nhiId);
  const versionsBefore = (await w.secrets.list(nhiId)).length;
  const delivery = randomUUID();
  const [gh, gg] = await Promise.all([github(ghFixture, { 'X-GitHub-Delivery': delivery }), gitguardian(ggFixture)]);
  expect(gh.status).toBe(202);
  expect(gh.body).toMatchObject({ outcome: 'containment', duplicate: false, containments: [{ nhiId, workflowId: `leak-${nhiId}`, matchedBy: 'exposure_hint' }] });
  expect(gh.body.alert).toMatchObject({ source: 'github', externalId: 'github:acme-corp/payments-service#42', severity: 'critical' });
  expect(gg.status).toBe(202);
  // Joined the running containment, or (if it had already finished) recognised as contained.
  expect(['containment', 'already_contained']).toContain(gg.body.outcome);

  const s = await untilContained(nhiId);
  expect(s.verification).toMatchObject({ oldCredential: 'denied', newCredential: 'granted', preRotationSessions: 0 });
  expect(await activatedRotations(nhiId)).toBe(1);
  expect(await w.secrets.list(nhiId)).toHaveLength(versionsBefore + 1);
  expect(await w.login(nhiId, oldPassword)).toBe('28P01');
  expect(await w.login(nhiId, await w.activePassword(nhiId))).toBe('ok');

  const d = await w.env.client.workflow.getHandle(`leak-${nhiId}`).describe();
  // The two deliveries race: the summary names whichever alert started the containment.
  expect(['Leak svc_payments (github #42, critical)', 'Leak svc_payments (gitguardian #3759, critical)']).toContain(await d.staticSummary());

  const incident = keep(await request(app).get(`/v1/incidents/${s.incidentId}`).set(as('alice')));
  expect(incident.status).toBe(200);
  expect(incident.body).toMatchObject({ status: 'closed', nhiId, workflowId: `leak-${nhiId}` });
  expect(incident.body.timeline.map((t: { event: string }) => t.event)).toEqual(expect.arrayContaining(['alert', 'incident opened', 'rotated', 'verified', 'contained']));

  // The same delivery again: the first outcome, nothing done twice.
  const replay = await github(ghFixture, { 'X-GitHub-Delivery': delivery });
  expect(replay.status).toBe(200);
  expect(replay.body).toMatchObject({ outcome: 'containment', duplicate: true });
  // A new delivery of the same alert, after the rotation: the leaked credential is already retired.
  const late = await github(ghFixture);
  expect(late.status).toBe(202);
  expect(late.body).toMatchObject({ outcome: 'already_contained', containments: [], alreadyContained: [{ nhiId, reason: expect.stringMatching(/after the leak was detected/) }] });
  await new Promise((r) => setTimeout(r, 300));
  expect(await activatedRotations(nhiId)).toBe(1);
  expect(await w.login(nhiId, await w.activePassword(nhiId))).toBe('ok');

  // `resolved` upstream is recorded, not acted on.
  const resolved = JSON.parse(ghFixture.toString());
  resolved.action = 'resolved';
  resolved.alert.state = 'resolved';
  resolved.alert.resolved_at = new Date().toISOString();
  const r = await github(JSON.stringify(resolved));
  expect(r.status).toBe(202);
  expect(r.body.outcome).toBe('recorded');
  expect(await activatedRotations(nhiId)).toBe(1);
});

test('GitGuardian matched by the hmsl_hash of a credential we issued; the same secret again is already contained', async () => {
  const nhiId = 'agent_reports';
  const oldPassword = await w.activePassword(nhiId);
  const event = JSON.parse(ggFixture.toString());
  event.incident.id = 4001;
  event.incident.hmsl_hash = hmslHash(oldPassword);
  event.occurrence.source.full_name = 'acme-corp/somewhere-else';
  const body = JSON.stringify(event);
  const res = await gitguardian(body);
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ outcome: 'containment', containments: [{ nhiId, matchedBy: 'fingerprint' }] });
  const s = await untilContained(nhiId);
  expect(s.alerts[0]).toMatchObject({ source: 'gitguardian', label: 'gitguardian #4001', fingerprints: [`hmsl:${hmslHash(oldPassword)}`, expect.stringMatching(/^gg-secret-hash:/)] });
  expect(await w.login(nhiId, oldPassword)).toBe('28P01');

  // GitGuardian re-sends the incident (new occurrence): the fingerprint is of a retired credential.
  event.action = 'new_occurrence';
  event.timestamp = new Date().toISOString();
  const again = await gitguardian(JSON.stringify(event));
  expect(again.status).toBe(202);
  expect(again.body).toMatchObject({ outcome: 'already_contained', alreadyContained: [{ nhiId, reason: expect.stringMatching(/already retired/) }] });
  expect(await activatedRotations(nhiId)).toBe(1);
});

test('generic alert from a detector: contained; its fingerprint later is already contained; Idempotency-Key replays', async () => {
  const nhiId = 'ci_deployer';
  const oldPassword = await w.activePassword(nhiId);
  const key = { 'Idempotency-Key': `leak-${randomUUID()}` };
  const res = await leak({ nhiId, source: 'trufflehog', severity: 'high', evidenceUrl: 'https://ci.example.com/runs/77' }, 'detector-bot', key);
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ outcome: 'containment', containments: [{ nhiId, matchedBy: 'nhi_id', statusUrl: `/v1/leaks/${nhiId}` }] });
  const s = await untilContained(nhiId);
  expect(s.alerts[0]).toMatchObject({ label: 'trufflehog', reportedBy: 'detector-bot' });
  expect(await w.login(nhiId, oldPassword)).toBe('28P01');
  expect(await w.login(nhiId, await w.activePassword(nhiId))).toBe('ok');

  const replay = await leak({ nhiId, source: 'trufflehog', severity: 'high', evidenceUrl: 'https://ci.example.com/runs/77' }, 'detector-bot', key);
  expect(replay.status).toBe(200);
  expect(replay.body).toMatchObject({ duplicate: true, outcome: 'containment' });

  const fp = createHash('sha256').update(oldPassword).digest('hex');
  const known = await leak({ fingerprint: fp, source: 'pastebin-monitor', severity: 'critical' });
  expect(known.status).toBe(202);
  expect(known.body).toMatchObject({ outcome: 'already_contained', alreadyContained: [{ nhiId }] });
  expect(await activatedRotations(nhiId)).toBe(1);

  const audit = keep(await request(app).get(`/v1/audit?workflowId=leak-${nhiId}`).set(as('alice')));
  expect(audit.status).toBe(200);
  expect(audit.body.events.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['leak.alert', 'credential.rotate', 'leak.verify', 'leak.incident_close']));
});

test('an alert that matches no NHI waits for triage; binding it starts the containment', async () => {
  const event = JSON.parse(ghFixture.toString());
  event.alert.number = 77;
  event.repository.full_name = 'acme-corp/unknown-repo';
  const res = await github(JSON.stringify(event));
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ outcome: 'unmatched', incidentId: expect.any(String), reason: expect.stringMatching(/unknown-repo/) });
  const id = res.body.incidentId;

  const queue = keep(await request(app).get('/v1/incidents?status=unmatched').set(as('alice')));
  expect(queue.status).toBe(200);
  expect(queue.body.items.map((i: { id: string }) => i.id)).toContain(id);
  expect(queue.body.items.find((i: { id: string }) => i.id === id)).toMatchObject({ status: 'unmatched', nhiId: null, source: 'github' });

  expect((await request(app).post(`/v1/incidents/${id}/bind`).set(as('alice')).send({ nhiId: 'partner_acme' })).status).toBe(403);
  expect((await request(app).post(`/v1/incidents/${id}/bind`).set(as('bob')).send({ nhiId: 'nobody_here' })).status).toBe(400);

  const nhiId = 'partner_acme';
  const oldPassword = await w.activePassword(nhiId);
  const bound = keep(await request(app).post(`/v1/incidents/${id}/bind`).set(as('bob')).send({ nhiId }));
  expect(bound.status).toBe(202);
  expect(bound.body).toMatchObject({ incident: { id, status: 'open', nhiId }, containment: { nhiId, matchedBy: 'bound' } });
  const s = await untilContained(nhiId);
  expect(s.incidentId).toBe(id);
  expect(s.alerts[0]).toMatchObject({ matchedBy: 'bound', reportedBy: 'bob', label: 'github #77' });
  expect(await w.login(nhiId, oldPassword)).toBe('28P01');

  const closed = keep(await request(app).get(`/v1/incidents/${id}`).set(as('alice')));
  expect(closed.body).toMatchObject({ status: 'closed', nhiId, details: { outcome: 'contained', boundBy: 'bob' } });
  expect((await request(app).post(`/v1/incidents/${id}/bind`).set(as('bob')).send({ nhiId })).status).toBe(409);
});

test('an NHI a level-2 throttle holds NOLOGIN: contained through the API; the status and the incident say the new credential was verified only up to that restriction', async () => {
  const nhiId = 'svc_api_nologin';
  const owner = 'anomaly-api-test';
  await w.addNhi({ id: nhiId, criticality: 'high' });
  const oldPassword = await w.issueCredential(nhiId);
  const throttle = (change: IntentSpec | null) =>
    reconcile({ pool: w.db.pool, connectors: w.deps.connectors }, nhiId, { workflowId: owner, stepId: `t-${randomUUID()}`, scenario: 'test', actor: 'test', reason: 'test' }, async (c) => {
      if (change) await commitIntent(c, nhiId, owner, change);
      else await releaseIntents(c, nhiId, owner);
    });
  await throttle({ kind: 'restrict', restriction: 'throttle', level: 2 });
  expect((await w.roleState(nhiId)).rolcanlogin).toBe(false);
  try {
    const res = await leak({ nhiId, source: 'trufflehog', severity: 'critical' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ outcome: 'containment' });
    const s = await untilContained(nhiId);
    expect(s.verification).toMatchObject({
      oldCredential: 'denied',
      oldCode: '28P01',
      newCredential: 'inconclusive',
      newCode: '28000',
      limitedBy: { restriction: 'login_disabled', owners: [owner], note: expect.stringMatching(/verified only up to the login restriction/) },
    });
    const incident = await waitFor('incident closed', async () => {
      const r = keep(await request(app).get(`/v1/incidents/${s.incidentId}`).set(as('alice')));
      return r.body.status === 'closed' ? r.body : null;
    });
    expect(incident.details.verification.limitedBy).toEqual(s.verification.limitedBy);
    // The target: the old password is wrong; the new one is right and refused only for the throttle.
    expect(await w.login(nhiId, oldPassword)).toBe('28P01');
    const newPassword = await w.activePassword(nhiId);
    expect(await w.login(nhiId, newPassword)).toBe('28000');
    await throttle(null);
    expect(await w.login(nhiId, newPassword)).toBe('ok');
  } finally {
    await throttle(null);
  }
});

test('secrets hygiene: no credential value in any API response, log line or audit row', async () => {
  const values: string[] = [];
  for (const nhiId of ['svc_payments', 'agent_reports', 'ci_deployer', 'partner_acme', 'svc_api_nologin']) {
    for (const v of await w.secrets.list(nhiId)) {
      const value = await w.secrets.reveal(v.ref).catch(() => undefined);
      if (value) values.push(value);
    }
  }
  expect(values.length).toBeGreaterThanOrEqual(8); // each of the four: a retired and an active one
  const { rows } = await w.db.pool.query('SELECT * FROM audit_events');
  const incidents = await w.db.pool.query('SELECT * FROM incidents');
  const haystacks = [...seen, ...logs, JSON.stringify(rows), JSON.stringify(incidents.rows), JSON.stringify(w.notifier.sent)];
  for (const value of values) expect(haystacks.some((h) => h.includes(value))).toBe(false);
});

// GitHub alerts mapped by the secret GitHub's REST API returns, fingerprinted in memory. The API is
// a real HTTP server on 127.0.0.1 (no network); this world has GITHUB_TOKEN and GITHUB_API_URL set.
describe('GitHub REST API lookup (GITHUB_TOKEN set)', () => {
  const TOKEN = `ghp_${'t3stT0ken'.repeat(4)}`;
  let api2: ApiWorld;
  let server: Server;
  let apiUrl: string;
  const requests: { method?: string; url?: string; headers: IncomingHttpHeaders }[] = [];
  /** Alert number → the secret the fake API returns (other numbers: 404). */
  const alerts = new Map<number, string>();
  const logs2: string[] = [];
  const seen2: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push({ method: req.method, url: req.url, headers: req.headers });
      const m = /^\/repos\/([^/]+)\/([^/]+)\/secret-scanning\/alerts\/(\d+)$/.exec(req.url ?? '');
      const secret = m ? alerts.get(Number(m[3])) : undefined;
      if (m?.[3] === '999') return; // hangs: the client's timeout must end it
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"message":"Bad credentials"}');
      } else if (!m || secret === undefined) {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"Not Found"}');
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(
          JSON.stringify({ number: Number(m[3]), state: 'open', secret_type: 'postgres_connection_uri', secret, validity: 'active' }),
        );
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    apiUrl = `http://127.0.0.1:${port}`;
    api2 = await createApiWorld({
      env: { GITHUB_WEBHOOK_SECRET: GH_SECRET, GITHUB_TOKEN: TOKEN, GITHUB_API_URL: apiUrl },
      logger: pino({ level: 'debug' }, { write: (line: string) => void logs2.push(line) }),
    });
    // Only svc_payments has a hint here; agent_reports has none, so only the API lookup can find it.
    await api2.w.db.pool.query(`UPDATE nhis SET exposure_hints = $2 WHERE id = $1`, [
      'svc_payments',
      JSON.stringify([{ repository: 'acme-corp/payments-service', secretType: 'postgres_connection_uri' }]),
    ]);
    await api2.w.db.pool.query(`UPDATE secrets SET created_at = now() - interval '30 days', activated_at = now() - interval '30 days' WHERE status = 'active'`);
  }, 120_000);

  afterAll(async () => {
    await api2?.teardown();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  const keep2 = <T extends { text: string }>(res: T): T => {
    seen2.push(res.text);
    return res;
  };
  const ghAlert = (number: number, repository: string) => {
    const event = JSON.parse(ghFixture.toString());
    event.alert.number = number;
    event.repository.full_name = repository;
    const body = JSON.stringify(event);
    return request(api2.app)
      .post('/webhooks/github')
      .set({ 'Content-Type': 'application/json', 'X-GitHub-Event': 'secret_scanning_alert', 'X-GitHub-Delivery': randomUUID(), 'X-Hub-Signature-256': ghSign(body) })
      .send(body)
      .then(keep2);
  };
  const contained2 = (nhiId: string) =>
    waitFor(`leak ${nhiId} contained`, async () => {
      const res = await request(api2.app).get(`/v1/leaks/${nhiId}`).set(api2.as('alice'));
      seen2.push(res.text);
      return res.status === 200 && res.body.state === 'contained' ? res.body : null;
    }, 30_000);

  test('the secret GitHub returns is fingerprinted and matched to the NHI that issued it, before exposure hints', async () => {
    const nhiId = 'agent_reports';
    const oldPassword = await api2.w.activePassword(nhiId);
    alerts.set(101, oldPassword);
    const res = await ghAlert(101, 'acme-corp/analytics');
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ outcome: 'containment', containments: [{ nhiId, workflowId: `leak-${nhiId}`, matchedBy: 'github_api_fingerprint' }] });

    const call = requests.find((r) => r.url === '/repos/acme-corp/analytics/secret-scanning/alerts/101');
    expect(call).toMatchObject({ method: 'GET', headers: { authorization: `Bearer ${TOKEN}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' } });

    const s = await contained2(nhiId);
    expect(s.alerts[0]).toMatchObject({ label: 'github #101', matchedBy: 'fingerprint', fingerprints: [`sha256:${createHash('sha256').update(oldPassword).digest('hex')}`, `hmsl:${hmslHash(oldPassword)}`] });
    expect(await api2.w.login(nhiId, oldPassword)).toBe('28P01');
    expect(await api2.w.login(nhiId, await api2.w.activePassword(nhiId))).toBe('ok');
    const { rows } = await api2.w.db.pool.query(`SELECT details FROM audit_events WHERE action = 'leak.alert' AND nhi_id = $1`, [nhiId]);
    expect(rows.map((r) => r.details.matchedBy)).toContain('github_api_fingerprint');
  });

  test('the fake API answers 404 → exposure hints, else triage; the reason names the status only', async () => {
    const before = requests.length;
    const hinted = await ghAlert(404, 'acme-corp/payments-service');
    expect(hinted.status).toBe(202);
    expect(hinted.body).toMatchObject({ outcome: 'containment', containments: [{ nhiId: 'svc_payments', matchedBy: 'exposure_hint' }] });
    const unknown = await ghAlert(405, 'acme-corp/nowhere');
    expect(unknown.body).toMatchObject({ outcome: 'unmatched', incidentId: expect.any(String) });
    expect(requests.slice(before).map((r) => r.url)).toEqual([
      '/repos/acme-corp/payments-service/secret-scanning/alerts/404',
      '/repos/acme-corp/nowhere/secret-scanning/alerts/405',
    ]);
    expect(logs2.some((l) => l.includes('GitHub alert lookup failed') && l.includes('404'))).toBe(true);
    await contained2('svc_payments');
  });

  test('fetchSecretScanningAlertFingerprint: fingerprints only; 403/401, 404 and timeouts → null with a reason naming the status', async () => {
    alerts.set(7, 'a-secret-value-for-the-direct-call');
    const reasons: string[] = [];
    const onFailure = (reason: string) => void reasons.push(reason);
    const fp = await fetchSecretScanningAlertFingerprint({ apiUrl, token: TOKEN, repository: 'acme-corp/x', number: 7 });
    expect(fp).toEqual({ sha256: createHash('sha256').update('a-secret-value-for-the-direct-call').digest('hex'), hmsl: hmslHash('a-secret-value-for-the-direct-call') });
    expect(await fetchSecretScanningAlertFingerprint({ apiUrl, token: 'wrong-token-wrong-token', repository: 'acme-corp/x', number: 7, onFailure })).toBeNull();
    expect(await fetchSecretScanningAlertFingerprint({ apiUrl, token: TOKEN, repository: 'acme-corp/x', number: 8, onFailure })).toBeNull();
    expect(await fetchSecretScanningAlertFingerprint({ apiUrl, token: TOKEN, repository: 'acme-corp/x', number: 999, timeoutMs: 200, onFailure })).toBeNull();
    expect(reasons).toEqual([expect.stringMatching(/answered 401/), expect.stringMatching(/answered 404/), expect.stringMatching(/timed out after 200 ms/)]);
    for (const r of reasons) expect(r).not.toMatch(/a-secret-value|wrong-token/);
    // Config: the token is optional, has a minimum length and is never echoed; the API URL must be a URL.
    expect(() => loadConfig({ GITHUB_TOKEN: 'short-tok' })).toThrow(/GITHUB_TOKEN/);
    expect(() => loadConfig({ GITHUB_TOKEN: 'short-tok' })).not.toThrow(/short-tok/);
    expect(() => loadConfig({ GITHUB_API_URL: 'not a url' })).toThrow(/GITHUB_API_URL/);
    expect(loadConfig({}).GITHUB_API_URL).toBe('https://api.github.com');
  });

  test('secrets hygiene: the secret GitHub returned and the token appear in no response, log line, audit or incident row', async () => {
    const values = [TOKEN, ...alerts.values()];
    for (const v of await api2.w.secrets.list('agent_reports')) {
      const value = await api2.w.secrets.reveal(v.ref).catch(() => undefined);
      if (value) values.push(value);
    }
    const { rows } = await api2.w.db.pool.query('SELECT * FROM audit_events');
    const incidents = await api2.w.db.pool.query('SELECT * FROM incidents');
    const deliveries = await api2.w.db.pool.query('SELECT * FROM webhook_deliveries');
    const haystacks = [...seen2, ...logs2, JSON.stringify(rows), JSON.stringify(incidents.rows), JSON.stringify(deliveries.rows), JSON.stringify(api2.w.notifier.sent)];
    for (const value of values) expect(haystacks.some((h) => h.includes(value))).toBe(false);
  });
});
