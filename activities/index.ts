// createActivities(deps): every scenario's activities, built from typed dependencies.
import { createAnomalyActivities } from './anomaly';
import { createCommonActivities } from './common';
import { createDriftActivities } from './drift';
import type { ActivityDeps } from './deps';
import { createJitActivities } from './jit';
import { createLeakActivities } from './leak';
import { createOffboardingActivities } from './offboarding';

export type { ActivityDeps, ConnectorRegistry } from './deps';

export function createActivities(deps: ActivityDeps) {
  return {
    ...createCommonActivities(deps),
    ...createJitActivities(deps),
    ...createLeakActivities(deps),
    ...createOffboardingActivities(deps),
    ...createAnomalyActivities(deps),
    ...createDriftActivities(deps),
  };
}
