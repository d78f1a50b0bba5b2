// The NHI inventory: what the orchestrator knows about each non-human identity. The zod schemas
// here are the single source for API validation and the OpenAPI document, and they mirror the
// table's CHECK constraints so bad input is a 400, never a failed insert.
import type { Pool } from 'pg';
import { z } from 'zod';

export const NHI_KINDS = ['service_account', 'api_key', 'token', 'integration', 'ai_agent'] as const;
export const NHI_STATUSES = ['active', 'throttled', 'offboarding', 'offboarded'] as const;
export const CRITICALITIES = ['low', 'medium', 'high', 'critical'] as const;
export type NhiKind = (typeof NHI_KINDS)[number];
export type NhiStatus = (typeof NHI_STATUSES)[number];
export type Criticality = (typeof CRITICALITIES)[number];

/** Text Postgres can store: NUL is the one character `text` and `jsonb` reject. */
export const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    // A pattern, not a refine: the OpenAPI document states it (issue 13's fuzzer sent NULs the schema allowed).
    .regex(/^[^\u0000]*$/, 'must not contain NUL characters');

export const nhiIdSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{1,62}$/, 'must be a slug: 2-63 characters, lowercase letters, digits, _ or -, starting with a letter')
  .meta({ description: 'Slug identifying the NHI', example: 'svc_payments' });

export const nhiKindSchema = z.enum(NHI_KINDS);
export const nhiStatusSchema = z.enum(NHI_STATUSES);
export const criticalitySchema = z.enum(CRITICALITIES);

export const exposureHintSchema = z
  .strictObject({
    repository: text(300).meta({ example: 'acme/payments' }),
    secretType: text(100).optional().meta({ example: 'postgres_connection_string' }),
  })
  .meta({ id: 'ExposureHint', description: 'Where a leaked credential of this NHI could show up (matches leak alerts).' });

/** A workload or NHI that uses this identity: a name, or a record saying who owns it and why. */
export const dependentSchema = z
  .union([
    text(200),
    z.strictObject({
      id: text(200),
      kind: text(64).optional(),
      owner: text(200).optional(),
      description: text(500).optional(),
    }),
  ])
  .meta({ id: 'Dependent' });
export type Dependent = z.output<typeof dependentSchema>;

export const newNhiSchema = z
  .strictObject({
    id: nhiIdSchema,
    kind: nhiKindSchema,
    owner: text(200).meta({ example: 'team-payments' }),
    connector: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,62}$/, 'must be a connector name like "postgres"')
      .meta({ example: 'postgres' }),
    externalRef: text(512).meta({ description: 'The identity in the target system, e.g. a Postgres role', example: 'svc_payments' }),
    criticality: criticalitySchema.default('medium'),
    tags: z.array(text(64)).max(50).default([]),
    usageBaseline: z.number().finite().nonnegative().nullable().default(null).meta({ description: 'Expected events per minute' }),
    dependents: z.array(dependentSchema).max(200).default([]).meta({ description: 'Workloads that use this identity\'s credential' }),
    exposureHints: z.array(exposureHintSchema).max(50).default([]),
  })
  .meta({ id: 'NewNhi', description: 'An NHI to register. It starts `active`: a lifecycle status comes only from the workflows that own it, never from a request body.' });
export type NewNhi = z.input<typeof newNhiSchema>;

export const nhiSchema = z
  .strictObject({
    id: nhiIdSchema,
    kind: nhiKindSchema,
    owner: z.string(),
    connector: z.string(),
    externalRef: z.string(),
    criticality: criticalitySchema,
    tags: z.array(z.string()),
    usageBaseline: z.number().nullable(),
    dependents: z.array(dependentSchema),
    exposureHints: z.array(exposureHintSchema),
    status: nhiStatusSchema,
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: 'Nhi', description: 'A non-human identity in the inventory.' });
export type Nhi = z.output<typeof nhiSchema>;

export const credentialFingerprintSchema = z
  .strictObject({
    ref: z.string().meta({ description: 'Secret-store reference' }),
    version: z.number().int(),
    status: z.enum(['pending', 'active', 'retired', 'discarded', 'deleted']),
    fingerprint: z.string().meta({ description: 'sha256 hex of the credential; the value itself never leaves the store' }),
    createdAt: z.iso.datetime(),
    activatedAt: z.iso.datetime().nullable(),
    retiredAt: z.iso.datetime().nullable(),
  })
  .meta({ id: 'CredentialFingerprint' });
export type CredentialFingerprint = z.output<typeof credentialFingerprintSchema>;

export class NhiConflictError extends Error {
  constructor(message: string, readonly nhiId: string) {
    super(message);
    this.name = 'NhiConflictError';
  }
}

interface Row {
  id: string;
  kind: NhiKind;
  owner: string;
  connector: string;
  external_ref: string;
  criticality: Criticality;
  tags: string[];
  usage_baseline: number | null;
  dependents: Dependent[];
  exposure_hints: { repository: string; secretType?: string }[];
  status: NhiStatus;
  created_at: Date;
  updated_at: Date;
}

const fromRow = (r: Row): Nhi => ({
  id: r.id,
  kind: r.kind,
  owner: r.owner,
  connector: r.connector,
  externalRef: r.external_ref,
  criticality: r.criticality,
  tags: r.tags,
  usageBaseline: r.usage_baseline,
  dependents: r.dependents,
  exposureHints: r.exposure_hints,
  status: r.status,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

/** Register an NHI. Throws NhiConflictError when the id or the (connector, externalRef) pair is taken. */
export async function createNhi(pool: Pool, input: NewNhi): Promise<Nhi> {
  const n = newNhiSchema.parse(input);
  try {
    const { rows } = await pool.query<Row>(
      `INSERT INTO nhis (id, kind, owner, connector, external_ref, criticality, tags, usage_baseline, dependents, exposure_hints, status)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING *`,
      [
        n.id,
        n.kind,
        n.owner,
        n.connector,
        n.externalRef,
        n.criticality,
        n.tags,
        n.usageBaseline,
        JSON.stringify(n.dependents),
        JSON.stringify(n.exposureHints),
        'active',
      ],
    );
    return fromRow(rows[0]);
  } catch (err) {
    const e = err as { code?: string; constraint?: string };
    if (e.code === '23505') {
      const message =
        e.constraint === 'nhis_pkey'
          ? `NHI ${n.id} already exists`
          : `another NHI already refers to ${n.connector} identity ${JSON.stringify(n.externalRef)}`;
      throw new NhiConflictError(message, n.id);
    }
    throw err;
  }
}

export async function getNhi(pool: Pool, id: string): Promise<Nhi | null> {
  if (!nhiIdSchema.safeParse(id).success) return null;
  const { rows } = await pool.query<Row>('SELECT * FROM nhis WHERE id = $1', [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

export interface NhiFilter {
  kind?: NhiKind;
  status?: NhiStatus;
  owner?: string;
  /** Page size (1-500). */
  limit?: number;
  /** Opaque: the nextCursor of the previous page. */
  cursor?: string;
}

/** A page of NHIs ordered by id; nextCursor is null on the last page. */
export async function listNhis(pool: Pool, filter: NhiFilter = {}): Promise<{ items: Nhi[]; nextCursor: string | null }> {
  const limit = Math.min(Math.max(filter.limit ?? 100, 1), 500);
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.kind) where.push(`kind = $${args.push(filter.kind)}`);
  if (filter.status) where.push(`status = $${args.push(filter.status)}`);
  if (filter.owner) where.push(`owner = $${args.push(filter.owner)}`);
  if (filter.cursor) where.push(`id > $${args.push(filter.cursor)}`);
  const { rows } = await pool.query<Row>(
    `SELECT * FROM nhis ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT $${args.push(limit + 1)}`,
    args,
  );
  const items = rows.slice(0, limit).map(fromRow);
  return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
}

/**
 * Set an NHI's status. With `from`, only when the current status is one of those (a
 * compare-and-set for workflows). Returns the updated NHI, or null when nothing matched.
 * Setting the status it already has is a successful no-op.
 */
export async function updateStatus(
  pool: Pool,
  id: string,
  status: NhiStatus,
  opts: { from?: NhiStatus | NhiStatus[] } = {},
): Promise<Nhi | null> {
  nhiStatusSchema.parse(status);
  const from = opts.from === undefined ? null : Array.isArray(opts.from) ? opts.from : [opts.from];
  const { rows } = await pool.query<Row>(
    `UPDATE nhis SET status = $2, updated_at = CASE WHEN status = $2 THEN updated_at ELSE now() END
      WHERE id = $1 AND ($3::text[] IS NULL OR status = ANY($3) OR status = $2) RETURNING *`,
    [id, status, from],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/** The credentials the orchestrator issued for an NHI: fingerprints and versions, never values. */
export async function listCredentialFingerprints(pool: Pool, nhiId: string): Promise<CredentialFingerprint[]> {
  const { rows } = await pool.query<{
    id: string;
    version: number;
    status: CredentialFingerprint['status'];
    fingerprint: string;
    created_at: Date;
    activated_at: Date | null;
    retired_at: Date | null;
  }>(
    `SELECT id, version, status, fingerprint, created_at, activated_at, retired_at
       FROM secrets WHERE nhi_id = $1 ORDER BY version DESC`,
    [nhiId],
  );
  return rows.map((r) => ({
    ref: r.id,
    version: r.version,
    status: r.status,
    fingerprint: r.fingerprint,
    createdAt: r.created_at.toISOString(),
    activatedAt: r.activated_at?.toISOString() ?? null,
    retiredAt: r.retired_at?.toISOString() ?? null,
  }));
}
