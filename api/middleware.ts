// Edges of the HTTP contract: JSON-only request bodies (415 otherwise), OPTIONS answered from the
// routes, and for requests no route answered, 405 with Allow when the path exists under other
// methods, else 404.
import type { Application, RequestHandler } from 'express';
import { ApiError } from './errors';

const JSON_TYPES = ['application/json', 'application/*+json'];

/** A request that carries a body must say it is JSON. Empty bodies (Content-Length: 0) pass. */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  const length = req.get('content-length');
  const hasBody = req.get('transfer-encoding') !== undefined || (length !== undefined && length !== '0');
  if (hasBody && !req.is(JSON_TYPES)) {
    throw new ApiError(415, 'unsupported_media_type', `Send the body as application/json (got ${req.get('content-type') ? 'another content type' : 'no Content-Type'})`);
  }
  next();
};

interface LayerLike {
  route?: { methods: Record<string, boolean> };
  handle?: { stack?: LayerLike[] };
  match?: (path: string) => unknown;
  path?: string;
}

/** Methods that some route serves at this path (walks mounted routers). Best effort: router internals. */
export function allowedMethods(stack: LayerLike[] | undefined, path: string, depth = 0): Set<string> {
  const out = new Set<string>();
  if (!stack || depth > 8) return out;
  for (const layer of stack) {
    if (typeof layer.match !== 'function') continue;
    let m: unknown;
    try {
      m = layer.match(path);
    } catch {
      continue; // an undecodable path matches nothing
    }
    if (!m) continue;
    if (layer.route) {
      for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') out.add(method.toUpperCase());
    } else if (layer.handle?.stack) {
      // router 2.x returns {path} from match(); older versions set layer.path instead.
      const matched = typeof m === 'object' && m !== null && 'path' in m ? String((m as { path: unknown }).path) : (layer.path ?? '');
      for (const method of allowedMethods(layer.handle.stack, path.slice(matched.length) || '/', depth + 1)) out.add(method);
    }
  }
  if (out.has('GET')) out.add('HEAD');
  return out;
}

/** OPTIONS: 204 with Allow, instead of the router's text/plain answer. */
export function answerOptions(app: Application): RequestHandler {
  return (req, res, next) => {
    if (req.method !== 'OPTIONS') return next();
    const allowed = allowedMethods((app.router as unknown as { stack?: LayerLike[] }).stack, req.path);
    if (allowed.size === 0) return next();
    allowed.add('OPTIONS');
    res.set('Allow', [...allowed].sort().join(', ')).status(204).end();
  };
}

/** The fallback after every router. */
export function notFoundOrMethodNotAllowed(app: Application): RequestHandler {
  return (req, _res, next) => {
    const stack = (app.router as unknown as { stack?: LayerLike[] }).stack;
    const allowed = allowedMethods(stack, req.path);
    if (allowed.size > 0 && !allowed.has(req.method)) {
      const allow = [...allowed].sort().join(', ');
      return next(new ApiError(405, 'method_not_allowed', `${req.method} is not allowed here; allowed: ${allow}`, [], { Allow: allow }));
    }
    next(ApiError.notFound(`No route for ${req.method} ${req.path}`));
  };
}
