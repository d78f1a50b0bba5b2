#!/usr/bin/env node
// The `nhi` command: runs cli/nhi.ts from source through swc (no build step). The project's
// tsconfig is used whatever the current directory is.
'use strict';
const path = require('node:path');

process.env.SWC_NODE_PROJECT ??= path.join(__dirname, '..', 'tsconfig.json');
require('@swc-node/register');
const { main } = require('../cli/nhi.ts');

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`error: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
