// One error shape for every failure: {error: {code, message, issues, requestId}}. Client mistakes
// get a precise 4xx; everything unexpected is a 500 that says nothing about the internals.
import type { ErrorRequestHandler } from 'express';
import { isGrpcServiceError, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { ErrorType } from '../workflows/errors';

export interface Issue {
  /** Where: `body.kind`, `query.limit`, `params.id`, `body` for the whole body. */
  path: string;
  message: string;
}

export const issueSchema = z.strictObject({ path: z.string(), message: z.string() }).meta({ id: 'Issue' });
export const errorResponseSchema = z
  .strictObject({
    error: z.strictObject({
      code: z.string().meta({ example: 'validation_error' }),
      message: z.string(),
      issues: z.array(issueSchema),
      requestId: z.string().optional(),
    }),
  })
  .meta({ id: 'Error', description: 'Every error response has this shape.' });

export type ErrorCode =
  | 'validation_error'
  | 'invalid_json'
  | 'bad_request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'precondition_failed'
  | 'unprocessable'
  | 'too_many_requests'
  | 'unavailable'
  | 'not_ready'
  | 'internal'
  | (string & {});

/** Throw from a handler to answer with this status and code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly issues: Issue[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static badRequest(message: string, issues: Issue[] = []) {
    return new ApiError(400, 'bad_request', message, issues);
  }
  static validation(issues: Issue[], message = 'The request is not valid') {
    return new ApiError(400, 'validation_error', message, issues);
  }
  static unauthenticated(message = 'Authentication required', headers: Record<string, string> = {}) {
    return new ApiError(401, 'unauthenticated', message, [], headers);
  }
  static forbidden(message = 'Not allowed') {
    return new ApiError(403, 'forbidden', message);
  }
  static notFound(message = 'Not found') {
    return new ApiError(404, 'not_found', message);
  }
  static conflict(message: string) {
    return new ApiError(409, 'conflict', message);
  }
  static unavailable(message: string) {
    return new ApiError(503, 'unavailable', message);
  }
}

/** zod issues as our flat issue list; unknown keys get one issue each so the client sees which. */
export function zodIssues(error: z.ZodError, prefix: string): Issue[] {
  const out: Issue[] = [];
  for (const i of error.issues) {
    const base = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) out.push({ path: base ? `${base}.${k}` : k, message: 'unknown field' });
    } else {
      out.push({ path: base, message: i.message });
    }
  }
  return out;
}

export function errorBody(code: string, message: string, issues: Issue[] = [], requestId?: string) {
  return { error: { code, message, issues, ...(requestId ? { requestId } : {}) } };
}

// body-parser and the router tag their errors with `type` / `status`; map the ones a client causes.
const BODY_ERRORS: Record<string, { status: number; code: ErrorCode; message: string }> = {
  'entity.parse.failed': { status: 400, code: 'invalid_json', message: 'The request body is not valid JSON' },
  'entity.too.large': { status: 413, code: 'payload_too_large', message: 'The request body is too large' },
  'encoding.unsupported': { status: 415, code: 'unsupported_media_type', message: 'Unsupported content encoding' },
  'charset.unsupported': { status: 415, code: 'unsupported_media_type', message: 'Unsupported charset; send UTF-8 JSON' },
  'request.aborted': { status: 400, code: 'bad_request', message: 'The request was aborted' },
  'request.size.invalid': { status: 400, code: 'bad_request', message: 'The request size does not match Content-Length' },
};

const PG_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P03', '53300']);

/** Postgres or Temporal is not reachable right now: a 503, not a bug. */
export function isDependencyUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (typeof e.code === 'string' && (PG_UNAVAILABLE.has(e.code) || e.code.startsWith('08'))) return true;
  if (typeof e.message === 'string' && /Connection terminated|timeout exceeded when trying to connect/.test(e.message)) return true;
  // gRPC UNAVAILABLE (14) and DEADLINE_EXCEEDED (4), possibly wrapped in a ServiceError's cause.
  for (let c: unknown = err, depth = 0; c && depth < 3; c = (c as { cause?: unknown }).cause, depth++) {
    if (isGrpcServiceError(c) && (c.code === 14 || c.code === 4)) return true;
  }
  return false;
}

/**
 * Every failure type of workflows/errors.ts, with a status chosen on purpose (a new type does not
 * compile until it has one). A 4xx answers with the failure's own message, written for the caller;
 * a 5xx answers with `message` only, since the failure's text may name target internals.
 */
const BUSINESS_ERRORS: Record<ErrorType, { status: number; code: ErrorCode; message?: string; headers?: Record<string, string> }> = {
  [ErrorType.InvalidRequest]: { status: 400, code: 'bad_request' },
  [ErrorType.PolicyDenied]: { status: 400, code: 'policy_denied' },
  [ErrorType.SelfApproval]: { status: 403, code: 'self_approval' },
  [ErrorType.NotAllowed]: { status: 403, code: 'forbidden' },
  [ErrorType.NhiNotFound]: { status: 404, code: 'nhi_not_found' },
  [ErrorType.RequestClosed]: { status: 409, code: 'conflict' },
  [ErrorType.AlreadyApproved]: { status: 409, code: 'already_approved' },
  [ErrorType.NhiNotActive]: { status: 409, code: 'nhi_not_active' },
  [ErrorType.AccessWithheld]: { status: 409, code: 'access_withheld' },
  [ErrorType.SecretMissing]: { status: 409, code: 'secret_missing' },
  [ErrorType.EntitlementUnknown]: { status: 422, code: 'entitlement_unknown' },
  [ErrorType.UnknownConnector]: { status: 409, code: 'unknown_connector' },
  [ErrorType.PermanentConnector]: { status: 502, code: 'target_refused', message: 'The target system refused the change; details are in the server log under the request id' },
  [ErrorType.VerificationFailed]: { status: 503, code: 'not_converged', message: 'The target has not reached the requested state yet; retry later', headers: { 'Retry-After': '5' } },
  [ErrorType.EnforcementFailed]: { status: 503, code: 'not_converged', message: 'The target has not reached the requested state yet; retry later', headers: { 'Retry-After': '5' } },
};

/** Deep enough for update → workflow → child → activity → cause; a longer chain is not ours. */
const MAX_CAUSE_DEPTH = 8;

/**
 * The business failure a Temporal error carries anywhere in its cause chain: an activity's failure
 * inside an Update arrives as WorkflowUpdateFailedError → ActivityFailure → ApplicationFailure. The
 * outermost ApplicationFailure with a known type wins: a workflow that caught an activity's failure
 * and threw its own type made that decision for its callers.
 */
export function businessFailure(err: unknown): ApplicationFailure | undefined {
  let c: unknown = err;
  for (let depth = 0; c && typeof c === 'object' && depth < MAX_CAUSE_DEPTH; depth++, c = (c as { cause?: unknown }).cause) {
    if (c instanceof ApplicationFailure && c.type && Object.hasOwn(BUSINESS_ERRORS, c.type)) return c;
  }
  return undefined;
}

/** The ApiError for a business failure in `err`'s cause chain, or undefined (then it is not ours to map). */
export function businessError(err: unknown): ApiError | undefined {
  const failure = businessFailure(err);
  if (!failure) return undefined;
  const m = BUSINESS_ERRORS[failure.type as ErrorType];
  const message = m.status < 500 && failure.message ? failure.message : (m.message ?? 'The request was rejected');
  return new ApiError(m.status, m.code, message, [], m.headers ?? {});
}

/** Translate any error into status + body. Unknown errors reveal nothing but the request id. */
export function toHttpError(err: unknown): { status: number; code: string; message: string; issues: Issue[]; headers: Record<string, string> } {
  if (err instanceof ApiError) return { status: err.status, code: err.code, message: err.message, issues: err.issues, headers: err.headers };
  if (err instanceof z.ZodError) {
    return { status: 400, code: 'validation_error', message: 'The request is not valid', issues: zodIssues(err, ''), headers: {} };
  }
  const name = (err as { name?: string } | null)?.name;
  if (err instanceof WorkflowNotFoundError || name === 'WorkflowNotFoundError') {
    return { status: 404, code: 'not_found', message: 'Workflow not found', issues: [], headers: {} };
  }
  if (err instanceof WorkflowExecutionAlreadyStartedError || name === 'WorkflowExecutionAlreadyStartedError') {
    return { status: 409, code: 'conflict', message: 'A workflow with this id is already running', issues: [], headers: {} };
  }
  // A bad inventory record (connectors/registry.ts): the caller's NHI cannot be acted on, nothing is broken.
  if ((name === 'PermanentConnectorError' || name === 'UnknownConnectorError') && (err as { code?: string }).code === 'unknown_connector') {
    return { status: 409, code: 'unknown_connector', message: (err as Error).message, issues: [], headers: {} };
  }
  const business = businessError(err);
  if (business) return { status: business.status, code: business.code, message: business.message, issues: [], headers: business.headers };
  const e = err as { type?: string; status?: number; statusCode?: number; expose?: boolean; message?: string } | null;
  if (e && typeof e === 'object') {
    if (e.type && BODY_ERRORS[e.type]) {
      const m = BODY_ERRORS[e.type];
      const issues = e.type === 'entity.parse.failed' && e.message ? [{ path: 'body', message: e.message }] : [];
      return { ...m, issues, headers: {} };
    }
    const status = e.status ?? e.statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500 && e.expose !== false) {
      return { status, code: status === 404 ? 'not_found' : 'bad_request', message: e.message || 'Bad request', issues: [], headers: {} };
    }
  }
  if (isDependencyUnavailable(err)) {
    return { status: 503, code: 'unavailable', message: 'A backing service is unavailable; retry later', issues: [], headers: { 'Retry-After': '5' } };
  }
  return { status: 500, code: 'internal', message: 'Internal server error', issues: [], headers: {} };
}

/** The last middleware: log server-side detail, send the client the shape and nothing more. */
export const errorHandler: ErrorRequestHandler = (err, req, res, next) => {
  if (res.headersSent) return next(err); // express closes the connection
  const mapped = toHttpError(err);
  const log = req.log;
  if (mapped.status >= 500) log?.error({ err }, 'request failed');
  else log?.debug({ code: mapped.code, status: mapped.status, err: (err as Error)?.message }, 'request rejected');
  res.status(mapped.status).set(mapped.headers).json(errorBody(mapped.code, mapped.message, mapped.issues, req.id));
};
