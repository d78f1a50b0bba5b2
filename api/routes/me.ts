import { Router } from 'express';
import { principalSchema } from '../../lib/principals';
import { defineRoute } from '../route';

export function createMeRouter(): Router {
  const router = Router();
  defineRoute(router, {
    method: 'get',
    path: '/v1/me',
    summary: 'The calling principal and its roles',
    tags: ['auth'],
    responses: { 200: { description: 'Who you are', schema: principalSchema } },
    handler: ({ principal }) => ({ id: principal.id, roles: principal.roles }),
  });
  return router;
}
