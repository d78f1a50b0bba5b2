// Temporal test environments on the installed binaries: tests never download a server.
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ALL_SEARCH_ATTRIBUTES, temporalCliPath, testServerPath } from '../../temporal-dev/paths';

/** Time-skipping server: timers of hours pass in milliseconds. */
/**
 * The SDK gives a server 5 s to come up; on a loaded 2-core machine that is sometimes not enough,
 * so a start that timed out is tried again (twice) before the test fails.
 */
async function withStartRetries<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= 3 || !/did not start within/.test(String((err as Error)?.message))) throw err;
    }
  }
}

export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await withStartRetries(() =>
    TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: testServerPath() } },
    }),
  );
  // The test server knows no custom search attributes until they are added.
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((k) => [k.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return env;
}

/**
 * The real dev server (the `temporal` CLI) in memory: visibility queries on our search attributes,
 * and Updates (the time-skipping server does not skip time while an Update is awaited).
 */
export async function createLocalEnv(): Promise<TestWorkflowEnvironment> {
  return withStartRetries(() =>
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: temporalCliPath() },
        searchAttributes: ALL_SEARCH_ATTRIBUTES,
        extraArgs: ['--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true'],
      },
    }),
  );
}
