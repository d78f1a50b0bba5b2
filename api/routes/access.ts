// An NHI's access as its target says it is right now (the connector's read-back), for people: the
// console's inventory and anyone checking what a scenario did without opening the target itself.
import { Router } from 'express';
import type { Pool } from 'pg';
import { z } from 'zod';
import type { ConnectorRegistry } from '../../activities/deps';
import { getNhi, nhiIdSchema } from '../../lib/inventory';
import { ApiError } from '../errors';
import { defineRoute } from '../route';

export const accessReadbackSchema = z
  .strictObject({
    nhiId: z.string(),
    connector: z.string(),
    externalRef: z.string(),
    exists: z.boolean().meta({ description: 'The identity exists at the target' }),
    canLogin: z.boolean(),
    connectionLimit: z.number().int().meta({ description: '-1 = unlimited' }),
    entitlements: z.array(z.string()).meta({ description: 'Entitlements held now (logical names), sorted' }),
    readAt: z.iso.datetime(),
  })
  .meta({ id: 'AccessReadback', description: 'What the target system says the NHI can do, read at readAt.' });

export function createAccessRouter({ pool, connectors }: { pool: Pool; connectors: ConnectorRegistry }): Router {
  const router = Router();
  defineRoute(router, {
    method: 'get',
    path: '/v1/nhis/:id/access',
    summary: 'The NHI\'s current access, read back from its target system',
    tags: ['inventory'],
    params: z.strictObject({ id: nhiIdSchema }),
    responses: { 200: { description: 'The read-back', schema: accessReadbackSchema } },
    handler: async ({ params }) => {
      const nhi = await getNhi(pool, params.id);
      if (!nhi) throw ApiError.notFound(`NHI ${params.id} not found`);
      const state = await connectors.get(nhi.connector).readAccess(nhi.externalRef);
      return { nhiId: nhi.id, connector: nhi.connector, externalRef: nhi.externalRef, ...state, readAt: new Date().toISOString() };
    },
  });
  return router;
}
