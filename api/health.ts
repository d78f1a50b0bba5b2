// Liveness and readiness. /healthz: the process answers. /readyz: Postgres and Temporal both answer
// within a short deadline, so a load balancer stops sending traffic when either is gone.
import { Router } from 'express';
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { z } from 'zod';
import { errorResponseSchema } from './errors';
import { documentWith } from './openapi';

export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  /** Short reason, without addresses or credentials (details go to the log). */
  error?: 'timeout' | 'unreachable';
}

class CheckTimeout extends Error {}

async function timed(fn: () => Promise<unknown>, timeoutMs: number): Promise<{ result: CheckResult; err?: unknown }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout()), timeoutMs);
  });
  try {
    await Promise.race([fn(), deadline]);
    return { result: { ok: true, latencyMs: Date.now() - started } };
  } catch (err) {
    return { result: { ok: false, latencyMs: Date.now() - started, error: err instanceof CheckTimeout ? 'timeout' : 'unreachable' }, err };
  } finally {
    clearTimeout(timer);
  }
}

const checkSchema = z.strictObject({ ok: z.boolean(), latencyMs: z.number(), error: z.enum(['timeout', 'unreachable']).optional() });
const checksSchema = z.strictObject({ postgres: checkSchema, temporal: checkSchema });

export function createHealthRouter({ pool, client, timeoutMs = 2000 }: { pool: Pool; client: Client; timeoutMs?: number }): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (req, res) => {
    const [pg, temporal] = await Promise.all([
      timed(() => pool.query('SELECT 1'), timeoutMs),
      // The deadline makes gRPC give up too, so a hung call does not pile up behind the probe.
      timed(() => client.connection.withDeadline(Date.now() + timeoutMs, () => client.workflowService.getSystemInfo({})), timeoutMs + 250),
    ]);
    const checks = { postgres: pg.result, temporal: temporal.result };
    if (pg.result.ok && temporal.result.ok) {
      res.json({ status: 'ready', checks });
      return;
    }
    const failed = Object.entries(checks)
      .filter(([, c]) => !c.ok)
      .map(([name]) => name);
    if (pg.err) req.log.warn({ err: pg.err }, 'readiness: postgres check failed');
    if (temporal.err) req.log.warn({ err: temporal.err }, 'readiness: temporal check failed');
    res.status(503).json({
      error: { code: 'not_ready', message: `Not ready: ${failed.join(' and ')} unavailable`, issues: failed.map((f) => ({ path: f, message: checks[f as keyof typeof checks].error ?? 'unavailable' })), requestId: req.id },
      checks,
    });
  });

  documentWith(router, (registry) => {
    registry.registerPath({
      method: 'get',
      path: '/healthz',
      summary: 'Liveness: the process is up',
      tags: ['health'],
      responses: { 200: { description: 'Up', content: { 'application/json': { schema: z.strictObject({ status: z.literal('ok') }) } } } },
    });
    registry.registerPath({
      method: 'get',
      path: '/readyz',
      summary: 'Readiness: Postgres and Temporal reachable',
      tags: ['health'],
      responses: {
        200: { description: 'Ready', content: { 'application/json': { schema: z.strictObject({ status: z.literal('ready'), checks: checksSchema }) } } },
        503: {
          description: 'Not ready; `checks` says which dependency failed',
          content: { 'application/json': { schema: errorResponseSchema.extend({ checks: checksSchema }) } },
        },
      },
    });
  });

  return router;
}
