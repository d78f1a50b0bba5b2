// createActivities(deps): every scenario's activities, built from typed dependencies.
import { createDriftActivities } from '../enforcement/drift-activities';
import { createAnomalyActivities } from '../scenarios/anomaly/activities';
import { createJitActivities } from '../scenarios/jit/activities';
import { createLeakActivities } from '../scenarios/leak/activities';
import { createOffboardingActivities } from '../scenarios/offboarding/activities';
import { createCommonActivities } from './common';
import type { ActivityDeps } from './deps';

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
