// Offboarding activities (issue #5).
import type { ActivityDeps } from './deps';

export function createOffboardingActivities(_deps: ActivityDeps) {
  return {};
}
