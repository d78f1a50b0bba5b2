// createActivities(deps): every scenario's activities, built from typed dependencies.
import { createCommonActivities } from './common';
import type { ActivityDeps } from './deps';
import { createJitActivities } from './jit';

export type { ActivityDeps, ConnectorRegistry } from './deps';

export function createActivities(deps: ActivityDeps) {
  return {
    ...createCommonActivities(deps),
    ...createJitActivities(deps),
  };
}
