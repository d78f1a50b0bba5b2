// One config module: the environment, validated with zod, with start-up errors that name the variable.
import path from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);
const duration = z.coerce.number().int().positive();
const postgresUrl = z
  .string()
  .url()
  .refine((u) => /^postgres(ql)?:\/\//.test(u), 'must be a postgres:// or postgresql:// URL');

/** A JSON map of logical entitlement names (as policies name them) to what is behind each at the target. */
const entitlementMap = <T extends z.ZodType>(entry: T, example: string) =>
  z
    .string()
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: `must be JSON: ${example}` });
        return z.NEVER;
      }
    })
    .pipe(z.record(z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/), entry));

/** AWS_ENTITLEMENTS: logical name → an IAM group or managed policy (connectors/aws-iam.ts). */
const awsEntitlements = entitlementMap(
  z
    .object({ group: z.string().min(1).optional(), policy: z.string().min(1).optional(), writeCapable: z.boolean().optional(), readOnlyForm: z.string().optional() })
    .strict()
    .refine((e) => Boolean(e.group) !== Boolean(e.policy), 'give exactly one of group or policy'),
  '{"logical_name": {"group": "..."} | {"policy": "name or ARN"}, ...}',
);

/** VAULT_ENTITLEMENTS: logical name → a Vault policy attached to AppRoles (connectors/openbao-approle.ts). */
const vaultEntitlements = entitlementMap(
  z.object({ policy: z.string().min(1), writeCapable: z.boolean().optional(), readOnlyForm: z.string().optional() }).strict(),
  '{"logical_name": {"policy": "..."}, ...}',
);

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port.default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  /** When set, the Temporal connection comes from it (and the rest of TEMPORAL_* / envconfig profiles). */
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('nhi-orchestrator'),
  /** host:port where the worker's Temporal runtime serves its own Prometheus metrics; unset: off. */
  TEMPORAL_METRICS_ADDRESS: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:9464').optional(),
  /** When set, GET /metrics needs it as a bearer token from every caller; unset: loopback callers only. */
  METRICS_TOKEN: z.string().min(32, 'must be at least 32 characters').optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_URL: postgresUrl.optional(),
  ESTATE_DATABASE_URL: postgresUrl.optional(),
  /** Port of the embedded PostgreSQL used when DATABASE_URL is unset. */
  EMBEDDED_PG_PORT: port.default(5433),
  /** AES-256-GCM key for the secret store: 32 bytes, base64 or hex. In dev a key file in DATA_DIR is generated. */
  SECRET_STORE_KEY: z
    .string()
    .refine((k) => decodeKey(k) !== null, 'must be 32 bytes as base64 or 64 hex characters')
    .optional(),
  /** HMAC key the API signs principals with and the workers verify (32 bytes, base64 or hex). In dev a key file in DATA_DIR is generated. */
  AUTHORITY_KEY: z
    .string()
    .refine((k) => decodeKey(k) !== null, 'must be 32 bytes as base64 or 64 hex characters')
    .optional(),
  POLICY_DIR: z.string().min(1).default('policies'),
  /** Connectors to configure (postgres, aws, openbao); default postgres, and all three in development (npm start runs local AWS and OpenBao). */
  CONNECTORS: z
    .string()
    .transform((s) => [...new Set(s.split(',').map((c) => c.trim()).filter(Boolean))])
    .pipe(z.array(z.enum(['postgres', 'aws', 'openbao'])).min(1))
    .optional(),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  /** An AWS endpoint override (a local moto); unset in production. */
  AWS_ENDPOINT_URL: z.url({ protocol: /^https?$/ }).optional(),
  AWS_ENTITLEMENTS: awsEntitlements.optional(),
  /** npm start runs a local AWS endpoint (moto) for the aws connector; default: in development, when AWS_ENDPOINT_URL is unset. */
  LOCAL_AWS: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1')),
  LOCAL_AWS_PORT: port.default(4566),
  /** Where issued credentials are kept: the encrypted `secrets` table, or a KV v2 mount of OpenBao / Vault. */
  SECRET_STORE: z.enum(['table', 'vault']).default('table'),
  VAULT_ADDR: z.url({ protocol: /^https?$/ }).optional(),
  VAULT_NAMESPACE: z.string().min(1).optional(),
  VAULT_TOKEN: z.string().min(1).optional(),
  /** AppRole login instead of a token: both ids. */
  VAULT_ROLE_ID: z.string().min(1).optional(),
  VAULT_SECRET_ID: z.string().min(1).optional(),
  VAULT_KV_MOUNT: z.string().regex(/^[\w.-]+$/).default('secret'),
  VAULT_KV_PREFIX: z.string().regex(/^[\w.-]+(\/[\w.-]+)*$/).default('nhi'),
  /** The openbao connector: AppRoles under this auth mount, policies by logical names. */
  VAULT_APPROLE_MOUNT: z.string().regex(/^[\w.-]+$/).default('approle'),
  VAULT_ENTITLEMENTS: vaultEntitlements.optional(),
  /** npm start runs a local OpenBao dev server; default: in development, when VAULT_ADDR is unset. */
  LOCAL_OPENBAO: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1')),
  LOCAL_OPENBAO_PORT: port.default(8200),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Comma-separated URLs that receive HMAC-signed JSON notifications. */
  NOTIFY_WEBHOOK_URLS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((u) => u.trim()).filter(Boolean))
    .pipe(z.array(z.string().url())),
  NOTIFY_WEBHOOK_SECRET: z.string().min(16).optional(),
  GITHUB_WEBHOOK_SECRET: z.string().min(1).optional(),
  GITGUARDIAN_WEBHOOK_SECRET: z.string().min(1).optional(),
  /** When set, GitHub alerts are fetched from the REST API to fingerprint the leaked secret (needs secret scanning read access). */
  GITHUB_TOKEN: z.string().min(20, 'must be a GitHub token (at least 20 characters)').optional(),
  /** GitHub REST API base URL (GitHub Enterprise Server: https://HOST/api/v3). */
  GITHUB_API_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).default('https://api.github.com'),
  /** JIT: how long an unanswered approval request waits before it expires. */
  APPROVAL_TIMEOUT_MINUTES: duration.default(60),
  /** JIT: how long before expiry the warning notification goes out. */
  EXPIRY_WARNING_MINUTES: duration.default(10),
  /** How many failed revocation attempts raise an escalation. */
  REVOKE_ESCALATION_ATTEMPTS: duration.default(5),
  /** Anomaly throttling: minutes at level 1 without an answer (anomaly persisting) before level 2 (login suspended). */
  ANOMALY_ACK_TIMEOUT_MINUTES: duration.default(30),
  /** Anomaly throttling: minutes at level 2 without an answer before leak containment. */
  ANOMALY_ESCALATION_TIMEOUT_MINUTES: duration.default(30),
  /** Anomaly throttling: level 1's CONNECTION LIMIT. */
  ANOMALY_CONNECTION_LIMIT: duration.default(2),
  /** Detector: rate > max(K × baseline, baseline + Z·σ) and ≥ MIN_RATE events per minute. */
  ANOMALY_K: z.coerce.number().min(1).default(3),
  ANOMALY_Z: z.coerce.number().min(0).default(4),
  ANOMALY_MIN_RATE: z.coerce.number().min(0).default(10),
  /** Detector: EWMA half-life, and the history needed before it replaces the declared baseline. */
  ANOMALY_HALF_LIFE_MINUTES: z.coerce.number().positive().default(120),
  ANOMALY_MIN_HISTORY_MINUTES: duration.default(30),
  /** The usage collector's Temporal Schedule: interval, and whether `npm start` registers it. */
  USAGE_COLLECTOR_INTERVAL_SECONDS: z.coerce.number().int().min(10).max(3600).default(60),
  USAGE_COLLECTOR: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  /** The drift check's Temporal Schedule: interval, and whether the worker registers it. */
  DRIFT_INTERVAL_MINUTES: z.coerce.number().int().min(1).max(1440).default(5),
  DRIFT_SCHEDULE: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  API_BODY_LIMIT: z.string().default('1mb'),
  /** Workflow payloads encrypted at rest in Temporal (lib/payload-codec.ts): on when keys exist (PAYLOAD_KEYS, or a dev key file). */
  PAYLOAD_ENCRYPTION: z.enum(['on', 'off']).default('on'),
  /** "id:key,id:key": 32-byte AES-256-GCM keys; the first encrypts, all decrypt (rotation). */
  PAYLOAD_KEYS: z
    .string()
    .refine((s) => s.split(',').every((p) => /^[A-Za-z0-9_.-]{1,64}:([0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=)$/.test(p.trim())), 'must be id:key[,id:key…] with 32-byte keys (base64 or 64 hex)')
    .optional(),
  /** The key in the UI's codec endpoint path (/codec/ui/<key>); in dev a random one per start. */
  CODEC_UI_KEY: z.string().regex(/^[A-Za-z0-9_-]{32,128}$/, 'must be 32-128 characters: letters, digits, _ or -').optional(),
  /** Origins of the Temporal UI allowed to call the codec server (/codec); default the local dev UI. */
  TEMPORAL_UI_ORIGINS: z.string().optional(),
  /** Rate limits (api/edges.ts), per window: 401s per source IP, writes per principal and per source IP. */
  RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  RATE_LIMIT_AUTH_FAILURES: z.coerce.number().int().min(1).default(60),
  RATE_LIMIT_WRITES_PER_PRINCIPAL: z.coerce.number().int().min(1).default(600),
  RATE_LIMIT_WRITES_PER_IP: z.coerce.number().int().min(1).default(1200),
  /** Dev mode only: create demo principals, print their tokens, create the demo estate. */
  DEMO: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1')),
});

export type Config = z.infer<typeof configSchema> & {
  dataDir: string;
  demo: boolean;
  connectors: ('postgres' | 'aws' | 'openbao')[];
  localAws: boolean;
  localOpenBao: boolean;
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function decodeKey(k: string): Buffer | null {
  const hex = /^[0-9a-fA-F]{64}$/.test(k) ? Buffer.from(k, 'hex') : null;
  if (hex) return hex;
  const b64 = Buffer.from(k, 'base64');
  return b64.length === 32 ? b64 : null;
}

/** Parse the environment. Empty strings count as unset, so `PORT= npm start` means the default. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = i.path.join('.') || '(environment)';
        const value = cleaned[String(i.path[0])];
        return `${name}: ${i.message}${value !== undefined && !/KEY|SECRET|TOKEN/.test(name) ? ` (got ${JSON.stringify(value)})` : ''}`;
      }),
    );
  }
  const c = parsed.data;
  const localOpenBao = c.LOCAL_OPENBAO ?? (c.NODE_ENV === 'development' && !c.VAULT_ADDR);
  const connectors = c.CONNECTORS ?? (c.NODE_ENV === 'development' ? ['postgres', 'aws', 'openbao'] : ['postgres']);
  if ((c.SECRET_STORE === 'vault' || connectors.includes('openbao')) && !localOpenBao) {
    const problems = [
      ...(c.VAULT_ADDR ? [] : ['VAULT_ADDR: required with SECRET_STORE=vault or the openbao connector']),
      ...(c.VAULT_TOKEN || (c.VAULT_ROLE_ID && c.VAULT_SECRET_ID)
        ? []
        : ['VAULT_TOKEN: required with SECRET_STORE=vault or the openbao connector, unless VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole) are set']),
    ];
    if (problems.length) throw new ConfigError(problems);
  }
  return {
    ...c,
    dataDir: path.resolve(c.DATA_DIR),
    demo: c.DEMO ?? c.NODE_ENV === 'development',
    connectors,
    localAws: c.LOCAL_AWS ?? (c.NODE_ENV === 'development' && !c.AWS_ENDPOINT_URL),
    localOpenBao,
  };
}
