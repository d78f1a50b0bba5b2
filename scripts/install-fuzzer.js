#!/usr/bin/env node
// Installs the pinned outside fuzzer (schemathesis, PyPI) into a project-local, git-ignored venv,
// .venv-fuzz/, for the fuzz suite (tests/fuzz/). Run by npm's postinstall; idempotent and offline-safe
// once installed: it reaches PyPI only when the pinned version is missing.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const SCHEMATHESIS_VERSION = '4.32.5';
const venv = path.resolve(__dirname, '..', '.venv-fuzz');
const bin = path.join(venv, process.platform === 'win32' ? 'Scripts' : 'bin');
const log = (m) => process.stdout.write(`[fuzzer] ${m}\n`);

function installed() {
  const r = spawnSync(path.join(bin, 'schemathesis'), ['--version'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes(SCHEMATHESIS_VERSION);
}

if (installed()) {
  log(`schemathesis ${SCHEMATHESIS_VERSION} present in .venv-fuzz`);
  process.exit(0);
}
if (!fs.existsSync(path.join(bin, 'pip'))) {
  const py = ['python3', 'python'].find((c) => spawnSync(c, ['--version']).status === 0);
  if (!py) {
    log('python3 is needed for the fuzz suite (schemathesis from PyPI)');
    process.exit(1);
  }
  log('creating venv in .venv-fuzz');
  const r = spawnSync(py, ['-m', 'venv', venv], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
log(`pip install schemathesis==${SCHEMATHESIS_VERSION}`);
const r = spawnSync(path.join(bin, 'pip'), ['install', '--quiet', '--disable-pip-version-check', `schemathesis==${SCHEMATHESIS_VERSION}`], { stdio: 'inherit' });
if (r.status !== 0 || !installed()) {
  log('installing schemathesis failed');
  process.exit(r.status || 1);
}
log(`schemathesis ${SCHEMATHESIS_VERSION} installed`);
