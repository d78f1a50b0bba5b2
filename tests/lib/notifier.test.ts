// The webhook notifier against a real HTTP server on loopback: signed JSON, Slack-style text, and
// a failed delivery throws so that Temporal retries the activity.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signBody, WebhookNotifier } from '../../lib/notifier';

let server: Server;
let url: string;
const received: { headers: IncomingMessage['headers']; body: string }[] = [];
let status = 200;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
});
afterAll(async () => new Promise((r) => server.close(r)));

test('posts signed JSON with a Slack-compatible text', async () => {
  const n = new WebhookNotifier([url], 'a-long-enough-secret');
  await n.notify({ id: 'wf-1:granted', kind: 'jit.granted', severity: 'info', text: 'svc_a holds estate_readonly' });
  const got = received.at(-1)!;
  expect(JSON.parse(got.body)).toMatchObject({ id: 'wf-1:granted', text: 'svc_a holds estate_readonly' });
  expect(got.headers['x-nhi-delivery']).toBe('wf-1:granted');
  expect(got.headers['x-nhi-signature-256']).toBe(signBody('a-long-enough-secret', got.body, String(got.headers['x-nhi-timestamp'])));
});

test('a failed delivery throws (the activity is retried)', async () => {
  status = 503;
  await expect(new WebhookNotifier([url], undefined).notify({ id: 'x', kind: 'k', severity: 'info', text: 't' })).rejects.toThrow(/HTTP 503/);
  status = 200;
});
