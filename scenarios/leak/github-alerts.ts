// GitHub secret scanning REST API: fetch one alert and fingerprint its secret, so a GitHub alert
// can be mapped to the NHI whose issued credential leaked (the webhook never carries the secret).
//
// The secret value lives only inside `fetchSecretScanningAlertFingerprint`: it is hashed in memory
// and dropped. It is never returned, logged, stored or put in an error or a reason; reasons name
// status codes only.
import { fingerprintsFor } from './intake';

export interface GithubAlertFetch {
  /** e.g. https://api.github.com (GITHUB_API_URL); a trailing slash is fine. */
  apiUrl: string;
  /** A token that may read secret scanning alerts (GITHUB_TOKEN). */
  token: string;
  /** `owner/repo`. */
  repository: string;
  number: number;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}

export type GithubAlertFingerprint =
  | { ok: true; sha256: string; hmsl: string }
  | { ok: false; reason: string; status?: number };

const REPO = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

/**
 * `GET {apiUrl}/repos/{owner}/{repo}/secret-scanning/alerts/{number}` and the sha256 + hmsl of its
 * `secret`. Never throws: any failure (404, 403, timeout, no `secret` field) is `ok: false` with a
 * reason the caller can log.
 */
export async function fetchSecretScanningAlert(opts: GithubAlertFetch): Promise<GithubAlertFingerprint> {
  if (!REPO.test(opts.repository)) return { ok: false, reason: 'repository is not owner/repo' };
  if (!Number.isInteger(opts.number) || opts.number <= 0) return { ok: false, reason: 'alert number is not a positive integer' };
  const [owner, repo] = opts.repository.split('/');
  const url = `${opts.apiUrl.replace(/\/+$/, '')}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}/secret-scanning/alerts/${opts.number}`;
  const doFetch = opts.fetchImpl ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 5000;
  let res: Response;
  try {
    res = await doFetch(url, {
      method: 'GET',
      headers: {
        Authorization: `Bearer ${opts.token}`,
        Accept: 'application/vnd.github+json',
        'X-GitHub-Api-Version': '2022-11-28',
        'User-Agent': 'nhi-orchestrator',
      },
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const name = (err as Error)?.name;
    return { ok: false, reason: name === 'TimeoutError' || name === 'AbortError' ? `GitHub API timed out after ${timeoutMs} ms` : 'GitHub API unreachable' };
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    const why = res.status === 404 ? ' (alert not found, or secret scanning not visible to the token)' : res.status === 403 || res.status === 401 ? ' (token lacks access)' : '';
    return { ok: false, status: res.status, reason: `GitHub API answered ${res.status}${why}` };
  }
  let secret: unknown;
  try {
    secret = ((await res.json()) as { secret?: unknown } | null)?.secret;
  } catch {
    return { ok: false, status: res.status, reason: `GitHub API answered ${res.status} with a body that is not JSON` };
  }
  if (typeof secret !== 'string' || !secret) return { ok: false, status: res.status, reason: `GitHub API answered ${res.status} without a secret field` };
  const { sha256, hmsl } = fingerprintsFor(secret);
  return { ok: true, sha256, hmsl };
}

/** The fingerprints only, or null (the brief's shape); `onFailure` receives the loggable reason. */
export async function fetchSecretScanningAlertFingerprint(
  opts: GithubAlertFetch & { onFailure?: (reason: string, status?: number) => void },
): Promise<{ sha256: string; hmsl: string } | null> {
  const r = await fetchSecretScanningAlert(opts);
  if (r.ok) return { sha256: r.sha256, hmsl: r.hmsl };
  opts.onFailure?.(r.reason, r.status);
  return null;
}
