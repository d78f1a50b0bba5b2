// Demo principals and their tokens (dev only): kept across restarts in the data folder (0600), and
// shown in the start banner only when stdout is a terminal — never in a log file or CI output.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Pool } from 'pg';
import { authenticate, createToken, upsertPrincipal, type Role } from '../lib/principals';

export const DEMO_TOKENS_FILE = 'demo-tokens.json';

export async function demoTokens(dataDir: string, pool: Pool, principals: { id: string; roles: Role[] }[]): Promise<Record<string, string>> {
  const file = path.join(dataDir, DEMO_TOKENS_FILE);
  const saved: Record<string, string> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const tokens: Record<string, string> = {};
  for (const p of principals) {
    await upsertPrincipal(pool, p);
    const ok = saved[p.id] && (await authenticate(pool, saved[p.id]))?.id === p.id;
    tokens[p.id] = ok ? saved[p.id] : await createToken(pool, p.id, 'demo');
  }
  writeFileSync(file, JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 });
  return tokens;
}

/** The banner's lines about demo tokens: the tokens on a terminal, else only where to find them. */
export function demoTokenLines(a: { tokens: Record<string, string>; principals: { id: string; roles: Role[] }[]; tty: boolean; dataDir: string; api: string }): string[] {
  if (!Object.keys(a.tokens).length) return [];
  if (!a.tty) return ['', `Demo principals: ${a.principals.map((p) => p.id).join(', ')}; their tokens are in ${path.join(a.dataDir, DEMO_TOKENS_FILE)} (not printed: stdout is not a terminal)`];
  const lines = ['', 'Demo principals (Authorization: Bearer <token>):'];
  for (const p of a.principals) lines.push(`  ${p.id.padEnd(13)} ${p.roles.join(',').padEnd(10)} ${a.tokens[p.id]}`);
  lines.push('', `Try: curl -H "Authorization: Bearer ${a.tokens[a.principals[0].id]}" ${a.api}/v1/nhis`);
  return lines;
}
