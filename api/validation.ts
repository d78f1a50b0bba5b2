// Validate a request part with zod in one line: `const body = parseBody(req, CreateThing)`.
// Failures become the one 400 shape; unknown fields are rejected (top-level objects are made strict
// unless the schema chose .loose()/.catchall(); nest z.strictObject for deeper levels).
import type { Request } from 'express';
import { z } from 'zod';
import { ApiError, zodIssues } from './errors';

export type Location = 'body' | 'query' | 'params';

const strictCache = new WeakMap<z.ZodType, z.ZodType>();

/** The schema with unknown keys rejected when it is a plain (strip-mode) object. */
export function strict<S extends z.ZodType>(schema: S): S {
  const cached = strictCache.get(schema);
  if (cached) return cached as S;
  let out: z.ZodType = schema;
  if (schema instanceof z.ZodObject && schema._zod.def.catchall === undefined) out = schema.strict();
  strictCache.set(schema, out);
  return out as S;
}

/** Parse `value` (from `location`) or throw a 400 validation_error naming each bad field. */
export function validate<S extends z.ZodType>(location: Location, schema: S, value: unknown): z.output<S> {
  const result = strict(schema).safeParse(value);
  if (!result.success) throw ApiError.validation(zodIssues(result.error, location), `Invalid request ${location}`);
  return result.data as z.output<S>;
}

/** A missing body counts as `{}`, so "no body" and "empty object" get the same field errors. */
export const parseBody = <S extends z.ZodType>(req: Request, schema: S): z.output<S> => validate('body', schema, req.body ?? {});
export const parseQuery = <S extends z.ZodType>(req: Request, schema: S): z.output<S> => validate('query', schema, { ...req.query });
export const parseParams = <S extends z.ZodType>(req: Request, schema: S): z.output<S> => validate('params', schema, { ...req.params });

/** An integer from the query string (values arrive as strings). */
export const queryInt = (opts: { min?: number; max?: number } = {}) => {
  let s = z.coerce.number().int();
  if (opts.min !== undefined) s = s.min(opts.min);
  if (opts.max !== undefined) s = s.max(opts.max);
  return s;
};

/** A page size: 1..max, default `def`. */
export const limitParam = (def = 100, max = 500) => queryInt({ min: 1, max }).default(def).meta({ description: `Page size (1-${max})` });
