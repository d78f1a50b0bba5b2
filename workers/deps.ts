// The real dependencies, built from config: only workers/ (and the start script) construct them.
import path from 'node:path';
import type { Pool } from 'pg';
import type { ActivityDeps } from '../activities';
import { createConnectorRegistry } from '../connectors/registry';
import type { Connector } from '../connectors/types';
import { decodeKey, type Config } from '../lib/config';
import { embeddedPostgresUrl, orchestratorDatabaseUrl } from '../lib/config-urls';
import { productionProblems } from '../lib/data-dir';
import { createPool } from '../lib/db';
import { createEstateConnector, DEFAULT_CONNECTOR_ROLE, DEFAULT_ESTATE_DATABASE, estateConnectorUrl, loadOrCreateConnectorPassword } from '../lib/estate';
import type { Logger } from '../lib/logger';
import { LogNotifier, WebhookNotifier, type Notifier } from '../lib/notifier';
import { loadNhiPolicies } from '../lib/policy-decisions';
import { projectRoot } from '../lib/paths';
import { loadOrCreateKeyFile, SecretStore } from '../lib/secret-store';

/** The server the estate lives on when ESTATE_DATABASE_URL is unset: the orchestrator's own. */
export function estateAdminUrl(config: Config): string {
  return config.DATABASE_URL ?? embeddedPostgresUrl(config, 'postgres');
}

/** The connector's login to the estate: ESTATE_DATABASE_URL, or in dev the generated nhi_connector login. */
export function estateUrl(config: Config): string {
  if (config.ESTATE_DATABASE_URL) return config.ESTATE_DATABASE_URL;
  return estateConnectorUrl(estateAdminUrl(config), {
    role: DEFAULT_CONNECTOR_ROLE,
    password: loadOrCreateConnectorPassword(config.dataDir),
    database: DEFAULT_ESTATE_DATABASE,
  });
}

export function secretStoreKey(config: Config): Buffer {
  const problems = productionProblems(config);
  if (problems.length) throw new Error(`refusing to start in production: ${problems.join('; ')}`);
  if (config.SECRET_STORE_KEY) return decodeKey(config.SECRET_STORE_KEY)!;
  if (config.NODE_ENV === 'production') throw new Error('SECRET_STORE_KEY is required in production (32 bytes, base64 or hex)');
  return loadOrCreateKeyFile(config.dataDir);
}

export function buildNotifier(config: Config, logger: Logger): Notifier {
  if (config.NOTIFY_WEBHOOK_URLS.length) return new WebhookNotifier(config.NOTIFY_WEBHOOK_URLS, config.NOTIFY_WEBHOOK_SECRET);
  const log = logger.child({ component: 'notify' });
  return new LogNotifier((n) => log.info({ kind: n.kind, nhiId: n.nhiId, workflowId: n.workflowId }, n.text));
}

export interface BuiltDependencies {
  deps: ActivityDeps;
  pool: Pool;
  connector: Connector;
  close(): Promise<void>;
}

export function buildDependencies(config: Config, logger: Logger): BuiltDependencies {
  const pool = createPool(orchestratorDatabaseUrl(config));
  const connector = createEstateConnector({ url: estateUrl(config) });
  const deps: ActivityDeps = {
    pool,
    connectors: createConnectorRegistry([connector]),
    secrets: new SecretStore(pool, secretStoreKey(config)),
    // Loaded and validated at start-up: an invalid policy stops the worker here.
    policy: loadNhiPolicies(path.resolve(projectRoot, config.POLICY_DIR)),
    notifier: buildNotifier(config, logger),
  };
  return {
    deps,
    pool,
    connector,
    async close() {
      await connector.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

/**
 * Start-up check of the connector: what its own role lacks stops the process (it would refuse every
 * step anyway); other problems (an entitlement it cannot administer) are warnings. Returns the
 * target it reached, for the start banner.
 */
export async function checkConnectorSetup(connector: Connector, logger: Logger): Promise<string> {
  const setup = await connector.checkSetup();
  if (setup.roleProblems.length) {
    throw new Error(`connector ${connector.name} (${setup.target}) is not set up:\n- ${setup.roleProblems.join('\n- ')}`);
  }
  for (const problem of setup.problems) logger.warn({ connector: connector.name }, problem);
  return setup.target;
}
