// Bearer-token authentication for /v1 and role checks. 401 means "who are you?" (no or bad
// token, with WWW-Authenticate); 403 means "I know you, and you may not".
import type { Request, RequestHandler } from 'express';
import type { Pool } from 'pg';
import { authenticate, hasRole, ROLES, type Principal, type Role } from '../lib/principals';
import { ApiError } from './errors';

export const AUTH_REALM = 'nhi-orchestrator';

const challenge = (error?: string, description?: string) =>
  `Bearer realm="${AUTH_REALM}"${error ? `, error="${error}"` : ''}${description ? `, error_description="${description}"` : ''}`;

/** Resolves `Authorization: Bearer <token>` to req.principal, or answers 401. */
export function bearerAuth(pool: Pool): RequestHandler {
  return async (req, _res, next) => {
    const header = req.get('authorization');
    if (!header) {
      throw ApiError.unauthenticated('Missing bearer token: send "Authorization: Bearer <token>"', { 'WWW-Authenticate': challenge() });
    }
    const m = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(header);
    if (!m) {
      throw ApiError.unauthenticated('The Authorization header must be "Bearer <token>"', {
        'WWW-Authenticate': challenge('invalid_request', 'expected a bearer token'),
      });
    }
    const principal = await authenticate(pool, m[1]);
    if (!principal) {
      throw ApiError.unauthenticated('The token is not valid or has been revoked', {
        'WWW-Authenticate': challenge('invalid_token', 'the token is not valid or has been revoked'),
      });
    }
    req.principal = principal;
    req.log = req.log.child({ principal: principal.id });
    next();
  };
}

/** The authenticated principal, or a 401 if the route was mounted outside the bearer middleware. */
export function principalOf(req: Request): Principal {
  if (!req.principal) throw ApiError.unauthenticated('Authentication required', { 'WWW-Authenticate': challenge() });
  return req.principal;
}

/** Allow the request when the principal has any of these roles (admin has every role). */
export function requireRole(...anyOf: Role[]): RequestHandler {
  for (const r of anyOf) if (!ROLES.includes(r)) throw new Error(`requireRole: unknown role ${r}`);
  return (req, _res, next) => {
    const principal = principalOf(req);
    if (anyOf.length > 0 && !hasRole(principal, ...anyOf)) {
      throw ApiError.forbidden(`This needs the role ${anyOf.length > 1 ? `one of ${anyOf.join(', ')}` : anyOf[0]}; ${principal.id} has ${principal.roles.join(', ') || 'no roles'}`);
    }
    next();
  };
}
