// Setup file of the `pg-external` jest project: the suites' "run's PostgreSQL" is the external server.
if (!process.env.TEST_EXTERNAL_DATABASE_URL) throw new Error('the pg-external project needs TEST_EXTERNAL_PG_BIN or TEST_EXTERNAL_DATABASE_URL');
process.env.TEST_DATABASE_URL = process.env.TEST_EXTERNAL_DATABASE_URL;
