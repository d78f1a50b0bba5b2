// The API's outer edges: security headers (helmet) with a Content-Security-Policy that lets Swagger
// UI (/docs) and a same-origin web console (/console: its own JS and CSS files, fetch to the same
// origin) work and nothing else, and rate limits — per source IP on authentication failures (bad
// bearer tokens, bad webhook signatures), per principal and per source IP on write routes — that
// answer 429 with Retry-After. The defaults are far above what a person or a deploy tool sends.
import type { RequestHandler } from 'express';
import { rateLimit, ipKeyGenerator, type Options } from 'express-rate-limit';
import helmet from 'helmet';
import type { Config } from '../lib/config';
import { ApiError } from './errors';

export type EdgeConfig = Partial<Pick<Config, 'RATE_LIMIT_WINDOW_SECONDS' | 'RATE_LIMIT_AUTH_FAILURES' | 'RATE_LIMIT_WRITES_PER_PRINCIPAL' | 'RATE_LIMIT_WRITES_PER_IP'>>;

export const EDGE_DEFAULTS = { RATE_LIMIT_WINDOW_SECONDS: 60, RATE_LIMIT_AUTH_FAILURES: 60, RATE_LIMIT_WRITES_PER_PRINCIPAL: 600, RATE_LIMIT_WRITES_PER_IP: 1200 } as const;

const SELF = "'self'";
/** Scripts, styles and fetches only from this origin; nothing may frame the API or the console. */
const CSP_DIRECTIVES = {
  defaultSrc: [SELF],
  scriptSrc: [SELF],
  styleSrc: [SELF],
  imgSrc: [SELF, 'data:'],
  fontSrc: [SELF, 'data:'],
  connectSrc: [SELF],
  objectSrc: ["'none'"],
  baseUri: [SELF],
  formAction: [SELF],
  frameAncestors: ["'none'"],
};

export const securityHeaders: RequestHandler = helmet({ contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES } });

/** Swagger UI's page carries its own <style> blocks and style attributes; its scripts are files. */
export const docsSecurityHeaders: RequestHandler = helmet({
  contentSecurityPolicy: { useDefaults: false, directives: { ...CSP_DIRECTIVES, styleSrc: [SELF, "'unsafe-inline'"] } },
});

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function limiter(windowSeconds: number, limit: number, what: string, extra: Partial<Options>): RequestHandler {
  return rateLimit({
    windowMs: windowSeconds * 1000,
    limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    // Behind a proxy the source address is the proxy's; the X-Forwarded-For warning is not ours to log.
    validate: { xForwardedForHeader: false },
    handler: (req, res, next) => {
      const retryAfter = res.getHeader('Retry-After') ?? String(windowSeconds);
      next(new ApiError(429, 'too_many_requests', `Too many ${what}; retry after ${retryAfter} s`, [], { 'Retry-After': String(retryAfter) }));
    },
    ...extra,
  });
}

export function rateLimits(config: EdgeConfig = {}) {
  const c = { ...EDGE_DEFAULTS, ...Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined)) };
  const window = c.RATE_LIMIT_WINDOW_SECONDS;
  const ip = (req: Parameters<RequestHandler>[0]) => ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? 'unknown');
  return {
    /** Counts only answers that are 401: a source that keeps guessing tokens or signatures is slowed down. */
    authFailuresPerIp: limiter(window, c.RATE_LIMIT_AUTH_FAILURES, 'failed authentications from this address', {
      keyGenerator: ip,
      skipSuccessfulRequests: true,
      requestWasSuccessful: (_req, res) => res.statusCode !== 401,
    }),
    writesPerIp: limiter(window, c.RATE_LIMIT_WRITES_PER_IP, 'write requests from this address', {
      keyGenerator: ip,
      skip: (req) => !WRITE_METHODS.has(req.method),
    }),
    /** Mounted after authentication: the key is who is asking. */
    writesPerPrincipal: limiter(window, c.RATE_LIMIT_WRITES_PER_PRINCIPAL, 'write requests from this principal', {
      keyGenerator: (req) => `principal:${req.principal?.id ?? 'anonymous'}`,
      skip: (req) => !WRITE_METHODS.has(req.method),
    }),
  };
}
