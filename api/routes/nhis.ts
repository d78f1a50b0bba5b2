// Inventory routes: list and register NHIs; one NHI with its credential fingerprints and the
// workflows currently running for it (found through the NhiId search attribute).
import { Router } from 'express';
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { z } from 'zod';
import {
  createNhi,
  credentialFingerprintSchema,
  getNhi,
  listCredentialFingerprints,
  listNhis,
  newNhiSchema,
  NhiConflictError,
  nhiIdSchema,
  nhiKindSchema,
  nhiSchema,
  nhiStatusSchema,
  text,
} from '../../lib/inventory';
import type { ConnectorRegistry } from '../../activities/deps';
import { ConnectorErrorCode, PermanentConnectorError, type Connector } from '../../connectors/types';
import { visibilityLiteral } from '../../lib/visibility';
import { ChangeIdKey, NhiStateKey, ScenarioKey } from '../../workflows/search-attributes';
import { ApiError } from '../errors';
import { defineRoute } from '../route';
import { limitParam } from '../validation';

export const openWorkflowSchema = z
  .strictObject({
    workflowId: z.string(),
    runId: z.string(),
    type: z.string(),
    scenario: z.string().nullable(),
    nhiState: z.string().nullable(),
    changeId: z.string().nullable(),
    startTime: z.iso.datetime(),
  })
  .meta({ id: 'OpenWorkflow', description: 'A running workflow that concerns the NHI.' });
export type OpenWorkflow = z.output<typeof openWorkflowSchema>;

export const nhiDetailSchema = nhiSchema
  .extend({
    credentials: z.array(credentialFingerprintSchema),
    openWorkflows: z.array(openWorkflowSchema),
  })
  .meta({ id: 'NhiDetail', description: 'An NHI with its credential fingerprints and running workflows.' });

const nhiPageSchema = z.strictObject({ items: z.array(nhiSchema), nextCursor: z.string().nullable() }).meta({ id: 'NhiPage' });


/** Running workflows whose NhiId search attribute is this NHI (at most `max`). */
export async function listOpenWorkflows(client: Client, nhiId: string, opts: { max?: number; timeoutMs?: number } = {}): Promise<OpenWorkflow[]> {
  const max = opts.max ?? 100;
  const query = `NhiId = ${visibilityLiteral(nhiId)} AND ExecutionStatus = "Running"`;
  return client.connection.withDeadline(Date.now() + (opts.timeoutMs ?? 5000), async () => {
    const out: OpenWorkflow[] = [];
    for await (const wf of client.workflow.list({ query, pageSize: Math.min(max, 100) })) {
      out.push({
        workflowId: wf.workflowId,
        runId: wf.runId,
        type: wf.type,
        scenario: wf.typedSearchAttributes.get(ScenarioKey) ?? null,
        nhiState: wf.typedSearchAttributes.get(NhiStateKey) ?? null,
        changeId: wf.typedSearchAttributes.get(ChangeIdKey) ?? null,
        startTime: wf.startTime.toISOString(),
      });
      if (out.length >= max) break;
    }
    return out;
  });
}

export interface NhiRouterDeps {
  pool: Pool;
  client: Client;
  /** When given, registration checks the connector and the identity against it (the start script always gives it). */
  connectors?: ConnectorRegistry;
}

/**
 * A record the system could not act on never enters the inventory: its connector must be configured,
 * and the connector must say the identity is one it administers (never a superuser, its own role or
 * a group role) when it can tell (Connector.checkRegistrable).
 */
async function checkRegistration(connectors: ConnectorRegistry, body: { connector: string; externalRef: string }): Promise<void> {
  let connector: Connector;
  try {
    connector = connectors.get(body.connector);
  } catch (err) {
    if (err instanceof PermanentConnectorError && err.code === ConnectorErrorCode.UnknownConnector) {
      const names = connectors.configuredConnectors();
      throw ApiError.validation([{ path: 'body.connector', message: `no connector named ${JSON.stringify(body.connector)} is configured${names.length ? ` (configured: ${names.join(', ')})` : ''}` }]);
    }
    throw err;
  }
  const verdict = await connector.checkRegistrable?.(body.externalRef);
  if (verdict && !verdict.ok) throw ApiError.validation([{ path: 'body.externalRef', message: `${connector.name} will not manage this identity: ${verdict.reason}` }]);
}

export function createNhiRouter({ pool, client, connectors }: NhiRouterDeps): Router {
  const router = Router();

  defineRoute(router, {
    method: 'get',
    path: '/v1/nhis',
    summary: 'List NHIs',
    tags: ['inventory'],
    query: z.strictObject({
      kind: nhiKindSchema.optional(),
      status: nhiStatusSchema.optional(),
      owner: text(200).optional(),
      limit: limitParam(100, 500),
      cursor: nhiIdSchema.optional().meta({ description: 'nextCursor of the previous page' }),
    }),
    responses: { 200: { description: 'A page of NHIs ordered by id', schema: nhiPageSchema } },
    handler: ({ query }) => listNhis(pool, query),
  });

  defineRoute(router, {
    method: 'post',
    path: '/v1/nhis',
    summary: 'Register an NHI',
    tags: ['inventory'],
    roles: ['admin'],
    body: newNhiSchema,
    responses: {
      201: { description: 'Registered (status active)', schema: nhiSchema },
      400: { description: 'Invalid, an unconfigured connector, or an identity the connector does not administer (superuser, its own role, a group role)' },
      409: { description: 'The id, or the connector identity, is already registered' },
    },
    handler: async ({ body, res }) => {
      if (connectors) await checkRegistration(connectors, body);
      try {
        const nhi = await createNhi(pool, body);
        res.location(`/v1/nhis/${nhi.id}`);
        return nhi;
      } catch (err) {
        if (err instanceof NhiConflictError) throw ApiError.conflict(err.message);
        throw err;
      }
    },
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/nhis/:id',
    summary: 'One NHI with its credential fingerprints and open workflows',
    tags: ['inventory'],
    params: z.strictObject({ id: nhiIdSchema }),
    responses: { 200: { description: 'The NHI', schema: nhiDetailSchema } },
    handler: async ({ params }) => {
      const nhi = await getNhi(pool, params.id);
      if (!nhi) throw ApiError.notFound(`NHI ${params.id} not found`);
      const [credentials, openWorkflows] = await Promise.all([listCredentialFingerprints(pool, nhi.id), listOpenWorkflows(client, nhi.id)]);
      return { ...nhi, credentials, openWorkflows };
    },
  });

  return router;
}
