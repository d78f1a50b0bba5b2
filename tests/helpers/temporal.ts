// Temporal test environments on the installed binaries: tests never download a server.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ALL_SEARCH_ATTRIBUTES, temporalCliPath, testServerPath } from '../../temporal-dev/paths';

/** Time-skipping server: timers of hours pass in milliseconds. */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: testServerPath() } },
  });
}

/**
 * The real dev server (the `temporal` CLI) in memory: visibility queries on our search attributes,
 * and Updates (the time-skipping server does not skip time while an Update is awaited).
 */
export async function createLocalEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCliPath() },
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      extraArgs: ['--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true'],
    },
  });
}
