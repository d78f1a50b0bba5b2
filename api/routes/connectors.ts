// The configured connectors with their declared capabilities, and discovery at each target (the
// identities it holds, with their credentials' age and last use where the target says).
import { Router } from 'express';
import { z } from 'zod';
import type { ConnectorRegistry } from '../../connectors/registry';
import { ApiError } from '../errors';
import { defineRoute } from '../route';

const capabilitiesSchema = z
  .strictObject({
    credentials: z.enum(['set', 'issued', 'none']),
    secondCredentialSlot: z.boolean(),
    sessions: z.enum(['terminate', 'revoke_issued_before', 'none']),
    connectionLimit: z.boolean(),
    throttle: z.boolean(),
  })
  .meta({ id: 'ConnectorCapabilities', description: 'What the connector can do at its target (docs/connectors.md).' });

const connectorSchema = z
  .strictObject({ name: z.string(), capabilities: capabilitiesSchema, grantable: z.array(z.string()) })
  .meta({ id: 'Connector', description: 'A configured connector.' });

const discoveredSchema = z
  .strictObject({
    identity: z.string(),
    canLogin: z.boolean(),
    entitlements: z.array(z.string()),
    credentials: z.array(z.strictObject({ id: z.string(), status: z.string(), createdAt: z.string().optional(), lastUsedAt: z.string().nullable().optional() })).optional(),
  })
  .meta({ id: 'DiscoveredIdentity', description: 'An identity found at the target (credential ids are not secrets: e.g. AWS access key ids).' });

export function createConnectorRouter({ connectors }: { connectors: ConnectorRegistry }): Router {
  const router = Router();
  const named = (name: string) => {
    if (!connectors.configuredConnectors().includes(name)) throw ApiError.notFound(`no connector named ${name} is configured`);
    return connectors.get(name);
  };

  defineRoute(router, {
    method: 'get',
    path: '/v1/connectors',
    summary: 'The configured connectors and their capabilities',
    tags: ['inventory'],
    responses: { 200: { description: 'Connectors by name', schema: z.strictObject({ items: z.array(connectorSchema) }) } },
    handler: async () => ({
      items: await Promise.all(
        connectors.configuredConnectors().map(async (name) => {
          const c = connectors.get(name);
          return { name, capabilities: c.capabilities, grantable: await c.listGrantableEntitlements() };
        }),
      ),
    }),
  });

  defineRoute(router, {
    method: 'get',
    path: '/v1/connectors/:name/identities',
    summary: 'Discovery: the identities the connector finds at its target',
    tags: ['inventory'],
    roles: ['admin'],
    params: z.strictObject({ name: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/) }),
    responses: { 200: { description: 'Identities, sorted', schema: z.strictObject({ items: z.array(discoveredSchema) }) } },
    handler: async ({ params }) => ({ items: await named(params.name).listIdentities() }),
  });

  return router;
}
