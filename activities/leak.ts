// Leak containment activities (issue #4).
import type { ActivityDeps } from './deps';

export function createLeakActivities(_deps: ActivityDeps) {
  return {};
}
