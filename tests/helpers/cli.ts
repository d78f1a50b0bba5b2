// Run the `nhi` bin as a child process, the way an operator would.
import { spawn } from 'node:child_process';
import path from 'node:path';

export const NHI_BIN = path.resolve(__dirname, '..', '..', 'bin', 'nhi.js');

export function nhi(args: string[], env: NodeJS.ProcessEnv, cwd = path.resolve(__dirname, '..')): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Run from another directory: the bin must not depend on the caller's cwd.
    const child = spawn(process.execPath, [NHI_BIN, ...args], { env: { ...process.env, ...env }, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
