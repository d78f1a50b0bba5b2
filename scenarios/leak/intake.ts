// Leak-alert intake: webhook signature checks, vendor payload parsing into one NormalizedAlert,
// exposure-hint and fingerprint matching, and the generic `POST /v1/leaks` body. Pure functions
// (no I/O), so the API, the workflow's activities and the tests share one definition.
//
// Nothing here ever holds a secret value except `sha256Hex`/`hmslHash`/`fingerprintsFor`, which
// the secret store calls inside an activity to record fingerprints of credentials it issued.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { hmslHash, sha256Hex } from '../../lib/fingerprints';
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Types

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const severitySchema = z.enum(SEVERITIES);

export type AlertSource = 'github' | 'gitguardian' | 'generic';

/** Fingerprints travel labelled (`kind:value`) so one list can mix hash schemes. */
export type FingerprintKind = 'sha256' | 'hmsl' | 'gg-secret-hash';

export interface NormalizedAlert {
  source: AlertSource;
  /** Stable per vendor alert, e.g. `github:acme/payments-api#42`, `gitguardian:3759`. */
  externalId: string;
  deliveryId?: string;
  /** Only generic alerts name their NHI directly. */
  nhiId?: string;
  action: string;
  /** false: record only (e.g. resolved); the alert joins the incident as evidence. */
  trigger: boolean;
  severity: Severity;
  repository?: string;
  secretType?: string;
  /** Labelled, e.g. `sha256:<hex>`, `hmsl:<hex>`, `gg-secret-hash:<opaque>`. */
  fingerprints: string[];
  evidenceUrl?: string;
  /** ISO 8601, UTC. */
  detectedAt: string;
  /** One line for the UI and logs. */
  summary: string;
}

/** A well-formed delivery we deliberately do not act on (the API answers 202 with the reason). */
export interface Ignored {
  ignored: true;
  source: AlertSource;
  reason: string;
  event?: string;
  action?: string;
  externalId?: string;
  deliveryId?: string;
}

export function isIgnored(r: NormalizedAlert | Ignored): r is Ignored {
  return (r as Ignored).ignored === true;
}

/** A payload for an action we handle that does not match the vendor's schema (→ 400). */
export class LeakPayloadError extends Error {
  override readonly name = 'LeakPayloadError';
  readonly type = 'InvalidRequest'; // ErrorType.InvalidRequest: the API answers 400
  constructor(
    readonly source: AlertSource,
    readonly issues: { path: string; message: string }[],
  ) {
    super(`invalid ${source} payload: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Signatures

const SHA256_HEADER = /^sha256=([0-9a-fA-F]{64})$/;

function hmacMatches(key: string, rawBody: Buffer, hex: string): boolean {
  const expected = createHmac('sha256', key).update(rawBody).digest();
  const given = Buffer.from(hex, 'hex');
  // Lengths are equal after the regex check; kept because timingSafeEqual throws otherwise.
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`. */
export function verifyGithubSignature(rawBody: Buffer, header: string | undefined, secret: string): boolean {
  // An empty secret is a public key: anyone could sign. Treat as misconfiguration, accept nothing.
  if (!secret || typeof header !== 'string') return false;
  const m = SHA256_HEADER.exec(header.trim());
  return m !== null && hmacMatches(secret, rawBody, m[1]);
}

export type GitguardianVerification =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch' };

/**
 * GitGuardian custom webhook: `Gitguardian-Signature: sha256=<hex>` where the HMAC key is the
 * `Timestamp` header (unix seconds) followed by the signature token. The signature is checked
 * before the age, so `stale` means "genuine but old" (a replay or a skewed clock) in the logs.
 */
export function verifyGitguardianSignature(
  rawBody: Buffer,
  signatureHeader: string | undefined,
  timestampHeader: string | undefined,
  secret: string,
  now: Date,
  toleranceSeconds = 300,
): GitguardianVerification {
  if (!signatureHeader || !timestampHeader) return { ok: false, reason: 'missing' };
  const m = SHA256_HEADER.exec(signatureHeader.trim());
  const ts = timestampHeader.trim();
  if (!m || !/^\d{1,12}$/.test(ts)) return { ok: false, reason: 'malformed' };
  if (!secret || !hmacMatches(ts + secret, rawBody, m[1])) return { ok: false, reason: 'mismatch' };
  if (Math.abs(now.getTime() / 1000 - Number(ts)) > toleranceSeconds) return { ok: false, reason: 'stale' };
  return { ok: true };
}

// ---------------------------------------------------------------------------------------------
// Fingerprints

export { hmslHash, sha256Hex } from '../../lib/fingerprints';

/** Both fingerprints of an issued credential, for the secret store to record beside it. */
export function fingerprintsFor(secretValue: string): { sha256: string; hmsl: string } {
  return { sha256: sha256Hex(secretValue), hmsl: hmslHash(secretValue) };
}

export function labelFingerprint(kind: FingerprintKind, value: string): string {
  return `${kind}:${value}`;
}

/** The values of one kind from an alert's labelled fingerprints, e.g. all `hmsl` hashes. */
export function fingerprintsOfKind(alert: Pick<NormalizedAlert, 'fingerprints'>, kind: FingerprintKind): string[] {
  const prefix = `${kind}:`;
  return alert.fingerprints.filter((f) => f.startsWith(prefix)).map((f) => f.slice(prefix.length));
}

// ---------------------------------------------------------------------------------------------
// Exposure hints

export interface ExposureHint {
  repository: string;
  secretType?: string;
}

const normRepo = (r: string) => r.trim().toLowerCase().replace(/\/+$/, '').replace(/\.git$/, '');

/**
 * NHIs whose registered hints name the alert's repository (case-insensitive, as GitHub names
 * are) and, when the hint gives one, its secret type. Hint secret types are vendor-specific
 * (`postgres_connection_uri` on GitHub, `postgres_assignment` on GitGuardian): register one each.
 */
export function matchByExposureHints(
  alert: Pick<NormalizedAlert, 'repository' | 'secretType'>,
  nhis: { id: string; exposureHints: ExposureHint[] }[],
): string[] {
  if (!alert.repository) return [];
  const repo = normRepo(alert.repository);
  const type = alert.secretType?.toLowerCase();
  const ids: string[] = [];
  for (const nhi of nhis) {
    const hit = nhi.exposureHints.some(
      (h) => normRepo(h.repository) === repo && (!h.secretType || h.secretType.toLowerCase() === type),
    );
    if (hit && !ids.includes(nhi.id)) ids.push(nhi.id);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Shared parsing helpers

// Vendors send `Z`, offsets, or microseconds; normalise to one ISO form.
const isoDateTime = z.iso.datetime({ offset: true });
const toIso = (s: string) => new Date(s).toISOString();

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** Vendor strings go into a one-line summary: no control characters, bounded length. */
function oneLine(s: string, max = 200): string {
  const flat = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function issuesOf(err: z.ZodError): { path: string; message: string }[] {
  // Path and message only: zod does not echo input by default, and we keep it that way.
  return err.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

const actionOnly = z.object({ action: z.string().min(1).max(100) });

// ---------------------------------------------------------------------------------------------
// GitHub secret_scanning_alert

// Only the fields we use. z.object strips everything else, so a `secret` field (present in the
// REST API's alert, never in the webhook) cannot ride along into history.
export const githubSecretScanningAlertSchema = z.object({
  action: z.string().min(1).max(100),
  alert: z.object({
    number: z.number().int().positive(),
    created_at: isoDateTime,
    updated_at: isoDateTime.nullish(),
    resolved_at: isoDateTime.nullish(),
    html_url: httpUrl.nullish(),
    state: z.string().nullish(),
    resolution: z.string().nullish(),
    secret_type: z.string().min(1).max(200),
    // Strings rather than enums: a new vendor value must not turn a leak into a 400.
    validity: z.string().nullish(),
    publicly_leaked: z.boolean().nullish(),
  }),
  repository: z.object({ full_name: z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'must be owner/name') }),
});
export type GithubSecretScanningAlert = z.infer<typeof githubSecretScanningAlertSchema>;

const GITHUB_TRIGGER = new Set(['created', 'reopened', 'publicly_leaked']);
const GITHUB_RECORD = new Set(['resolved']);

// GitHub gives no severity. A leak that is public or still works is the worst case; a
// credential GitHub confirmed dead is low; unknown validity is treated as serious.
function githubSeverity(p: GithubSecretScanningAlert): Severity {
  if (p.action === 'publicly_leaked' || p.alert.publicly_leaked === true) return 'critical';
  if (p.alert.validity === 'active') return 'critical';
  if (p.alert.validity === 'inactive') return 'low';
  return 'high';
}

export function parseGithubAlert(
  event: string | undefined,
  deliveryId: string | undefined,
  json: unknown,
): NormalizedAlert | Ignored {
  // The delivery header is not covered by the signature: keep it bounded and on one line.
  deliveryId = deliveryId ? oneLine(deliveryId, 100) : undefined;
  const base = { ignored: true as const, source: 'github' as const, ...(deliveryId ? { deliveryId } : {}) };
  if (event !== 'secret_scanning_alert') {
    return { ...base, event, reason: `event ${oneLine(String(event ?? '(none)'), 60)} is not secret_scanning_alert` };
  }
  // Decide on the action first, so events we ignore never fail on a schema we don't need.
  const head = actionOnly.safeParse(json);
  if (!head.success) throw new LeakPayloadError('github', issuesOf(head.error));
  const action = head.data.action;
  const handled = GITHUB_TRIGGER.has(action) || GITHUB_RECORD.has(action) || action === 'validated';
  if (!handled) return { ...base, event, action, reason: `action ${oneLine(action, 60)} does not affect containment` };

  const parsed = githubSecretScanningAlertSchema.safeParse(json);
  if (!parsed.success) throw new LeakPayloadError('github', issuesOf(parsed.error));
  const p = parsed.data;
  const repository = p.repository.full_name;
  const externalId = `github:${repository}#${p.alert.number}`;

  if (action === 'validated' && p.alert.validity !== 'active') {
    return { ...base, event, action, externalId, reason: `validated as ${oneLine(String(p.alert.validity ?? 'unknown'), 30)}: only an active secret triggers` };
  }

  // When this event happened, not when the alert was first opened (keeps the timeline honest).
  const at =
    action === 'created' ? p.alert.created_at
    : action === 'resolved' ? (p.alert.resolved_at ?? p.alert.updated_at ?? p.alert.created_at)
    : (p.alert.updated_at ?? p.alert.created_at);

  const secretType = oneLine(p.alert.secret_type);
  return {
    source: 'github',
    externalId,
    ...(deliveryId ? { deliveryId } : {}),
    action,
    trigger: action !== 'resolved',
    severity: githubSeverity(p),
    repository,
    secretType,
    fingerprints: [],
    ...(p.alert.html_url ? { evidenceUrl: p.alert.html_url } : {}),
    detectedAt: toIso(at),
    summary: oneLine(`github #${p.alert.number} ${secretType} in ${repository}${action === 'created' ? '' : ` (${action})`}`),
  };
}

// ---------------------------------------------------------------------------------------------
// GitGuardian custom webhook

export const gitguardianIncidentSchema = z.object({
  source: z.string().nullish(),
  timestamp: isoDateTime.nullish(),
  action: z.string().min(1).max(100),
  incident: z.object({
    id: z.number().int().positive(),
    date: isoDateTime,
    detector: z.object({ name: z.string().min(1).max(200), display_name: z.string().nullish() }),
    // Opaque GitGuardian identifier; only useful to recognise the same secret again.
    secret_hash: z.string().min(1).max(200).nullish(),
    hmsl_hash: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters').nullish(),
    validity: z.string().nullish(),
    severity: z.string().nullish(),
    status: z.string().nullish(),
    regression: z.boolean().nullish(),
    gitguardian_url: httpUrl.nullish(),
  }),
  occurrence: z
    .object({
      url: httpUrl.nullish(),
      date: isoDateTime.nullish(),
      source: z.object({ full_name: z.string().nullish(), type: z.string().nullish() }).nullish(),
    })
    .nullish(),
});
export type GitguardianIncidentEvent = z.infer<typeof gitguardianIncidentSchema>;

const GG_TRIGGER = new Set(['incident_triggered', 'new_occurrence', 'incident_reopened', 'incident_regression']);
// Closed by a person in GitGuardian: worth keeping on the incident, never worth a rotation.
const GG_RECORD = new Set(['incident_resolved', 'incident_ignored']);

// GitGuardian's `info` has no counterpart; `unknown` (not yet scored) is treated as serious.
function gitguardianSeverity(s: string | null | undefined): Severity {
  switch (s?.toLowerCase()) {
    case 'critical': return 'critical';
    case 'high': return 'high';
    case 'medium': return 'medium';
    case 'low':
    case 'info': return 'low';
    default: return 'high';
  }
}

export function parseGitguardianEvent(json: unknown, deliveryId?: string): NormalizedAlert | Ignored {
  const base = { ignored: true as const, source: 'gitguardian' as const, ...(deliveryId ? { deliveryId } : {}) };
  const head = actionOnly.safeParse(json);
  if (!head.success) throw new LeakPayloadError('gitguardian', issuesOf(head.error));
  const action = head.data.action;
  if (!GG_TRIGGER.has(action) && !GG_RECORD.has(action)) {
    return { ...base, action, reason: `action ${oneLine(action, 60)} does not affect containment` };
  }

  const parsed = gitguardianIncidentSchema.safeParse(json);
  if (!parsed.success) throw new LeakPayloadError('gitguardian', issuesOf(parsed.error));
  const p = parsed.data;
  const inc = p.incident;
  const repository = oneLine(p.occurrence?.source?.full_name ?? '') || undefined;
  const secretType = oneLine(inc.detector.name);

  const fingerprints: string[] = [];
  if (inc.hmsl_hash) fingerprints.push(labelFingerprint('hmsl', inc.hmsl_hash.toLowerCase()));
  if (inc.secret_hash) fingerprints.push(labelFingerprint('gg-secret-hash', inc.secret_hash));

  // A new incident was detected at incident.date; later events happened at the event timestamp.
  const at = action === 'incident_triggered' ? inc.date : (p.timestamp ?? inc.date);
  const evidenceUrl = inc.gitguardian_url ?? p.occurrence?.url ?? undefined;

  return {
    source: 'gitguardian',
    externalId: `gitguardian:${inc.id}`,
    ...(deliveryId ? { deliveryId } : {}),
    action,
    trigger: GG_TRIGGER.has(action),
    severity: gitguardianSeverity(inc.severity),
    ...(repository ? { repository } : {}),
    secretType,
    fingerprints,
    ...(evidenceUrl ? { evidenceUrl } : {}),
    detectedAt: toIso(at),
    summary: oneLine(
      `gitguardian #${inc.id} ${secretType}${repository ? ` in ${repository}` : ''}` +
        `${action === 'incident_triggered' ? '' : ` (${action})`}`,
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// Generic alerts: POST /v1/leaks

export const NEVER_THE_SECRET = 'send the sha256 fingerprint, never the secret';

// Field names that only make sense if the caller is about to send us the secret itself.
const SECRET_KEY =
  /secret|passw|^pwd$|^pass$|token|credential|^value$|^key$|api[-_]?key|access[-_]?key|private[-_]?key|connection[-_]?string|^dsn$/i;

const CREDENTIAL_PATTERNS: RegExp[] = [
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/,
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/, // AWS access key id
  /\bgh[pousr]_[A-Za-z0-9]{30,}/, // GitHub tokens
  /\bgithub_pat_[A-Za-z0-9_]{20,}/,
  /\bglpat-[A-Za-z0-9_-]{20,}/, // GitLab
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/, // Slack
  /\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}/, // Stripe
  /\bsk-[A-Za-z0-9_-]{20,}/, // OpenAI / Anthropic style
  /\bAIza[0-9A-Za-z_-]{35}/, // Google API key
  /\bnpm_[A-Za-z0-9]{36}/,
  /\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\./, // JWT
  /^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i, // scheme://user:password@host
  /\b(?:password|passwd|pwd|secret|token|api[-_]?key)\s*[=:]\s*\S/i, // key=value pasted from a file
];

function shannonBitsPerChar(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) bits -= (n / s.length) * Math.log2(n / s.length);
  return bits;
}

/**
 * Heuristic: does this string look like a raw credential rather than a name, a URL or a sha256
 * fingerprint? Known token shapes, embedded passwords, and long random-looking tokens (the
 * orchestrator's own credentials are 43 base64url characters).
 */
export function looksLikeRawCredential(s: string): boolean {
  if (/^[0-9a-f]{64}$/.test(s)) return false; // a sha256 fingerprint is what we want
  if (CREDENTIAL_PATTERNS.some((re) => re.test(s))) return true;
  if (/^https?:\/\//i.test(s)) return urlCarriesCredential(s);
  return (s.match(/[A-Za-z0-9+/=_-]{20,}/g) ?? []).some(looksRandom);
}

// A base64-ish run of 20+ characters that breaks into word-like pieces (`Secret`, `Scanning`,
// `2024`) of under 3 characters on average: random text does (base62 ≈ 1.7, hex ≈ 2), names
// don't (≈ 5). Names are also dense in separators (`k8s-eu-west-1-a1b2`); base64 is not.
function looksRandom(run: string): boolean {
  const alnum = run.replace(/[^A-Za-z0-9]/g, '');
  if (run.length - alnum.length > run.length / 8) return false;
  const pieces = alnum.match(/[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+/g) ?? [];
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/].filter((re) => re.test(alnum)).length;
  return classes >= 2 && alnum.length / pieces.length < 3 && shannonBitsPerChar(run) >= 3;
}

function urlCarriesCredential(s: string): boolean {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return false;
  }
  if (u.password) return true;
  for (const [name, value] of u.searchParams) {
    if (SECRET_KEY.test(name) || /signature|^sig$/i.test(name) || looksLikeRawCredential(value)) return true;
  }
  return false;
}

/** Any string anywhere in an unknown value that looks like a credential, or a secret-named key. */
function carriesSecret(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return looksLikeRawCredential(v);
  if (depth > 8 || v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some((x) => carriesSecret(x, depth + 1));
  return Object.entries(v).some(([k, x]) => SECRET_KEY.test(k) || carriesSecret(x, depth + 1));
}

// Runs first and aborts, so the caller sees why rather than a format error about the value.
const rawText = (field: string) =>
  z.string().refine((s) => !looksLikeRawCredential(s), {
    message: `${field} looks like a credential: ${NEVER_THE_SECRET}`,
    abort: true,
  });

// Clocks differ a little between a detector and us; a minute of skew is not "the future".
const FUTURE_SKEW_MS = 60_000;

/** `now` is injectable for tests; the API uses `genericLeakSchema`. */
export function makeGenericLeakSchema(now: () => Date = () => new Date()) {
  return z
    .strictObject(
      {
        nhiId: rawText('nhiId')
          .regex(/^[a-z][a-z0-9_-]{1,62}$/, 'nhiId must be an NHI id (lowercase slug, 2–63 characters)')
          .optional(),
        fingerprint: z
          .string()
          .regex(/^[0-9a-f]{64}$/, `fingerprint must be the sha256 of the secret as 64 lowercase hex characters: ${NEVER_THE_SECRET}`)
          .optional(),
        // Not a secret: the key's name, what AWS's own exposure alerts give. Matched by its sha256, never kept.
        accessKeyId: z
          .string()
          .regex(/^(?:AKIA|ASIA)[A-Z0-9]{16}$/, 'accessKeyId must be an AWS access key id (AKIA or ASIA and 16 capital letters or digits): the id, never the secret access key')
          .optional(),
        source: rawText('source')
          .min(1, 'source is required')
          .max(64, 'source must be at most 64 characters')
          // No JavaScript regex flags: the pattern is published in the OpenAPI document (C0, DEL and C1 controls are out).
          .regex(/^(?=.*\S)[^\x00-\x1f\x7f-\x9f]+$/, 'source must be a single line of text'),
        severity: z.enum(SEVERITIES, { error: `severity must be one of ${SEVERITIES.join(', ')}` }),
        // The documented form (OpenAPI: uri, http(s), at most 2048); the pipe checks the same.
        evidenceUrl: rawText('evidenceUrl').max(2048, 'evidenceUrl must be at most 2048 characters').pipe(httpUrl).optional().meta({ type: 'string', format: 'uri', pattern: '^https?://[^\\s]+$', maxLength: 2048 }),
        detectedAt: z.iso
          .datetime({ offset: true, error: 'detectedAt must be an ISO 8601 date-time with a zone, e.g. 2026-11-20T09:14:03Z' })
          .refine((s) => !(Date.parse(s) > now().getTime() + FUTURE_SKEW_MS), 'detectedAt must not be in the future')
          .optional(),
      },
      {
        error: (iss) => {
          // A bare string body is most likely someone posting the secret itself.
          if (iss.code === 'invalid_type' && typeof iss.input === 'string') {
            return `body must be a JSON object: ${NEVER_THE_SECRET}`;
          }
          if (iss.code !== 'unrecognized_keys') return undefined;
          const input = iss.input as Record<string, unknown> | undefined;
          const secretish = iss.keys.filter((k) => SECRET_KEY.test(k) || carriesSecret(input?.[k]));
          return secretish.length > 0
            ? `${secretish.map((k) => `"${k}"`).join(', ')} must not be sent: ${NEVER_THE_SECRET}`
            : `unknown field(s) ${iss.keys.map((k) => `"${k}"`).join(', ')}`;
        },
      },
    )
    .refine((b) => b.nhiId !== undefined || b.fingerprint !== undefined || b.accessKeyId !== undefined, {
      message: 'one of nhiId, fingerprint (sha256 hex of the leaked secret) or accessKeyId (of a leaked AWS key) is required',
    });
}

export const genericLeakSchema = makeGenericLeakSchema();
export type GenericLeak = z.infer<typeof genericLeakSchema>;

/** A validated generic body as a NormalizedAlert; `receivedAt` stands in for a missing detectedAt. */
export function normalizeGenericLeak(body: GenericLeak, receivedAt: Date, deliveryId?: string): NormalizedAlert {
  // An access key id travels as its sha256, like every fingerprint: the store keeps the same of each key it holds.
  const keyIdFp = body.accessKeyId ? sha256Hex(body.accessKeyId) : undefined;
  const subject = [body.nhiId, body.fingerprint && `sha256:${body.fingerprint.slice(0, 12)}…`, keyIdFp && `access key id sha256:${keyIdFp.slice(0, 12)}…`].filter(Boolean).join(' ');
  return {
    source: 'generic',
    externalId: `generic:${body.source}:${body.fingerprint ?? keyIdFp ?? body.nhiId}`,
    ...(deliveryId ? { deliveryId } : {}),
    ...(body.nhiId ? { nhiId: body.nhiId } : {}),
    action: 'reported',
    trigger: true,
    severity: body.severity,
    fingerprints: [body.fingerprint, keyIdFp].filter((f): f is string => f !== undefined).map((f) => labelFingerprint('sha256', f)),
    ...(body.evidenceUrl ? { evidenceUrl: body.evidenceUrl } : {}),
    detectedAt: toIso(body.detectedAt ?? receivedAt.toISOString()),
    summary: oneLine(`generic ${body.source}: ${subject}`),
  };
}

// ---------------------------------------------------------------------------------------------
// GitHub alert reference (for the REST API lookup)

/** `{repository, number}` of a GitHub alert, from its externalId `github:owner/repo#42`; else null. */
export function githubAlertRef(alert: Pick<NormalizedAlert, 'source' | 'externalId'>): { repository: string; number: number } | null {
  if (alert.source !== 'github') return null;
  const m = /^github:([^/\s#]+\/[^/\s#]+)#(\d{1,12})$/.exec(alert.externalId);
  return m ? { repository: m[1], number: Number(m[2]) } : null;
}
