// Anomaly throttling activities (issue #6).
import type { ActivityDeps } from './deps';

export function createAnomalyActivities(_deps: ActivityDeps) {
  return {};
}
