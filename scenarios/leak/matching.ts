// Which NHIs an alert is about, and whether each still needs containing. In this order: a
// fingerprint of a credential we issued (for GitHub alerts, when GITHUB_TOKEN is set, of the secret
// fetched from GitHub's REST API), the NHI named directly, then exposure hints; without a
// fingerprint, time decides whether the current credential can be the one that leaked.
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../../lib/config';
import { getNhi } from '../../lib/inventory';
import { secretsByFingerprints } from '../../lib/secret-store';
import { fetchSecretScanningAlert } from './github-alerts';
import { fingerprintsOfKind, githubAlertRef, labelFingerprint, matchByExposureHints, type NormalizedAlert } from './intake';
import type { MatchedBy } from './contract';

/**
 * How a target was found. `github_api_fingerprint`: the fingerprint of the secret GitHub's REST API
 * returned for the alert. The workflow's evidence (`LeakAlert.matchedBy`) records it as
 * `fingerprint`; intake results, audit rows and incidents name it exactly.
 */
export type Match = MatchedBy | 'github_api_fingerprint';
export const contractMatch = (m: Match): MatchedBy => (m === 'github_api_fingerprint' ? 'fingerprint' : m);

export type Target = { nhiId: string; matchedBy: Match; verdict: 'contain' | 'already_contained'; reason?: string };

/** Where an alert's fingerprints came from, when not from the alert itself. */
export type FingerprintVia = { via: 'github_api' };

export async function resolveTargets(pool: Pool, alert: NormalizedAlert, fpVia?: FingerprintVia): Promise<{ targets: Target[]; unmatchedReason?: string }> {
  // 1. A fingerprint of a credential we issued names the NHI, and says whether it is still live.
  const fpMatch: Match = fpVia?.via === 'github_api' ? 'github_api_fingerprint' : 'fingerprint';
  const sha = fingerprintsOfKind(alert, 'sha256').map((f) => f.toLowerCase());
  const hmsl = fingerprintsOfKind(alert, 'hmsl').map((f) => f.toLowerCase());
  if (sha.length || hmsl.length) {
    // Of a whole value or of a part (an AWS key's secret half or id): one lookup, the secret store's.
    const rows = await secretsByFingerprints(pool, { sha256: sha, hmsl });
    const live = rows.filter((r) => r.status === 'active' || r.status === 'pending');
    if (live.length) return { targets: [...new Set(live.map((r) => r.nhi_id))].map((nhiId) => ({ nhiId, matchedBy: fpMatch, verdict: 'contain' as const })) };
    if (rows.length) {
      const byNhi = new Map(rows.map((r) => [r.nhi_id, r]));
      return {
        targets: [...byNhi.values()].map((r) => ({
          nhiId: r.nhi_id,
          matchedBy: fpMatch,
          verdict: 'already_contained' as const,
          reason: `the leaked credential (version ${r.version}) is already ${r.status}`,
        })),
      };
    }
  }
  // 2. The NHI named directly (generic alerts), else 3. exposure hints.
  let candidates: { nhiId: string; matchedBy: MatchedBy }[];
  if (alert.nhiId) {
    if (!(await getNhi(pool, alert.nhiId))) return { targets: [], unmatchedReason: `unknown NHI ${alert.nhiId}` };
    candidates = [{ nhiId: alert.nhiId, matchedBy: 'nhi_id' }];
  } else {
    const { rows } = await pool.query<{ id: string; exposure_hints: { repository: string; secretType?: string }[] }>(
      `SELECT id, exposure_hints FROM nhis WHERE exposure_hints <> '[]'::jsonb`,
    );
    const ids = matchByExposureHints(alert, rows.map((r) => ({ id: r.id, exposureHints: r.exposure_hints })));
    if (!ids.length) {
      const where = alert.repository ? `${alert.repository}${alert.secretType ? ` (${alert.secretType})` : ''}` : 'the alert (no repository)';
      return { targets: [], unmatchedReason: `no NHI fingerprint or exposure hint matches ${where}` };
    }
    candidates = ids.map((nhiId) => ({ nhiId, matchedBy: 'exposure_hint' as const }));
  }
  return { targets: await Promise.all(candidates.map((c) => judge(pool, c.nhiId, c.matchedBy, alert.detectedAt))) };
}

/**
 * Without a fingerprint, time decides: a credential issued after the leak was detected cannot
 * be the one that leaked (this is what stops a late second alert from rotating again).
 */
async function judge(pool: Pool, nhiId: string, matchedBy: MatchedBy, detectedAt: string): Promise<Target> {
  const { rows } = await pool.query<{ status: string; version: number | null; activated_at: Date | null }>(
    `SELECT n.status, s.version, s.activated_at FROM nhis n LEFT JOIN secrets s ON s.nhi_id = n.id AND s.status = 'active' WHERE n.id = $1`,
    [nhiId],
  );
  const r = rows[0];
  if (r?.status === 'offboarded') return { nhiId, matchedBy, verdict: 'already_contained', reason: `${nhiId} is offboarded: no login, credentials erased` };
  if (r?.activated_at && r.activated_at.getTime() > Date.parse(detectedAt)) {
    return {
      nhiId,
      matchedBy,
      verdict: 'already_contained',
      reason: `the current credential (version ${r.version}) was issued at ${r.activated_at.toISOString()}, after the leak was detected at ${detectedAt}`,
    };
  }
  return { nhiId, matchedBy, verdict: 'contain' };
}

/**
 * With GITHUB_TOKEN set: fetch the alert from GitHub's REST API and add the fingerprints (sha256,
 * hmsl) of its secret to the alert, so matching tries credentials we issued before exposure hints.
 * The secret itself never leaves scenarios/leak/github-alerts. On any failure (404, 403, timeout) the alert
 * goes on unchanged — exposure hints, then triage — and the reason is logged.
 */
export async function withGithubApiFingerprints(
  config: Pick<Config, 'GITHUB_TOKEN' | 'GITHUB_API_URL'>,
  log: Pick<Logger, 'warn'>,
  alert: NormalizedAlert,
): Promise<{ alert: NormalizedAlert; via?: FingerprintVia }> {
  const token = config.GITHUB_TOKEN;
  const ref = githubAlertRef(alert);
  if (!token || !ref) return { alert };
  const r = await fetchSecretScanningAlert({ apiUrl: config.GITHUB_API_URL, token, repository: ref.repository, number: ref.number });
  if (!r.ok) {
    log.warn({ source: 'github', externalId: alert.externalId, status: r.status, reason: r.reason }, `GitHub alert lookup failed: ${r.reason}; matching by exposure hints`);
    return { alert };
  }
  const fingerprints = [labelFingerprint('sha256', r.sha256), labelFingerprint('hmsl', r.hmsl), ...alert.fingerprints];
  return { alert: { ...alert, fingerprints: [...new Set(fingerprints)] }, via: { via: 'github_api' } };
}
