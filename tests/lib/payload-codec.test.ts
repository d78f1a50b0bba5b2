// Issue 13: workflow payloads are ciphertext in Temporal's history (AES-256-GCM, key id in the
// metadata, rotatable), and the codec server gives the Temporal UI readable data — behind auth, with
// CORS for the UI's origin only. A real (time-skipping) Temporal server; no worker is needed: the
// start input and a signal are in the history as the client encoded them.
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pino from 'pino';
import request from 'supertest';
import { createApp } from '../../api/app';
import { redactCodecKey } from '../../api/request-context';
import { loadConfig } from '../../lib/config';
import { AesGcmPayloadCodec, dataConverterFor, parsePayloadKeys, payloadKeysFrom } from '../../lib/payload-codec';
import { projectRoot } from '../../lib/paths';
import { createToken, upsertPrincipal } from '../../lib/principals';
import { abortUpdate } from '../../scenarios/offboarding/contract';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createTimeSkippingEnv } from '../helpers/temporal';

let env: TestWorkflowEnvironment;
let db: TestDatabase;
const k1 = randomBytes(32).toString('base64');
const k2 = randomBytes(32).toString('base64');
const UI = 'http://127.0.0.1:8233';
const uiKey = randomBytes(24).toString('base64url');

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnv(), createTestDatabase()]);
}, 120_000);
afterAll(async () => Promise.allSettled([env?.teardown(), db?.drop()]));

test('on: start input and signals are ciphertext in history; the UI codec decodes them; old keys still decode after rotation', async () => {
  const config = loadConfig({ NODE_ENV: 'test', PAYLOAD_KEYS: `k2:${k2},k1:${k1}` });
  const client = new Client({ connection: env.connection, dataConverter: dataConverterFor(config) });
  const reason = `secret-looking reason ${randomBytes(6).toString('hex')}`;
  const handle = await client.workflow.start('offboarding', { taskQueue: 'codec-no-worker', workflowId: `codec-${randomBytes(4).toString('hex')}`, args: [{ version: 1, nhiId: 'svc_x', reason, requestedBy: 'admin' }] });
  await handle.signal(abortUpdate.name, { by: 'admin', reason }); // any signal: its payload is what matters

  const history = await handle.fetchHistory();
  const started = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
  const signalled = history.events!.find((e) => e.workflowExecutionSignaledEventAttributes)!.workflowExecutionSignaledEventAttributes!.input!.payloads![0];
  for (const p of [started, signalled]) {
    expect(Buffer.from(p.metadata!.encoding!).toString()).toBe('binary/encrypted');
    expect(Buffer.from(p.metadata!['encryption-key-id']!).toString()).toBe('k2');
    expect(Buffer.from(p.data!).toString('latin1')).not.toContain(reason);
  }
  expect(Buffer.from(temporal.api.history.v1.History.encode(history).finish()).toString('latin1')).not.toContain(reason);

  // The Temporal UI's request: base64 JSON, from its origin, with the key in the path.
  const app = createApp({
    pool: db.pool,
    temporal: { client, taskQueue: 'codec', namespace: 'default' },
    config: { API_BODY_LIMIT: '1mb' },
    logger: pino({ level: 'silent' }),
    codec: { codec: new AesGcmPayloadCodec(parsePayloadKeys(`k3:${randomBytes(32).toString('base64')},k2:${k2},k1:${k1}`)), uiKey, uiOrigins: [UI] },
  });
  const asJson = (p: typeof started) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data!).toString('base64'),
  });
  const body = { payloads: [asJson(started), asJson(signalled)] };
  const preflight = await request(app).options(`/codec/ui/${uiKey}/decode`).set('Origin', UI).set('Access-Control-Request-Method', 'POST');
  expect(preflight.status).toBe(204);
  expect(preflight.headers['access-control-allow-origin']).toBe(UI);
  expect(preflight.headers['access-control-allow-headers']).toMatch(/X-Namespace/);
  const decoded = await request(app).post(`/codec/ui/${uiKey}/decode`).set('Origin', UI).set('X-Namespace', 'default').send(body);
  expect(decoded.status).toBe(200);
  expect(decoded.headers['access-control-allow-origin']).toBe(UI);
  const [input, signal] = decoded.body.payloads.map((p: { metadata: Record<string, string>; data: string }) => ({
    encoding: Buffer.from(p.metadata.encoding, 'base64').toString(),
    value: JSON.parse(Buffer.from(p.data, 'base64').toString()),
  }));
  expect(input).toEqual({ encoding: 'json/plain', value: { version: 1, nhiId: 'svc_x', reason, requestedBy: 'admin' } });
  expect(signal.value).toEqual({ by: 'admin', reason });

  // Behind auth: a wrong UI key or no bearer token is a 401; another origin gets no CORS grant.
  expect((await request(app).post(`/codec/ui/${'x'.repeat(32)}/decode`).send(body)).status).toBe(401);
  expect((await request(app).post('/codec/decode').send(body)).status).toBe(401);
  await upsertPrincipal(db.pool, { id: 'oncall', roles: [] });
  const token = await createToken(db.pool, 'oncall');
  expect((await request(app).post('/codec/decode').set('Authorization', `Bearer ${token}`).send(body)).status).toBe(200);
  expect((await request(app).options('/codec/decode').set('Origin', 'https://evil.example')).headers['access-control-allow-origin']).toBeUndefined();

  // A key no longer configured: a precise 422, never a 500.
  const rotatedOut = new AesGcmPayloadCodec(parsePayloadKeys(`k3:${randomBytes(32).toString('base64')}`));
  await expect(rotatedOut.decode([started])).rejects.toThrow(/key "k2", which is not configured/);
});

test('the codec key in the UI endpoint\'s path never reaches a log line', () => {
  expect(redactCodecKey(`/codec/ui/${uiKey}/decode`)).toBe('/codec/ui/***/decode');
  expect(redactCodecKey('/v1/nhis')).toBe('/v1/nhis');
});

test('off: without keys outside development (the test suites) or with PAYLOAD_ENCRYPTION=off, the default converter', () => {
  expect(dataConverterFor(loadConfig({ NODE_ENV: 'test' }))).toEqual({});
  expect(dataConverterFor(loadConfig({ NODE_ENV: 'test', PAYLOAD_ENCRYPTION: 'off', PAYLOAD_KEYS: `k1:${k1}` }))).toEqual({});
  expect(() => loadConfig({ PAYLOAD_KEYS: 'k1:short' })).toThrow(/PAYLOAD_KEYS/);
});

test('development: npm start creates the dev key file (0600); other processes only read it, never leave one behind', () => {
  const dir = path.join(projectRoot, `.data-test-${randomBytes(4).toString('hex')}`);
  try {
    const dev = loadConfig({ NODE_ENV: 'development', DATA_DIR: dir });
    expect(payloadKeysFrom(dev)).toBeNull();
    expect(existsSync(dir)).toBe(false);
    const created = payloadKeysFrom(dev, { create: true })!;
    expect(created.current).toBe('dev1');
    expect(statSync(path.join(dir, 'payload-codec.keys')).mode & 0o777).toBe(0o600);
    expect(payloadKeysFrom(dev)!.keys.get('dev1')).toEqual(created.keys.get('dev1'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
