// The API end to end for one test file: a TestWorld on the local dev server, a running worker, the
// app with every scenario router, and a token per demo principal.
import pino, { type Logger } from 'pino';
import request from 'supertest';
import { createApp } from '../../api/app';
import { createScenarioRouters, type ScenarioDeps } from '../../api/scenarios';
import { loadConfig } from '../../lib/config';
import { createToken, upsertPrincipal } from '../../lib/principals';
import { createTestWorld, DEMO_PRINCIPALS, type TestWorld } from './world';

export interface ApiWorld {
  w: TestWorld;
  app: ReturnType<typeof createApp>;
  tokens: Record<string, string>;
  as(who: string): { Authorization: string };
  post(path: string, who: string, payload: unknown, headers?: Record<string, string>): request.Test;
  get(path: string, who?: string): request.Test;
  teardown(): Promise<void>;
}

export async function createApiWorld(
  opts: {
    /** Extra environment for loadConfig (e.g. webhook secrets). */
    env?: Record<string, string>;
    /** Extra scenario router settings. */
    scenario?: Partial<ScenarioDeps>;
    logger?: Logger;
    /** More principals (id → roles) with tokens. */
    principals?: Record<string, ('requester' | 'approver' | 'deployer' | 'detector' | 'admin')[]>;
    /** Extra setup of the world (e.g. w.addNhi). */
    setup?: (w: TestWorld) => Promise<void>;
  } = {},
): Promise<ApiWorld> {
  const w = await createTestWorld({ temporal: 'local', runWorker: true });
  await opts.setup?.(w);
  const config = { ...loadConfig({ NODE_ENV: 'test', ...opts.env }), TEMPORAL_TASK_QUEUE: w.taskQueue };
  const temporal = { client: w.env.client, taskQueue: w.taskQueue, namespace: 'default' };
  const app = createApp({
    pool: w.db.pool,
    temporal,
    config,
    logger: opts.logger ?? pino({ level: 'silent' }),
    connectors: w.deps.connectors,
    extraRouters: createScenarioRouters({ pool: w.db.pool, temporal, config, policy: w.deps.policy, connectors: w.deps.connectors, authorityKey: w.deps.authorityKey, ...opts.scenario }),
  });
  const tokens: Record<string, string> = {};
  for (const [id, roles] of Object.entries(opts.principals ?? {})) await upsertPrincipal(w.db.pool, { id, roles });
  for (const id of [...DEMO_PRINCIPALS.map((p) => p.id), ...Object.keys(opts.principals ?? {})]) tokens[id] = await createToken(w.db.pool, id);
  const as = (who: string) => ({ Authorization: `Bearer ${tokens[who]}` });
  return {
    w,
    app,
    tokens,
    as,
    post: (path, who, payload, headers = {}) => request(app).post(path).set(as(who)).set(headers).send(payload as object),
    get: (path, who = 'alice') => request(app).get(path).set(as(who)),
    teardown: () => w.teardown(),
  };
}
