// Usage intake and anomaly throttling API (issue #6).
import { Router } from 'express';
import type { ScenarioDeps } from '../scenarios';

export function createAnomalyRouter(_deps: ScenarioDeps): Router {
  return Router();
}
