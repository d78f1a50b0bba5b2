// The operations console at /console: static same-origin files from console/ (HTML, CSS, and
// TypeScript modules served as JavaScript, type annotations stripped by swc), no inline script or
// style, so a strict Content-Security-Policy holds. The page calls the /v1 API with the signed-in
// principal's token; this router serves files and, in dev, the demo principals' tokens (loopback only).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { transformSync } from '@swc/core';
import { Router, type Request, type Response } from 'express';
import { projectRoot } from '../lib/paths';

export const CONSOLE_DIR = path.join(projectRoot, 'console');

export interface ConsoleOptions {
  /** Dev only: the demo principals and their tokens, offered as a picker to loopback callers. */
  demoPrincipals?: () => { id: string; roles: string[]; token: string }[];
  /** Where the Temporal Web UI is, for deep links to workflows (omit when there is none). */
  temporalUiUrl?: string;
  namespace?: string;
}

// Own policy for the console's responses; a stricter one set earlier (helmet) is kept.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

const isLoopback = (req: Request) => ['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress ?? '');

/** Every servable file: `views/needs-me.js` → console/views/needs-me.ts, `console.css` → itself. */
function listFiles(dir: string, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = `${prefix}${entry.name}`;
    const abs = path.join(dir, entry.name);
    if (entry.isDirectory()) for (const [k, v] of listFiles(abs, `${rel}/`)) out.set(k, v);
    else if (/\.ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.set(rel.replace(/\.ts$/, '.js'), abs);
    else if (/\.(html|css)$/.test(entry.name)) out.set(rel, abs);
  }
  return out;
}

export function createConsoleRouter(options: ConsoleOptions = {}): Router {
  const router = Router();
  const files = listFiles(CONSOLE_DIR);
  const cache = new Map<string, { mtimeMs: number; body: string }>();

  function body(abs: string): string {
    const mtimeMs = statSync(abs).mtimeMs;
    const hit = cache.get(abs);
    if (hit && hit.mtimeMs === mtimeMs) return hit.body;
    const source = readFileSync(abs, 'utf8');
    const out = abs.endsWith('.ts')
      ? transformSync(source, { filename: abs, jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' }, sourceMaps: false }).code
      : source;
    cache.set(abs, { mtimeMs, body: out });
    return out;
  }

  const headers = (res: Response, type: string) => {
    res.type(type);
    res.set('Cache-Control', 'no-cache');
    res.set('X-Content-Type-Options', 'nosniff');
    if (!res.getHeader('Content-Security-Policy')) res.set('Content-Security-Policy', CSP);
  };

  router.get('/console', (req, res, next) => {
    if (req.originalUrl.split('?')[0] === '/console') return res.redirect(301, '/console/');
    next();
  });

  router.get('/console/settings.json', (req, res) => {
    headers(res, 'application/json');
    res.json({ temporalUiUrl: options.temporalUiUrl ?? null, namespace: options.namespace ?? 'default', demo: Boolean(options.demoPrincipals) && isLoopback(req) });
  });

  router.get('/console/demo-principals.json', (req, res) => {
    headers(res, 'application/json');
    // Tokens leave the server only in dev and only to this machine.
    if (!options.demoPrincipals || !isLoopback(req)) return res.status(404).json({ error: { code: 'not_found', message: 'no demo principals here', issues: [] } });
    res.json({ principals: options.demoPrincipals() });
  });

  router.get(/^\/console\/(.*)$/, (req, res, next) => {
    const rel = (req.params as unknown as string[])[0] || 'index.html';
    const abs = files.get(rel);
    if (!abs) return next();
    headers(res, TYPES[path.extname(rel)] ?? 'application/octet-stream');
    res.send(body(abs));
  });

  return router;
}
