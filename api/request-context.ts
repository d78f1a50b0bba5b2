// Per-request context: a request id (honoured from X-Request-Id or generated, always echoed), a
// child logger carrying it, one access-log line per request, and the authenticated principal.
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Principal } from '../lib/principals';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** X-Request-Id: the caller's when sane, else a new uuid. */
      id: string;
      log: Logger;
      /** Set by the bearer-token middleware on /v1 routes. */
      principal?: Principal;
      /** The exact bytes of a JSON body, for routes that verify signatures (webhooks). */
      rawBody?: Buffer;
    }
  }
}

// A caller's id is reused only when it can't smuggle anything into logs or headers.
const SANE_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const incoming = req.get('x-request-id');
    req.id = incoming && SANE_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('X-Request-Id', req.id);
    req.log = logger.child({ reqId: req.id }); // bearerAuth adds the principal to it
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const status = res.statusCode;
      // Probes run every few seconds: keep them out of the info log.
      const quiet = req.path === '/healthz' || req.path === '/readyz';
      const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : quiet ? 'debug' : 'info';
      req.log[level](
        {
          req: { method: req.method, url: redactCodecKey(req.originalUrl), remoteAddress: req.socket.remoteAddress },
          res: { statusCode: status, contentLength: res.getHeader('content-length') },
          responseTimeMs: Math.round(ms * 10) / 10,
        },
        'request completed',
      );
    });
    next();
  };
}

/** The Temporal UI's codec key travels in the path (/codec/ui/<key>/decode): never into a log line. */
export const redactCodecKey = (url: string) => url.replace(/^\/codec\/ui\/[^/?]+/, '/codec/ui/***');
