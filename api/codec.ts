// The codec server for the Temporal UI (and `temporal --codec-endpoint`): POST /codec/decode and
// /codec/encode in Temporal's remote codec protocol ({payloads: [{metadata: {k: base64}, data: base64}]}).
// Behind auth: a bearer API token, or — for the UI, which cannot send one — the UI key in the path
// (`/codec/ui/<key>/decode`, the endpoint `npm start` gives the dev server with --ui-codec-endpoint;
// whoever can open that UI can already read and signal every workflow). CORS only for the UI's origins.
import { timingSafeEqual } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import type { PayloadCodec, Payload } from '@temporalio/common';
import type { Pool } from 'pg';
import { z } from 'zod';
import { bearerAuth } from './auth';
import { ApiError } from './errors';
import { asyncHandler } from './route';

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');
const payloadsBody = z.strictObject({
  payloads: z.array(z.object({ metadata: z.record(z.string(), b64).optional(), data: b64.optional() })).max(1000),
});

const toJson = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});
const fromJson = (p: z.output<typeof payloadsBody>['payloads'][number]): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

/** CORS for the UI origins on /codec (preflight answered here, before the app's OPTIONS handler). */
export function codecCors(origins: string[]): RequestHandler {
  const allowed = new Set(origins);
  return (req, res, next) => {
    if (!req.path.startsWith('/codec/')) return next();
    const origin = req.get('origin');
    if (origin && allowed.has(origin)) {
      res.set({
        'Access-Control-Allow-Origin': origin,
        'Access-Control-Allow-Credentials': 'true',
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type, X-Namespace, Authorization',
        'Access-Control-Max-Age': '600',
        Vary: 'Origin',
      });
    }
    if (req.method === 'OPTIONS') return void res.status(204).end();
    next();
  };
}

export function createCodecRouter(a: { pool: Pool; codec: PayloadCodec; uiKey?: string }): Router {
  const router = Router();
  const uiKeyMatches = (given: string) => {
    if (!a.uiKey) return false;
    const x = Buffer.from(given);
    const y = Buffer.from(a.uiKey);
    return x.length === y.length && timingSafeEqual(x, y);
  };
  const requireUiKey: RequestHandler = (req, _res, next) => {
    if (!uiKeyMatches(String(req.params.key))) throw ApiError.unauthenticated('Unknown codec key');
    next();
  };
  const run = (op: 'encode' | 'decode') =>
    asyncHandler(async (req, res) => {
      const parsed = payloadsBody.safeParse(req.body);
      if (!parsed.success) throw ApiError.validation(parsed.error.issues.map((i) => ({ path: ['body', ...i.path.map(String)].join('.'), message: i.message })));
      let out: Payload[];
      try {
        out = await a.codec[op](parsed.data.payloads.map(fromJson));
      } catch (err) {
        throw new ApiError(422, 'unprocessable', `cannot ${op}: ${(err as Error).message}`);
      }
      res.json({ payloads: out.map(toJson) });
    });
  for (const op of ['encode', 'decode'] as const) {
    router.post(`/codec/${op}`, bearerAuth(a.pool), run(op));
    router.post(`/codec/ui/:key/${op}`, requireUiKey, run(op));
  }
  return router;
}
