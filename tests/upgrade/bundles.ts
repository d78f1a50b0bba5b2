// Workflow bundles for the upgrade test: the current code, and the same code as it ran before
// its patches (tests/upgrade/before-patches.ts stands in for '@temporalio/workflow').
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../../workers/worker';

export async function bundleBeforePatches(): Promise<{ code: string }> {
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: new DefaultLogger('WARN'),
    webpackConfigHook: (config) => ({
      ...config,
      resolve: { ...config.resolve, alias: { ...(config.resolve?.alias as Record<string, string | false>), '@temporalio/workflow$': require.resolve('./before-patches') } },
    }),
  });
}
