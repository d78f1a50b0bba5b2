// One app per test file on a fresh database and a real Temporal dev server, with a token per role.
import type { Router } from 'express';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { createApp, type AppDeps } from '../../api/app';
import { createToken, upsertPrincipal, type Role } from '../../lib/principals';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createLocalEnv } from '../helpers/temporal';

export interface Harness {
  db: TestDatabase;
  env: TestWorkflowEnvironment;
  app: ReturnType<typeof createApp>;
  deps: AppDeps;
  /** Bearer tokens: one principal per role, plus `none` (authenticated, no roles). */
  tokens: Record<Role | 'none', string>;
  teardown(): Promise<void>;
}

export async function createHarness(opts: { extraRouters?: Router[]; bodyLimit?: string } = {}): Promise<Harness> {
  const [db, env] = await Promise.all([createTestDatabase(), createLocalEnv()]);
  const deps: AppDeps = {
    pool: db.pool,
    temporal: { client: env.client, taskQueue: 'nhi-test', namespace: 'default' },
    config: { API_BODY_LIMIT: opts.bodyLimit ?? '1mb' },
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    extraRouters: opts.extraRouters,
    readyTimeoutMs: 1500,
  };
  const app = createApp(deps);
  const tokens = {} as Record<Role | 'none', string>;
  for (const role of ['requester', 'approver', 'deployer', 'detector', 'admin', 'none'] as const) {
    const id = `${role}-user`;
    await upsertPrincipal(db.pool, { id, roles: role === 'none' ? [] : [role] });
    tokens[role] = await createToken(db.pool, id);
  }
  return {
    db,
    env,
    app,
    deps,
    tokens,
    async teardown() {
      await Promise.allSettled([db.drop(), env.teardown()]);
    },
  };
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
