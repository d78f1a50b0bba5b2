// Every suite runs on the embedded PostgreSQL 18. With TEST_EXTERNAL_PG_BIN (a PostgreSQL bin/
// folder, e.g. /usr/lib/postgresql/15/bin) or TEST_EXTERNAL_DATABASE_URL, the suites where the
// PostgreSQL version matters — connectors, the reconciler and ledger, the workflows, the scenario
// pairs, lib — run a second time on that server (project `pg-external`); .ci/run does so with 15.
const external = Boolean(process.env.TEST_EXTERNAL_PG_BIN || process.env.TEST_EXTERNAL_DATABASE_URL);

const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(t|j)s$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
};

// Pure logic and Temporal-only suites: nothing there depends on the PostgreSQL version.
const NO_DATABASE = [
  '/tests/scenarios/anomaly/detector\\.test\\.ts$',
  '/tests/lib/policy-engine\\.test\\.ts$',
  '/tests/lib/policy-decisions\\.test\\.ts$',
  '/tests/lib/v8-wasm-workaround\\.test\\.ts$',
  '/tests/lib/notifier\\.test\\.ts$',
  '/tests/lib/config\\.test\\.ts$',
  '/tests/temporal/',
  '/tests/workflows/',
  '/tests/replay/',
  // History budgets, not PostgreSQL behaviour: once is enough.
  '/tests/long-run/',
  '/tests/upgrade/',
  '/tests/scripts/',
  '/tests/console/(client|router)\\.test\\.ts$',
  // The browser suite's Postgres work is the JIT routes' (which run on both servers); once is enough.
  '/tests/console/console\\.browser\\.test\\.ts$',
  '/tests/connectors/registry\\.test\\.ts$',
  // The outside fuzzer tests the HTTP contract, not the PostgreSQL version: once per run (~70 s).
  '/tests/fuzz/',
];
// The HTTP contract (routes, API, CLI, security edges): their database work goes through the same
// connector, reconciler and ledger code that the connector, workflow and pair suites run on both
// servers, so once is enough — it keeps the whole run within its time budget on 2 cores.
const HTTP_CONTRACT = ['/tests/api/', '/tests/cli/', '/tests/scenarios/[^/]+/routes\\.test\\.ts$', '/tests/security/'];
// The chaos run's faults are processes and connections, not SQL: once is enough.
const FAULTS = ['/tests/chaos/'];
// Suites whose target is not PostgreSQL (AWS on moto, OpenBao): the re-run on another PostgreSQL
// version adds nothing to them.
const OTHER_TARGETS = ['/tests/connectors/aws-iam\\.test\\.ts$', '/aws\\.test\\.ts$', '/tests/lib/secret-store-vault\\.test\\.ts$', '/tests/connectors/openbao-approle\\.test\\.ts$', '/openbao\\.test\\.ts$'];

// `npm test` runs two suites at a time (`--maxWorkers=2`): each suite has its own databases, Temporal
// server and local AWS/OpenBao on free ports, and most of a suite's time is spent waiting on them, so
// two side by side finish in well under the time of one after the other, even on two cores.
/** @type {import('jest').Config} */
module.exports = {
  globalSetup: '<rootDir>/tests/global-setup.mjs',
  globalTeardown: '<rootDir>/tests/global-teardown.mjs',
  testTimeout: 60_000,
  projects: [
    { ...base, ...(external ? { displayName: 'pg-embedded' } : {}) },
    ...(external
      ? [{ ...base, displayName: 'pg-external', testPathIgnorePatterns: ['/node_modules/', ...NO_DATABASE, ...OTHER_TARGETS, ...HTTP_CONTRACT, ...FAULTS], setupFiles: ['<rootDir>/tests/helpers/use-external-pg.js'] }]
      : []),
  ],
};
