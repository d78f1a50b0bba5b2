import { rmSync } from 'node:fs';

export default async function globalTeardown() {
  await globalThis.__NHI_TEST_PG__?.stop();
  await globalThis.__NHI_TEST_PG_EXTERNAL__?.stop();
  if (globalThis.__NHI_TEST_BUNDLE_DIR__) rmSync(globalThis.__NHI_TEST_BUNDLE_DIR__, { recursive: true, force: true });
}
