// The data folder holds what must stay private to the user running the orchestrator: Temporal's
// temporal.db (workflow histories), PostgreSQL's data, the dev secret-store key, the connector's dev
// password and the demo tokens. Folders are 0700 and files 0600, the dev server starts under umask 077
// so what it creates later is private too (PostgreSQL's initdb makes its own folder 0700). And
// production refuses the dev shortcuts.
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeKey, type Config } from './config';

export const DEV_KEY_FILE = 'secret-store.key';

/**
 * Create the folder if needed and make everything in it private (symlinks are left alone): folders
 * 0700, files 0600. With `traversable` the folder itself is 0711: as root, the embedded PostgreSQL
 * runs as the `postgres` OS user, which must pass through it to its own (0700) data folder — it can
 * list nothing. Returns what was changed.
 */
export function secureDataDir(dir: string, opts: { traversable?: boolean } = {}): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const changed: string[] = [];
  const top = opts.traversable ? 0o711 : 0o700;
  if ((lstatSync(dir).mode & 0o777) !== top) {
    chmodSync(dir, top);
    changed.push(dir);
  }
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    // Only what others can reach is changed: an owner-only mode stays as its program set it.
    if ((st.mode & 0o077) !== 0) {
      chmodSync(p, st.isDirectory() ? 0o700 : 0o600);
      changed.push(p);
    }
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(path.join(p, name));
  };
  for (const name of readdirSync(dir)) walk(path.join(dir, name));
  return changed;
}

/** Run `fn` (which spawns a child) with umask 077, so what the child creates is private too. */
export async function withPrivateUmask<T>(fn: () => Promise<T>): Promise<T> {
  const before = process.umask(0o077);
  try {
    return await fn();
  } finally {
    process.umask(before);
  }
}

/**
 * What stops a production start: the dev secret-store key file beside the data it protects (or
 * SECRET_STORE_KEY equal to it), no SECRET_STORE_KEY or AUTHORITY_KEY at all, and demo principals.
 */
export function productionProblems(config: Pick<Config, 'NODE_ENV' | 'SECRET_STORE_KEY' | 'AUTHORITY_KEY' | 'dataDir' | 'demo'>): string[] {
  if (config.NODE_ENV !== 'production') return [];
  const problems: string[] = [];
  const devKey = path.join(config.dataDir, DEV_KEY_FILE);
  if (!config.SECRET_STORE_KEY) problems.push('SECRET_STORE_KEY is required in production (32 bytes, base64 or hex), kept outside the data folder');
  if (existsSync(devKey)) {
    const same = config.SECRET_STORE_KEY && decodeKey(readFileSync(devKey, 'utf8').trim())?.equals(decodeKey(config.SECRET_STORE_KEY) ?? Buffer.alloc(0));
    problems.push(
      `${devKey} is the dev secret-store key${same ? ', and SECRET_STORE_KEY is that key' : ''}: a production key never sits beside the data it protects — re-encrypt with a new SECRET_STORE_KEY and delete the file`,
    );
  }
  if (!config.AUTHORITY_KEY) problems.push('AUTHORITY_KEY is required in production (32 bytes, base64 or hex): the API signs principals with it and the workers verify them, so both get the same key');
  if (config.demo) problems.push('DEMO must be off in production (demo principals and their printed tokens are for local use only)');
  return problems;
}
