// Every suite runs on the embedded PostgreSQL 18. With TEST_EXTERNAL_PG_BIN (a PostgreSQL bin/
// folder, e.g. /usr/lib/postgresql/15/bin) or TEST_EXTERNAL_DATABASE_URL, the suites that touch
// PostgreSQL run a second time on that server (project `pg-external`); .ci/run does so with 15.
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
  '/tests/lib/notifier\\.test\\.ts$',
  '/tests/lib/config\\.test\\.ts$',
  '/tests/temporal/',
  // The outside fuzzer tests the HTTP contract, not the PostgreSQL version: once per run (~70 s).
  '/tests/fuzz/',
];

/** @type {import('jest').Config} */
module.exports = {
  globalSetup: '<rootDir>/tests/global-setup.mjs',
  globalTeardown: '<rootDir>/tests/global-teardown.mjs',
  testTimeout: 60_000,
  projects: [
    { ...base, ...(external ? { displayName: 'pg-embedded' } : {}) },
    ...(external
      ? [{ ...base, displayName: 'pg-external', testPathIgnorePatterns: ['/node_modules/', ...NO_DATABASE], setupFiles: ['<rootDir>/tests/helpers/use-external-pg.js'] }]
      : []),
  ],
};
