export default async function globalTeardown() {
  await globalThis.__NHI_TEST_PG__?.stop();
  await globalThis.__NHI_TEST_PG_EXTERNAL__?.stop();
}
