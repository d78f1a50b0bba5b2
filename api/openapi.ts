// The OpenAPI 3 document, generated from the same zod schemas that validate requests. Routers
// attach their path docs to themselves (defineRoute does it for you; documentRoute for hand-written
// routes); createApp collects the docs of every router it mounts into one registry per app, so the
// document lists exactly the routes that are served.
//
// Name and describe schemas with zod's own `.meta({ id, description, example })`: the generator
// reads it, and a schema with an id becomes a $ref'd component. We don't call
// extendZodWithOpenApi: zod 4 copies methods onto each schema when it is created, so `.openapi()`
// would exist only on schemas built after the extension ran — a load-order trap.
import { OpenAPIRegistry, OpenApiGeneratorV3, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { Router } from 'express';

export { OpenAPIRegistry, type RouteConfig } from '@asteasolutions/zod-to-openapi';

export const BEARER_SCHEME = 'bearerAuth';

type DocFn = (registry: OpenAPIRegistry) => void;
const docsByRouter = new WeakMap<object, DocFn[]>();

/** Attach OpenAPI docs to a router; they appear in /openapi.json of every app that mounts it. */
export function documentRoute(router: Router, route: RouteConfig): void {
  documentWith(router, (registry) => registry.registerPath(route));
}

/** Attach any registry work (components, webhooks, several paths) to a router. */
export function documentWith(router: Router, fn: DocFn): void {
  const list = docsByRouter.get(router) ?? [];
  list.push(fn);
  docsByRouter.set(router, list);
}

/** Express `/v1/nhis/:id` → OpenAPI `/v1/nhis/{id}`. */
export function toOpenApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** The registry with the bearer scheme (the Error schema comes in through the routes' responses). */
export function createRegistry(): OpenAPIRegistry {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', BEARER_SCHEME, {
    type: 'http',
    scheme: 'bearer',
    description: 'An API token (`nhi token create --principal <id> --roles <r1,r2>`).',
  });
  return registry;
}

/** Add the docs of these routers, and of routers nested inside them. */
export function collectDocs(registry: OpenAPIRegistry, routers: readonly Router[]): void {
  const seen = new Set<object>();
  const visit = (r: unknown) => {
    if (!r || (typeof r !== 'function' && typeof r !== 'object') || seen.has(r)) return;
    seen.add(r);
    for (const fn of docsByRouter.get(r) ?? []) fn(registry);
    const stack = (r as { stack?: Array<{ handle?: unknown; route?: unknown }> }).stack;
    if (Array.isArray(stack)) for (const layer of stack) if (!layer.route) visit(layer.handle);
  };
  for (const r of routers) visit(r);
}

export type DocumentInfo = Parameters<OpenApiGeneratorV3['generateDocument']>[0]['info'];

export function generateDocument(registry: OpenAPIRegistry, info: DocumentInfo) {
  return new OpenApiGeneratorV3(registry.definitions).generateDocument({
    openapi: '3.0.3',
    info,
    security: [],
  });
}
