// Where the orchestrator's database is: DATABASE_URL, or in dev the embedded PostgreSQL that
// `npm start` runs. Shared by the start script, the API and the `nhi` CLI so they always agree.
import type { Config } from './config';

export const EMBEDDED_PG_USER = 'postgres';
export const EMBEDDED_PG_PASSWORD = 'postgres';
/** The orchestrator's own database inside the embedded server (the estate lives in another one). */
export const ORCHESTRATOR_DATABASE = 'nhi';

/** A URL on the embedded PostgreSQL for one database (`postgres` is the admin database). */
export function embeddedPostgresUrl(config: Pick<Config, 'EMBEDDED_PG_PORT'>, database: string): string {
  const auth = `${encodeURIComponent(EMBEDDED_PG_USER)}:${encodeURIComponent(EMBEDDED_PG_PASSWORD)}`;
  return `postgres://${auth}@127.0.0.1:${config.EMBEDDED_PG_PORT}/${encodeURIComponent(database)}`;
}

/** DATABASE_URL when set, else the embedded server's `nhi` database. */
export function orchestratorDatabaseUrl(config: Pick<Config, 'DATABASE_URL' | 'EMBEDDED_PG_PORT'>): string {
  return config.DATABASE_URL ?? embeddedPostgresUrl(config, ORCHESTRATOR_DATABASE);
}

/** The URL with its password masked, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
