// The real dependencies, built from config: only workers/ (and the start script) construct them.
import path from 'node:path';
import type { Pool } from 'pg';
import type { ActivityDeps } from '../activities';
import { AwsIamConnector } from '../connectors/aws-iam';
import { createConnectorRegistry, type OwnedConnectorRegistry } from '../connectors/registry';
import type { Connector } from '../connectors/types';
import { AppRoleConnector } from '../connectors/openbao-approle';
import { AWS_DEMO_ENTITLEMENTS, type AwsTarget } from '../lib/aws-estate';
import { OPENBAO_DEMO_ENTITLEMENTS } from '../lib/openbao-estate';
import { decodeKey, type Config } from '../lib/config';
import { embeddedPostgresUrl, orchestratorDatabaseUrl } from '../lib/config-urls';
import { productionProblems } from '../lib/data-dir';
import { createPool } from '../lib/db';
import { createEstateConnector, DEFAULT_CONNECTOR_ROLE, DEFAULT_ESTATE_DATABASE, estateConnectorUrl, loadOrCreateConnectorPassword } from '../lib/estate';
import type { Logger } from '../lib/logger';
import { LogNotifier, WebhookNotifier, type Notifier } from '../lib/notifier';
import { loadNhiPolicies } from '../lib/policy-decisions';
import { projectRoot } from '../lib/paths';
import { loadOrCreateKeyFile, TableSecretStore, type SecretStore } from '../lib/secret-store';
import { VaultSecretStore } from '../lib/secret-store-vault';
import { VaultClient } from '../lib/vault';
import { loadOrCreateAuthorityKey } from '../lib/authority';

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

/** The key signed authorities are verified with: AUTHORITY_KEY, or in dev a generated key file. */
export function authorityKey(config: Config): Buffer {
  if (config.AUTHORITY_KEY) return decodeKey(config.AUTHORITY_KEY)!;
  if (config.NODE_ENV === 'production') throw new Error('AUTHORITY_KEY is required in production (32 bytes, base64 or hex): the API and the workers must share it');
  return loadOrCreateAuthorityKey(config.dataDir);
}

/** SECRET_STORE: the encrypted table (default), or OpenBao / Vault KV v2 with token or AppRole login. */
export function buildSecretStore(config: Config, pool: Pool, local?: LocalTargets['localOpenBao']): SecretStore {
  if (config.SECRET_STORE === 'table') return new TableSecretStore(pool, secretStoreKey(config));
  return new VaultSecretStore(pool, buildVaultClient(config, local), { mount: config.VAULT_KV_MOUNT, prefix: config.VAULT_KV_PREFIX });
}

export function buildNotifier(config: Config, logger: Logger): Notifier {
  if (config.NOTIFY_WEBHOOK_URLS.length) return new WebhookNotifier(config.NOTIFY_WEBHOOK_URLS, config.NOTIFY_WEBHOOK_SECRET);
  const log = logger.child({ component: 'notify' });
  return new LogNotifier((n) => log.info({ kind: n.kind, nhiId: n.nhiId, workflowId: n.workflowId }, n.text));
}

export interface BuiltDependencies {
  deps: ActivityDeps;
  pool: Pool;
  /** Every configured connector (config.connectors), by name. */
  connectors: OwnedConnectorRegistry;
  close(): Promise<void>;
}

/**
 * Where the AWS connector acts: AWS_ENDPOINT_URL / AWS_REGION and the SDK's default credential
 * chain, or (npm start in development) the local endpoint started beside it with its own key.
 * Entitlements: AWS_ENTITLEMENTS, or the demo estate's in demo mode.
 */
export function buildAwsConnector(config: Config, local?: AwsTarget): AwsIamConnector {
  return new AwsIamConnector({
    region: local?.region ?? config.AWS_REGION,
    endpoint: config.AWS_ENDPOINT_URL ?? local?.endpoint,
    credentials: local?.credentials,
    entitlements: config.AWS_ENTITLEMENTS ?? (config.demo ? AWS_DEMO_ENTITLEMENTS : {}),
  });
}

/** Local servers `npm start` runs in development, in place of the VAULT_* / AWS_* settings. */
export interface LocalTargets {
  localAws?: AwsTarget;
  localOpenBao?: { addr: string; token: string };
}

/** The Vault the secret store and the openbao connector talk to: VAULT_ADDR with a token or AppRole, or the local dev server. */
export function buildVaultClient(config: Config, local?: LocalTargets['localOpenBao']): VaultClient {
  if (local && !config.VAULT_ADDR) return new VaultClient({ addr: local.addr, auth: { token: local.token } });
  return new VaultClient({
    addr: config.VAULT_ADDR!,
    namespace: config.VAULT_NAMESPACE,
    auth: config.VAULT_TOKEN ? { token: config.VAULT_TOKEN } : { roleId: config.VAULT_ROLE_ID!, secretId: config.VAULT_SECRET_ID! },
  });
}

export function buildConnectors(config: Config, opts: LocalTargets = {}): OwnedConnectorRegistry {
  const connectors: Connector[] = [];
  for (const name of config.connectors) {
    if (name === 'postgres') connectors.push(createEstateConnector({ url: estateUrl(config) }));
    if (name === 'aws') connectors.push(buildAwsConnector(config, opts.localAws));
    if (name === 'openbao') {
      connectors.push(
        new AppRoleConnector({
          vault: buildVaultClient(config, opts.localOpenBao),
          mount: config.VAULT_APPROLE_MOUNT,
          entitlements: config.VAULT_ENTITLEMENTS ?? (config.demo ? OPENBAO_DEMO_ENTITLEMENTS : {}),
        }),
      );
    }
  }
  return createConnectorRegistry(connectors);
}

/**
 * The orchestrator database pool of a worker process: 30, not lib/db.ts's 10. Each local activity that
 * reconciles holds a connection (the NHI's lock) while the target answers; with 10, the other steps of
 * every concurrent elevation queued behind them (docs/performance.md, bench:jit's pool column).
 */
export const ORCHESTRATOR_POOL_MAX = 30;

export function buildDependencies(config: Config, logger: Logger, opts: LocalTargets = {}): BuiltDependencies {
  const pool = createPool(orchestratorDatabaseUrl(config), { max: ORCHESTRATOR_POOL_MAX });
  const connectors = buildConnectors(config, opts);
  const deps: ActivityDeps = {
    pool,
    connectors,
    secrets: buildSecretStore(config, pool, opts.localOpenBao),
    // Loaded and validated at start-up: an invalid policy stops the worker here.
    policy: loadNhiPolicies(path.resolve(projectRoot, config.POLICY_DIR)),
    notifier: buildNotifier(config, logger),
    authorityKey: authorityKey(config),
  };
  return {
    deps,
    pool,
    connectors,
    async close() {
      await connectors.close();
      await pool.end().catch(() => undefined);
    },
  };
}

/** Start-up check of every configured connector (checkConnectorSetup each); name → target reached. */
export async function checkConnectorsSetup(connectors: OwnedConnectorRegistry, logger: Logger): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of connectors.configuredConnectors()) out[name] = await checkConnectorSetup(connectors.get(name), logger);
  return out;
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
