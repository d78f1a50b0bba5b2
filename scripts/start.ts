// `npm start`: the whole orchestrator in one terminal — Temporal dev server (with UI; or the server
// TEMPORAL_ADDRESS names, where our search attributes are registered if missing), embedded
// PostgreSQL (or DATABASE_URL), the demo estate, the worker and the HTTP API. Ctrl-C stops it all.
import type { Server } from 'node:http';
import path from 'node:path';
import { Client as PgClient, type Pool } from 'pg';
import { createApp } from '../api/app';
import { createScenarioRouters } from '../api/scenarios';
import { ConfigError, loadConfig, type Config } from '../lib/config';
import { embeddedPostgresUrl, ORCHESTRATOR_DATABASE, redactUrl } from '../lib/config-urls';
import { migrate } from '../lib/db';
import { DEFAULT_CONNECTOR_ROLE, ensureConnectorRole, ensureDemoEstate, loadOrCreateConnectorPassword } from '../lib/estate';
import { createLogger, type Logger } from '../lib/logger';
import { randomBytes } from 'node:crypto';
import { productionProblems, secureDataDir, withPrivateUmask } from '../lib/data-dir';
import { AesGcmPayloadCodec, payloadKeysFrom, uiOrigins } from '../lib/payload-codec';
import type { Role } from '../lib/principals';
import { demoTokenLines, demoTokens } from './demo-tokens';
import { ensureSearchAttributes, type SearchAttributesResult } from '../lib/search-attributes';
import { connectClient, usesExternalTemporal } from '../lib/temporal-connection';
import { anomalySettingsFrom, detectorSettingsFrom, ensureUsageCollectorSchedule } from '../scenarios/anomaly/usage';
import { startDevServer, type DevServer } from '../temporal-dev/dev-server';
import { firstHourLines } from './banner';
import { ensureDriftSchedule } from '../enforcement/drift-schedule';
import { buildDependencies, buildVaultClient, checkConnectorsSetup, estateAdminUrl } from '../workers/deps';
import { ensureAwsDemoEstate, type AwsTarget } from '../lib/aws-estate';
import { startLocalAws } from '../local-servers/moto';
import { startLocalOpenBao } from '../local-servers/openbao';
import { ensureOpenBaoDemoEstate } from '../lib/openbao-estate';
import { buildWorker, installRuntimeLogging, prebuildWorkflowBundle } from '../workers/worker';

export const DEMO_PRINCIPALS: { id: string; roles: Role[] }[] = [
  { id: 'alice', roles: ['requester'] },
  { id: 'bob', roles: ['approver'] },
  { id: 'carol', roles: ['approver'] },
  { id: 'deploy-bot', roles: ['deployer'] },
  { id: 'detector-bot', roles: ['detector'] },
  { id: 'admin', roles: ['admin'] },
];

const stops: { name: string; stop: () => Promise<unknown> }[] = [];
let stopping = false;

async function shutdown(logger: Logger, code: number) {
  if (stopping) return;
  stopping = true;
  logger.info('shutting down…');
  for (const { name, stop } of stops.reverse()) {
    try {
      await stop();
    } catch (err) {
      logger.warn({ err: String(err) }, `stopping ${name} failed`);
    }
  }
  process.exit(code);
}

async function ensureDatabase(adminUrl: string, name: string) {
  const c = new PgClient({ connectionString: adminUrl });
  await c.connect();
  try {
    const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await c.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } finally {
    await c.end();
  }
}

/** The server's own version string (`15.8 (Debian 15.8-1.pgdg120+1)`), for the banner. */
async function serverVersion(pool: Pool): Promise<string> {
  const { rows } = await pool.query<{ server_version: string }>('SHOW server_version');
  return rows[0]?.server_version ?? 'unknown version';
}

/** A database URL fit to print: password masked, also one given as a query parameter. */
function printableDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return redactUrl(u.toString());
  } catch {
    return redactUrl(url);
  }
}

function describeSearchAttributes(r: SearchAttributesResult): string {
  const all = [...r.registered, ...r.present];
  if (r.registered.length) return `${r.registered.join(', ')} registered now${r.present.length ? ` (${r.present.join(', ')} were there)` : ''}`;
  return `${all.join(', ')} present${r.typesChecked ? '' : ' (types unchecked: the operator service refused to list them)'}`;
}

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const logger = createLogger(config.LOG_LEVEL, { pretty: process.stdout.isTTY, name: 'nhi' });
  process.once('SIGINT', () => void shutdown(logger, 0));
  process.once('SIGTERM', () => void shutdown(logger, 0));
  // Private data folder (0700/0600, umask 077 for what the children create); production refuses dev shortcuts.
  const problems = productionProblems(config);
  if (problems.length) {
    process.stderr.write(`refusing to start in production:\n- ${problems.join('\n- ')}\n`);
    process.exit(1);
  }
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  secureDataDir(config.dataDir, { traversable: asRoot && !config.DATABASE_URL });
  installRuntimeLogging(logger.child({ level: 'warn' }), 'WARN', { metricsAddress: config.TEMPORAL_METRICS_ADDRESS });

  // Payload encryption (on by default: a dev key file in the data folder) and the UI's codec key.
  const codecKeys = payloadKeysFrom(config, { create: true });
  const codecUiKey = config.CODEC_UI_KEY ?? randomBytes(24).toString('base64url');

  // 1. Temporal: the dev server with its UI, unless TEMPORAL_ADDRESS / a profile points elsewhere.
  const externalTemporal = usesExternalTemporal(config);
  let dev: DevServer | undefined;
  if (!externalTemporal) {
    const temporalLog = logger.child({ component: 'temporal-server' });
    dev = await withPrivateUmask(() => startDevServer({
      codecEndpoint: codecKeys ? `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}/codec/ui/${codecUiKey}` : undefined,
      dataDir: config.dataDir,
      port: config.TEMPORAL_PORT,
      uiPort: config.TEMPORAL_UI_PORT,
      namespace: config.TEMPORAL_NAMESPACE,
      onOutput: (line) => (/level=(ERROR|FATAL)/.test(line) && !stopping ? temporalLog.error(line) : temporalLog.debug(line)),
    }));
    const started = dev;
    stops.push({ name: 'temporal dev server', stop: () => started.stop() });
  }
  const { client, connection, namespace, address, source } = await connectClient(config);
  stops.push({ name: 'temporal client', stop: () => connection.close() });
  // Before anything else: the workflows cannot start on a namespace without our search attributes.
  const attributes = await ensureSearchAttributes(connection, { namespace, address });
  if (attributes.registered.length) logger.info({ namespace, registered: attributes.registered }, 'search attributes registered');

  // 2. PostgreSQL: embedded (data in DATA_DIR/postgres) unless DATABASE_URL is set.
  if (!config.DATABASE_URL) {
    const { startEmbeddedPostgres } = await import('../lib/embedded-postgres.mjs');
    const pgLog = logger.child({ component: 'postgres' });
    const pg = await startEmbeddedPostgres({
      dataDir: path.join(config.dataDir, 'postgres'),
      port: config.EMBEDDED_PG_PORT,
      onLog: (m: unknown) => pgLog.debug(String(m).trim()),
    });
    stops.push({ name: 'embedded postgres', stop: () => pg.stop() });
    await ensureDatabase(embeddedPostgresUrl(config, 'postgres'), ORCHESTRATOR_DATABASE);
  }

  // 2b. The local AWS endpoint (moto, in memory) for the aws connector, unless AWS_ENDPOINT_URL / LOCAL_AWS=false.
  let localAws: AwsTarget | undefined;
  if (config.connectors.includes('aws') && config.localAws) {
    const awsLog = logger.child({ component: 'local-aws' });
    const aws = await startLocalAws({ port: config.LOCAL_AWS_PORT, onOutput: (line) => awsLog.debug(line) });
    stops.push({ name: 'local aws', stop: () => aws.stop() });
    localAws = { endpoint: aws.endpoint, region: aws.region, credentials: aws.admin };
  }

  // 2c. The local OpenBao dev server (in memory) for the openbao connector / SECRET_STORE=vault, unless VAULT_ADDR / LOCAL_OPENBAO=false.
  let localOpenBao: { addr: string; token: string } | undefined;
  if ((config.connectors.includes('openbao') || config.SECRET_STORE === 'vault') && config.localOpenBao) {
    const baoLog = logger.child({ component: 'local-openbao' });
    const bao = await startLocalOpenBao({ port: config.LOCAL_OPENBAO_PORT, onOutput: (line) => baoLog.debug(line) });
    stops.push({ name: 'local openbao', stop: () => bao.stop() });
    localOpenBao = { addr: bao.addr, token: bao.token };
  }

  // 3. Dependencies, migrations, demo estate.
  const built = buildDependencies(config, logger, { localAws, localOpenBao });
  stops.push({ name: 'database pools', stop: () => built.close() });
  const applied = await migrate(built.pool);
  if (applied.length) logger.info({ applied }, 'migrations applied');
  let tokens: Record<string, string> = {};
  if (config.demo) {
    if (!config.ESTATE_DATABASE_URL) {
      const adminUrl = estateAdminUrl(config);
      await ensureConnectorRole(adminUrl, { role: DEFAULT_CONNECTOR_ROLE, password: loadOrCreateConnectorPassword(config.dataDir) });
      const estate = await ensureDemoEstate({ adminUrl, secretStore: built.deps.secrets, orchestratorPool: built.pool });
      logger.info({ database: estate.database, nhis: estate.nhis.map((n) => n.id) }, 'demo estate ready');
    }
    if (localAws) {
      const aws = await ensureAwsDemoEstate({ aws: localAws, secretStore: built.deps.secrets, orchestratorPool: built.pool });
      logger.info({ created: aws.created, credentialsIssued: aws.credentialsIssued }, 'demo AWS estate ready');
    }
    if (localOpenBao && config.connectors.includes('openbao')) {
      const bao = await ensureOpenBaoDemoEstate({ vault: buildVaultClient(config, localOpenBao), mount: config.VAULT_APPROLE_MOUNT, secretStore: built.deps.secrets, orchestratorPool: built.pool });
      logger.info({ credentialsIssued: bao.credentialsIssued }, 'demo OpenBao estate ready');
    }
    tokens = await demoTokens(config.dataDir, built.pool, DEMO_PRINCIPALS);
  }
  // Each connector's own identity: what it lacks stops the start here.
  const targets = await checkConnectorsSetup(built.connectors, logger);
  const estateTarget = targets.postgres ?? 'not configured';

  // 4. Worker and API.
  built.deps.temporal = { client, taskQueue: config.TEMPORAL_TASK_QUEUE };
  const { worker, connection: workerConnection } = await buildWorker(config, built.deps, { workflowBundle: await prebuildWorkflowBundle() });
  const workerDone = worker.run();
  stops.push({
    name: 'worker',
    stop: async () => {
      // The Temporal runtime may already have begun the shutdown on the same signal.
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await workerDone;
      await workerConnection.close();
    },
  });
  const temporal = { client, taskQueue: config.TEMPORAL_TASK_QUEUE, namespace };
  if (config.USAGE_COLLECTOR) {
    // Live usage from the estate every interval: sessions per role → buckets → detector → throttles.
    const schedule = await ensureUsageCollectorSchedule(client, {
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      input: { version: 1, intervalSeconds: config.USAGE_COLLECTOR_INTERVAL_SECONDS, detector: detectorSettingsFrom(config), anomaly: anomalySettingsFrom(config) },
    });
    logger.info({ ...schedule, everySeconds: config.USAGE_COLLECTOR_INTERVAL_SECONDS }, 'usage collector schedule ready');
  }
  if (config.DRIFT_SCHEDULE) {
    // Access that appears outside the orchestrator is reverted or reported (policies/drift.cedar).
    const drift = await ensureDriftSchedule(client, { taskQueue: config.TEMPORAL_TASK_QUEUE, intervalMinutes: config.DRIFT_INTERVAL_MINUTES });
    logger.info({ ...drift, everyMinutes: config.DRIFT_INTERVAL_MINUTES }, 'drift check schedule ready');
  }
  const codec = codecKeys ? { codec: new AesGcmPayloadCodec(codecKeys), uiKey: codecUiKey, uiOrigins: uiOrigins(config, dev?.uiUrl) } : undefined;
  // The console's dev sign-in picker offers the demo principals (loopback callers only).
  const consoleOptions = { temporalUiUrl: dev?.uiUrl, namespace, demoPrincipals: config.demo ? () => DEMO_PRINCIPALS.map((p) => ({ ...p, token: tokens[p.id] })) : undefined };
  const app = createApp({ pool: built.pool, temporal, config, logger, console: consoleOptions, connectors: built.deps.connectors, codec, extraRouters: createScenarioRouters({ pool: built.pool, temporal, config, policy: built.deps.policy, connectors: built.deps.connectors, authorityKey: built.deps.authorityKey }) });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.PORT, config.HOST, () => resolve(s));
    s.once('error', reject);
  });
  stops.push({ name: 'api', stop: () => new Promise((r) => server.close(() => r(undefined))) });

  // What the servers created while starting (Temporal's WAL files, key files) is private too.
  secureDataDir(config.dataDir, { traversable: asRoot && !config.DATABASE_URL });
  const api = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
  const pgVersion = await serverVersion(built.pool);
  const pgUrl = printableDatabaseUrl(built.pool.options.connectionString ?? '');
  const lines = [
    '',
    'NHI orchestrator is running',
    `  API            ${api}`,
    `  API docs       ${api}/docs`,
    ...(dev
      ? [`  Temporal       dev server started here, namespace ${namespace}`, `  Temporal UI    ${dev.uiUrl}`, `  Temporal gRPC  ${dev.address}`]
      : [`  Temporal       external ${address}, namespace ${namespace} (${source === 'profile' ? `envconfig profile ${process.env.TEMPORAL_PROFILE ?? 'default'}` : 'TEMPORAL_ADDRESS'})`]),
    `  Search attrs   ${describeSearchAttributes(attributes)}`,
    config.DATABASE_URL
      ? `  PostgreSQL     ${pgVersion} at ${pgUrl} (DATABASE_URL)`
      : `  PostgreSQL     ${pgVersion}, embedded (started here, data in ${path.join(config.dataDir, 'postgres')}): ${pgUrl}`,
    `  Estate         ${estateTarget}${config.ESTATE_DATABASE_URL ? ' (ESTATE_DATABASE_URL)' : ', demo estate'}`,
    ...(targets.aws ? [`  AWS IAM        ${targets.aws}${localAws ? ' (local moto, in memory: recreated on each start)' : ''}`] : []),
    ...(targets.openbao ? [`  OpenBao        ${targets.openbao}${localOpenBao ? ' (local dev server, in memory: recreated on each start)' : ''}`] : []),
    `  Secret store   ${config.SECRET_STORE === 'vault' ? `KV v2 ${config.VAULT_KV_MOUNT}/${config.VAULT_KV_PREFIX} at ${localOpenBao?.addr ?? config.VAULT_ADDR}` : 'encrypted table (secrets)'}`,
    `  Data folder    ${config.dataDir}`,
    `  Payloads       ${codecKeys ? `encrypted (AES-256-GCM, key ${codecKeys.current}); UI codec at /codec` : 'not encrypted (PAYLOAD_ENCRYPTION=off or no PAYLOAD_KEYS)'}`,
  ];
  lines.push(...demoTokenLines({ tokens, principals: DEMO_PRINCIPALS, tty: Boolean(process.stdout.isTTY), dataDir: config.dataDir, api }));
  lines.push(...firstHourLines({ api, config, temporalUiUrl: dev?.uiUrl, namespace }));
  lines.push('', 'Ctrl-C stops everything.', '');
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch(async (err) => {
  process.stderr.write(`start failed: ${err?.message ?? err}\n`);
  const logger = createLogger('error');
  await shutdown(logger, 1);
});
