// The HTTP API. createApp only wires: request context, security headers and rate limits (edges.ts),
// probes, /metrics (metrics.ts), docs, JSON body parsing, bearer auth on /v1, the core routers, the routers scenarios add,
// the Temporal UI's codec server (codec.ts), then 404/405 and the one error shape.
//
// A scenario router plugs in like this (see api/route.ts):
//   export function createJitRouter({ client, config }: …): Router {
//     const router = Router();
//     defineRoute(router, { method: 'post', path: '/v1/jit', roles: ['requester'], body: JitRequest,
//       summary: 'Request elevation', responses: { 201: { description: 'Started', schema: JitStarted } },
//       handler: async ({ body, principal }) => … });
//     return router;
//   }
//   createApp({ …, extraRouters: [createJitRouter(deps)] });
import { readFileSync } from 'node:fs';
import path from 'node:path';
import express, { type Router } from 'express';
import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import swaggerUi from 'swagger-ui-express';
import type { ConnectorRegistry } from '../activities/deps';
import type { Config } from '../lib/config';
import { createMetrics, type Metrics } from '../lib/metrics';
import { projectRoot } from '../lib/paths';
import { bearerAuth } from './auth';
import { createConsoleRouter, type ConsoleOptions } from './console';
import { codecCors, createCodecRouter } from './codec';
import { docsSecurityHeaders, rateLimits, securityHeaders } from './edges';
import { errorHandler } from './errors';
import { createHealthRouter } from './health';
import { createMetricsRouter, httpMetrics } from './metrics';
import { answerOptions, notFoundOrMethodNotAllowed, requireJsonBody } from './middleware';
import { collectDocs, createRegistry, generateDocument } from './openapi';
import { requestContext } from './request-context';
import { API_PREFIX } from './route';
import { createAuditRouter } from './routes/audit';
import { createMeRouter } from './routes/me';
import { createNhiRouter } from './routes/nhis';

// What routers need, re-exported so they import from one place.
export { ApiError, errorBody, toHttpError, type Issue } from './errors';
export { bearerAuth, principalOf, requireRole } from './auth';
export { parseBody, parseParams, parseQuery, validate, strict, limitParam, queryInt } from './validation';
export { documentRoute, documentWith, toOpenApiPath, OpenAPIRegistry, type RouteConfig } from './openapi';
export { API_PREFIX, asyncHandler, defineRoute, type RouteContext, type RouteDefinition } from './route';

export interface TemporalDeps {
  client: Client;
  taskQueue: string;
  namespace: string;
}

export interface AppDeps {
  pool: Pool;
  temporal: TemporalDeps;
  config: Pick<Config, 'API_BODY_LIMIT'> & Partial<Config>;
  /** The Prometheus series behind GET /metrics; built from pool and temporal when not given. */
  metrics?: Metrics;
  logger: Logger;
  /** Routers mounted after the core routes; /v1 paths in them are behind bearer auth. */
  extraRouters?: Router[];
  /** The configured connectors: registration (POST /v1/nhis) is checked against them. */
  connectors?: ConnectorRegistry;
  /** The codec server for the Temporal UI (api/codec.ts), when payloads are encrypted. */
  codec?: { codec: PayloadCodec; uiKey?: string; uiOrigins: string[] };
  /** Deadline of each /readyz check (default 2000 ms). */
  readyTimeoutMs?: number;
  /** The operations console at /console (Temporal UI links, dev sign-in picker). */
  console?: ConsoleOptions;
}

const packageVersion = (() => {
  try {
    return String(JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).version ?? '0.0.0');
  } catch {
    return '0.0.0';
  }
})();

export function createApp(deps: AppDeps): express.Express {
  const { pool, temporal, config, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use(requestContext(logger));
  const metrics = deps.metrics ?? createMetrics({ pool, client: temporal.client, taskQueue: temporal.taskQueue });
  app.use(httpMetrics(metrics));
  const limits = rateLimits(config);
  app.use(securityHeaders);
  app.use(limits.authFailuresPerIp, limits.writesPerIp);
  if (deps.codec) app.use(codecCors(deps.codec.uiOrigins));
  // Routes are public knowledge (/openapi.json), so OPTIONS needs no token.
  app.use(answerOptions(app));

  const health = createHealthRouter({ pool, client: temporal.client, timeoutMs: deps.readyTimeoutMs });
  const apiRouters = [createMeRouter(), createNhiRouter({ pool, client: temporal.client, connectors: deps.connectors }), createAuditRouter({ pool }), ...(deps.extraRouters ?? [])];

  // Built once, eagerly: a schema the generator can't handle fails at start-up, not on first view.
  const registry = createRegistry();
  collectDocs(registry, [health, ...apiRouters]);
  const document = generateDocument(registry, {
    title: 'NHI orchestrator API',
    version: packageVersion,
    description: 'Non-human identity orchestration on Temporal. Every /v1 route needs `Authorization: Bearer <token>`.',
  });

  app.use(health);
  app.use(createMetricsRouter({ metrics, token: config.METRICS_TOKEN }));
  app.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  // Swagger UI's assets are relative, so the page must be served at /docs/.
  app.get('/docs', (req, res, next) => {
    if (req.originalUrl.split('?')[0] === '/docs') return res.redirect(301, '/docs/');
    next();
  });
  app.use('/docs', docsSecurityHeaders, swaggerUi.serve, swaggerUi.setup(undefined, { swaggerOptions: { url: '../openapi.json' }, customSiteTitle: 'NHI orchestrator API' }));

  app.use(createConsoleRouter(deps.console));

  // Authenticate before reading any body, so anonymous callers can't make us parse megabytes.
  app.use(API_PREFIX, bearerAuth(pool), limits.writesPerPrincipal);
  app.use(requireJsonBody);
  app.use(
    express.json({
      limit: config.API_BODY_LIMIT,
      type: ['application/json', 'application/*+json'],
      // Webhook routes verify signatures over the exact bytes received.
      verify: (req, _res, buf) => {
        (req as express.Request).rawBody = buf;
      },
    }),
  );

  for (const router of apiRouters) app.use(router);
  if (deps.codec) app.use(createCodecRouter({ pool, codec: deps.codec.codec, uiKey: deps.codec.uiKey }));

  app.use(notFoundOrMethodNotAllowed(app));
  app.use(errorHandler);
  return app;
}
