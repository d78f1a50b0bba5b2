// defineRoute: one declaration gives an authenticated /v1 route its role check, zod validation of
// params/query/body, and its OpenAPI entry, so the docs cannot drift from what is enforced.
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import type { ResponseConfig, RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Principal, Role } from '../lib/principals';
import { principalOf, requireRole } from './auth';
import { ApiError, errorResponseSchema, type Issue } from './errors';
import { BEARER_SCHEME, documentRoute, toOpenApiPath } from './openapi';
import { strict, validate, type Location } from './validation';

export const API_PREFIX = '/v1';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Obj = z.ZodType<Record<string, unknown>> | undefined;
type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteContext<P extends Obj, Q extends Obj, B extends z.ZodType | undefined> {
  params: Out<P>;
  query: Out<Q>;
  body: Out<B>;
  principal: Principal;
  log: Logger;
  req: Request;
  res: Response;
}

export interface RouteResponse {
  description: string;
  /** JSON body schema; omit for responses without a body (204). */
  schema?: z.ZodType;
}

export interface RouteDefinition<P extends Obj, Q extends Obj, B extends z.ZodType | undefined> {
  method: Method;
  /** Express path under /v1, e.g. `/v1/nhis/:id`. */
  path: string;
  summary: string;
  description?: string;
  tags?: string[];
  /** Roles that may call it (admin always may). Omitted: any authenticated principal. */
  roles?: Role[];
  params?: P;
  /**
   * Set for a path that names a workflow (e.g. 'elevation'): params that cannot name one answer 404
   * `no <what> <id>` (nothing by that id exists), not 400.
   */
  notFoundWhenParamsInvalid?: string;
  query?: Q;
  body?: B;
  /** Success responses by status. The standard error responses are added for you. */
  responses: Record<number, RouteResponse>;
  /**
   * Either answer through ctx.res yourself, or return a value: it is sent as JSON with the
   * lowest 2xx status in `responses`, or with another declared 2xx set by `ctx.res.status()`.
   */
  handler: (ctx: RouteContext<P, Q, B>) => unknown | Promise<unknown>;
}

const errorResponse = (description: string): ResponseConfig => ({
  description,
  content: { 'application/json': { schema: errorResponseSchema } },
});

/** Register the route on the router and its OpenAPI path on the router's docs. */
export function defineRoute<P extends Obj = undefined, Q extends Obj = undefined, B extends z.ZodType | undefined = undefined>(
  router: Router,
  def: RouteDefinition<P, Q, B>,
): void {
  if (!def.path.startsWith(`${API_PREFIX}/`)) {
    throw new Error(`defineRoute: ${def.path} must be under ${API_PREFIX}/ (bearer authentication is mounted there)`);
  }
  const statuses = Object.keys(def.responses).map(Number).sort((a, b) => a - b);
  const okStatus = statuses.find((s) => s >= 200 && s < 300) ?? 200;

  const handler: RequestHandler = async (req: Request, res: Response, next: NextFunction) => {
    // Validate every part before answering, so one 400 lists all the problems.
    const issues: Issue[] = [];
    const check = <S extends z.ZodType | undefined>(location: Location, schema: S, value: unknown): Out<S> => {
      if (!schema) return undefined as Out<S>;
      try {
        return validate(location, schema, value) as Out<S>;
      } catch (err) {
        if (err instanceof ApiError) issues.push(...err.issues);
        else throw err;
        return undefined as Out<S>;
      }
    };
    const params = check('params', def.params as P, { ...req.params });
    if (issues.length && def.notFoundWhenParamsInvalid) {
      throw ApiError.notFound(`no ${def.notFoundWhenParamsInvalid} ${Object.values(req.params).join('/')}`);
    }
    const query = check('query', def.query as Q, { ...req.query });
    const body = check('body', def.body as B, req.body ?? {});
    if (issues.length) throw ApiError.validation(issues);
    const ctx = {
      params,
      query,
      body,
      principal: principalOf(req),
      log: req.log,
      req,
      res,
    };
    const result = await def.handler(ctx);
    if (res.headersSent) return;
    if (result === undefined) {
      if (okStatus === 204) res.status(204).end();
      else next(new Error(`handler for ${def.method.toUpperCase()} ${def.path} returned nothing and sent no response`));
      return;
    }
    // A handler may pick another declared 2xx (e.g. 202 "still under way") with res.status().
    const chosen = res.statusCode !== 200 && res.statusCode >= 200 && res.statusCode < 300 && def.responses[res.statusCode] ? res.statusCode : okStatus;
    res.status(chosen).json(result);
  };

  const chain: RequestHandler[] = def.roles?.length ? [requireRole(...def.roles), handler] : [handler];
  router[def.method](def.path, ...chain);

  const responses: RouteConfig['responses'] = {};
  for (const [status, r] of Object.entries(def.responses)) {
    responses[status] = r.schema ? { description: r.description, content: { 'application/json': { schema: r.schema } } } : { description: r.description };
  }
  const hasInput = Boolean(def.params || def.query || def.body);
  if (hasInput) responses['400'] ??= errorResponse('Invalid request (see issues)');
  responses['401'] ??= errorResponse('Missing, invalid or revoked token');
  const nonAdmin = (def.roles ?? []).filter((r) => r !== 'admin');
  const roleText = !def.roles?.length ? '' : nonAdmin.length ? `${nonAdmin.join(' or ')} (or admin)` : 'admin';
  if (roleText) responses['403'] ??= errorResponse(`Needs role ${roleText}`);
  if (def.params) responses['404'] ??= errorResponse('Not found');
  responses['500'] ??= errorResponse('Internal error (details are in the server log under the request id)');

  const roleNote = roleText ? `Needs role ${roleText}.` : 'Any authenticated principal.';
  documentRoute(router, {
    method: def.method,
    path: toOpenApiPath(def.path),
    summary: def.summary,
    description: [def.description, roleNote].filter(Boolean).join('\n\n'),
    tags: def.tags,
    security: [{ [BEARER_SCHEME]: [] }],
    'x-roles': def.roles ?? [],
    request: {
      params: def.params ? (strict(def.params) as never) : undefined,
      query: def.query ? (strict(def.query) as never) : undefined,
      // A body whose every field is optional may be left out (the handler reads it as {}): documented so.
      body: def.body ? { required: !def.body.safeParse({}).success, content: { 'application/json': { schema: def.body } } } : undefined,
    },
    responses,
  });
}

/**
 * Express 5 already forwards a rejected promise to the error handler; this only gives hand-written
 * async handlers a type and makes the intent obvious.
 */
export function asyncHandler(fn: (req: Request, res: Response, next: NextFunction) => Promise<unknown>): RequestHandler {
  return (req, res, next) => {
    fn(req, res, next).catch(next);
  };
}
