// The start banner's "first hour" block: what a newcomer needs without reading code — the console,
// a psql line into the demo estate, whether the leak webhooks can be used, and a Temporal UI link
// per scenario (a saved list query over the Scenario search attribute). Pure: tested alone.
import type { Config } from '../lib/config';
import { embeddedPostgresUrl, redactUrl } from '../lib/config-urls';
import { DEFAULT_ESTATE_DATABASE } from '../lib/estate';

export const SCENARIOS = ['jit', 'leak', 'offboarding', 'anomaly'] as const;

/** The Temporal UI's workflow list filtered by a visibility query (the UI keeps it in the URL). */
export function temporalUiListUrl(uiUrl: string, namespace: string, query: string): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows?query=${encodeURIComponent(query)}`;
}

/** How to open the estate the connector manages with psql (a password only where it is the fixed dev one). */
export function estatePsqlLine(config: Pick<Config, 'DATABASE_URL' | 'ESTATE_DATABASE_URL' | 'EMBEDDED_PG_PORT'>): string {
  if (config.ESTATE_DATABASE_URL) return `psql '${redactUrl(config.ESTATE_DATABASE_URL)}'   (ESTATE_DATABASE_URL; its password is yours)`;
  if (config.DATABASE_URL) {
    const u = new URL(config.DATABASE_URL);
    u.pathname = `/${DEFAULT_ESTATE_DATABASE}`;
    return `psql '${redactUrl(u.toString())}'   (the DATABASE_URL server; its password is yours)`;
  }
  return `psql '${embeddedPostgresUrl(config, DEFAULT_ESTATE_DATABASE)}'   (embedded dev server: postgres/postgres)`;
}

export function firstHourLines(opts: {
  api: string;
  config: Pick<Config, 'DATABASE_URL' | 'ESTATE_DATABASE_URL' | 'EMBEDDED_PG_PORT' | 'GITHUB_WEBHOOK_SECRET' | 'GITGUARDIAN_WEBHOOK_SECRET'>;
  /** The Temporal Web UI, when there is one (the dev server's). */
  temporalUiUrl?: string;
  namespace: string;
}): string[] {
  const secret = (name: 'GITHUB_WEBHOOK_SECRET' | 'GITGUARDIAN_WEBHOOK_SECRET', path: string) =>
    `${path.padEnd(27)} ${opts.config[name] ? `ready (${name} is set)` : `off: set ${name} to accept it (it answers 503 until then)`}`;
  const lines = [
    '',
    'First hour (README "Try it", docs/webhooks.md, docs/temporal-ui.md):',
    `  Console        ${opts.api}/console/`,
    `  Demo estate    ${estatePsqlLine(opts.config)}`,
    `                 e.g. SELECT r.rolname, g.rolname AS member_of FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = 'partner_acme';`,
    `  Webhooks       ${secret('GITHUB_WEBHOOK_SECRET', 'POST /webhooks/github')}`,
    `                 ${secret('GITGUARDIAN_WEBHOOK_SECRET', 'POST /webhooks/gitguardian')}`,
  ];
  if (opts.temporalUiUrl) {
    lines.push('  Temporal UI    one list per scenario (add the NhiId, Scenario, NhiState columns once: docs/temporal-ui.md)');
    for (const s of SCENARIOS) lines.push(`    ${s.padEnd(12)} ${temporalUiListUrl(opts.temporalUiUrl, opts.namespace, `Scenario = "${s}"`)}`);
  }
  return lines;
}
