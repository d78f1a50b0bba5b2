// GET /metrics (Prometheus text) and the middleware that times every request by route pattern.
// Who may read it: the series name scenarios, outcomes and volumes, not secrets, but they are still
// operational intelligence. Without METRICS_TOKEN only a loopback caller is served (a scraper or an
// agent on the same host); with METRICS_TOKEN every caller, loopback included, must present it as a
// bearer token, so a reverse proxy on the same host cannot open the endpoint to the world.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { Router, type RequestHandler } from 'express';
import type { Metrics } from '../lib/metrics';
import { ApiError } from './errors';

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.x.y.z), as a socket reports them. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.split('.')[0] === '127';
  return isIP(address) === 6 && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/i.test(address);
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Time each request under its route pattern (`/v1/jit/:id`), never its raw path: ids are unbounded. */
export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const pattern = req.route?.path;
      const route = typeof pattern === 'string' ? `${req.baseUrl}${pattern}` : 'unmatched';
      metrics.observeHttp({ method: req.method, route, status: res.statusCode }, seconds);
    });
    next();
  };
}

export function createMetricsRouter({ metrics, token }: { metrics: Metrics; token?: string }): Router {
  const router = Router();
  const expected = token ? digest(token) : undefined;
  router.get('/metrics', async (req, res, next) => {
    try {
      if (expected) {
        const given = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1];
        // Compared as digests: equal length, constant time, whatever the caller sent.
        if (!given || !timingSafeEqual(digest(given), expected)) {
          throw ApiError.unauthenticated('GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>"', { 'WWW-Authenticate': 'Bearer realm="metrics"' });
        }
      } else if (!isLoopbackAddress(req.socket.remoteAddress)) {
        throw ApiError.forbidden('GET /metrics is served to loopback callers only; set METRICS_TOKEN to scrape it from elsewhere');
      }
      const body = await metrics.render();
      res.setHeader('Content-Type', metrics.contentType);
      res.setHeader('Cache-Control', 'no-store');
      res.send(body);
    } catch (err) {
      next(err);
    }
  });
  return router;
}
